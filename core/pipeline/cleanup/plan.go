package cleanup

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ductbot/ductbot/core/k8s"
	"github.com/ductbot/ductbot/core/run"
)

// Label and annotation keys a sweep reads from a namespace to find the
// release of an orphan. Without either, the release is taken to be named
// like the environment (k8s.LabelEnv), as the engine names it; uninstalling
// a release that does not exist is harmless, and deleting the namespace
// removes whatever else is there.
const (
	AnnotationRelease = "ductbot.dev/release"
	LabelRelease      = "ductbot.dev/release"
)

// Skip reasons, the reason label of the sweep-skip metric.
const (
	SkipGerrit  = "gerrit"         // the Gerrit lookup of the change failed
	SkipUnknown = "unknown-change" // Gerrit did not return the change
	SkipFailed  = "error"          // the removal or repair itself failed
)

// observation is everything a sweep looked at, at one instant.
type observation struct {
	now  time.Time
	envs []*run.Env // live records
	// namespaces is nil when the cluster could not be listed: then no
	// orphan is removed and no record is marked gone.
	namespaces []k8s.Namespace
	pending    []k8s.PendingRelease
	changes    map[int]ChangeState
	// lookupErrs holds the changes whose Gerrit lookup failed, with why.
	lookupErrs map[int]error
}

// target is one environment record to destroy.
type target struct {
	env    *run.Env
	action run.SweepAction
}

// orphan is one namespace to remove that no record claims.
type orphan struct {
	namespace string
	release   string
	action    run.SweepAction
}

// skip is one environment left alone, with the metric reason.
type skip struct {
	action run.SweepAction
	reason string // SkipGerrit, SkipUnknown or SkipFailed
}

// plan is what one sweep will do. It is the output of makePlan, a pure
// function, so the whole sweep's choices are table-tested without effects.
type plan struct {
	destroy  []target
	orphans  []orphan
	markGone []*run.Env
	repair   []k8s.PendingRelease
	skipped  []skip
}

// makePlan decides the whole sweep:
//   - a live record whose namespace is not in the cluster (and that is not
//     deploying: its namespace may be about to appear) is marked gone;
//   - every other record gets Decide;
//   - a managed namespace whose env label names no live record (by name or
//     by namespace), older than OrphanGrace and not already terminating, is
//     an orphan; namespaces without an env label are not ductbot
//     environments and are left alone;
//   - a release pending for StuckAfter is repaired, unless its namespace is
//     being removed anyway or belongs to a protected environment.
//
// The caller must list the namespaces before the records: a namespace
// created after the list of records would otherwise look orphaned (the
// grace period covers that order too).
func makePlan(o observation, p Policy) plan {
	var pl plan
	nsByName := make(map[string]k8s.Namespace, len(o.namespaces))
	for _, ns := range o.namespaces {
		nsByName[ns.Name] = ns
	}
	claimedEnv := make(map[string]bool, len(o.envs))
	envByNS := make(map[string]*run.Env, len(o.envs))
	removing := map[string]bool{} // namespaces this sweep removes

	for _, env := range o.envs {
		claimedEnv[env.Name] = true
		if env.Namespace != "" {
			envByNS[env.Namespace] = env
		}
		if env.Status == run.EnvGone {
			continue
		}
		if o.namespaces != nil && env.Status != run.EnvDeploying {
			if _, ok := nsByName[env.Namespace]; !ok {
				pl.markGone = append(pl.markGone, env)
				continue
			}
		}
		ch := o.changes[env.Change]
		d := Decide(o.now, env, ch, p)
		act := run.SweepAction{Env: env.Name, Policy: d.Policy, Reason: d.Reason}
		switch {
		case d.Remove:
			pl.destroy = append(pl.destroy, target{env: env, action: act})
			removing[env.Namespace] = true
		case d.Skip:
			reason := SkipUnknown
			if err, failed := o.lookupErrs[env.Change]; failed {
				reason = SkipGerrit
				act.Reason = fmt.Sprintf("Gerrit lookup of change %d failed: %v", env.Change, err)
			} else {
				act.Reason = fmt.Sprintf("Gerrit did not return change %d", env.Change)
			}
			pl.skipped = append(pl.skipped, skip{action: act, reason: reason})
		}
	}

	if p.Orphans && o.namespaces != nil {
		grace := orDefault(p.OrphanGrace, DefaultOrphanGrace)
		for _, ns := range o.namespaces {
			envName := ns.Labels[k8s.LabelEnv]
			if envName == "" || claimedEnv[envName] || envByNS[ns.Name] != nil || ns.Terminating ||
				o.now.Sub(ns.Created) < grace || slices.Contains(p.Protected, envName) {
				continue
			}
			rel := ns.Annotations[AnnotationRelease]
			if rel == "" {
				rel = ns.Labels[LabelRelease]
			}
			if rel == "" {
				rel = envName
			}
			pl.orphans = append(pl.orphans, orphan{namespace: ns.Name, release: rel, action: run.SweepAction{
				Env: envName, Policy: PolicyOrphan,
				Reason: fmt.Sprintf("namespace %s (created %s) has no live record", ns.Name, stamp(ns.Created)),
			}})
			removing[ns.Name] = true
		}
	}

	stuck := orDefault(p.StuckAfter, DefaultStuckAfter)
	for _, r := range o.pending {
		if removing[r.Namespace] || o.now.Sub(r.Since) < stuck {
			continue
		}
		if env := envByNS[r.Namespace]; env != nil && p.protected(env) {
			continue
		}
		pl.repair = append(pl.repair, r)
	}
	return pl
}

// summary is what the plan reports before anything has been run.
func (pl plan) summary(dryRun bool, channels []string) run.SweepSummary {
	s := run.SweepSummary{DryRun: dryRun, Channels: channels}
	for _, t := range pl.destroy {
		s.Removed = append(s.Removed, t.action)
	}
	for _, o := range pl.orphans {
		s.Removed = append(s.Removed, o.action)
	}
	for _, sk := range pl.skipped {
		s.Skipped = append(s.Skipped, sk.action)
	}
	for _, r := range pl.repair {
		s.Repaired = append(s.Repaired, r.Namespace+"/"+r.Name)
	}
	return s
}

func sortActions(a []run.SweepAction) {
	slices.SortFunc(a, func(x, y run.SweepAction) int { return strings.Compare(x.Env, y.Env) })
}
