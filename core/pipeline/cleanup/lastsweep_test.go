package cleanup_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// ductbot_last_sweep_timestamp_seconds is set by a sweep that finished
// without error, and only by one.
func TestSweepSetsLastSweepTimestamp(t *testing.T) {
	h := newHarness(t, "last")
	s := h.sweeper()
	if v := testutil.ToFloat64(h.m.LastSweep); v != 0 {
		t.Fatalf("before any sweep: %v", v)
	}
	before := time.Now().Unix()
	h.sweep(s)
	if v := testutil.ToFloat64(h.m.LastSweep); v < float64(before) {
		t.Errorf("after a sweep: ductbot_last_sweep_timestamp_seconds = %v, want at least %d", v, before)
	}
	h.m.LastSweep.Set(1)
	ctx, cancel := context.WithCancel(h.ctx)
	cancel()
	if _, err := s.Sweep(ctx, "test"); err == nil {
		t.Skip("a sweep with its context canceled did not fail")
	}
	if v := testutil.ToFloat64(h.m.LastSweep); v != 1 {
		t.Errorf("a failed sweep set the timestamp to %v", v)
	}
}
