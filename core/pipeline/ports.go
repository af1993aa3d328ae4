package pipeline

import (
	"context"
	"time"

	"github.com/ductbot/ductbot/core/run"
)

// ReplyTo says where a chat request came from, so that the result of the run
// it started can be sent back there (a thread on Slack, the channel on IRC).
// The pipeline stores and returns it without looking inside.
type ReplyTo struct {
	Network string // adapter name: "irc", "slack", "console"
	Channel string
	Thread  string // Slack thread timestamp; empty elsewhere
	User    string // the asker's stable identity
}

// Announcement is one run's result, handed to every Announcer.
type Announcement struct {
	Run           run.Run
	Env           run.Env
	Channels      []string   // the channels configured for the change's project
	RunURL        string     // the run's log page
	DefaultMatrix run.Matrix // the matrix a per-change environment would run
	ReplyTo       *ReplyTo   // set for runs started from chat
}

// CustomMatrix reports whether the run's matrix differs from the default one.
func (a Announcement) CustomMatrix() bool { return !a.Run.Matrix.Equal(a.DefaultMatrix) }

// Announcer tells people about results. Implementations must not block for
// long: they queue and return.
type Announcer interface {
	Announce(ctx context.Context, a Announcement) error
}

// SweepSummary is what one cleanup sweep did, announced once per sweep.
type SweepSummary struct {
	Removed  []SweepAction // environments torn down (or that would be, in dry run)
	Skipped  []SweepAction // environments left alone because something failed
	Repaired []string      // releases recovered from a stuck pending state
	DryRun   bool
	Channels []string
}

// SweepAction is one environment a sweep acted on or skipped, and why.
type SweepAction struct {
	Env    string
	Policy string // merged, abandoned, ttl, idle, orphan
	Reason string
}

// EnvRequest is a request from chat for an environment.
type EnvRequest struct {
	Change    int
	PatchSet  int        // 0: the current patch set
	Overrides run.Matrix // component -> ref, already syntax-checked by the caller
	TTL       time.Duration
	By        string // the asker's stable identity
	ReplyTo   *ReplyTo
}

// Ticket is the answer to a request that queues a run.
type Ticket struct {
	Env      string
	URL      string
	RunID    int64
	Position int  // 1-based place in the deploy queue; 0 when it started at once
	Reused   bool // an environment with the same matrix already existed
}
