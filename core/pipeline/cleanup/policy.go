// Package cleanup is ductbot's environment sweep: it tears down the
// environments nobody needs any more (their change merged or was abandoned,
// their TTL passed, they sat idle), removes namespaces nothing records,
// marks records whose namespace vanished, repairs Helm releases left
// pending, and prunes old run records.
//
// A sweep is a classifier and a choice: it observes the store, the cluster
// and Gerrit, picks what to do with pure functions ([Decide] for each
// environment, then a plan for the whole sweep), and only then runs the
// effects, each behind a small interface. Cron only triggers it ([Schedule]).
//
// The safety rules it keeps: a failed or empty Gerrit lookup is never read
// as merged or abandoned; one environment's failure never stops the sweep;
// protected environments are never removed by a policy; dry run changes
// nothing; and an interrupted teardown is finished by the next sweep.
package cleanup

import (
	"fmt"
	"slices"
	"time"

	"github.com/ductbot/ductbot/core/gerrit"
	"github.com/ductbot/ductbot/core/run"
)

// Policy names, as they appear in summaries, logs and the policy label of
// the sweep-removal metric.
const (
	PolicyMerged    = "merged"    // the change merged
	PolicyAbandoned = "abandoned" // the change was abandoned
	PolicyTTL       = "ttl"       // the environment's ExpiresAt passed
	PolicyIdle      = "idle"      // no activity for Policy.IdleAfter
	PolicyOrphan    = "orphan"    // a managed namespace with no record
	PolicyResume    = "resume"    // a teardown that was interrupted
	PolicyStuck     = "stuck"     // a release pending longer than Policy.StuckAfter
)

// Defaults for the durations of a Policy left zero.
const (
	DefaultIdleAfter       = 14 * 24 * time.Hour
	DefaultOrphanGrace     = 10 * time.Minute
	DefaultStuckAfter      = 15 * time.Minute
	DefaultLogsRetention   = 30 * 24 * time.Hour
	DefaultTeardownTimeout = 5 * time.Minute
)

// Policy says what a sweep removes. Each policy can be turned off. A zero
// IdleAfter, OrphanGrace, StuckAfter or TeardownTimeout means its default;
// a zero MergedGrace means "as soon as a sweep sees it"; a zero
// LogsRetention means "never prune" (DefaultPolicy sets 30 days).
type Policy struct {
	// Merged and Abandoned remove the environments of changes Gerrit says
	// are merged or abandoned, MergedGrace after the change's last update.
	// They apply to every environment of the change, custom ones included.
	Merged, Abandoned bool
	MergedGrace       time.Duration
	// TTL removes environments whose ExpiresAt has passed, whatever their
	// kind, even while Gerrit is unreachable (it needs no Gerrit lookup).
	TTL bool
	// Idle removes per-change (patch) environments whose last activity,
	// the later of the record's ActiveAt (CreatedAt when unset) and the
	// change's last update in Gerrit, is IdleAfter old. It needs the change
	// state from Gerrit, and applies whatever the change's status, so an
	// environment whose merged or abandoned policy is off still goes once
	// idle.
	Idle      bool
	IdleAfter time.Duration
	// Orphans removes managed namespaces whose env label names no live
	// record, once they are OrphanGrace old.
	Orphans     bool
	OrphanGrace time.Duration
	// StuckAfter is how long a release may stay pending before a sweep
	// repairs it (rolled back, or uninstalled if it is the first revision);
	// set it to the deploy timeout.
	StuckAfter time.Duration
	// LogsRetention prunes finished runs and their test logs this old.
	LogsRetention time.Duration
	// Protected lists environment names no policy removes (besides the
	// records' own Protected flag).
	Protected []string
	// DryRun computes and reports what would be done and does nothing.
	DryRun bool
	// TeardownTimeout bounds the uninstall and the namespace deletion of
	// one orphan, and each repair.
	TeardownTimeout time.Duration
}

// DefaultPolicy turns every policy on with the default durations.
func DefaultPolicy() Policy {
	return Policy{
		Merged: true, Abandoned: true, TTL: true, Idle: true, Orphans: true,
		IdleAfter: DefaultIdleAfter, OrphanGrace: DefaultOrphanGrace, StuckAfter: DefaultStuckAfter,
		LogsRetention: DefaultLogsRetention, TeardownTimeout: DefaultTeardownTimeout,
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// protected reports whether no policy may remove the environment name.
func (p Policy) protected(env *run.Env) bool {
	return env.Protected || slices.Contains(p.Protected, env.Name)
}

// ChangeState is what Gerrit said about an environment's change.
type ChangeState struct {
	// Known is false when the lookup failed or Gerrit did not return the
	// change: its state is unknown, which is never "merged".
	Known   bool
	Status  string // gerrit.StatusNew, StatusMerged or StatusAbandoned
	Updated time.Time
}

// Decision is what to do with one environment.
type Decision struct {
	Remove bool
	// Skip: a policy needed the change's state and it was unknown; the
	// environment is left alone until a later sweep knows more.
	Skip   bool
	Policy string // the policy that removes it, or that needed Gerrit
	Reason string // for people: why, with the times involved
}

// Decide is the cleanup policy for one live environment at now, given what
// Gerrit said about its change. It is pure. In order:
//
//  1. a record already tearing-down is removed (PolicyResume): a teardown
//     was started, perhaps by a process that died, and is finished even if
//     the environment was protected since;
//  2. a protected environment is kept;
//  3. an expired TTL removes it (PolicyTTL), with or without Gerrit;
//  4. for an environment with a change: when a Gerrit-based policy needs
//     the change's state and it is unknown, Skip; merged or abandoned past
//     MergedGrace removes it (within the grace it is kept); an idle
//     per-change environment is removed.
//
// Decide does not look at the cluster: whether the namespace still exists
// and whether a release is stuck are decided for the whole sweep.
func Decide(now time.Time, env *run.Env, ch ChangeState, p Policy) Decision {
	if env.Status == run.EnvGone {
		return Decision{Reason: "already gone"}
	}
	if env.Status == run.EnvTearingDown {
		return Decision{Remove: true, Policy: PolicyResume, Reason: "finishing an interrupted teardown"}
	}
	if p.protected(env) {
		return Decision{Reason: "protected"}
	}
	if p.TTL && !env.ExpiresAt.IsZero() && !now.Before(env.ExpiresAt) {
		return Decision{Remove: true, Policy: PolicyTTL, Reason: "expired at " + stamp(env.ExpiresAt)}
	}
	if env.Change <= 0 {
		return Decision{}
	}

	idleAfter := orDefault(p.IdleAfter, DefaultIdleAfter)
	lastActive := env.ActiveAt
	if lastActive.IsZero() {
		lastActive = env.CreatedAt
	}
	idleCandidate := p.Idle && env.Kind == run.EnvPatch
	if !ch.Known {
		switch {
		case p.Merged || p.Abandoned:
			return Decision{Skip: true, Policy: closedPolicies(p), Reason: fmt.Sprintf("state of change %d unknown", env.Change)}
		case idleCandidate && now.Sub(lastActive) >= idleAfter:
			return Decision{Skip: true, Policy: PolicyIdle, Reason: fmt.Sprintf("state of change %d unknown", env.Change)}
		}
		return Decision{}
	}

	closed := map[string]string{gerrit.StatusMerged: PolicyMerged, gerrit.StatusAbandoned: PolicyAbandoned}[ch.Status]
	if closed == PolicyMerged && p.Merged || closed == PolicyAbandoned && p.Abandoned {
		due := ch.Updated.Add(p.MergedGrace)
		if now.Before(due) {
			return Decision{Reason: fmt.Sprintf("change %d %s; grace until %s", env.Change, closed, stamp(due))}
		}
		return Decision{Remove: true, Policy: closed, Reason: fmt.Sprintf("change %d %s (last updated %s)", env.Change, closed, stamp(ch.Updated))}
	}
	if idleCandidate {
		if ch.Updated.After(lastActive) {
			lastActive = ch.Updated
		}
		if now.Sub(lastActive) >= idleAfter {
			return Decision{Remove: true, Policy: PolicyIdle, Reason: fmt.Sprintf("no activity since %s", stamp(lastActive))}
		}
	}
	return Decision{}
}

func closedPolicies(p Policy) string {
	switch {
	case p.Merged && p.Abandoned:
		return PolicyMerged + "/" + PolicyAbandoned
	case p.Merged:
		return PolicyMerged
	}
	return PolicyAbandoned
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }
