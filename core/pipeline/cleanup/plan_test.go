package cleanup

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/ductbot/ductbot/core/gerrit"
	"github.com/ductbot/ductbot/core/k8s"
	"github.com/ductbot/ductbot/core/run"
)

func TestMakePlan(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	env := func(name string, change int, status run.EnvStatus) *run.Env {
		return &run.Env{Name: name, Namespace: "ns-" + name, Release: name, Kind: run.EnvPatch, Change: change,
			Status: status, CreatedAt: ago(time.Hour), ActiveAt: ago(time.Hour)}
	}
	ns := func(name, envLabel string, age time.Duration) k8s.Namespace {
		l := map[string]string{k8s.LabelManagedBy: k8s.ManagedBy}
		if envLabel != "" {
			l[k8s.LabelEnv] = envLabel
		}
		return k8s.Namespace{Name: name, Labels: l, Annotations: map[string]string{}, Created: ago(age)}
	}
	open := ChangeState{Known: true, Status: gerrit.StatusNew, Updated: ago(time.Hour)}
	merged := ChangeState{Known: true, Status: gerrit.StatusMerged, Updated: ago(time.Hour)}

	protected := env("kept", 5, run.EnvReady)
	protected.Protected = true
	terminating := ns("ns-term", "term", time.Hour)
	terminating.Terminating = true
	annotated := ns("ns-annotated", "annotated", time.Hour)
	annotated.Annotations[AnnotationRelease] = "rel-a"

	o := observation{
		now: now,
		envs: []*run.Env{
			env("open", 1, run.EnvReady),
			env("merged", 2, run.EnvReady),
			env("down", 3, run.EnvReady),     // Gerrit failed
			env("absent", 4, run.EnvReady),   // Gerrit did not return it
			protected,                        // merged, protected
			env("vanished", 6, run.EnvReady), // namespace gone
			env("starting", 7, run.EnvDeploying),
			env("halfway", 8, run.EnvTearingDown),
		},
		namespaces: []k8s.Namespace{
			ns("ns-open", "open", time.Hour), ns("ns-merged", "merged", time.Hour), ns("ns-down", "down", time.Hour),
			ns("ns-absent", "absent", time.Hour), ns("ns-kept", "kept", time.Hour), ns("ns-halfway", "halfway", time.Hour),
			ns("ns-orphan", "orphan", time.Hour),
			annotated,
			ns("ns-young", "young", time.Minute), // within the orphan grace
			terminating,
			ns("ns-unlabelled", "", time.Hour),        // no env label: not an environment
			ns("ns-renamed", "open", time.Hour),       // claimed by env name
			ns("ns-protected", "precious", time.Hour), // protected by config
		},
		pending: []k8s.PendingRelease{
			{Namespace: "ns-open", Name: "open", Status: "pending-upgrade", Revision: 2, Since: ago(time.Hour)},     // stuck
			{Namespace: "ns-down", Name: "down", Status: "pending-install", Revision: 1, Since: ago(time.Minute)},   // in progress
			{Namespace: "ns-merged", Name: "merged", Status: "pending-upgrade", Revision: 3, Since: ago(time.Hour)}, // removed anyway
			{Namespace: "ns-kept", Name: "kept", Status: "pending-upgrade", Revision: 3, Since: ago(time.Hour)},     // protected
			{Namespace: "ns-orphan", Name: "orphan", Status: "pending-install", Revision: 1, Since: ago(time.Hour)}, // removed anyway
		},
		changes:    map[int]ChangeState{1: open, 2: merged, 5: merged, 6: merged, 7: merged},
		lookupErrs: map[int]error{3: errors.New("503")},
	}
	p := DefaultPolicy()
	p.Protected = []string{"precious"}
	p.StuckAfter = 15 * time.Minute
	pl := makePlan(o, p)

	var destroyed []string
	for _, d := range pl.destroy {
		destroyed = append(destroyed, d.env.Name+":"+d.action.Policy)
	}
	// A deploying environment of a merged change goes too: the destroyer
	// cancels its run first.
	if want := []string{"merged:merged", "starting:merged", "halfway:resume"}; !slices.Equal(destroyed, want) {
		t.Errorf("destroy = %v, want %v", destroyed, want)
	}
	var orphans []string
	for _, o := range pl.orphans {
		orphans = append(orphans, o.namespace+"/"+o.release)
	}
	if want := []string{"ns-orphan/orphan", "ns-annotated/rel-a"}; !slices.Equal(orphans, want) {
		t.Errorf("orphans = %v, want %v (release from the annotation, else the env label)", orphans, want)
	}
	var gone []string
	for _, e := range pl.markGone {
		gone = append(gone, e.Name)
	}
	if want := []string{"vanished"}; !slices.Equal(gone, want) {
		t.Errorf("markGone = %v, want %v (not the deploying one)", gone, want)
	}
	var skipped []string
	for _, s := range pl.skipped {
		skipped = append(skipped, s.action.Env+":"+s.reason)
	}
	if want := []string{"down:gerrit", "absent:unknown-change"}; !slices.Equal(skipped, want) {
		t.Errorf("skipped = %v, want %v", skipped, want)
	}
	var repair []string
	for _, r := range pl.repair {
		repair = append(repair, r.Namespace)
	}
	if want := []string{"ns-open"}; !slices.Equal(repair, want) {
		t.Errorf("repair = %v, want %v", repair, want)
	}

	sum := pl.summary(true, []string{"#ops"})
	if !sum.DryRun || len(sum.Removed) != 5 || len(sum.Skipped) != 2 || len(sum.Repaired) != 1 || sum.Channels[0] != "#ops" {
		t.Errorf("summary = %+v, want 5 removed, 2 skipped, 1 repaired, dry run, #ops", sum)
	}
}

// TestMakePlanBlind: when the cluster could not be listed, nothing is
// marked gone and no orphan removed, but the policies still apply.
func TestMakePlanBlind(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	o := observation{
		now: now,
		envs: []*run.Env{
			{Name: "a", Namespace: "ns-a", Change: 1, Kind: run.EnvPatch, Status: run.EnvReady},
			{Name: "b", Namespace: "ns-b", Kind: run.EnvCustom, Status: run.EnvReady, ExpiresAt: now.Add(-time.Minute)},
		},
		changes: map[int]ChangeState{1: {Known: true, Status: gerrit.StatusNew, Updated: now}},
	}
	pl := makePlan(o, DefaultPolicy())
	if len(pl.markGone) != 0 || len(pl.orphans) != 0 {
		t.Errorf("plan without a namespace list marks %d gone and removes %d orphans; want none", len(pl.markGone), len(pl.orphans))
	}
	if len(pl.destroy) != 1 || pl.destroy[0].env.Name != "b" {
		t.Errorf("destroy = %+v, want b (ttl)", pl.destroy)
	}
}

// TestMakePlanOrphansOff: with the orphan policy off no namespace is removed.
func TestMakePlanOrphansOff(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	o := observation{now: now, namespaces: []k8s.Namespace{{Name: "x", Labels: map[string]string{k8s.LabelEnv: "x"}, Created: now.Add(-time.Hour)}}}
	p := DefaultPolicy()
	p.Orphans = false
	if pl := makePlan(o, p); len(pl.orphans) != 0 {
		t.Errorf("orphans = %+v with the policy off, want none", pl.orphans)
	}
}
