package cleanup_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ductbot/ductbot/core/gerrit"
	"github.com/ductbot/ductbot/core/gerrit/gerrittest"
	"github.com/ductbot/ductbot/core/k8s"
	"github.com/ductbot/ductbot/core/k8s/localcluster"
	"github.com/ductbot/ductbot/core/metrics"
	"github.com/ductbot/ductbot/core/pipeline/cleanup"
	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/core/store"
)

func TestMain(m *testing.M) {
	code := localcluster.RunTests(m)
	if bench1000.dir != "" {
		os.RemoveAll(bench1000.dir)
	}
	os.Exit(code)
}

// clock is a controllable clock shared by the sweep and the Gerrit server.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// destroyer follows the engine's protocol: mark the record tearing-down,
// tear the release and namespace down, mark it gone.
type destroyer struct {
	st      *store.Store
	kc      *k8s.Client
	now     func() time.Time
	mu      sync.Mutex
	reasons map[string]string
}

func (d *destroyer) DestroyEnv(ctx context.Context, name, reason string) error {
	d.mu.Lock()
	d.reasons[name] = reason
	d.mu.Unlock()
	env, err := d.st.GetEnv(ctx, name)
	if err != nil {
		return err
	}
	env.Status = run.EnvTearingDown
	if err := d.st.PutEnv(ctx, env); err != nil {
		return err
	}
	if err := d.kc.Teardown(ctx, env.Namespace, env.Release, time.Minute); err != nil {
		return err
	}
	env.Status, env.GoneAt = run.EnvGone, d.now().UTC()
	return d.st.PutEnv(ctx, env)
}

func (d *destroyer) called() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for n := range d.reasons {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// announcer records every summary.
type announcer struct {
	mu   sync.Mutex
	sums []run.SweepSummary
}

func (a *announcer) AnnounceSweep(_ context.Context, s run.SweepSummary) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sums = append(a.sums, s)
	return nil
}

func (a *announcer) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.sums)
}

// harness is one test's world: the shared local cluster, a fresh SQLite
// store, a Gerrit test server, and a sweeper wired to them.
type harness struct {
	t      *testing.T
	ctx    context.Context
	tag    string // prefixes this test's namespaces
	kc     *k8s.Client
	lc     *localcluster.Cluster
	st     *store.Store
	gs     *gerrittest.Server
	clock  *clock
	d      *destroyer
	ann    *announcer
	m      *metrics.Metrics
	policy cleanup.Policy
}

func newHarness(t *testing.T, tag string) *harness {
	t.Helper()
	lc := localcluster.Shared(t)
	kc, err := k8s.New(k8s.Options{Kubeconfig: lc.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := &clock{t: time.Now().UTC()}
	gs := gerrittest.NewWithOptions(gerrittest.Options{Now: clk.Now})
	t.Cleanup(gs.Close)
	h := &harness{
		t: t, ctx: ctx, tag: tag, kc: kc, lc: lc, st: st, gs: gs, clock: clk,
		d:   &destroyer{st: st, kc: kc, now: clk.Now, reasons: map[string]string{}},
		ann: &announcer{}, m: metrics.New(), policy: cleanup.DefaultPolicy(),
	}
	h.policy.TeardownTimeout = time.Minute
	// Leave nothing behind for the next test: delete (without waiting) every
	// namespace this test made; terminating namespaces are not orphans.
	t.Cleanup(func() {
		list, err := lc.Client.CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{LabelSelector: "sweeptest=" + tag})
		if err != nil {
			return
		}
		for _, ns := range list.Items {
			lc.Client.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
		}
	})
	return h
}

// gerritClient talks to the test server without retries, so that one
// injected failure fails one lookup.
func gerritClient(t testing.TB, url string) *gerrit.Client {
	t.Helper()
	gc, err := gerrit.New(gerrit.Options{URL: url, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return gc
}

func (h *harness) sweeper() *cleanup.Sweeper {
	gc := gerritClient(h.t, h.gs.URL())
	return cleanup.New(cleanup.Options{
		Store: h.st, Gerrit: gc, Cluster: h.kc, Destroyer: h.d, Announcer: h.ann,
		Channels: []string{"#ops"}, Policy: h.policy, Now: h.clock.Now, Metrics: h.m,
	})
}

func (h *harness) ns(name string) string { return "sw-" + h.tag + "-" + name }

// namespace creates a managed namespace labelled for env name.
func (h *harness) namespace(name string) {
	h.t.Helper()
	labels := map[string]string{k8s.LabelManagedBy: k8s.ManagedBy, k8s.LabelEnv: name, "sweeptest": h.tag}
	if err := h.kc.EnsureNamespace(h.ctx, h.ns(name), labels, nil); err != nil {
		h.t.Fatal(err)
	}
}

// env creates an environment cheaply: its namespace and a ready record.
func (h *harness) env(name string, kind run.EnvKind, change int, edit func(*run.Env)) *run.Env {
	h.t.Helper()
	h.namespace(name)
	return h.record(name, kind, change, edit)
}

// record stores an environment record without touching the cluster.
func (h *harness) record(name string, kind run.EnvKind, change int, edit func(*run.Env)) *run.Env {
	h.t.Helper()
	now := h.clock.Now()
	e := &run.Env{Name: name, Namespace: h.ns(name), Release: name, Kind: kind, Change: change,
		Status: run.EnvReady, CreatedAt: now, ActiveAt: now}
	if edit != nil {
		edit(e)
	}
	if err := h.st.PutEnv(h.ctx, e); err != nil {
		h.t.Fatal(err)
	}
	return e
}

func (h *harness) change() int { return h.gs.CreateChange("wiki", "master", "a change", "alice") }

func (h *harness) sweep(s *cleanup.Sweeper) run.SweepSummary {
	h.t.Helper()
	sum, err := s.Sweep(h.ctx, "test")
	if err != nil {
		h.t.Fatalf("Sweep: %v", err)
	}
	return sum
}

func (h *harness) status(name string) run.EnvStatus {
	h.t.Helper()
	e, err := h.st.GetEnv(h.ctx, name)
	if err != nil {
		h.t.Fatal(err)
	}
	return e.Status
}

// exists reports whether env name's namespace exists and is not terminating.
func (h *harness) exists(name string) bool {
	h.t.Helper()
	ns, err := h.lc.Client.CoreV1().Namespaces().Get(h.ctx, h.ns(name), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return ns.DeletionTimestamp == nil
}

func (h *harness) removals(policy string) float64 {
	return testutil.ToFloat64(h.m.SweepRemovals.WithLabelValues(policy))
}

func (h *harness) skips(reason string) float64 {
	return testutil.ToFloat64(h.m.SweepSkips.WithLabelValues(reason))
}

// envs lists the summary's actions as env:policy, only for this test's
// environments.
func actions(as []run.SweepAction) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Env+":"+a.Policy)
	}
	return out
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func mkdirTemp() (string, error) { return os.MkdirTemp("", "ductbot-sweep-bench-") }
