package pipeline

import (
	"context"
	"time"

	"github.com/ductbot/ductbot/core/gerrit"
	"github.com/ductbot/ductbot/core/k8s"
	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/core/store"
)

// Store is the durable state the pipeline needs. Runs are written whole by
// the one goroutine that owns each; environments field by field, so that a
// run's writes never undo a !keep or !extend made meanwhile.
type Store interface {
	CreateRun(ctx context.Context, r *run.Run) error
	UpdateRun(ctx context.Context, r *run.Run) error
	GetRun(ctx context.Context, id int64) (*run.Run, error)
	ListRuns(ctx context.Context, f store.RunFilter) ([]*run.Run, error)

	GetEnv(ctx context.Context, name string) (*run.Env, error)
	ListEnvs(ctx context.Context, f store.EnvFilter) ([]*run.Env, error)
	CreateOrReviveEnv(ctx context.Context, e *run.Env) (created bool, err error)
	SetEnvStatus(ctx context.Context, name string, status run.EnvStatus, at time.Time) error
	SetEnvDeployed(ctx context.Context, name string, patchSet int, revision string, m run.Matrix) error
	SetEnvProtected(ctx context.Context, name string, protected bool) error
	SetEnvExpiry(ctx context.Context, name string, expires time.Time) error
	TouchEnv(ctx context.Context, name string, activeAt time.Time) error

	PutTestLogs(ctx context.Context, runID int64, logs []run.TestLog) error

	ChangeCursor(ctx context.Context, change int) (store.ChangeCursor, error)
	PutChangeCursor(ctx context.Context, c store.ChangeCursor) error
	SetChangeDeps(ctx context.Context, dependent int, deps []int) error
	Dependents(ctx context.Context, dependency int) ([]int, error)

	PutReplyTarget(ctx context.Context, runID int64, target string) error
	ReplyTarget(ctx context.Context, runID int64) (string, error)
	DeleteReplyTarget(ctx context.Context, runID int64) error
}

// Cluster deploys, tests and removes environments.
type Cluster interface {
	Deploy(ctx context.Context, rel k8s.Release) error
	// Test runs the release's tests; when ctx ends first it stops them, so
	// that the release is free for the next operation within seconds.
	Test(ctx context.Context, namespace, name string, timeout time.Duration) (*k8s.TestResult, error)
	Teardown(ctx context.Context, namespace, name string, timeout time.Duration) error
	// Sleep scales the namespace's workloads to 0, remembering their
	// replicas; Wake restores them and waits for ready. Both are
	// idempotent, so repeating one finishes it after a crash.
	Sleep(ctx context.Context, namespace string) error
	Wake(ctx context.Context, namespace string, timeout time.Duration) error
}

// Gerrit is what the pipeline reads from and writes to Gerrit.
type Gerrit interface {
	Change(ctx context.Context, project string, number int) (*gerrit.Change, error)
	Changes(ctx context.Context, numbers []int) (map[int]*gerrit.Change, error)
	Query(ctx context.Context, q gerrit.Query) ([]gerrit.Change, error)
	PostReview(ctx context.Context, project string, number int, revision string, r gerrit.Review) error
	GroupMembers(ctx context.Context, group string) ([]gerrit.Account, error)
}

// Announcer tells people about results. Implementations must not block for
// long: they queue and return.
type Announcer interface {
	Announce(ctx context.Context, a run.Announcement) error
}

// EnvRequest is a request from chat for an environment.
type EnvRequest struct {
	Change    int
	PatchSet  int        // 0: the current patch set
	Overrides run.Matrix // component -> ref, already syntax-checked by the caller
	TTL       time.Duration
	By        string // the asker's stable identity
	// Vouched says the asker is listed in chat.permissions.vouch: they
	// vouch for code from untrusted uploaders (the trust gate decides).
	Vouched bool
	ReplyTo string // opaque: where the result goes back to, set by the chat side
}

// Ticket is the answer to a request that queues a run.
type Ticket struct {
	Env      string
	URL      string
	RunID    int64
	Position int  // 1-based place in the deploy queue; 0 when it started at once
	Reused   bool // an environment with the same matrix already existed
}
