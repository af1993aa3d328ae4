// Package run is ductbot's domain: what a run and an environment are, the
// one run lifecycle (states, allowed transitions and the timestamps each
// sets), and how environments are named. The store persists these types and
// the web shows them; neither defines them.
package run

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"
)

// State is where a run is in its life. Its transitions are
// decided by Transition (lifecycle.go); the store only persists them.
type State string

// The states of a run, in order. A run in StateDone has a Result.
const (
	StateQueued    State = "queued"
	StateDeploying State = "deploying"
	StateTesting   State = "testing"
	StateReporting State = "reporting"
	StateDone      State = "done"
)

// Result is the outcome of a finished run.
type Result string

// The results a run can end with. ResultNone is the zero value of a run that
// has not finished.
const (
	ResultNone       Result = ""
	ResultPassed     Result = "passed"     // the tests passed
	ResultFailed     Result = "failed"     // a test failed
	ResultError      Result = "error"      // infrastructure: deploy failed or timed out, cluster unreachable
	ResultSuperseded Result = "superseded" // a newer patch set replaced it before it finished
	ResultCanceled   Result = "canceled"   // the change merged or was abandoned, or a person canceled it
)

// Trigger says why a run was started.
type Trigger string

// The triggers of a run.
const (
	TriggerUpload  Trigger = "upload"  // a new patch set was uploaded
	TriggerRecheck Trigger = "recheck" // a trusted "recheck" comment on Gerrit
	TriggerChat    Trigger = "chat"    // a chat command (!env, !retest)
	// TriggerDependency: a new patch set of a change this one names in a
	// Depends-On footer.
	TriggerDependency Trigger = "dependency"
)

// EnvKind says how an environment came to be.
type EnvKind string

// The kinds of environment.
const (
	EnvPatch  EnvKind = "patch"  // the per-change environment with the default matrix
	EnvCustom EnvKind = "custom" // built from chat with a custom matrix
)

// EnvStatus is the observed state of an environment.
type EnvStatus string

// The statuses of an environment.
const (
	EnvWaiting     EnvStatus = "waiting" // queued for capacity: nothing in the cluster yet
	EnvDeploying   EnvStatus = "deploying"
	EnvReady       EnvStatus = "ready"  // deployed; tests may have passed or failed
	EnvBroken      EnvStatus = "broken" // the last deploy failed
	EnvTearingDown EnvStatus = "tearing-down"
	// EnvSleeping: being put to sleep (recorded first, so that a restart
	// finishes it); EnvAsleep: every Deployment and StatefulSet scaled to
	// 0, the release kept; EnvWaking: being woken (a restart finishes it).
	EnvSleeping EnvStatus = "sleeping"
	EnvAsleep   EnvStatus = "asleep"
	EnvWaking   EnvStatus = "waking"
	EnvGone     EnvStatus = "gone"
)

// Matrix maps a component name to the ref it runs.
type Matrix map[string]string

// Equal reports whether both matrices map the same components to the same refs.
func (m Matrix) Equal(o Matrix) bool {
	if len(m) != len(o) {
		return false
	}
	for k, v := range m {
		if ov, ok := o[k]; !ok || ov != v {
			return false
		}
	}
	return true
}

// Clone returns a copy of m.
func (m Matrix) Clone() Matrix {
	out := make(Matrix, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Hash is a short, stable digest of the matrix (8 hex digits), for names.
func (m Matrix) Hash() string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s\n", k, m[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:8]
}

// Env is one environment: one Helm release in its own namespace.
type Env struct {
	Name        string // stable, DNS-1123, unique; the key
	Namespace   string
	Release     string
	Kind        EnvKind
	Project     string
	Change      int
	PatchSet    int    // the patch set last deployed (or being deployed)
	Revision    string // commit SHA of that patch set
	Subject     string // commit subject (untrusted text)
	Owner       string // change owner (untrusted text)
	Matrix      Matrix
	URL         string
	Status      EnvStatus
	Protected   bool
	RequestedBy string    // chat identity for EnvCustom, empty otherwise
	CreatedAt   time.Time // all times UTC
	UpdatedAt   time.Time
	ActiveAt    time.Time // last patch set, comment or chat activity
	ExpiresAt   time.Time // zero: no TTL
	GoneAt      time.Time // zero while alive
}

// Run is one deploy-and-test of an environment.
type Run struct {
	ID       int64
	Env      string // Env.Name
	Project  string
	Change   int
	PatchSet int
	Revision string
	Subject  string
	Owner    string
	Matrix   Matrix
	// Deps are the changes the run deploys beside its own because of
	// Depends-On footers, in the order they were found.
	Deps        []Dep
	Trigger     Trigger
	RequestedBy string // chat identity or Gerrit account that asked, if any
	TestOnly    bool   // retest: do not redeploy
	State       State
	Result      Result
	Attempts    int    // deploy attempts made so far
	Detail      string // human-readable reason for the result (last lines of Helm's error)
	// Diagnosis is what the environment's pods showed when its deploy
	// failed (nil when it did not, or nothing explained it).
	Diagnosis  *Diagnosis
	Reported   bool // the Gerrit review for this run was posted (or deliberately skipped)
	CreatedAt  time.Time
	StartedAt  time.Time // deploy started
	DeployedAt time.Time // deploy finished
	TestedAt   time.Time // tests finished
	FinishedAt time.Time // state reached done
}

// Dep is a change a run deploys (or would have) because a Depends-On
// footer names it, directly or through another dependency.
type Dep struct {
	Change    int    `json:"change"`
	Project   string `json:"project"`
	Component string `json:"component"`
	// PatchSet and Revision are what was deployed; a merged dependency
	// has neither: its component runs its default ref, which has it.
	PatchSet int    `json:"patch_set,omitempty"`
	Revision string `json:"revision,omitempty"`
	Merged   bool   `json:"merged,omitempty"`
}

// String is how votes, pages and announcements name the dependency:
// "change 123 patch set 4 (wiki)".
func (d Dep) String() string {
	if d.Merged {
		return fmt.Sprintf("change %d (%s, merged: its default ref)", d.Change, d.Component)
	}
	return fmt.Sprintf("change %d patch set %d (%s)", d.Change, d.PatchSet, d.Component)
}

// FormatDeps is how votes, run pages and announcements list a run's
// dependencies: "change 123 patch set 4 (wiki), change 7 patch set 1
// (evaluator)"; "" for none.
func FormatDeps(deps []Dep) string {
	parts := make([]string, len(deps))
	for i, d := range deps {
		parts[i] = d.String()
	}
	return strings.Join(parts, ", ")
}

// Diagnosis is why a deploy failed, as the environment's pods showed it:
// which component, why, its last log lines and its warning events. Logs
// and events come from the code under test: untrusted text.
type Diagnosis struct {
	// Class is what it means: "broken" (the code deployed crash-loops or
	// never gets ready: the run failed), "image" (an image could not be
	// pulled in time) or "infrastructure" (the cluster was in the way).
	Class string `json:"class"`
	// Component is the configured component that failed (or the failing
	// workload's name when it is none of them).
	Component string `json:"component,omitempty"`
	// Own says Component is the one the change's project builds; false is
	// a neighbour failing (say the default evaluator).
	Own       bool   `json:"own,omitempty"`
	Pod       string `json:"pod,omitempty"`
	Container string `json:"container,omitempty"`
	Image     string `json:"image,omitempty"`
	// Reason is one line: "CrashLoopBackOff: container orchestrator exited
	// with status 1 (Error), restarted 2 times".
	Reason string `json:"reason,omitempty"`
	// Logs are the container's last log lines (at most 50, bounded by
	// report.max_log_bytes).
	Logs string `json:"logs,omitempty"`
	// Events are the pod's warning events, oldest first.
	Events []string `json:"events,omitempty"`
	// Others are other components failing at the same time, with why.
	Others []string `json:"others,omitempty"`
}

// Diagnosis classes.
const (
	DiagnosisBroken         = "broken"
	DiagnosisImage          = "image"
	DiagnosisInfrastructure = "infrastructure"
)

// InCluster reports whether an environment in this status holds (or may
// hold) objects in the cluster, and so counts toward kubernetes.max_envs.
// An asleep (or falling asleep) environment does not: it counts toward
// kubernetes.max_sleeping instead (see Dormant).
func (s EnvStatus) InCluster() bool {
	return s != EnvWaiting && s != EnvGone && s != "" && !s.Dormant()
}

// Dormant reports whether the environment is asleep or going to sleep.
func (s EnvStatus) Dormant() bool { return s == EnvAsleep || s == EnvSleeping }

// Finished reports whether the run has reached a result.
func (r *Run) Finished() bool { return r.State == StateDone }

// TestLog is the log of one test pod of a run.
type TestLog struct {
	RunID int64
	Pod   string
	Phase string // the pod's final phase: Succeeded or Failed
	Log   string
}
