package gerrit_test

import (
	"context"
	"errors"
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
		Projects: []string{"wiki"}, Lookback: time.Hour, Cursor: cursor, Now: clk.Now, Logger: quietLogger(),
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
		Projects: []string{"wiki"}, Cursor: cursor, Logger: quietLogger(), // Now: the real local clock
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
	first := gerrit.NewPoller(c, gerrit.PollOptions{Projects: []string{"wiki"}, Cursor: cursor, Now: clk.Now, Logger: quietLogger()})
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
		Projects: []string{"wiki"}, Cursor: cursor, Lookback: time.Minute, Logger: quietLogger(),
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
		Projects: []string{"wiki"}, Overlap: 2 * time.Minute, Now: clk.Now, Logger: quietLogger(),
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
	p := gerrit.NewPoller(newClient(t, s), gerrit.PollOptions{Projects: []string{"wiki"}, Cursor: cursor, Now: clk.Now, Logger: quietLogger()})
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

func TestPollerRunRedeliversWhenHandleFails(t *testing.T) {
	clk := newClock(time.Date(2030, 6, 1, 7, 0, 0, 0, time.UTC))
	s := newServer(t, func(o *gerrittest.Options) { o.Now = clk.Now })
	cursor := newMemCursor()
	p := gerrit.NewPoller(newClient(t, s), gerrit.PollOptions{
		Projects: []string{"wiki"}, Cursor: cursor, Interval: time.Millisecond, Now: clk.Now, Logger: quietLogger(),
	})
	n := s.CreateChange("wiki", "main", "a", "alice")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var calls [][]int
	var wmAtSecondCall time.Time
	err := p.Run(ctx, func(_ context.Context, changes []gerrit.Change) error {
		calls = append(calls, numbers(changes))
		switch len(calls) {
		case 1:
			return errors.New("store is busy")
		case 2:
			wmAtSecondCall = cursor.watermark(t)
		case 3:
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
	if len(calls) != 3 || !slices.Equal(calls[0], []int{n}) || !slices.Equal(calls[1], []int{n}) {
		t.Fatalf("handle calls = %v, want the change delivered again after the failure", calls)
	}
	if !wmAtSecondCall.IsZero() {
		t.Errorf("watermark %v after a failed handle, want it unmoved", wmAtSecondCall)
	}
	if wm := cursor.watermark(t); !wm.Equal(updated(t, s, n)) {
		t.Errorf("final watermark %v, want %v", wm, updated(t, s, n))
	}
}

func TestPollerRunKeepsGoingThroughErrors(t *testing.T) {
	s := newServer(t)
	n := s.CreateChange("wiki", "main", "a", "alice")
	s.FailNext(3, http.StatusInternalServerError)
	var mu sync.Mutex
	var pollErrs []error
	p := gerrit.NewPoller(newClient(t, s, func(o *gerrit.Options) { o.Retries = -1 }), gerrit.PollOptions{
		Projects: []string{"wiki"}, Interval: time.Millisecond, Logger: quietLogger(),
		OnPoll: func(_ time.Duration, err error) {
			mu.Lock()
			pollErrs = append(pollErrs, err)
			mu.Unlock()
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var got []int
	p.Run(ctx, func(_ context.Context, changes []gerrit.Change) error {
		got = numbers(changes)
		cancel()
		return nil
	})
	if !slices.Equal(got, []int{n}) {
		t.Errorf("handled %v, want [%d]", got, n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(pollErrs) != 4 || !errors.Is(pollErrs[0], gerrit.ErrUnavailable) || pollErrs[3] != nil {
		t.Errorf("OnPoll saw %v, want three ErrUnavailable then success", pollErrs)
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
	p := gerrit.NewPoller(newClient(t, s), gerrit.PollOptions{Projects: []string{"wiki"}, Cursor: cursor, Now: clk.Now, Logger: quietLogger()})
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
