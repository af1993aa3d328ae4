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
	// DefaultReconcileGap is the least time between the end of one poll
	// cycle and a reconcile asked for with Reconcile.
	DefaultReconcileGap = 5 * time.Second
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
	// maxHintBackoff caps the wait before a hint whose read or handling
	// failed is tried again.
	maxHintBackoff = 30 * time.Second
	// maxStaleReads is how many times a hint is read again when Gerrit
	// still shows an older patch set than the event named (its index lags
	// behind); after that the next reconcile sees the change.
	maxStaleReads = 5
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
	// OnCycle, when set, is called after each poll cycle of Run (a
	// reconcile, when an event stream feeds the poller) with why it ran
	// ("start", "schedule", or the reason given to Reconcile), how long it
	// took, and its error, for metrics.
	OnCycle func(reason string, d time.Duration, err error)
	// ReconcileGap is the least time between the end of a poll cycle and
	// the start of one asked for with Reconcile, so that a burst of
	// requests (reconnects, dropped-output) does not hammer Gerrit;
	// defaults to DefaultReconcileGap.
	ReconcileGap time.Duration
}

// Hint names a change an event says was updated. It is only a hint: Run
// reads the change through REST, as a poll does, and hands over what it
// read.
type Hint struct {
	Number int
	// PatchSet is the patch set the event named, if any: a read that finds
	// an older current patch set (Gerrit's index lags behind its events) is
	// tried again shortly.
	PatchSet int
	// Type is the event's type, for logs.
	Type string
	// due is when the hint may be read (after a failed read); tries counts
	// the reads that found an older patch set.
	due   time.Time
	tries int
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
//
// An event stream (see Stream) makes it prompt: Notify names a change to
// read and hand over between polls, through the same path and the same
// memory of handled versions, and Reconcile asks for a poll now. All
// handling happens in Run's goroutine, one change at a time.
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

	// hints are the changes events named that Run has not read yet, by
	// number; reconcile is why a poll cycle was asked for ("" when none
	// was); lastCycle is when the last cycle ended; hintFailures counts
	// hint reads that failed in a row. wake is poked when any of them
	// changes, so a waiting Run looks again.
	hints        map[int]Hint
	reconcile    string
	lastCycle    time.Time
	hintFailures int
	wake         chan struct{}
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
	if opts.ReconcileGap <= 0 {
		opts.ReconcileGap = DefaultReconcileGap
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Poller{
		client: c, opts: opts, log: log.With(slog.String("component", "gerrit-poller")),
		now: time.Now, sleep: sleep,
		failing: make(map[int]*failure), handled: make(map[int]time.Time),
		hints: make(map[int]Hint), wake: make(chan struct{}, 1),
	}
}

// Notify tells a running Run that an event named a change: Run reads it
// through REST (with its messages, as a poll does) between polls, and
// hands it to the HandleFunc unless that version was handled already.
// Hints for one change coalesce. Notify never blocks; hints given during a
// poll cycle are read after it.
func (p *Poller) Notify(h Hint) {
	if h.Number <= 0 {
		return
	}
	h.due, h.tries = time.Time{}, 0
	p.mu.Lock()
	p.mergeHintLocked(h)
	p.mu.Unlock()
	p.poke()
}

// mergeHintLocked queues h, keeping the newest patch set an event named
// and the earliest due time.
func (p *Poller) mergeHintLocked(h Hint) {
	if old, ok := p.hints[h.Number]; ok {
		h.PatchSet = max(h.PatchSet, old.PatchSet)
		if old.due.Before(h.due) {
			h.due = old.due
		}
		h.tries = min(h.tries, old.tries)
	}
	p.hints[h.Number] = h
}

// Reconcile asks a running Run for a poll cycle from the watermark now,
// rather than at the end of its interval: after an event stream
// (re)connects or Gerrit said it dropped events. Requests coalesce, and a
// cycle asked for this way starts at least ReconcileGap after the previous
// one ended. A request made during a cycle gets another cycle after it.
func (p *Poller) Reconcile(reason string) {
	if reason == "" {
		reason = "asked"
	}
	p.mu.Lock()
	if p.reconcile == "" {
		p.reconcile = reason
	}
	p.mu.Unlock()
	p.poke()
}

func (p *Poller) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
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
//
// Between polls Run reads the changes named by Notify and hands them over
// (see Notify), and starts a cycle early when Reconcile asks for one.
func (p *Poller) Run(ctx context.Context, handle HandleFunc) error {
	failures := 0
	reason := "start"
	for {
		p.mu.Lock()
		p.reconcile = "" // this cycle answers every request made so far
		p.mu.Unlock()
		start := time.Now()
		err := p.cycle(ctx, handle)
		p.mu.Lock()
		p.lastCycle = p.now()
		p.mu.Unlock()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if p.opts.OnCycle != nil {
			p.opts.OnCycle(reason, time.Since(start), err)
		}
		if err != nil {
			failures++
			p.log.Warn("gerrit poll failed", slog.Int("consecutive_failures", failures), slog.String("reason", reason), slog.Any("error", err))
		} else {
			failures = 0
		}
		if reason, err = p.wait(ctx, handle, pollBackoff(p.opts.Interval, failures)); err != nil {
			return err
		}
	}
}

// wait waits d for the next poll cycle, reading and handing over the
// changes hinted at meanwhile, and returns early when Reconcile asked for a
// cycle (once ReconcileGap has passed since the last one). It returns why
// the next cycle runs.
func (p *Poller) wait(ctx context.Context, handle HandleFunc, d time.Duration) (string, error) {
	deadline := p.now().Add(d)
	for {
		now := p.now()
		p.mu.Lock()
		reason := p.reconcile
		gapEnd := p.lastCycle.Add(p.opts.ReconcileGap)
		var nextHint time.Time
		for _, h := range p.hints {
			if nextHint.IsZero() || h.due.Before(nextHint) {
				nextHint = h.due
			}
		}
		hinted := len(p.hints) > 0
		p.mu.Unlock()
		if hinted && !now.Before(nextHint) {
			if err := p.readHints(ctx, handle); err != nil {
				return "", err
			}
			continue
		}
		if !now.Before(deadline) {
			return "schedule", nil
		}
		if reason != "" && !now.Before(gapEnd) {
			return reason, nil
		}
		next := deadline.Sub(now)
		if reason != "" {
			next = min(next, gapEnd.Sub(now))
		}
		if hinted {
			next = min(next, nextHint.Sub(now))
		}
		if err := p.sleepOrWake(ctx, next); err != nil {
			return "", err
		}
	}
}

// sleepOrWake sleeps d, or less when Notify or Reconcile pokes the poller.
func (p *Poller) sleepOrWake(ctx context.Context, d time.Duration) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.sleep(sctx, d) }()
	select {
	case <-done:
	case <-p.wake:
		cancel()
		<-done
	}
	return ctx.Err()
}

// readHints reads the hinted changes that are due, with one query per 50
// (the path retries use), and hands each over unless Run already handled
// that version. A change Gerrit does not return (deleted, or not visible)
// is dropped. When the read fails, or the handler asks to hold the
// watermark, the hints wait and are tried again, backing off; the next
// poll cycle covers them too. It returns an error only when ctx is done.
func (p *Poller) readHints(ctx context.Context, handle HandleFunc) error {
	now := p.now()
	p.mu.Lock()
	due := make(map[int]Hint)
	for n, h := range p.hints {
		if !now.Before(h.due) {
			due[n] = h
			delete(p.hints, n)
		}
	}
	p.mu.Unlock()
	if len(due) == 0 {
		return nil
	}
	nums := slices.Sorted(maps.Keys(due))
	requeue := func(from int, why string, err error) {
		p.mu.Lock()
		p.hintFailures++
		wait := backoff(time.Second, p.hintFailures, maxHintBackoff)
		for _, n := range nums[from:] {
			h := due[n]
			h.due = now.Add(wait)
			p.mergeHintLocked(h)
		}
		p.mu.Unlock()
		p.log.Warn(why+"; trying again later", slog.Int("changes", len(nums)-from),
			slog.Duration("retry_in", wait), slog.Any("error", err))
	}
	found, err := p.client.changesByNumber(ctx, nums, true)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		requeue(0, "reading changes named by Gerrit events failed", err)
		return nil
	}
	for i, n := range nums {
		h := due[n]
		c, ok := found[n]
		if !ok {
			p.log.Debug("a change named by a Gerrit event is not visible; ignoring it",
				slog.Int("change", n), slog.String("event", h.Type))
			continue
		}
		if h.PatchSet > c.PatchSet {
			h.tries++
			if h.tries >= maxStaleReads {
				p.log.Warn("Gerrit still shows an older patch set than its event named; leaving the change to the next poll",
					slog.Int("change", n), slog.Int("event_patchset", h.PatchSet), slog.Int("read_patchset", c.PatchSet))
				continue
			}
			h.due = now.Add(time.Duration(h.tries) * 200 * time.Millisecond)
			p.mu.Lock()
			p.mergeHintLocked(h)
			p.mu.Unlock()
			continue
		}
		p.mu.Lock()
		done, seen := p.handled[n]
		p.mu.Unlock()
		if seen && done.Equal(c.Updated) {
			continue // a poll (or an earlier event) handled this version
		}
		if err := p.handleOne(ctx, handle, *c, now); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			requeue(i, "handling a change named by a Gerrit event was held", err)
			return nil
		}
	}
	p.mu.Lock()
	p.hintFailures = 0
	p.mu.Unlock()
	return nil
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
