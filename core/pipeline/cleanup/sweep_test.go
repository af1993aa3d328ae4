package cleanup_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/release"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/ductbot/ductbot/core/gerrit/gerrittest"
	"github.com/ductbot/ductbot/core/k8s"
	"github.com/ductbot/ductbot/core/pipeline/cleanup"
	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/core/store"
)

// TestSweepPolicies: each policy removes exactly what it should and nothing
// else; protected environments survive; an orphaned namespace is removed
// after its grace; a record whose namespace vanished is marked gone; one
// summary is announced, and a second sweep finds nothing to do.
func TestSweepPolicies(t *testing.T) {
	h := newHarness(t, "pol")
	const day = 24 * time.Hour
	start := h.clock.Now()
	cOpen, cMerged, cAbandoned, cIdle, cProt, cCfgProt, cTTL := h.change(), h.change(), h.change(), h.change(), h.change(), h.change(), h.change()
	h.namespace("orphan") // a namespace ductbot labelled, with no record
	h.clock.Advance(15 * day)
	h.gs.SetStatus(cMerged, gerrittest.StatusMerged)
	h.gs.SetStatus(cAbandoned, gerrittest.StatusAbandoned)
	h.gs.SetStatus(cProt, gerrittest.StatusMerged)
	h.gs.SetStatus(cCfgProt, gerrittest.StatusMerged)
	h.gs.AddComment(cOpen, "bob", "looks good") // Gerrit activity keeps it
	h.clock.Advance(time.Second)                // the sweep runs after Gerrit's updates

	h.env("open", run.EnvPatch, cOpen, func(e *run.Env) { e.ActiveAt = start }) // record idle, Gerrit active
	h.env("merged", run.EnvPatch, cMerged, nil)
	h.env("abandoned", run.EnvPatch, cAbandoned, nil)
	h.env("idle", run.EnvPatch, cIdle, func(e *run.Env) { e.ActiveAt = start })
	h.env("ttl", run.EnvCustom, cTTL, func(e *run.Env) { e.ExpiresAt = h.clock.Now().Add(-time.Minute) })
	h.env("ttl-later", run.EnvCustom, cTTL, func(e *run.Env) { e.ExpiresAt = h.clock.Now().Add(time.Hour) })
	h.env("kept", run.EnvPatch, cProt, func(e *run.Env) { e.Protected = true })
	h.env("kept-by-config", run.EnvPatch, cCfgProt, nil)
	h.record("vanished", run.EnvPatch, cOpen, nil)                                              // namespace never made
	h.record("starting", run.EnvPatch, cOpen, func(e *run.Env) { e.Status = run.EnvDeploying }) // namespace not yet made
	h.policy.Protected = []string{"kept-by-config"}

	s := h.sweeper()
	sum := h.sweep(s)

	wantRemoved := []string{"abandoned:abandoned", "idle:idle", "merged:merged", "orphan:orphan", "ttl:ttl"}
	if got := actions(sum.Removed); !slices.Equal(got, wantRemoved) {
		t.Errorf("Removed = %v, want %v", got, wantRemoved)
	}
	if len(sum.Skipped) != 0 || len(sum.Repaired) != 0 || sum.DryRun {
		t.Errorf("summary = %+v, want no skips, no repairs, not a dry run", sum)
	}
	for _, name := range []string{"merged", "abandoned", "idle", "ttl", "orphan"} {
		if h.exists(name) {
			t.Errorf("namespace of %s still exists after the sweep", name)
		}
	}
	for _, name := range []string{"merged", "abandoned", "idle", "ttl", "vanished"} {
		if st := h.status(name); st != run.EnvGone {
			t.Errorf("record %s is %s, want gone", name, st)
		}
	}
	for _, name := range []string{"open", "ttl-later", "kept", "kept-by-config"} {
		if !h.exists(name) || h.status(name) != run.EnvReady {
			t.Errorf("%s was touched (namespace exists %v, status %s); want it kept", name, h.exists(name), h.status(name))
		}
	}
	if st := h.status("starting"); st != run.EnvDeploying {
		t.Errorf("deploying record without a namespace yet is %s, want left deploying", st)
	}
	if got := h.d.called(); !slices.Equal(got, []string{"abandoned", "idle", "merged", "ttl"}) {
		t.Errorf("destroyer called for %v; orphans must be torn down by the sweep itself", got)
	}
	if !strings.Contains(h.d.reasons["merged"], "merged") {
		t.Errorf("destroy reason %q, want it to name the policy", h.d.reasons["merged"])
	}
	for policy, want := range map[string]float64{"merged": 1, "abandoned": 1, "idle": 1, "ttl": 1, "orphan": 1} {
		if got := h.removals(policy); got != want {
			t.Errorf("SweepRemovals{%s} = %v, want %v", policy, got, want)
		}
	}
	if h.ann.count() != 1 || h.ann.sums[0].Channels[0] != "#ops" {
		t.Errorf("announcements = %+v, want one to #ops", h.ann.sums)
	}

	sum = h.sweep(s)
	if len(sum.Removed)+len(sum.Skipped)+len(sum.Repaired) != 0 || h.ann.count() != 1 {
		t.Errorf("second sweep = %+v with %d announcements; want nothing done and nothing announced", sum, h.ann.count())
	}
}

// TestSweepGerritOutage: while Gerrit fails, nothing Gerrit-dependent is
// removed, the skip is reported and counted, and TTLs still apply; when
// Gerrit is back the next sweep does the work.
func TestSweepGerritOutage(t *testing.T) {
	h := newHarness(t, "out")
	cMerged, cAbandoned := h.change(), h.change()
	h.gs.SetStatus(cMerged, gerrittest.StatusMerged)
	h.gs.SetStatus(cAbandoned, gerrittest.StatusAbandoned)
	h.clock.Advance(time.Second)
	h.env("merged", run.EnvPatch, cMerged, nil)
	h.env("abandoned", run.EnvCustom, cAbandoned, nil)
	h.env("unknown", run.EnvPatch, 99999, nil) // Gerrit does not know it
	h.env("ttl", run.EnvCustom, 99999, func(e *run.Env) { e.ExpiresAt = h.clock.Now().Add(-time.Minute) })
	s := h.sweeper()

	h.gs.FailNext(1, http.StatusServiceUnavailable) // the sweep's one lookup (a batch of three)
	sum := h.sweep(s)
	if got := actions(sum.Removed); !slices.Equal(got, []string{"ttl:ttl"}) {
		t.Errorf("Removed during the outage = %v, want only the TTL one", got)
	}
	if got := actions(sum.Skipped); len(got) != 3 {
		t.Errorf("Skipped = %v, want abandoned, merged and unknown", got)
	}
	if !h.exists("merged") || !h.exists("abandoned") || h.status("merged") != run.EnvReady {
		t.Fatalf("an environment was removed while Gerrit was failing")
	}
	if got := h.skips("gerrit"); got != 3 {
		t.Errorf("SweepSkips{gerrit} = %v, want 3", got)
	}
	if h.ann.count() != 1 || len(h.ann.sums[0].Skipped) != 3 {
		t.Errorf("announcements = %+v, want one listing the skips", h.ann.sums)
	}

	sum = h.sweep(s)
	if got := actions(sum.Removed); !slices.Equal(got, []string{"abandoned:abandoned", "merged:merged"}) {
		t.Errorf("Removed after the outage = %v, want abandoned and merged", got)
	}
	if got := actions(sum.Skipped); !slices.Equal(got, []string{"unknown:merged/abandoned"}) {
		t.Errorf("Skipped after the outage = %v, want the change Gerrit does not know", got)
	}
	if got := h.skips("unknown-change"); got != 1 {
		t.Errorf("SweepSkips{unknown-change} = %v, want 1", got)
	}
	if !h.exists("unknown") {
		t.Errorf("the environment of a change Gerrit did not return was removed")
	}
}

// TestSweepStuckRelease: a release pending for longer than StuckAfter is
// repaired (rolled back); one pending for less is left to its operation.
func TestSweepStuckRelease(t *testing.T) {
	h := newHarness(t, "stuck")
	ch, err := loader.Load("../../../examples/chart/wikifunctions")
	if err != nil {
		t.Fatal(err)
	}
	const name = "stuck"
	ns := h.ns(name)
	labels := map[string]string{k8s.LabelManagedBy: k8s.ManagedBy, k8s.LabelEnv: name, "sweeptest": h.tag}
	if err := h.kc.Deploy(h.ctx, k8s.Release{Name: name, Namespace: ns, Chart: ch, Labels: labels, Timeout: 2 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	h.record(name, run.EnvPatch, h.change(), nil)

	// What a process killed during `helm upgrade` leaves behind.
	kubeconfig := h.lc.Kubeconfig
	f := genericclioptions.NewConfigFlags(true)
	f.KubeConfig, f.Namespace = &kubeconfig, &ns
	cfg := new(action.Configuration)
	if err := cfg.Init(f, ns, "secret", func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	last, err := cfg.Releases.Last(name)
	if err != nil {
		t.Fatal(err)
	}
	stuck, info := *last, *last.Info
	stuck.Info, stuck.Version = &info, last.Version+1
	stuck.Info.Status = release.StatusPendingUpgrade
	if err := cfg.Releases.Create(&stuck); err != nil {
		t.Fatal(err)
	}

	h.policy.StuckAfter = 10 * time.Minute
	s := h.sweeper()
	if sum := h.sweep(s); len(sum.Repaired) != 0 {
		t.Fatalf("Repaired = %v for a release pending for less than StuckAfter; want none", sum.Repaired)
	}
	h.clock.Advance(11 * time.Minute)
	sum := h.sweep(s)
	if want := []string{ns + "/" + name}; !slices.Equal(sum.Repaired, want) {
		t.Fatalf("Repaired = %v, want %v", sum.Repaired, want)
	}
	st, err := h.kc.Status(h.ctx, ns, name)
	if err != nil || st.Status != release.StatusDeployed {
		t.Errorf("release after the sweep = %+v, %v; want deployed (rolled back)", st, err)
	}
	pending, err := h.kc.PendingReleases(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pending {
		if p.Namespace == ns {
			t.Errorf("still pending after the repair: %+v", p)
		}
	}
	if h.status(name) != run.EnvReady || !h.exists(name) || len(sum.Removed) != 0 {
		t.Errorf("the repaired environment was removed or changed")
	}
	if h.ann.count() != 1 {
		t.Errorf("announcements = %d, want one for the repair", h.ann.count())
	}
}

// TestSweepDryRun: a dry run reports what it would do and does nothing:
// no teardown, no orphan removed, no record marked, no run pruned.
func TestSweepDryRun(t *testing.T) {
	h := newHarness(t, "dry")
	cMerged := h.change()
	h.namespace("orphan")
	h.clock.Advance(time.Hour)
	h.gs.SetStatus(cMerged, gerrittest.StatusMerged)
	h.clock.Advance(time.Second)
	h.env("merged", run.EnvPatch, cMerged, nil)
	h.env("ttl", run.EnvCustom, 0, func(e *run.Env) { e.ExpiresAt = h.clock.Now().Add(-time.Minute) })
	h.env("halfway", run.EnvPatch, 0, func(e *run.Env) { e.Status = run.EnvTearingDown })
	h.record("vanished", run.EnvPatch, 0, nil)
	old := &run.Run{Env: "merged", State: run.StateDone, Result: run.ResultPassed,
		CreatedAt: h.clock.Now().Add(-60 * 24 * time.Hour), FinishedAt: h.clock.Now().Add(-60 * 24 * time.Hour)}
	if err := h.st.CreateRun(h.ctx, old); err != nil {
		t.Fatal(err)
	}
	h.policy.DryRun = true
	sum := h.sweep(h.sweeper())

	want := []string{"halfway:resume", "merged:merged", "orphan:orphan", "ttl:ttl"}
	if got := actions(sum.Removed); !sum.DryRun || !slices.Equal(got, want) {
		t.Errorf("dry run summary = %v (dry run %v), want %v reported", got, sum.DryRun, want)
	}
	for _, name := range []string{"merged", "ttl", "halfway", "orphan"} {
		if !h.exists(name) {
			t.Errorf("dry run removed the namespace of %s", name)
		}
	}
	if h.status("merged") != run.EnvReady || h.status("vanished") != run.EnvReady || h.status("halfway") != run.EnvTearingDown {
		t.Errorf("dry run changed records")
	}
	if got := h.d.called(); len(got) != 0 {
		t.Errorf("dry run called the destroyer for %v", got)
	}
	if _, err := h.st.GetRun(h.ctx, old.ID); err != nil {
		t.Errorf("dry run pruned a run: %v", err)
	}
	if h.removals("merged") != 0 {
		t.Errorf("dry run counted removals")
	}
	if h.ann.count() != 1 || !h.ann.sums[0].DryRun {
		t.Errorf("announcements = %+v, want one marked dry run", h.ann.sums)
	}
}

// TestSweepResumesTeardown: a teardown interrupted by a crash (record
// tearing-down, namespace still there, even one since protected) is
// finished by the next sweep; one interrupted after the namespace went is
// just marked gone.
func TestSweepResumesTeardown(t *testing.T) {
	h := newHarness(t, "crash")
	h.env("halfway", run.EnvPatch, 0, func(e *run.Env) { e.Status, e.Protected = run.EnvTearingDown, true })
	h.record("almost", run.EnvPatch, 0, func(e *run.Env) { e.Status = run.EnvTearingDown }) // namespace already gone
	h.gs.FailNext(1, http.StatusServiceUnavailable)                                         // Gerrit is not needed for this
	sum := h.sweep(h.sweeper())

	if got := actions(sum.Removed); !slices.Equal(got, []string{"halfway:resume"}) {
		t.Errorf("Removed = %v, want the interrupted teardown finished", got)
	}
	if h.exists("halfway") || h.status("halfway") != run.EnvGone {
		t.Errorf("interrupted teardown not finished: namespace exists %v, status %s", h.exists("halfway"), h.status("halfway"))
	}
	if st := h.status("almost"); st != run.EnvGone {
		t.Errorf("record whose namespace is gone is %s, want gone", st)
	}
}

// TestSweepPrunesRuns: finished runs older than LogsRetention go with their
// logs; newer and unfinished ones stay.
func TestSweepPrunesRuns(t *testing.T) {
	h := newHarness(t, "prune")
	now := h.clock.Now()
	mk := func(age time.Duration, state run.State) int64 {
		r := &run.Run{Env: "e", State: state, CreatedAt: now.Add(-age)}
		if state == run.StateDone {
			r.Result, r.FinishedAt = run.ResultPassed, now.Add(-age)
		}
		if err := h.st.CreateRun(h.ctx, r); err != nil {
			t.Fatal(err)
		}
		return r.ID
	}
	oldDone, newDone, oldOpen := mk(31*24*time.Hour, run.StateDone), mk(29*24*time.Hour, run.StateDone), mk(40*24*time.Hour, run.StateTesting)
	h.policy.LogsRetention = 30 * 24 * time.Hour
	h.sweep(h.sweeper())
	if _, err := h.st.GetRun(h.ctx, oldDone); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("run finished 31 days ago: err = %v, want pruned", err)
	}
	for _, id := range []int64{newDone, oldOpen} {
		if _, err := h.st.GetRun(h.ctx, id); err != nil {
			t.Errorf("run %d was pruned: %v", id, err)
		}
	}
}

// TestScheduleRunsSweep: a good spec starts a cron that sweeps; a bad one
// is an error, not a panic.
func TestScheduleRunsSweep(t *testing.T) {
	h := newHarness(t, "cron")
	counting := &countingStore{Store: h.st}
	gc := gerritClient(t, h.gs.URL())
	s := cleanup.New(cleanup.Options{Store: counting, Gerrit: gc, Cluster: h.kc, Destroyer: h.d, Now: h.clock.Now})
	if _, err := cleanup.Schedule("TZ=UTC", s, nil); err == nil {
		t.Fatal("Schedule(TZ=UTC) = nil error, want a bad-spec error")
	}
	c, err := cleanup.Schedule("@every 1s", s, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { <-c.Stop().Done() }()
	for counting.lists.Load() == 0 {
		select {
		case <-h.ctx.Done():
			t.Fatal("the scheduled sweep never ran")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

type countingStore struct {
	*store.Store
	lists atomic.Int64
}

func (c *countingStore) ListEnvs(ctx context.Context, f store.EnvFilter) ([]*run.Env, error) {
	c.lists.Add(1)
	return c.Store.ListEnvs(ctx, f)
}

// blockingDestroyer holds the first teardown until released.
type blockingDestroyer struct {
	entered, release chan struct{}
}

func (d *blockingDestroyer) DestroyEnv(ctx context.Context, _, _ string) error {
	close(d.entered)
	<-d.release
	return nil
}

// TestSweepsNeverOverlap: a sweep started while one runs returns
// ErrSweepRunning at once and does nothing.
func TestSweepsNeverOverlap(t *testing.T) {
	h := newHarness(t, "overlap")
	h.env("ttl", run.EnvCustom, 0, func(e *run.Env) { e.ExpiresAt = h.clock.Now().Add(-time.Minute) })
	d := &blockingDestroyer{entered: make(chan struct{}), release: make(chan struct{})}
	s := cleanup.New(cleanup.Options{Store: h.st, Gerrit: gerritClient(t, h.gs.URL()), Cluster: h.kc, Destroyer: d,
		Policy: h.policy, Now: h.clock.Now})
	first := make(chan error, 1)
	go func() { _, err := s.Sweep(h.ctx, "first"); first <- err }()
	<-d.entered
	if _, err := s.Sweep(h.ctx, "second"); !errors.Is(err, cleanup.ErrSweepRunning) {
		t.Errorf("a second concurrent sweep: err = %v, want ErrSweepRunning", err)
	}
	close(d.release)
	if err := <-first; err != nil {
		t.Errorf("first sweep: %v", err)
	}
}
