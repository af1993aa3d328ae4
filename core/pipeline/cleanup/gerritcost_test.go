package cleanup_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ductbot/ductbot/core/gerrit/gerrittest"
	"github.com/ductbot/ductbot/core/k8s"
	"github.com/ductbot/ductbot/core/pipeline/cleanup"
	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/core/store"
)

// memCluster is a cluster of namespaces in memory, for tests about what a
// sweep asks Gerrit, which need no Kubernetes.
type memCluster struct {
	mu sync.Mutex
	ns map[string]k8s.Namespace
}

func (c *memCluster) Namespaces(context.Context) ([]k8s.Namespace, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]k8s.Namespace, 0, len(c.ns))
	for _, n := range c.ns {
		out = append(out, n)
	}
	return out, nil
}

func (c *memCluster) PendingReleases(context.Context) ([]k8s.PendingRelease, error) { return nil, nil }
func (c *memCluster) Repair(context.Context, string, string, time.Duration) (bool, error) {
	return false, nil
}

func (c *memCluster) Teardown(_ context.Context, ns, _ string, _ time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.ns, ns)
	return nil
}

// memDestroyer marks the record gone and removes its namespace.
type memDestroyer struct {
	st *store.Store
	c  *memCluster
	mu sync.Mutex
	n  []string
}

func (d *memDestroyer) DestroyEnv(ctx context.Context, name, _ string) error {
	env, err := d.st.GetEnv(ctx, name)
	if err != nil {
		return err
	}
	d.c.Teardown(ctx, env.Namespace, env.Release, 0)
	env.Status, env.GoneAt = run.EnvGone, time.Now().UTC()
	if err := d.st.PutEnv(ctx, env); err != nil {
		return err
	}
	d.mu.Lock()
	d.n = append(d.n, name)
	d.mu.Unlock()
	return nil
}

// costWorld is a store, an in-memory cluster and a Gerrit test server on
// one clock.
type costWorld struct {
	t     testing.TB
	ctx   context.Context
	st    *store.Store
	c     *memCluster
	gs    *gerrittest.Server
	clock *clock
	d     *memDestroyer
}

func newCostWorld(t testing.TB) *costWorld {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	gs := gerrittest.NewWithOptions(gerrittest.Options{Now: clk.Now})
	t.Cleanup(gs.Close)
	c := &memCluster{ns: map[string]k8s.Namespace{}}
	return &costWorld{t: t, ctx: ctx, st: st, c: c, gs: gs, clock: clk, d: &memDestroyer{st: st, c: c}}
}

// env records a ready environment for a change of project, with its
// namespace.
func (w *costWorld) env(name, project string, change int, edit func(*run.Env)) {
	w.t.Helper()
	now := w.clock.Now()
	e := &run.Env{Name: name, Namespace: "ns-" + name, Release: name, Kind: run.EnvPatch, Project: project, Change: change,
		Status: run.EnvReady, CreatedAt: now, ActiveAt: now}
	if edit != nil {
		edit(e)
	}
	if err := w.st.PutEnv(w.ctx, e); err != nil {
		w.t.Fatal(err)
	}
	w.c.mu.Lock()
	w.c.ns[e.Namespace] = k8s.Namespace{Name: e.Namespace, Created: now,
		Labels: map[string]string{k8s.LabelManagedBy: k8s.ManagedBy, k8s.LabelEnv: name}}
	w.c.mu.Unlock()
}

func (w *costWorld) sweeper(p cleanup.Policy) *cleanup.Sweeper {
	return cleanup.New(cleanup.Options{Store: w.st, Gerrit: gerritClient(w.t, w.gs.URL()), Cluster: w.c, Destroyer: w.d,
		Policy: p, Now: w.clock.Now, Logger: discard()})
}

// sweep runs one sweep and returns it with the Gerrit requests it made.
func (w *costWorld) sweep(s *cleanup.Sweeper) (run.SweepSummary, int64) {
	w.t.Helper()
	w.clock.Advance(time.Second) // the sweep runs after Gerrit's updates
	w.gs.ResetRequests()
	sum, err := s.Sweep(w.ctx, "test")
	if err != nil {
		w.t.Fatalf("Sweep: %v", err)
	}
	return sum, w.gs.Requests()
}

// TestSweepAsksGerritOnlyWhatClosed: the first sweep of a Sweeper looks
// every change up (one request per 50); after that a sweep asks one
// question, "what closed since the last one?", whatever the number of
// environments, and removes what it names.
func TestSweepAsksGerritOnlyWhatClosed(t *testing.T) {
	w := newCostWorld(t)
	var changes []int
	for i := range 120 {
		project := "wiki"
		if i%10 == 0 {
			project = "orchestrator"
		}
		n := w.gs.CreateChange(project, "master", "c", "alice")
		changes = append(changes, n)
		w.env(fmt.Sprintf("env-%03d", i), project, n, nil)
	}
	w.gs.CreateChange("unwatched", "master", "closed elsewhere", "alice")
	s := w.sweeper(cleanup.DefaultPolicy())
	if sum, req := w.sweep(s); req != 3 || len(sum.Removed)+len(sum.Skipped) != 0 {
		t.Fatalf("first sweep: %d requests, %+v; want 3 lookups (120 changes), nothing done", req, sum)
	}
	for i := range 3 {
		if sum, req := w.sweep(s); req != 1 || len(sum.Removed)+len(sum.Skipped) != 0 {
			t.Fatalf("idle sweep %d: %d requests, %+v; want 1, nothing done", i, req, sum)
		}
	}
	w.gs.SetStatus(changes[0], gerrittest.StatusMerged)     // an orchestrator change
	w.gs.SetStatus(changes[57], gerrittest.StatusAbandoned) // a wiki change
	w.gs.SetStatus(changes[119], gerrittest.StatusNew)      // restored without being closed: nothing to do
	w.gs.SetStatus(121, gerrittest.StatusMerged)            // a project no environment is of
	sum, req := w.sweep(s)
	if got := actions(sum.Removed); !slices.Equal(got, []string{"env-000:merged", "env-057:abandoned"}) || req != 1 {
		t.Errorf("sweep after two closed: removed %v with %d requests; want env-000 and env-057 with 1", got, req)
	}
	if sum, req := w.sweep(s); req != 1 || len(sum.Removed) != 0 {
		t.Errorf("next sweep: %d requests, removed %v; want 1, none", req, actions(sum.Removed))
	}
}

// TestSweepConfirmsBeforeRemoving: a removal never rests on a state read in
// an earlier sweep: a change merged within its grace and restored before
// it ran out keeps its environment; an idle environment whose change had
// activity since is kept; an environment created for a change that merged
// before it is looked up once and removed.
func TestSweepConfirmsBeforeRemoving(t *testing.T) {
	w := newCostWorld(t)
	restored := w.gs.CreateChange("wiki", "master", "restored", "alice")
	merged := w.gs.CreateChange("wiki", "master", "merged", "alice")
	busy := w.gs.CreateChange("wiki", "master", "busy", "alice")
	w.env("restored", "wiki", restored, nil)
	w.env("merged", "wiki", merged, nil)
	p := cleanup.DefaultPolicy()
	p.MergedGrace = time.Hour
	p.IdleAfter = 48 * time.Hour
	s := w.sweeper(p)
	if _, req := w.sweep(s); req != 1 {
		t.Fatalf("first sweep made %d requests, want 1 lookup", req)
	}
	w.gs.SetStatus(restored, gerrittest.StatusMerged)
	w.gs.SetStatus(merged, gerrittest.StatusMerged)
	if sum, req := w.sweep(s); len(sum.Removed) != 0 || req != 1 {
		t.Fatalf("within the grace: removed %v with %d requests; want none, 1", actions(sum.Removed), req)
	}
	w.gs.SetStatus(restored, gerrittest.StatusNew)
	w.clock.Advance(2 * time.Hour)
	sum, req := w.sweep(s)
	if got := actions(sum.Removed); !slices.Equal(got, []string{"merged:merged"}) || req != 2 {
		t.Errorf("after the grace: removed %v with %d requests; want merged only, with the query and one confirming lookup", got, req)
	}

	// An environment whose record is idle, for a change with recent
	// activity.
	w.env("busy", "wiki", busy, func(e *run.Env) { e.ActiveAt = w.clock.Now().Add(-72 * time.Hour) })
	if sum, req := w.sweep(s); len(sum.Removed) != 0 || req != 2 {
		t.Fatalf("busy env's first sweep: removed %v with %d requests; want none, query + lookup", actions(sum.Removed), req)
	}
	if sum, req := w.sweep(s); len(sum.Removed) != 0 || req != 1 {
		t.Fatalf("busy env's second sweep: removed %v with %d requests; want none, the query", actions(sum.Removed), req)
	}
	w.clock.Advance(47 * time.Hour)
	w.gs.AddComment(busy, "bob", "still on it")
	w.gs.AddComment(restored, "bob", "and this one too") // or it goes idle now
	w.clock.Advance(2 * time.Hour)                       // idle by what the last read said, not by Gerrit
	if sum, req := w.sweep(s); len(sum.Removed) != 0 || req != 2 {
		t.Errorf("busy env after new activity: removed %v with %d requests; want none, query + confirming lookup", actions(sum.Removed), req)
	}

	// An environment made for a change that merged before it.
	late := w.gs.CreateChange("wiki", "master", "late", "alice")
	w.gs.SetStatus(late, gerrittest.StatusMerged)
	w.clock.Advance(2 * time.Hour)
	w.sweep(s) // the merge is old news by the next sweep
	w.env("late", "wiki", late, nil)
	if sum, _ := w.sweep(s); !slices.Equal(actions(sum.Removed), []string{"late:merged"}) {
		t.Errorf("an environment of an already merged change: removed %v, want it", actions(sum.Removed))
	}
}

// TestSweepClosedQueryFails: when the question "what closed?" fails, the
// environments that depend on it are skipped, none removed, and the next
// sweep asks again from the same point, missing nothing.
func TestSweepClosedQueryFails(t *testing.T) {
	w := newCostWorld(t)
	a := w.gs.CreateChange("wiki", "master", "a", "alice")
	b := w.gs.CreateChange("wiki", "master", "b", "alice")
	w.env("a", "wiki", a, nil)
	w.env("b", "wiki", b, nil)
	s := w.sweeper(cleanup.DefaultPolicy())
	w.sweep(s)
	w.gs.SetStatus(a, gerrittest.StatusMerged)
	w.gs.FailNext(1, http.StatusServiceUnavailable)
	sum, _ := w.sweep(s)
	if len(sum.Removed) != 0 || len(sum.Skipped) != 2 {
		t.Fatalf("while the query fails: removed %v, skipped %v; want none removed, both skipped", actions(sum.Removed), actions(sum.Skipped))
	}
	w.clock.Advance(time.Hour) // past the overlap: only the watermark finds it
	if sum, req := w.sweep(s); !slices.Equal(actions(sum.Removed), []string{"a:merged"}) || len(sum.Skipped) != 0 || req != 1 {
		t.Errorf("after the failure: removed %v, skipped %v, %d requests; want a, none, 1", actions(sum.Removed), actions(sum.Skipped), req)
	}
}

// BenchmarkSweepGerritRequests1000 counts the Gerrit requests of a sweep
// over 1,000 live environments with nothing closed and every policy on,
// after the Sweeper's first sweep (which looks each change up once). The
// goal is 1, whatever the number of environments. The cluster is in memory:
// BenchmarkSweep1000 runs the same on the real local cluster.
func BenchmarkSweepGerritRequests1000(b *testing.B) {
	w := newCostWorld(b)
	for i := range 1000 {
		n := w.gs.CreateChange("wiki", "master", "change", "alice")
		w.env(fmt.Sprintf("bench-%04d", i), "wiki", n, nil)
	}
	s := w.sweeper(cleanup.DefaultPolicy())
	_, first := w.sweep(s)
	var total int64
	for b.Loop() {
		sum, req := w.sweep(s)
		if len(sum.Removed)+len(sum.Skipped) != 0 {
			b.Fatalf("sweep removed or skipped something: %+v", sum)
		}
		total += req
	}
	b.ReportMetric(float64(total)/float64(b.N), "gerrit-req/op")
	b.ReportMetric(float64(first), "first-sweep-gerrit-req")
}
