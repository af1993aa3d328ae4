package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/ductbot/ductbot/core/k8s/localcluster"
)

// devState is what `ductbot dev cluster up` leaves for `env` and `down`.
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

func runDev(ctx context.Context, args []string) error {
	usageLine := "usage: ductbot dev install | dev cluster up|down|env"
	if len(args) == 0 {
		return usagef("%s", usageLine)
	}
	switch args[0] {
	case "install":
		fs := flag.NewFlagSet("dev install", flag.ContinueOnError)
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		bins, err := localcluster.Install(ctx, localcluster.InstallOptions{Build: true, Progress: os.Stderr})
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "==> local control plane binaries ready:\n    %s\n    %s\n    %s\n    %s\n    %s\n    %s\n",
			bins.Etcd, bins.APIServer, bins.ControllerManager, bins.Scheduler, bins.Kwok, bins.Helm)
		return nil
	case "cluster":
		if len(args) < 2 {
			return usagef("%s", usageLine)
		}
		switch args[1] {
		case "up":
			return devClusterUp(ctx)
		case "down":
			return devClusterDown()
		case "env":
			st, err := readDevState()
			if err != nil {
				return err
			}
			fmt.Printf("export KUBECONFIG=%s\n", st.Kubeconfig)
			return nil
		}
	}
	return usagef("%s", usageLine)
}

// devClusterUp runs a local cluster in the foreground until interrupted.
func devClusterUp(ctx context.Context) error {
	if st, err := readDevState(); err == nil && anyAlive(st.PIDs) {
		return fmt.Errorf("a local cluster is already running (kubeconfig %s); stop it with `ductbot dev cluster down`", st.Kubeconfig)
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
		return st, fmt.Errorf("no local cluster is running (start one with `ductbot dev cluster up`): %w", err)
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

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}
