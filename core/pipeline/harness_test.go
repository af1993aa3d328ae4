package pipeline_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart/loader"

	"github.com/ductbot/ductbot/config"
	"github.com/ductbot/ductbot/core/gerrit"
	"github.com/ductbot/ductbot/core/gerrit/gerrittest"
	"github.com/ductbot/ductbot/core/k8s"
	"github.com/ductbot/ductbot/core/k8s/localcluster"
	"github.com/ductbot/ductbot/core/metrics"
	"github.com/ductbot/ductbot/core/pipeline"
	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/core/store"
	"github.com/ductbot/ductbot/web"
)

func TestMain(m *testing.M) { os.Exit(localcluster.RunTests(m)) }

const project = "wikifunctions/orchestrator"

// wikiProject is the harness's second project, for Depends-On.
const wikiProject = "wikifunctions/wiki"

var prefixSeq atomic.Int32

// harness is ductbot's core loop on real parts: the local control plane,
// the Gerrit test server, a SQLite file and the web pages the votes link to.
type harness struct {
	t       testing.TB
	cfg     *config.Config
	gerrit  *gerrittest.Server
	client  *gerrit.Client
	store   *store.Store
	kube    *k8s.Client
	cluster *localcluster.Cluster
	web     *httptest.Server
	ann     *recordingAnnouncer
	dbPath  string

	engine  *pipeline.Engine
	service *pipeline.Service
	metrics *metrics.Metrics
	grace   time.Duration    // how long stop lets in-flight steps finish
	now     func() time.Time // the engine's clock; nil: time.Now
	leading func() bool      // the engine's Options.Leading; nil: no ha
	cancel  context.CancelFunc
	done    chan struct{}
}

// newHarness builds the parts; start runs ductbot on them.
func newHarness(t testing.TB, extraYAML string) *harness {
	t.Helper()
	c := localcluster.Shared(t)
	g := gerrittest.NewWithOptions(gerrittest.Options{Username: "ductbot", Password: "s3cret"})
	t.Cleanup(g.Close)
	g.AddAccount("alice", "Alice Trusted", "alice@example.org")
	g.AddAccount("carol", "Carol Group", "carol@example.org")
	g.AddAccount("mallory", "Mallory Untrusted", "mallory@example.org")
	g.AddGroup("devs", "carol")
	t.Setenv("DUCTBOT_TEST_GERRIT_PASSWORD", "s3cret")

	h := &harness{t: t, grace: 30 * time.Second, gerrit: g, cluster: c, ann: &recordingAnnouncer{}, dbPath: filepath.Join(t.TempDir(), "ductbot.db")}
	var err error
	if h.store, err = store.Open(context.Background(), h.dbPath); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.store.Close() })
	// The pages the votes link to, served from the same store.
	h.web = httptest.NewServer(web.New(web.Options{Store: h.store, GerritURL: g.URL()}).Handler())
	t.Cleanup(h.web.Close)

	chartPath, _ := filepath.Abs("../../examples/chart/wikifunctions")
	prefix := fmt.Sprintf("p%d-", prefixSeq.Add(1))
	yaml := fmt.Sprintf(`
gerrit: {url: %q, username: ductbot, password_env: DUCTBOT_TEST_GERRIT_PASSWORD, poll_interval: 1s, lookback: 1h}
projects:
  - name: %s
    component: orchestrator
    channels: ["#wf"]
    trusted: {accounts: [alice], groups: [devs, no-such-group]}
  - name: %s
    component: wiki
    trusted: {accounts: [alice]}
components:
  - {name: wiki, default_ref: wiki-stable, values: {wiki.image.tag: "{{.Ref}}"}}
  - {name: orchestrator, default_ref: orch-stable, values: {orchestrator.image.tag: "{{.Ref}}"}}
  - {name: evaluator, default_ref: eval-stable, values: {evaluator.image.tag: "{{.Ref}}"}}
chart:
  ref: %q
  env_values:
    e2e.simulate.outcome: '{{if contains .Subject "FAIL"}}fail{{else}}pass{{end}}'
    e2e.simulate.log: 'e2e of {{.Env}}: {{if contains .Subject "FAIL"}}Z801 FAILED{{else}}4 passing{{end}}'
    e2e.simulate.duration: '{{if contains .Subject "LONG"}}60s{{else if contains .Subject "SLOW"}}20s{{else}}1s{{end}}'
    ingress.host: '{{.Env}}.envs.test'
  url_template: 'http://{{.Env}}.envs.test/'
kubernetes: {kubeconfig: %q, namespace_prefix: %s, deploy_timeout: 2m, test_timeout: 1m, retries: 1, retry_backoff: 1s}
web: {public_url: %q}
%s`, g.URL(), project, wikiProject, chartPath, c.Kubeconfig, prefix, h.web.URL, extraYAML)
	if h.cfg, err = config.Parse([]byte(yaml)); err != nil {
		t.Fatal(err)
	}
	if h.client, err = gerrit.New(gerrit.Options{URL: g.URL(), Username: "ductbot", Password: "s3cret", Backoff: 20 * time.Millisecond, Retries: 3}); err != nil {
		t.Fatal(err)
	}
	if h.kube, err = k8s.New(k8s.Options{Kubeconfig: c.Kubeconfig}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.teardownAll)
	return h
}

// start runs the engine and the Gerrit poller until stop.
func (h *harness) start() {
	h.t.Helper()
	ch, err := loader.Load(h.cfg.Chart.Ref)
	if err != nil {
		h.t.Fatal(err)
	}
	self, err := h.client.Self(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	h.metrics = metrics.New()
	h.engine = pipeline.New(pipeline.Options{Metrics: h.metrics,
		Config: h.cfg, Chart: ch, Store: h.store, Cluster: h.kube, Gerrit: h.client,
		Announcer: h.ann, Self: self, Logger: slog.New(slog.NewTextHandler(testLog{h.t}, nil)), Now: h.now,
		Leading: h.leading,
	})
	h.service = pipeline.NewService(h.engine, nil)
	poller := gerrit.NewPoller(h.client, gerrit.PollOptions{
		Projects: []gerrit.ProjectFilter{{Name: project}, {Name: wikiProject}}, Interval: h.cfg.Gerrit.PollInterval.D(), Cursor: h.store,
		Overlap: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(testLog{h.t}, nil)),
	})
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = h.engine.Run(ctx, h.grace) }()
	go func() { defer wg.Done(); _ = poller.Run(ctx, h.engine.HandleChange) }()
	go func() { wg.Wait(); close(h.done) }()
	h.t.Cleanup(h.stop)
}

// stop ends the engine and the poller, as SIGTERM does.
func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	<-h.done
	h.cancel = nil
}

// teardownAll removes every namespace this test created.
func (h *harness) teardownAll() {
	envs, _ := h.store.ListEnvs(context.Background(), store.EnvFilter{})
	for _, e := range envs {
		_ = h.kube.Teardown(context.Background(), e.Namespace, e.Release, time.Minute)
	}
}

// upload creates a change (or a new patch set of one) as uploader.
func (h *harness) upload(change int, uploader, subject string) int {
	if change == 0 {
		return h.gerrit.CreateChange(project, "master", subject, uploader)
	}
	h.gerrit.UploadPatchSet(change, uploader, subject)
	return change
}

// waitFor polls cond until it holds, failing after timeout with what.
func (h *harness) waitFor(timeout time.Duration, what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// votes are the reviews ductbot posted on a change that carry a label.
func (h *harness) votes(change int) []gerrittest.RecordedReview {
	var out []gerrittest.RecordedReview
	for _, r := range h.gerrit.Reviews() {
		if r.Change == change && len(r.Labels) > 0 {
			out = append(out, r)
		}
	}
	return out
}

func (h *harness) reviews(change int) []gerrittest.RecordedReview {
	var out []gerrittest.RecordedReview
	for _, r := range h.gerrit.Reviews() {
		if r.Change == change {
			out = append(out, r)
		}
	}
	return out
}

func (h *harness) runs(change int) []*run.Run {
	runs, err := h.store.ListRuns(context.Background(), store.RunFilter{Change: change})
	if err != nil {
		h.t.Fatal(err)
	}
	return runs
}

// recordingAnnouncer keeps every announcement.
type recordingAnnouncer struct {
	mu  sync.Mutex
	got []run.Announcement
}

func (r *recordingAnnouncer) Announce(_ context.Context, a run.Announcement) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, a)
	return nil
}

func (r *recordingAnnouncer) all() []run.Announcement {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]run.Announcement(nil), r.got...)
}

type testLog struct{ t testing.TB }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
