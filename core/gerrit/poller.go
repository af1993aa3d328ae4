package gerrit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"
)

// WatermarkKey is the CursorStore key under which a Poller keeps its
// watermark, as RFC 3339 with nanoseconds.
const WatermarkKey = "gerrit.watermark"

// Defaults for PollOptions.
const (
	DefaultPollInterval = 30 * time.Second
	DefaultLookback     = time.Hour
	DefaultOverlap      = 2 * time.Minute
)

const (
	// maxPollBackoff caps how far failed polls (the query itself failed)
	// stretch Run's wait: it is at most max(Interval, maxPollBackoff), so
	// the first poll after an outage comes that soon.
	maxPollBackoff = 30 * time.Second
	// maxChangeBackoff caps the wait before a failing change is retried.
	maxChangeBackoff = 5 * time.Minute
	// maxAbsentRetries is how many retries in a row may find a failing
	// change missing from Gerrit (deleted, or no longer visible) before it
	// is dropped, so that it does not hold the watermark forever.
	maxAbsentRetries = 5
)

// ErrHoldWatermark is for a HandleFunc to wrap when the caller could not
// record its work, e.g. its store failed: do not move the watermark past
// this change. Run then stops the cycle, commits nothing, and polls again
// after the poll-level backoff, delivering the batch again.
var ErrHoldWatermark = errors.New("gerrit poller: hold the watermark")

// HandleFunc handles one change Run delivers. It returns nil when the
// change is handled, an error wrapping ErrHoldWatermark when the caller
// could not record its work, and any other error when this change failed:
// Run then retries it on its own backoff while the others go on.
//
// Run delivers a change again after a restart, and a failing change on each
// retry: handling must be idempotent.
type HandleFunc func(ctx context.Context, c Change) error

// CursorStore persists small values across restarts. ductbot's store
// satisfies it.
type CursorStore interface {
	GetMeta(ctx context.Context, key string) (value string, ok bool, err error)
	SetMeta(ctx context.Context, key, value string) error
}

// PollOptions configure a Poller.
type PollOptions struct {
	// Projects are the projects to watch, each with its own branch
	// filter; empty: every project the account can see.
	Projects []ProjectFilter
	// Interval is the wait between two polls; defaults to
	// DefaultPollInterval.
	Interval time.Duration
	// Lookback is how far back the first poll ever looks, when the cursor
	// holds no watermark; defaults to DefaultLookback.
	Lookback time.Duration
	// Overlap is how far before the watermark each poll starts, for changes
	// Gerrit indexes late; defaults to DefaultOverlap. Changes in the
	// overlap are delivered again: callers dedupe.
	Overlap time.Duration
	// Cursor persists the watermark; nil keeps it in memory only.
	Cursor CursorStore
	// Now is the local clock, used only for the first look-back; defaults
	// to time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// OnPoll, when set, is called after each poll query with its duration
	// and error (nil on success), for metrics.
	OnPoll func(time.Duration, error)
	// OnChange, when set, is called after Run handed one change to its
	// HandleFunc, with the change's number and the handler's error (nil
	// on success), for metrics.
	OnChange func(number int, err error)
}

// Batch is the result of one poll: the changes to handle and the watermark
// to commit once they are handled.
type Batch struct {
	Changes []Change
	// Since is the time the query started from (the watermark minus the
	// overlap, or now minus the look-back).
	Since time.Time
	// Watermark is the newest Updated among Changes, or the previous
	// watermark if that is newer. Commit persists it, or rather the
	// Updated time of the oldest change failing in Run if that is earlier.
	Watermark time.Time
}

// failure is what a Poller remembers of a change whose handler failed.
type failure struct {
	project string
	// updated is the Updated time of the version that failed last: the
	// watermark stays at or before it, so a restarted poller queries it
	// again.
	updated time.Time
	count   int       // consecutive failures
	absent  int       // consecutive retries that did not find the change
	next    time.Time // not retried before this
}

// Poller watches Gerrit by querying for changes updated since a watermark.
// The watermark comes from Gerrit's own Updated times, never from the local
// clock, only moves forward, and is persisted in a CursorStore, so a restart
// resumes where the last handled poll ended and misses nothing.
//
// It returns open and closed, WIP and private changes alike, with their
// messages: deciding what to do with them is the caller's job.
//
// Run hands changes over one by one and keeps each change's outcome. A
// change whose handler fails joins the failing set: it is retried by
// number on its own exponential backoff (from Interval, doubling, at most
// 5 minutes), and skipped when a poll returns it in the meantime, while the
// other changes go on and the poll interval stays as it is. The failing set
// lives in memory only; what makes it survive a restart is the watermark:
// it is never committed past the Updated time of a failing change, so a
// new Poller on the same CursorStore queries every failing change again.
// The price is that, while a change fails, every poll reads the changes
// updated since it; Run remembers which versions it handled and does not
// hand those over again, but after a restart they come once more.
type Poller struct {
	client *Client
	opts   PollOptions
	log    *slog.Logger
	// now times the retries of failing changes; sleep waits between polls.
	// Tests replace them.
	now   func() time.Time
	sleep func(context.Context, time.Duration) error

	mu        sync.Mutex
	loaded    bool
	watermark time.Time
	failing   map[int]*failure
	// handled holds the Updated time of the version of each change Run
	// handled successfully, for changes updated since the last query's
	// start: a poll that returns the same version again skips it.
	handled map[int]time.Time
}

// NewPoller returns a Poller that queries through c.
func NewPoller(c *Client, opts PollOptions) *Poller {
	if opts.Interval <= 0 {
		opts.Interval = DefaultPollInterval
	}
	if opts.Lookback <= 0 {
		opts.Lookback = DefaultLookback
	}
	if opts.Overlap <= 0 {
		opts.Overlap = DefaultOverlap
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Poller{
		client: c, opts: opts, log: log.With(slog.String("component", "gerrit-poller")),
		now: time.Now, sleep: sleep,
		failing: make(map[int]*failure), handled: make(map[int]time.Time),
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Watermark returns the committed watermark, loading it from the cursor
// store on first use. The zero time means no poll was ever committed.
func (p *Poller) Watermark(ctx context.Context) (time.Time, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.loadLocked(ctx); err != nil {
		return time.Time{}, err
	}
	return p.watermark, nil
}

// Failing returns the changes Run is retrying, by number, with how many
// times in a row each has failed.
func (p *Poller) Failing() map[int]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[int]int, len(p.failing))
	for n, f := range p.failing {
		out[n] = f.count
	}
	return out
}

func (p *Poller) loadLocked(ctx context.Context) error {
	if p.loaded || p.opts.Cursor == nil {
		p.loaded = true
		return nil
	}
	v, ok, err := p.opts.Cursor.GetMeta(ctx, WatermarkKey)
	if err != nil {
		return fmt.Errorf("gerrit poller: reading watermark: %w", err)
	}
	if ok {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			// A broken value must not stop polling forever: fall back to
			// the look-back and say so loudly.
			p.log.Error("stored gerrit watermark is unreadable; starting from the look-back",
				slog.String("value", v), slog.Any("error", err))
		} else {
			p.watermark = t.UTC()
		}
	}
	p.loaded = true
	return nil
}

// capLocked returns t, or the Updated time of the oldest failing change if
// that is earlier.
func (p *Poller) capLocked(t time.Time) time.Time {
	for _, f := range p.failing {
		if f.updated.Before(t) {
			t = f.updated
		}
	}
	return t
}

// Fetch queries the changes updated since the watermark minus the overlap
// (on first start: since now minus the look-back) and returns them without
// moving the watermark. Call Commit with the batch once it is handled.
func (p *Poller) Fetch(ctx context.Context) (Batch, error) {
	p.mu.Lock()
	err := p.loadLocked(ctx)
	wm := p.watermark
	p.mu.Unlock()
	if err != nil {
		return Batch{}, err
	}
	since := wm.Add(-p.opts.Overlap)
	if wm.IsZero() {
		since = p.opts.Now().Add(-p.opts.Lookback)
	}
	since = since.UTC().Truncate(time.Second)

	start := time.Now()
	changes, err := p.client.Query(ctx, Query{
		Scopes:   p.opts.Projects,
		After:    since,
		Messages: true,
	})
	if p.opts.OnPoll != nil {
		p.opts.OnPoll(time.Since(start), err)
	}
	if err != nil {
		return Batch{}, fmt.Errorf("gerrit poller: %w", err)
	}
	newest := wm
	for _, c := range changes {
		if c.Updated.After(newest) {
			newest = c.Updated
		}
	}
	return Batch{Changes: changes, Since: since, Watermark: newest}, nil
}

// Commit moves the watermark to b.Watermark and persists it, unless the
// watermark is already at or past it. It never moves the watermark past
// the Updated time of a change that is failing in Run, even if b says so.
// If persisting fails the watermark does not move.
func (p *Poller) Commit(ctx context.Context, b Batch) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	wm := p.capLocked(b.Watermark)
	if !wm.After(p.watermark) {
		return nil
	}
	if p.opts.Cursor != nil {
		if err := p.opts.Cursor.SetMeta(ctx, WatermarkKey, wm.UTC().Format(time.RFC3339Nano)); err != nil {
			return fmt.Errorf("gerrit poller: saving watermark: %w", err)
		}
	}
	p.watermark = wm
	return nil
}

// Poll fetches and commits at once: for callers that cannot lose what they
// were given, Fetch, handle, then Commit instead.
func (p *Poller) Poll(ctx context.Context) ([]Change, error) {
	b, err := p.Fetch(ctx)
	if err != nil {
		return nil, err
	}
	if err := p.Commit(ctx, b); err != nil {
		return nil, err
	}
	return b.Changes, nil
}

// pollBackoff is Run's wait before the next poll after failures polls in a
// row failed: interval, doubled for each failure after the first, at most
// max(interval, 30s).
func pollBackoff(interval time.Duration, failures int) time.Duration {
	return backoff(interval, failures, max(interval, maxPollBackoff))
}

// changeBackoff is how long a change that failed failures times in a row
// waits before its next retry: interval, doubled for each failure after the
// first, at most 5 minutes.
func changeBackoff(interval time.Duration, failures int) time.Duration {
	return backoff(interval, failures, maxChangeBackoff)
}

func backoff(base time.Duration, failures int, limit time.Duration) time.Duration {
	wait := min(base, limit)
	for i := 1; i < failures && wait < limit; i++ {
		wait *= 2
	}
	return min(wait, limit)
}

// Run polls at once and then every Interval until ctx is done, and returns
// ctx's error. It hands each change of a poll to handle, one at a time,
// newest update first, except changes it already handled in the same
// version and failing changes, which are retried on their own schedule.
//
// Outcomes, per change:
//   - nil: handled. A change that was failing leaves the failing set.
//   - an error wrapping ErrHoldWatermark: the cycle stops there and commits
//     nothing; the next poll delivers the rest of the batch again.
//   - any other error: this change failed. The rest of the batch is
//     handled and the watermark moves on, though never past this change's
//     Updated time while it keeps failing, so that a restart queries it
//     again. It is retried by number after changeBackoff (from Interval,
//     doubling, at most 5 minutes), and logged at each failure with its
//     number and consecutive count.
//
// Poll errors (the query failed: Gerrit down) and held cycles are logged,
// never returned, and stretch the wait (doubling, at most max(Interval,
// 30s)) until a cycle succeeds; a failing change does not stretch it.
func (p *Poller) Run(ctx context.Context, handle HandleFunc) error {
	failures := 0
	for {
		if err := p.cycle(ctx, handle); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failures++
			p.log.Warn("gerrit poll failed", slog.Int("consecutive_failures", failures), slog.Any("error", err))
		} else {
			failures = 0
		}
		if err := p.sleep(ctx, pollBackoff(p.opts.Interval, failures)); err != nil {
			return err
		}
	}
}

// cycle is one poll of Run: fetch, hand each change over, retry the failing
// changes that are due, commit.
func (p *Poller) cycle(ctx context.Context, handle HandleFunc) error {
	b, err := p.Fetch(ctx)
	if err != nil {
		return err
	}
	now := p.now()
	handled := 0
	for _, c := range b.Changes {
		p.mu.Lock()
		_, failing := p.failing[c.Number]
		done, ok := p.handled[c.Number]
		p.mu.Unlock()
		if failing || ok && done.Equal(c.Updated) {
			continue
		}
		if err := p.handleOne(ctx, handle, c, now); err != nil {
			return err
		}
		handled++
	}
	retryErr := p.retry(ctx, handle, now)
	if errors.Is(retryErr, ErrHoldWatermark) || ctx.Err() != nil {
		return retryErr
	}
	if err := p.Commit(ctx, b); err != nil {
		return err
	}
	p.mu.Lock()
	maps.DeleteFunc(p.handled, func(_ int, updated time.Time) bool { return updated.Before(b.Since) })
	failing := len(p.failing)
	p.mu.Unlock()
	p.log.Debug("gerrit poll done", slog.Int("changes", len(b.Changes)), slog.Int("handled", handled),
		slog.Int("failing", failing), slog.Time("since", b.Since), slog.Time("watermark", b.Watermark))
	return retryErr
}

// handleOne hands c to handle and records the outcome. It returns an error
// only when the cycle must stop: the handler asked to hold the watermark,
// or ctx is done.
func (p *Poller) handleOne(ctx context.Context, handle HandleFunc, c Change, now time.Time) error {
	err := handle(ctx, c)
	if ctx.Err() != nil {
		// Shutting down: whatever the handler said, it is not the
		// change's fault.
		return ctx.Err()
	}
	if p.opts.OnChange != nil {
		p.opts.OnChange(c.Number, err)
	}
	if errors.Is(err, ErrHoldWatermark) {
		return fmt.Errorf("handling change %d (watermark not advanced): %w", c.Number, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.failing[c.Number]
	if err == nil {
		if f != nil {
			p.log.Info("gerrit change handled after failing", slog.Int("change", c.Number),
				slog.String("project", c.Project), slog.Int("failures", f.count))
			delete(p.failing, c.Number)
		}
		p.handled[c.Number] = c.Updated
		return nil
	}
	if f == nil {
		f = &failure{}
		p.failing[c.Number] = f
	}
	f.project = c.Project
	if c.Updated.After(f.updated) {
		f.updated = c.Updated
	}
	f.count++
	f.absent = 0
	wait := changeBackoff(p.opts.Interval, f.count)
	f.next = now.Add(wait)
	p.log.Warn("gerrit change handling failed; retrying it later", slog.Int("change", c.Number),
		slog.String("project", c.Project), slog.Int("consecutive_failures", f.count),
		slog.Duration("retry_in", wait), slog.Any("error", err))
	return nil
}

// retry looks the failing changes that are due up by number and hands them
// over again. A change Gerrit no longer returns counts as a failure, and is
// dropped after maxAbsentRetries retries in a row did not find it.
func (p *Poller) retry(ctx context.Context, handle HandleFunc, now time.Time) error {
	p.mu.Lock()
	var due []int
	for n, f := range p.failing {
		if !now.Before(f.next) {
			due = append(due, n)
		}
	}
	p.mu.Unlock()
	if len(due) == 0 {
		return nil
	}
	slices.Sort(due)
	found, err := p.client.changesByNumber(ctx, due, true)
	if err != nil {
		return fmt.Errorf("gerrit poller: retrying failing changes %v: %w", due, err)
	}
	for _, n := range due {
		if c, ok := found[n]; ok {
			if err := p.handleOne(ctx, handle, *c, now); err != nil {
				return err
			}
			continue
		}
		p.mu.Lock()
		f := p.failing[n]
		if f == nil {
			p.mu.Unlock()
			continue
		}
		f.count++
		f.absent++
		if f.absent >= maxAbsentRetries {
			delete(p.failing, n)
			p.log.Error("dropping failing gerrit change: Gerrit no longer returns it", slog.Int("change", n),
				slog.String("project", f.project), slog.Int("consecutive_failures", f.count))
		} else {
			wait := changeBackoff(p.opts.Interval, f.count)
			f.next = now.Add(wait)
			p.log.Warn("failing gerrit change not found; retrying it later", slog.Int("change", n),
				slog.String("project", f.project), slog.Int("consecutive_failures", f.count),
				slog.Duration("retry_in", wait))
		}
		p.mu.Unlock()
	}
	return nil
}
