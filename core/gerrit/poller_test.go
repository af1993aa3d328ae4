package gerrit_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ductbot/ductbot/core/gerrit"
	"github.com/ductbot/ductbot/core/gerrit/gerrittest"
)

// clock is a settable clock for the test server and the poller.
type clock struct {
	mu    sync.Mutex
	start time.Time
	now   time.Time
	real  bool          // follow time.Now, plus offset
	off   time.Duration // what Advance added since FollowRealTime
}

func newClock(t time.Time) *clock { return &clock{start: t, now: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.real {
		return time.Now().Add(c.off)
	}
	return c.now
}

// FollowRealTime makes the clock follow time.Now from now on, shifted by
// what Advance adds later.
func (c *clock) FollowRealTime() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.real, c.off = true, 0
}

func (c *clock) Start() time.Time { return c.start }

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.off += d
}

// memCursor is a CursorStore in memory, as ductbot's store would be.
type memCursor struct {
	mu      sync.Mutex
	values  map[string]string
	failSet error
}

func newMemCursor() *memCursor { return &memCursor{values: make(map[string]string)} }

func (m *memCursor) GetMeta(_ context.Context, key string) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.values[key]
	return v, ok, nil
}

func (m *memCursor) SetMeta(_ context.Context, key, value string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failSet != nil {
		return m.failSet
	}
	m.values[key] = value
	return nil
}

func (m *memCursor) watermark(t *testing.T) time.Time {
	t.Helper()
	m.mu.Lock()
	v, ok := m.values[gerrit.WatermarkKey]
	m.mu.Unlock()
	if !ok {
		return time.Time{}
	}
	wm, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		t.Fatalf("stored watermark %q: %v", v, err)
	}
	return wm
}

func updated(t *testing.T, s *gerrittest.Server, n int) time.Time {
	t.Helper()
	c, ok := s.Change(n)
	if !ok {
		t.Fatalf("no change %d", n)
	}
	return c.Updated
}

func TestPollerFirstStartUsesLookback(t *testing.T) {
	clk := newClock(time.Date(2030, 6, 1, 7, 0, 0, 0, time.UTC))
	s := newServer(t, func(o *gerrittest.Options) { o.Now = clk.Now })
	old := s.CreateChange("wiki", "main", "old", "alice")
	clk.Advance(150 * time.Minute)
	recent := s.CreateChange("wiki", "main", "recent", "alice")
	s.CreateChange("elsewhere", "main", "not watched", "alice")
	clk.Advance(30 * time.Minute)
	cursor := newMemCursor()
	p := gerrit.NewPoller(newClient(t, s), gerrit.PollOptions{
		Projects: []gerrit.ProjectFilter{{Name: "wiki"}}, Lookback: time.Hour, Cursor: cursor, Now: clk.Now, Logger: quietLogger(),
	})
	got, err := p.Poll(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(numbers(got), []int{recent}) {
		t.Errorf("first poll = %v, want only %d (not %d, older than the look-back)", numbers(got), recent, old)
	}
	if len(got[0].Messages) == 0 {
		t.Error("poll returned changes without messages")
	}
	if wm := cursor.watermark(t); !wm.Equal(updated(t, s, recent)) {
		t.Errorf("stored watermark %v, want the change's updated %v", wm, updated(t, s, recent))
	}
}

func TestPollerWatermarkComesFromGerrit(t *testing.T) {
	// Gerrit's clock is years ahead of ours: the watermark must follow it.
	clk := newClock(time.Now().UTC().AddDate(5, 0, 0))
	s := newServer(t, func(o *gerrittest.Options) { o.Now = clk.Now })
	a := s.CreateChange("wiki", "main", "a", "alice")
	cursor := newMemCursor()
	p := gerrit.NewPoller(newClient(t, s), gerrit.PollOptions{
		Projects: []gerrit.ProjectFilter{{Name: "wiki"}}, Cursor: cursor, Logger: quietLogger(), // Now: the real local clock
	})
	ctx := testContext(t)
	if got, err := p.Poll(ctx); err != nil || !slices.Equal(numbers(got), []int{a}) {
		t.Fatalf("first poll = %v, %v", numbers(got), err)
	}
	if wm := cursor.watermark(t); !wm.Equal(updated(t, s, a)) {
		t.Fatalf("watermark %v, want Gerrit's %v (local now is %v)", wm, updated(t, s, a), time.Now())
	}
	clk.Advance(time.Hour)
	b := s.CreateChange("wiki", "main", "b", "alice")
	got, err := p.Poll(ctx)
	if err != nil || !slices.Equal(numbers(got), []int{b, a}) {
		t.Fatalf("second poll = %v, %v; want [%d %d] (%d again: it is within the overlap)", numbers(got), err, b, a, a)
	}
	if wm, _ := p.Watermark(ctx); !wm.Equal(updated(t, s, b)) {
		t.Errorf("watermark %v, want %v", wm, updated(t, s, b))
	}
}

func TestPollerResumesAfterRestart(t *testing.T) {
	clk := newClock(time.Date(2030, 6, 1, 7, 0, 0, 0, time.UTC))
	s := newServer(t, func(o *gerrittest.Options) { o.Now = clk.Now })
	c := newClient(t, s)
	cursor := newMemCursor()
	ctx := testContext(t)
	before := s.CreateChange("wiki", "main", "before", "alice")
	first := gerrit.NewPoller(c, gerrit.PollOptions{Projects: []gerrit.ProjectFilter{{Name: "wiki"}}, Cursor: cursor, Now: clk.Now, Logger: quietLogger()})
	if got, err := first.Poll(ctx); err != nil || !slices.Equal(numbers(got), []int{before}) {
		t.Fatalf("first poll = %v, %v", numbers(got), err)
	}
	clk.Advance(time.Hour)
	seen := s.CreateChange("wiki", "main", "seen", "alice")
	if got, err := first.Poll(ctx); err != nil || !slices.Equal(numbers(got), []int{seen, before}) {
		t.Fatalf("second poll = %v, %v", numbers(got), err)
	}

	// ductbot is down for three hours; a change is uploaded meanwhile.
	clk.Advance(3 * time.Hour)
	during := s.CreateChange("wiki", "main", "while down", "alice")
	clk.Advance(time.Hour)

	// The new process's look-back alone would miss it: its local clock is
	// ten hours ahead and it looks back one minute.
	restarted := gerrit.NewPoller(c, gerrit.PollOptions{
		Projects: []gerrit.ProjectFilter{{Name: "wiki"}}, Cursor: cursor, Lookback: time.Minute, Logger: quietLogger(),
		Now: func() time.Time { return clk.Now().Add(10 * time.Hour) },
	})
	got, err := restarted.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(numbers(got), []int{during, seen}) {
		t.Errorf("after restart = %v, want [%d %d]: the change from while it was down, and the last one seen again (overlap), not %d", numbers(got), during, seen, before)
	}
}

func TestPollerOverlapRedelivers(t *testing.T) {
	clk := newClock(time.Date(2030, 6, 1, 7, 0, 0, 0, time.UTC))
	s := newServer(t, func(o *gerrittest.Options) { o.Now = clk.Now })
	p := gerrit.NewPoller(newClient(t, s), gerrit.PollOptions{
		Projects: []gerrit.ProjectFilter{{Name: "wiki"}}, Overlap: 2 * time.Minute, Now: clk.Now, Logger: quietLogger(),
	})
	ctx := testContext(t)
	poll := func() []int {
		t.Helper()
		got, err := p.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return numbers(got)
	}
	a := s.CreateChange("wiki", "main", "a", "alice")
	clk.Advance(time.Minute)
	b := s.CreateChange("wiki", "main", "b", "alice")
	if got := poll(); !slices.Equal(got, []int{b, a}) {
		t.Errorf("poll 1 = %v, want [%d %d]", got, b, a)
	}
	if got := poll(); !slices.Equal(got, []int{b, a}) {
		t.Errorf("poll 2 = %v, want both again: they are within the overlap", got)
	}
	clk.Advance(10 * time.Minute)
	c := s.CreateChange("wiki", "main", "c", "alice")
	if got := poll(); !slices.Equal(got, []int{c, b, a}) {
		t.Errorf("poll 3 = %v, want [%d %d %d]", got, c, b, a)
	}
	if got := poll(); !slices.Equal(got, []int{c}) {
		t.Errorf("poll 4 = %v, want only %d", got, c)
	}
}

func TestPollerCommit(t *testing.T) {
	clk := newClock(time.Date(2030, 6, 1, 7, 0, 0, 0, time.UTC))
	s := newServer(t, func(o *gerrittest.Options) { o.Now = clk.Now })
	cursor := newMemCursor()
	p := gerrit.NewPoller(newClient(t, s), gerrit.PollOptions{Projects: []gerrit.ProjectFilter{{Name: "wiki"}}, Cursor: cursor, Now: clk.Now, Logger: quietLogger()})
	ctx := testContext(t)
	n := s.CreateChange("wiki", "main", "a", "alice")

	b, err := p.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if wm, _ := p.Watermark(ctx); !wm.IsZero() {
		t.Errorf("Fetch moved the watermark to %v", wm)
	}
	cursor.failSet = errors.New("disk full")
	if err := p.Commit(ctx, b); err == nil {
		t.Error("Commit succeeded although the cursor store failed")
	}
	if wm, _ := p.Watermark(ctx); !wm.IsZero() {
		t.Errorf("failed Commit moved the watermark to %v", wm)
	}
	cursor.failSet = nil
	if err := p.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(ctx, gerrit.Batch{Watermark: b.Watermark.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if wm := cursor.watermark(t); !wm.Equal(updated(t, s, n)) {
		t.Errorf("watermark %v after an older commit, want it kept at %v", wm, updated(t, s, n))
	}
}

func TestPollerRunKeepsGoingThroughErrors(t *testing.T) {
	// Gerrit is down for three polls: the waits back off, and the first
	// poll after the outage delivers the change.
	const interval = time.Second
	clk := newClock(time.Date(2030, 6, 1, 7, 0, 0, 0, time.UTC))
	s := newServer(t, func(o *gerrittest.Options) { o.Now = clk.Now })
	n := s.CreateChange("wiki", "main", "a", "alice")
	s.FailNext(3, http.StatusInternalServerError)
	var pollErrs []error
	p := gerrit.NewPoller(newClient(t, s, func(o *gerrit.Options) { o.Retries = -1 }), gerrit.PollOptions{
		Projects: []gerrit.ProjectFilter{{Name: "wiki"}}, Interval: interval, Now: clk.Now, Logger: quietLogger(),
		OnPoll: func(_ time.Duration, err error) { pollErrs = append(pollErrs, err) },
	})
	var got []int
	waits := runCycles(t, p, clk, 5, func(_ context.Context, c gerrit.Change) error {
		got = append(got, c.Number)
		return nil
	}, nil)
	if !slices.Equal(got, []int{n}) {
		t.Errorf("handled %v, want [%d]", got, n)
	}
	if len(pollErrs) != 5 || !errors.Is(pollErrs[0], gerrit.ErrUnavailable) || !errors.Is(pollErrs[2], gerrit.ErrUnavailable) || pollErrs[3] != nil {
		t.Errorf("OnPoll saw %v, want three ErrUnavailable then success", pollErrs)
	}
	if want := []time.Duration{interval, 2 * interval, 4 * interval, interval, interval}; !slices.Equal(waits, want) {
		t.Errorf("waits = %v, want %v", waits, want)
	}
}

func TestPollerUnreadableWatermarkFallsBackToLookback(t *testing.T) {
	clk := newClock(time.Date(2030, 6, 1, 7, 0, 0, 0, time.UTC))
	s := newServer(t, func(o *gerrittest.Options) { o.Now = clk.Now })
	cursor := newMemCursor()
	cursor.values[gerrit.WatermarkKey] = "not a time"
	old := s.CreateChange("wiki", "main", "old", "alice")
	clk.Advance(2 * time.Hour)
	recent := s.CreateChange("wiki", "main", "recent", "alice")
	p := gerrit.NewPoller(newClient(t, s), gerrit.PollOptions{Projects: []gerrit.ProjectFilter{{Name: "wiki"}}, Cursor: cursor, Now: clk.Now, Logger: quietLogger()})
	got, err := p.Poll(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(numbers(got), []int{recent}) {
		t.Errorf("poll = %v, want [%d] from the look-back (not %d)", numbers(got), recent, old)
	}
	if wm := cursor.watermark(t); !wm.Equal(updated(t, s, recent)) {
		t.Errorf("watermark %v, want it repaired to %v", wm, updated(t, s, recent))
	}
}

// runCycles runs p for the given number of poll cycles on clk: each wait
// between two polls advances clk by the wait instead of sleeping. After
// each cycle it calls after (if set), and it returns the waits.
func runCycles(t *testing.T, p *gerrit.Poller, clk *clock, cycles int, handle gerrit.HandleFunc, after func(cycle int)) []time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var waits []time.Duration
	gerrit.SetPollerClock(p, clk.Now, func(ctx context.Context, d time.Duration) error {
		if after != nil {
			after(len(waits))
		}
		waits = append(waits, d)
		clk.Advance(d)
		if len(waits) == cycles {
			cancel()
		}
		return ctx.Err()
	})
	if err := p.Run(ctx, handle); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
	if len(waits) != cycles {
		t.Fatalf("Run ran %d cycles, want %d", len(waits), cycles)
	}
	return waits
}

type outcome struct {
	number int
	failed bool
}

func TestPollerRunPerChangeOutcomes(t *testing.T) {
	const (
		interval = time.Second
		failures = 3 // the failing change succeeds at its fourth attempt
	)
	for _, tt := range []struct {
		name string
		bad  int // index of the failing change, oldest first
	}{
		{"oldest fails", 0},
		{"middle fails", 1},
		{"newest fails", 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock(time.Date(2030, 6, 1, 7, 0, 0, 0, time.UTC))
			s := newServer(t, func(o *gerrittest.Options) { o.Now = clk.Now })
			var nums []int
			for _, subject := range []string{"a", "b", "c"} {
				nums = append(nums, s.CreateChange("wiki", "main", subject, "alice"))
				clk.Advance(10 * time.Minute) // far more than the overlap
			}
			bad, newest := nums[tt.bad], nums[2]
			cursor := newMemCursor()
			var outcomes []outcome
			p := gerrit.NewPoller(newClient(t, s), gerrit.PollOptions{
				Projects: []gerrit.ProjectFilter{{Name: "wiki"}}, Interval: interval, Cursor: cursor,
				Now: clk.Now, Logger: quietLogger(),
				OnChange: func(n int, err error) { outcomes = append(outcomes, outcome{n, err != nil}) },
			})
			calls := make(map[int][]time.Time)
			var wms []time.Time
			var failing []map[int]int
			waits := runCycles(t, p, clk, 10, func(_ context.Context, c gerrit.Change) error {
				calls[c.Number] = append(calls[c.Number], clk.Now())
				if c.Number == bad && len(calls[bad]) <= failures {
					return errors.New("chart not found")
				}
				return nil
			}, func(int) {
				wms = append(wms, cursor.watermark(t))
				failing = append(failing, p.Failing())
			})

			for _, n := range nums {
				if n != bad && len(calls[n]) != 1 {
					t.Errorf("change %d handled %d times, want once", n, len(calls[n]))
				}
			}
			if len(calls[bad]) != failures+1 {
				t.Fatalf("failing change %d handled %d times, want %d", bad, len(calls[bad]), failures+1)
			}
			for i := 1; i < len(calls[bad]); i++ {
				gap := calls[bad][i].Sub(calls[bad][i-1])
				if want := interval << (i - 1); gap != want { // 1s, 2s, 4s
					t.Errorf("retry %d came %v after the previous attempt, want %v", i, gap, want)
				}
			}
			// Cycles run at 0s, 1s, 2s, ...: the attempts at 0s, 1s, 3s
			// fail, the one at 7s succeeds.
			success := int(calls[bad][failures].Sub(calls[bad][0]) / interval)
			for i, wm := range wms {
				want := updated(t, s, bad)
				if i >= success {
					want = updated(t, s, newest)
				}
				if !wm.Equal(want) {
					t.Errorf("watermark after cycle %d = %v, want %v", i, wm, want)
				}
			}
			if failing[0][bad] != 1 || len(failing[0]) != 1 {
				t.Errorf("failing after the first cycle = %v, want {%d: 1}", failing[0], bad)
			}
			if got := p.Failing(); len(got) != 0 {
				t.Errorf("failing at the end = %v, want none", got)
			}
			for i, w := range waits {
				if w != interval {
					t.Errorf("wait after cycle %d = %v, want the poll interval %v", i, w, interval)
				}
			}
			var badOutcomes []bool
			for _, o := range outcomes {
				if o.number == bad {
					badOutcomes = append(badOutcomes, o.failed)
				}
			}
			if !slices.Equal(badOutcomes, []bool{true, true, true, false}) {
				t.Errorf("OnChange saw change %d fail %v, want three failures then success", bad, badOutcomes)
			}
		})
	}
}

func TestPollerRunHoldWatermark(t *testing.T) {
	const interval = time.Second
	for _, tt := range []struct {
		name string
		hold int // index of the change whose handler holds, oldest first
	}{
		{"oldest holds", 0},
		{"middle holds", 1},
		{"newest holds", 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock(time.Date(2030, 6, 1, 7, 0, 0, 0, time.UTC))
			s := newServer(t, func(o *gerrittest.Options) { o.Now = clk.Now })
			cursor := newMemCursor()
			p := gerrit.NewPoller(newClient(t, s), gerrit.PollOptions{
				Projects: []gerrit.ProjectFilter{{Name: "wiki"}}, Interval: interval, Cursor: cursor,
				Now: clk.Now, Logger: quietLogger(),
			})
			ctx := testContext(t)
			old := s.CreateChange("wiki", "main", "old", "alice")
			if _, err := p.Poll(ctx); err != nil {
				t.Fatal(err)
			}
			var nums []int
			for _, subject := range []string{"a", "b", "c"} {
				clk.Advance(10 * time.Minute)
				nums = append(nums, s.CreateChange("wiki", "main", subject, "alice"))
			}
			held := nums[tt.hold]
			calls := make(map[int]int)
			var wms []time.Time
			waits := runCycles(t, p, clk, 2, func(_ context.Context, c gerrit.Change) error {
				calls[c.Number]++
				if c.Number == held && calls[c.Number] == 1 {
					return fmt.Errorf("saving run: database is locked: %w", gerrit.ErrHoldWatermark)
				}
				return nil
			}, func(int) { wms = append(wms, cursor.watermark(t)) })

			if !wms[0].Equal(updated(t, s, old)) {
				t.Errorf("watermark after the held cycle = %v, want it unmoved at %v", wms[0], updated(t, s, old))
			}
			if !wms[1].Equal(updated(t, s, nums[2])) {
				t.Errorf("watermark after the next cycle = %v, want %v", wms[1], updated(t, s, nums[2]))
			}
			for _, n := range nums {
				want := 1
				if n == held {
					want = 2
				}
				if calls[n] != want {
					t.Errorf("change %d handled %d times, want %d", n, calls[n], want)
				}
			}
			if got := p.Failing(); len(got) != 0 {
				t.Errorf("failing = %v, want none: a held change is not failing", got)
			}
			if waits[0] != gerrit.PollBackoff(interval, 1) || waits[1] != interval {
				t.Errorf("waits = %v", waits)
			}
		})
	}
}

func TestPollerFailingChangeSurvivesRestart(t *testing.T) {
	clk := newClock(time.Date(2030, 6, 1, 7, 0, 0, 0, time.UTC))
	s := newServer(t, func(o *gerrittest.Options) { o.Now = clk.Now })
	c := newClient(t, s)
	cursor := newMemCursor()
	bad := s.CreateChange("wiki", "main", "breaks the handler", "alice")
	clk.Advance(time.Hour)
	good := s.CreateChange("wiki", "main", "fine", "alice")
	opts := gerrit.PollOptions{
		Projects: []gerrit.ProjectFilter{{Name: "wiki"}}, Interval: time.Second, Cursor: cursor,
		Lookback: 2 * time.Hour, Now: clk.Now, Logger: quietLogger(),
	}
	first := gerrit.NewPoller(c, opts)
	runCycles(t, first, clk, 5, func(_ context.Context, ch gerrit.Change) error {
		if ch.Number == bad {
			return errors.New("boom")
		}
		return nil
	}, nil)
	if wm := cursor.watermark(t); !wm.Equal(updated(t, s, bad)) {
		t.Fatalf("watermark %v, want it held at the failing change's %v (not %v)", wm, updated(t, s, bad), updated(t, s, good))
	}

	// The new process looks back one minute only: the failing change
	// comes back through the watermark alone.
	clk.Advance(time.Hour)
	opts.Lookback = time.Minute
	restarted := gerrit.NewPoller(c, opts)
	var got []int
	runCycles(t, restarted, clk, 1, func(_ context.Context, ch gerrit.Change) error {
		got = append(got, ch.Number)
		return nil
	}, nil)
	if !slices.Contains(got, bad) {
		t.Errorf("after restart handled %v, want the failing change %d again", got, bad)
	}
	if wm := cursor.watermark(t); !wm.Equal(updated(t, s, good)) {
		t.Errorf("watermark %v after the change succeeded, want %v", wm, updated(t, s, good))
	}
}

func TestPollerRunRetriesFailingChangeByNumber(t *testing.T) {
	// A failing change is looked up by number, with its messages, on each
	// retry; one that Gerrit stops returning is dropped after a few
	// retries, so that it cannot hold the watermark forever.
	clk := newClock(time.Date(2030, 6, 1, 7, 0, 0, 0, time.UTC))
	s := newServer(t, func(o *gerrittest.Options) { o.Now = clk.Now })
	bad := s.CreateChange("wiki", "main", "a", "alice")
	p := gerrit.NewPoller(newClient(t, s), gerrit.PollOptions{
		Projects: []gerrit.ProjectFilter{{Name: "wiki"}}, Interval: time.Second, Now: clk.Now, Logger: quietLogger(),
	})
	var withMessages []bool
	s.ResetRequests()
	runCycles(t, p, clk, 2, func(_ context.Context, c gerrit.Change) error {
		withMessages = append(withMessages, len(c.Messages) > 0)
		return errors.New("boom")
	}, nil)
	if !slices.Equal(withMessages, []bool{true, true}) {
		t.Errorf("attempts with messages = %v, want two attempts, both with messages", withMessages)
	}
	// Two polls and one lookup by number: the poll at 1s returned the
	// change too, but it is retried only by number.
	if got := s.RequestCounts()["GET /changes/"]; got != 3 {
		t.Errorf("%d queries, want 3", got)
	}
	if got := p.Failing(); got[bad] != 2 {
		t.Fatalf("failing = %v, want {%d: 2}", got, bad)
	}
	ctx := testContext(t)
	if wm, _ := p.Watermark(ctx); !wm.Equal(updated(t, s, bad)) {
		t.Fatalf("watermark %v, want %v", wm, updated(t, s, bad))
	}

	s.DeleteChange(bad)
	clk.Advance(time.Hour)
	later := s.CreateChange("wiki", "main", "b", "alice")
	laterUpdated := updated(t, s, later)
	calls := 0
	runCycles(t, p, clk, 300, func(_ context.Context, c gerrit.Change) error {
		calls++
		if c.Number == bad {
			t.Errorf("deleted change %d handed over", bad)
		}
		return nil
	}, nil)
	if got := p.Failing(); len(got) != 0 {
		t.Errorf("failing = %v, want the deleted change dropped", got)
	}
	if calls != 1 {
		t.Errorf("%d handler calls, want 1 (change %d)", calls, later)
	}
	if wm, _ := p.Watermark(ctx); !wm.Equal(laterUpdated) {
		t.Errorf("watermark %v, want it past the dropped change, at %v", wm, laterUpdated)
	}
}

// secs turns seconds into durations.
func secs(ss ...float64) []time.Duration {
	out := make([]time.Duration, len(ss))
	for i, s := range ss {
		out[i] = time.Duration(s * float64(time.Second))
	}
	return out
}

func TestPollBackoffAfterOutage(t *testing.T) {
	for _, tt := range []struct {
		interval time.Duration
		want     []time.Duration // after 0, 1, 2, ... failed polls in a row
	}{
		{time.Second, secs(1, 1, 2, 4, 8, 16, 30, 30, 30)},
		{100 * time.Millisecond, secs(0.1, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30, 30)},
		{30 * time.Second, secs(30, 30, 30, 30)},
		{2 * time.Minute, secs(120, 120, 120)},
	} {
		t.Run(tt.interval.String(), func(t *testing.T) {
			for failures, want := range tt.want {
				if got := gerrit.PollBackoff(tt.interval, failures); got != want {
					t.Errorf("PollBackoff(%v, %d) = %v, want %v", tt.interval, failures, got, want)
				}
			}
			// However long the outage, the next poll comes within
			// max(interval, 30s) of its end.
			limit := max(tt.interval, 30*time.Second)
			for _, failures := range []int{20, 63, 64, 1000} {
				if got := gerrit.PollBackoff(tt.interval, failures); got != limit {
					t.Errorf("after an outage of %d failed polls the wait is %v, want %v", failures, got, limit)
				}
			}
		})
	}
}

func TestChangeBackoff(t *testing.T) {
	for _, tt := range []struct {
		interval time.Duration
		want     []time.Duration // after 1, 2, 3, ... failures in a row
	}{
		{time.Second, secs(1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300)},
		{30 * time.Second, secs(30, 60, 120, 240, 300, 300)},
		{10 * time.Minute, secs(300, 300)},
	} {
		t.Run(tt.interval.String(), func(t *testing.T) {
			for i, want := range tt.want {
				if got := gerrit.ChangeBackoff(tt.interval, i+1); got != want {
					t.Errorf("ChangeBackoff(%v, %d) = %v, want %v", tt.interval, i+1, got, want)
				}
			}
			if got := gerrit.ChangeBackoff(tt.interval, 1000); got != 5*time.Minute {
				t.Errorf("ChangeBackoff(%v, 1000) = %v, want 5m", tt.interval, got)
			}
		})
	}
}

func TestPollerProjectBranchFilters(t *testing.T) {
	clk := newClock(time.Date(2030, 6, 1, 7, 0, 0, 0, time.UTC))
	s := newServer(t, func(o *gerrittest.Options) { o.Now = clk.Now })
	ax := s.CreateChange("a", "x", "a on x", "alice")
	ay := s.CreateChange("a", "y", "a on y", "alice")
	by := s.CreateChange("b", "y", "b on y", "alice")
	bx := s.CreateChange("b", "x", "b on x", "alice")
	cx := s.CreateChange("c", "x", "c on x", "alice")
	c := newClient(t, s)
	for _, tt := range []struct {
		name     string
		projects []gerrit.ProjectFilter
		want     []int // newest update first
	}{
		{"a on x, b on every branch", []gerrit.ProjectFilter{{Name: "a", Branches: []string{"x"}}, {Name: "b"}}, []int{bx, by, ax}},
		{"a on every branch, b on y", []gerrit.ProjectFilter{{Name: "a"}, {Name: "b", Branches: []string{"y"}}}, []int{by, ay, ax}},
		{"a on x or y", []gerrit.ProjectFilter{{Name: "a", Branches: []string{"x", "y"}}}, []int{ay, ax}},
		{"a on y, b on x", []gerrit.ProjectFilter{{Name: "a", Branches: []string{"y"}}, {Name: "b", Branches: []string{"x"}}}, []int{bx, ay}},
		{"branch x of every project", []gerrit.ProjectFilter{{Branches: []string{"x"}}}, []int{cx, bx, ax}},
		{"every project", nil, []int{cx, bx, by, ay, ax}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := gerrit.NewPoller(c, gerrit.PollOptions{Projects: tt.projects, Now: clk.Now, Logger: quietLogger()})
			got, err := p.Poll(testContext(t))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(numbers(got), tt.want) {
				t.Errorf("poll = %v, want %v", numbers(got), tt.want)
			}
		})
	}
}
