package gerrit

import (
	"context"
	"fmt"
	"log/slog"
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

// maxErrorBackoff caps how far repeated failures stretch Run's interval.
const maxErrorBackoff = 5 * time.Minute

// CursorStore persists small values across restarts. ductbot's store
// satisfies it.
type CursorStore interface {
	GetMeta(ctx context.Context, key string) (value string, ok bool, err error)
	SetMeta(ctx context.Context, key, value string) error
}

// PollOptions configure a Poller.
type PollOptions struct {
	Projects []string // empty: every project the account can see
	Branches []string // empty: every branch
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
	// OnPoll, when set, is called after each query with its duration and
	// error (nil on success), for metrics.
	OnPoll func(time.Duration, error)
}

// Batch is the result of one poll: the changes to handle and the watermark
// to commit once they are handled.
type Batch struct {
	Changes []Change
	// Since is the time the query started from (the watermark minus the
	// overlap, or now minus the look-back).
	Since time.Time
	// Watermark is the newest Updated among Changes, or the previous
	// watermark if that is newer. Commit persists it.
	Watermark time.Time
}

// Poller watches Gerrit by querying for changes updated since a watermark.
// The watermark comes from Gerrit's own Updated times, never from the local
// clock, only moves forward, and is persisted in a CursorStore, so a restart
// resumes where the last handled poll ended and misses nothing.
//
// It returns open and closed, WIP and private changes alike, with their
// messages: deciding what to do with them is the caller's job.
type Poller struct {
	client *Client
	opts   PollOptions
	log    *slog.Logger

	mu        sync.Mutex
	loaded    bool
	watermark time.Time
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
	return &Poller{client: c, opts: opts, log: log.With(slog.String("component", "gerrit-poller"))}
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
		Projects: p.opts.Projects,
		Branches: p.opts.Branches,
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
// watermark is already at or past it. If persisting fails the watermark
// does not move.
func (p *Poller) Commit(ctx context.Context, b Batch) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !b.Watermark.After(p.watermark) {
		return nil
	}
	if p.opts.Cursor != nil {
		if err := p.opts.Cursor.SetMeta(ctx, WatermarkKey, b.Watermark.UTC().Format(time.RFC3339Nano)); err != nil {
			return fmt.Errorf("gerrit poller: saving watermark: %w", err)
		}
	}
	p.watermark = b.Watermark
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

// Run polls at once and then every Interval until ctx is done, and returns
// ctx's error. Each non-empty batch goes to handle; the watermark is only
// committed when handle returns nil, so a failed batch is delivered again.
// Poll and handle errors are logged, never returned, and stretch the
// interval (doubling, up to 5 minutes) until a cycle succeeds.
func (p *Poller) Run(ctx context.Context, handle func(context.Context, []Change) error) error {
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
		wait := p.opts.Interval
		for i := 1; i < failures && wait < maxErrorBackoff; i++ {
			wait *= 2
		}
		wait = min(wait, max(maxErrorBackoff, p.opts.Interval))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (p *Poller) cycle(ctx context.Context, handle func(context.Context, []Change) error) error {
	b, err := p.Fetch(ctx)
	if err != nil {
		return err
	}
	if len(b.Changes) > 0 {
		if err := handle(ctx, b.Changes); err != nil {
			return fmt.Errorf("handling %d changes (watermark not advanced): %w", len(b.Changes), err)
		}
	}
	if err := p.Commit(ctx, b); err != nil {
		return err
	}
	p.log.Debug("gerrit poll done", slog.Int("changes", len(b.Changes)),
		slog.Time("since", b.Since), slog.Time("watermark", b.Watermark))
	return nil
}
