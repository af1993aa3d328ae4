package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ductbot/ductbot/config"
	"github.com/ductbot/ductbot/core/gerrit/gerrittest"
	"github.com/ductbot/ductbot/core/k8s/localcluster"
)

const demoProject = "wikifunctions/function-orchestrator"

// demoConfig is the configuration the demo runs ductbot with. The chart's
// simulation knobs follow the commit subject: "FAIL" fails the tests,
// "SLOW" makes them take 20 seconds (time enough to supersede), "CRASH"
// makes the patch's orchestrator crash-loop.
const demoConfig = `
gerrit:
  url: %q
  username: ductbot
  password_env: DUCTBOT_DEMO_GERRIT_PASSWORD
  poll_interval: 2s
projects:
  - name: %s
    component: orchestrator
    channels: ["#wikifunctions"]
    trusted: {accounts: [alice]}
components:
  - {name: wiki, default_ref: "1.45.0", values: {wiki.image.tag: "{{.Ref}}"}}
  - {name: orchestrator, default_ref: "2026-11-20", ref_template: "{{printf \"%%.12s\" .Revision}}", values: {orchestrator.image.tag: "{{.Ref}}"}}
  - {name: evaluator, default_ref: "2026-11-20", values: {evaluator.image.tag: "{{.Ref}}"}}
chart:
  ref: %q
  env_values:
    ingress.host: "{{.Env}}.envs.localhost"
    orchestrator.simulate.mode: '{{if contains .Subject "CRASH"}}crash{{end}}'
    e2e.simulate.outcome: '{{if contains .Subject "FAIL"}}fail{{else}}pass{{end}}'
    e2e.simulate.duration: '{{if contains .Subject "SLOW"}}20s{{else}}2s{{end}}'
    e2e.simulate.log: |-
      e2e: testing {{.Env}} at {{.URL}}
      e2e: wiki answers /w/api.php
      e2e: orchestrator answers /_info
      {{if contains .Subject "FAIL"}}e2e: Z801 (echo) returned nothing; expected "hello"
      e2e: 1 failing, 3 passing{{else}}e2e: Z801 (echo) returned "hello"
      e2e: 4 passing{{end}}
  url_template: "http://{{.Env}}.envs.localhost/"
kubernetes: {kubeconfig: %q, deploy_timeout: 2m, test_timeout: 2m, retries: 1, retry_backoff: 2s, max_envs: 10, quota: {pods: "20", requests.cpu: "4"}, default_requests: {cpu: 50m, memory: 64Mi}, isolate: true}
web: {listen: %q}
state: {path: %q}
chat:
  console: true
  default_allow: ["*"]
  # The person at this terminal runs the demo: they may vouch for the
  # drive-by uploader's patch sets with !env.
  permissions: {vouch: ["console:*"]}
cleanup: {schedule: "@every 1m", ttl_default: 2h}
`

// runDemo runs the whole loop on this machine: a local Kubernetes control
// plane, a Gerrit test server with a sample project, and ductbot with the
// console chat and the dashboard. It uploads patch sets to show a pass, a
// superseded run, a failing test and a patch that crash-loops, then hands
// the console to the person.
func runDemo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8080", "dashboard address (a free port is used when taken)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
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
	addr := freeAddr(*listen)
	cfg, err := config.Parse([]byte(fmt.Sprintf(demoConfig, g.URL(), demoProject, chartPath, cluster.Kubeconfig, addr, filepath.Join(dir, "ductbot.db"))))
	if err != nil {
		return fmt.Errorf("the demo configuration: %w", err)
	}

	out := &lockedWriter{w: os.Stdout}
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: os.Stderr}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	in, feed := io.Pipe()
	a, err := newApp(ctx, cfg, appOptions{Logger: log, ConsoleIn: in, ConsoleOut: out})
	if err != nil {
		return err
	}
	runCtx, stopApp := context.WithCancel(ctx)
	defer stopApp()
	appDone := make(chan error, 1)
	go func() { appDone <- a.run(runCtx, 20*time.Second) }()
	go watchVotes(runCtx, g, func(s string) { say("%s", s) })

	say("ductbot is running. Dashboard: %s/   Gerrit test server: %s", cfg.Web.PublicURL, g.URL())
	say("alice uploads change 1, patch set 1: ductbot deploys it into its own namespace, tests it and votes")
	c1 := g.CreateChange(demoProject, "master", "Add Z801 echo function", "alice")
	waitVotes(ctx, g, c1, 1)

	say("alice uploads change 2 (slow tests), then patch set 2 while patch set 1 is still being tested: it is superseded")
	c2 := g.CreateChange(demoProject, "master", "Cache evaluator results SLOW", "alice")
	waitRunning(ctx, a, c2)
	g.UploadPatchSet(c2, "alice", "Cache evaluator results, fixed")
	waitVotes(ctx, g, c2, 1)

	say("alice uploads change 3, which breaks the end-to-end tests: Verified -1 with the test log")
	c3 := g.CreateChange(demoProject, "master", "Refactor the echo builtin FAIL", "alice")
	waitVotes(ctx, g, c3, 1)

	say("alice uploads change 4, whose orchestrator crash-loops on start: Verified -1 within seconds, naming the component, " +
		"CrashLoopBackOff, its last log lines and warning events (see the run page's Diagnosis)")
	c4 := g.CreateChange(demoProject, "master", "Read the function cache path from a new setting CRASH", "alice")
	waitVotes(ctx, g, c4, 1)

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

// watchVotes prints every review ductbot posts on the Gerrit test server.
func watchVotes(ctx context.Context, g *gerrittest.Server, say func(string)) {
	seen := 0
	for {
		reviews := g.Reviews()
		for _, r := range reviews[seen:] {
			vote := "comment"
			for label, v := range r.Labels {
				vote = fmt.Sprintf("%s %+d", label, v)
			}
			first, _, _ := strings.Cut(r.Message, "\n")
			say(fmt.Sprintf("Gerrit: %s on change %d patch set %d (notify %s): %s", vote, r.Change, r.PatchSet, r.Notify, first))
		}
		seen = len(reviews)
		select {
		case <-ctx.Done():
			return
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// waitVotes waits until a change has n reviews with a vote.
func waitVotes(ctx context.Context, g *gerrittest.Server, change, n int) {
	for ctx.Err() == nil {
		got := 0
		for _, r := range g.Reviews() {
			if r.Change == change && len(r.Labels) > 0 {
				got++
			}
		}
		if got >= n {
			time.Sleep(500 * time.Millisecond) // let the announcement print
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// waitRunning waits until a change's first run is testing.
func waitRunning(ctx context.Context, a *app, change int) {
	for ctx.Err() == nil {
		env, err := a.store.GetEnv(ctx, fmt.Sprintf("change-%d", change))
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
