package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ductbot/ductbot/cmd/internal/demo"
	"github.com/ductbot/ductbot/config"
	"github.com/ductbot/ductbot/core/gerrit/gerrittest"
	"github.com/ductbot/ductbot/core/k8s/localcluster"
	"github.com/ductbot/ductbot/core/store"
)

// TestStreamEndToEnd is issue 11's check on the assembled binary, with
// poll_interval: 10m so that only Gerrit's event stream can explain a
// prompt reaction: an untrusted uploader's patch set gets the trust gate's
// notice and no run, exactly as by polling; a trusted uploader's is
// deployed, tested and voted on.
func TestStreamEndToEnd(t *testing.T) {
	cluster := localcluster.Shared(t)
	g := gerrittest.NewWithOptions(gerrittest.Options{Username: "ductbot", Password: "pw"})
	defer g.Close()
	if _, err := g.StartSSH(gerrittest.SSHOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files, err := g.WriteSSHClientFiles(dir, "ductbot")
	if err != nil {
		t.Fatal(err)
	}
	g.AddAccount("mallory", "Mallory", "mallory@example.org")
	t.Setenv("DUCTBOT_DEMO_GERRIT_PASSWORD", "pw")

	chartPath, _ := filepath.Abs("../../../examples/chart/wikifunctions")
	yaml := demo.Config(g.URL(), chartPath, cluster.Kubeconfig, "127.0.0.1:0", filepath.Join(dir, "ductbot.db"))
	stream := fmt.Sprintf("poll_interval: 10m\n  stream_events: {address: %q, private_key_file: %q, known_hosts_file: %q}",
		g.SSHAddr(), files.PrivateKeyFile, files.KnownHostsFile)
	if !strings.Contains(yaml, "poll_interval: 2s") {
		t.Fatal("the demo configuration changed: update this test")
	}
	cfg, err := config.Parse([]byte(strings.Replace(yaml, "poll_interval: 2s", stream, 1)))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Kubernetes.NamespacePrefix = "e2s-"
	in, typeLine := io.Pipe()
	defer typeLine.Close()
	a, err := New(context.Background(), cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ConsoleIn: in, ConsoleOut: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, 10*time.Second) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ductbot stopped with %v", err)
		}
	}()

	waitUntil := func(what string, limit time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(limit)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out after %s waiting for %s", limit, what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitUntil("the event stream", 30*time.Second, func() bool { return g.Streams() == 1 })
	time.Sleep(1500 * time.Millisecond) // past the first poll and the reconcile after connecting

	runsOf := func(n int) int {
		runs, err := a.store.ListRuns(ctx, store.RunFilter{Change: n})
		if err != nil {
			t.Fatal(err)
		}
		return len(runs)
	}
	review := func(n int, match func(gerrittest.RecordedReview) bool) bool {
		for _, r := range g.Reviews() {
			if r.Change == n && match(r) {
				return true
			}
		}
		return false
	}

	untrusted := g.CreateChange(demo.Project, "master", "Speed up the echo builtin", "mallory")
	waitUntil("the untrusted upload's notice", 20*time.Second, func() bool {
		return review(untrusted, func(r gerrittest.RecordedReview) bool {
			return strings.Contains(r.Message, "did not deploy this patch set") && len(r.Labels) == 0
		})
	})
	if n := runsOf(untrusted); n != 0 {
		t.Errorf("the untrusted upload got %d runs, want none", n)
	}

	trusted := g.CreateChange(demo.Project, "master", "Add Z801 echo function", "alice")
	waitUntil("the trusted upload's run", 20*time.Second, func() bool { return runsOf(trusted) == 1 })
	waitUntil("the trusted upload's vote", 3*time.Minute, func() bool {
		return review(trusted, func(r gerrittest.RecordedReview) bool { return r.Labels["Verified"] == 1 })
	})
	if n := runsOf(untrusted); n != 0 {
		t.Errorf("the untrusted upload got %d runs in the end, want none", n)
	}
	m := a.metrics
	if got := testutil.ToFloat64(m.GerritStreamConnected); got != 1 {
		t.Errorf("ductbot_gerrit_stream_connected = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.GerritStreamEvents.WithLabelValues("patchset-created")); got != 2 {
		t.Errorf("ductbot_gerrit_stream_events_total{type=patchset-created} = %v, want 2", got)
	}
	// "start" at least; "connected" too unless the stream connected before
	// the first cycle began, which then answered its request (the poller
	// coalesces them).
	if got := testutil.CollectAndCount(m.GerritReconcileDuration); got < 1 {
		t.Errorf("ductbot_gerrit_reconcile_duration_seconds has %d series, want start at least", got)
	}

	// Gerrit's SSH goes away: ductbot keeps trying, and stays ready,
	// since REST works.
	g.RefuseSSH(true)
	g.DropStreams()
	waitUntil("the stream to be down and retried", 20*time.Second, func() bool {
		return testutil.ToFloat64(m.GerritStreamConnected) == 0 && testutil.ToFloat64(m.GerritStreamReconnects) >= 2
	})
	rec := httptest.NewRecorder()
	a.web.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("/readyz = %d %q while the stream reconnects, want 200", rec.Code, rec.Body)
	}
}
