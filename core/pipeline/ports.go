package pipeline

import (
	"context"
	"time"

	"github.com/ductbot/ductbot/core/run"
)

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
