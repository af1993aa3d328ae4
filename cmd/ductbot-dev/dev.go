package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ductbot/ductbot/cmd/internal/cli"
	"github.com/ductbot/ductbot/core/k8s/localcluster"
)

// devState is what `ductbot-dev cluster up` leaves for `env` and `down`.
type devState struct {
	Dir        string `json:"dir"`
	Kubeconfig string `json:"kubeconfig"`
	PIDs       []int  `json:"pids"`
}

func devStatePath() (string, error) {
	cache, err := localcluster.CacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(cache, "dev-cluster", "state.json"), nil
}

func installCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "install",
		Short: "build the local control plane's binaries into the cache (a no-op when they are there)",
		Long: `Build the local control plane's binaries (etcd from Debian; kube-apiserver,
controller-manager, scheduler, kwok and helm built from the module cache) into
the cache outside the repository, the first time; a no-op afterwards.`,
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			bins, err := localcluster.Install(c.Context(), localcluster.InstallOptions{Build: true, Progress: os.Stderr})
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "==> local control plane binaries ready:\n    %s\n    %s\n    %s\n    %s\n    %s\n    %s\n",
				bins.Etcd, bins.APIServer, bins.ControllerManager, bins.Scheduler, bins.Kwok, bins.Helm)
			return nil
		},
	}
}

func clusterCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "cluster",
		Short: "run a local Kubernetes control plane (up, down, env)",
	}
	c.AddCommand(&cobra.Command{
		Use:   "up",
		Short: "run a local cluster in the foreground until Ctrl-C",
		Args:  cli.NoArgs,
		RunE:  func(c *cobra.Command, _ []string) error { return devClusterUp(c.Context()) },
	}, &cobra.Command{
		Use:   "down",
		Short: "stop a local cluster whose up was killed without cleaning up",
		Args:  cli.NoArgs,
		RunE:  func(*cobra.Command, []string) error { return devClusterDown() },
	}, &cobra.Command{
		Use:   "env",
		Short: "print the export KUBECONFIG=... line for the running local cluster",
		Args:  cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			st, err := readDevState()
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "export KUBECONFIG=%s\n", st.Kubeconfig)
			return nil
		},
	})
	return c
}

// devClusterUp runs a local cluster in the foreground until interrupted.
func devClusterUp(ctx context.Context) error {
	if st, err := readDevState(); err == nil && anyAlive(st.PIDs) {
		return fmt.Errorf("a local cluster is already running (kubeconfig %s); stop it with `ductbot-dev cluster down`", st.Kubeconfig)
	}
	bins, err := localcluster.Install(ctx, localcluster.InstallOptions{Build: true, Progress: os.Stderr})
	if err != nil {
		return err
	}
	statePath, err := devStatePath()
	if err != nil {
		return err
	}
	dir := filepath.Join(filepath.Dir(statePath), "run")
	_ = os.RemoveAll(dir)
	c, err := localcluster.Start(ctx, localcluster.Options{Binaries: bins, Dir: dir, Progress: os.Stderr})
	if err != nil {
		return err
	}
	defer c.Stop()
	st := devState{Dir: c.Dir, Kubeconfig: c.Kubeconfig, PIDs: c.PIDs()}
	b, _ := json.MarshalIndent(st, "", "  ")
	if err := os.WriteFile(statePath, b, 0o644); err != nil {
		return err
	}
	defer os.Remove(statePath)
	fmt.Fprintf(os.Stderr, "\nThe local cluster is up. In another terminal:\n    export KUBECONFIG=%s\nPress Ctrl-C to stop it.\n", c.Kubeconfig)
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "==> stopping the local cluster")
	return c.Stop()
}

// devClusterDown stops a cluster whose `up` was killed without cleaning up.
func devClusterDown() error {
	st, err := readDevState()
	if err != nil {
		return err
	}
	for _, pid := range st.PIDs {
		_ = syscall.Kill(-pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(15 * time.Second)
	for anyAlive(st.PIDs) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	for _, pid := range st.PIDs {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
	path, _ := devStatePath()
	_ = os.Remove(path)
	fmt.Fprintln(os.Stderr, "==> local cluster stopped")
	return nil
}

func readDevState() (devState, error) {
	var st devState
	path, err := devStatePath()
	if err != nil {
		return st, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return st, fmt.Errorf("no local cluster is running (start one with `ductbot-dev cluster up`): %w", err)
	}
	return st, json.Unmarshal(b, &st)
}

func anyAlive(pids []int) bool {
	for _, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			return true
		}
	}
	return false
}
