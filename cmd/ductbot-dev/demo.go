package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/ductbot/ductbot/cmd/internal/app"
	"github.com/ductbot/ductbot/cmd/internal/cli"
	"github.com/ductbot/ductbot/cmd/internal/demo"
	"github.com/ductbot/ductbot/config"
	"github.com/ductbot/ductbot/core/gerrit/gerrittest"
	"github.com/ductbot/ductbot/core/k8s/localcluster"
)

// demoCmd is `ductbot-dev demo`.
func demoCmd() *cobra.Command {
	var listen string
	c := &cobra.Command{
		Use:   "demo [--listen ADDR]",
		Short: "the whole loop on this machine (local cluster, Gerrit test server, console chat)",
		Long: `Run the whole loop on this machine: a local Kubernetes control plane, a Gerrit
test server with a sample project, and ductbot with the console chat and the
dashboard. It uploads patch sets that pass, get superseded, fail their tests and
crash-loop, then hands the console to you. Run it from the repository root.
Ctrl-C stops everything.`,
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runDemo(c.Context(), listen) },
	}
	c.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "dashboard address (a free port is used when taken)")
	return c
}

// runDemo runs the whole loop on this machine: a local Kubernetes control
// plane, a Gerrit test server with a sample project, and ductbot with the
// console chat and the dashboard. It uploads patch sets to show a pass, a
// superseded run, a failing test and a patch that crash-loops, then hands
// the console to the person.
func runDemo(ctx context.Context, listen string) error {
	chartPath, err := filepath.Abs(filepath.Join("examples", "chart", "wikifunctions"))
	if err == nil {
		_, err = os.Stat(chartPath)
	}
	if err != nil {
		return fmt.Errorf("run the demo from the repository root (examples/chart/wikifunctions not found): %w", err)
	}
	say := func(format string, a ...any) { fmt.Fprintf(os.Stderr, "\n>>> "+format+"\n", a...) }

	bins, err := localcluster.Install(ctx, localcluster.InstallOptions{Build: true, Progress: os.Stderr})
	if err != nil {
		return err
	}
	cluster, err := localcluster.Start(ctx, localcluster.Options{Binaries: bins, Progress: os.Stderr})
	if err != nil {
		return err
	}
	defer func() {
		say("stopping the local cluster")
		cluster.Stop()
	}()

	g := gerrittest.NewWithOptions(gerrittest.Options{Username: "ductbot", Password: "demo"})
	defer g.Close()
	g.AddAccount("alice", "Alice Developer", "alice@example.org")
	g.AddAccount("mallory", "Mallory Drive-by", "mallory@example.org")
	os.Setenv("DUCTBOT_DEMO_GERRIT_PASSWORD", "demo")

	dir, err := os.MkdirTemp("", "ductbot-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	addr := freeAddr(listen)
	cfg, err := config.Parse([]byte(demo.Config(g.URL(), chartPath, cluster.Kubeconfig, addr, filepath.Join(dir, "ductbot.db"))))
	if err != nil {
		return fmt.Errorf("the demo configuration: %w", err)
	}

	out := &lockedWriter{w: os.Stdout}
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: os.Stderr}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	in, feed := io.Pipe()
	a, err := app.New(ctx, cfg, app.Options{Logger: log, ConsoleIn: in, ConsoleOut: out})
	if err != nil {
		return err
	}
	runCtx, stopApp := context.WithCancel(ctx)
	defer stopApp()
	appDone := make(chan error, 1)
	go func() { appDone <- a.Run(runCtx, 20*time.Second) }()
	go demo.WatchVotes(runCtx, g, func(s string) { say("%s", s) })

	say("ductbot is running. Dashboard: %s/   Gerrit test server: %s", cfg.Web.PublicURL, g.URL())
	say("alice uploads change 1, patch set 1: ductbot deploys it into its own namespace, tests it and votes")
	c1 := g.CreateChange(demo.Project, "master", "Add Z801 echo function", "alice")
	demo.WaitVotes(ctx, g, c1, 1)

	say("alice uploads change 2 (slow tests), then patch set 2 while patch set 1 is still being tested: it is superseded")
	c2 := g.CreateChange(demo.Project, "master", "Cache evaluator results SLOW", "alice")
	waitRunning(ctx, a, c2)
	g.UploadPatchSet(c2, "alice", "Cache evaluator results, fixed")
	demo.WaitVotes(ctx, g, c2, 1)

	say("alice uploads change 3, which breaks the end-to-end tests: Verified -1 with the test log")
	c3 := g.CreateChange(demo.Project, "master", "Refactor the echo builtin FAIL", "alice")
	demo.WaitVotes(ctx, g, c3, 1)

	say("alice uploads change 4, whose orchestrator crash-loops on start: Verified -1 within seconds, naming the component, " +
		"CrashLoopBackOff, its last log lines and warning events (see the run page's Diagnosis)")
	c4 := g.CreateChange(demo.Project, "master", "Read the function cache path from a new setting CRASH", "alice")
	demo.WaitVotes(ctx, g, c4, 1)

	say("alice uploads change 5 to the wiki extension, and change 6 to the orchestrator whose commit message says " +
		"\"Depends-On: <change 5's Change-Id>\": change 6's environment runs change 5's wiki, and its vote lists it")
	c5 := g.CreateChange(demo.WikiProject, "master", "Call the orchestrator's new /evaluate endpoint", "alice")
	wiki, _ := g.Change(c5)
	c6 := g.CreateChangeMessage(demo.Project, "master", "Serve /evaluate for the wiki\n\nDepends-On: "+wiki.ChangeID+"\n", "alice")
	demo.WaitVotes(ctx, g, c6, 1)
	say("alice uploads patch set 2 of change 5: change 6's environment is rerun with it")
	g.UploadPatchSet(c5, "alice", "")
	demo.WaitVotes(ctx, g, c6, 2)

	say(`Your turn. Type a command and press Enter, for example:
      !env %d orchestrator=abc      an environment with a custom matrix
      !envs                          what is running
      !status %d                     a change's runs
      !destroy %d                    tear it down
      !help
    The dashboard is at %s/ . Ctrl-C stops everything.`, c1, c1, c1, cfg.Web.PublicURL)
	go func() {
		_, _ = io.Copy(feed, os.Stdin)
		feed.Close()
	}()
	select {
	case <-ctx.Done():
	case err := <-appDone:
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		return nil
	}
	say("stopping ductbot")
	stopApp()
	if err := <-appDone; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// waitRunning waits until a change's first run is testing.
func waitRunning(ctx context.Context, a *app.App, change int) {
	for ctx.Err() == nil {
		env, err := a.Store().GetEnv(ctx, fmt.Sprintf("change-%d", change))
		if err == nil && env.Status == "ready" {
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// freeAddr returns addr if it can be listened on, else a free loopback port.
func freeAddr(addr string) string {
	if ln, err := net.Listen("tcp", addr); err == nil {
		ln.Close()
		return addr
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return addr
	}
	defer ln.Close()
	return ln.Addr().String()
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
