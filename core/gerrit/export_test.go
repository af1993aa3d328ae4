package gerrit

import (
	"context"
	"time"
)

// PollBackoff and ChangeBackoff expose the poller's backoff functions to
// the tests.
var (
	PollBackoff   = pollBackoff
	ChangeBackoff = changeBackoff
)

// SetPollerClock replaces the clock that times p's retries of failing
// changes and the sleep between its polls.
func SetPollerClock(p *Poller, now func() time.Time, sleep func(context.Context, time.Duration) error) {
	p.now, p.sleep = now, sleep
}
