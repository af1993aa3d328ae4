package gerrit_test

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ductbot/ductbot/core/gerrit"
	"github.com/ductbot/ductbot/core/gerrit/gerrittest"
	"github.com/ductbot/ductbot/core/store"
)

var _ gerrit.CursorStore = (*store.Store)(nil)

// TestPollerResumesFromStateFile restarts the poller across two opens of
// ductbot's real SQLite state file.
func TestPollerResumesFromStateFile(t *testing.T) {
	clk := newClock(time.Date(2030, 6, 1, 7, 0, 0, 0, time.UTC))
	s := newServer(t, func(o *gerrittest.Options) { o.Now = clk.Now })
	c := newClient(t, s)
	ctx := testContext(t)
	path := filepath.Join(t.TempDir(), "ductbot.db")

	run := func(now func() time.Time) []int {
		t.Helper()
		st, err := store.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		p := gerrit.NewPoller(c, gerrit.PollOptions{Projects: []gerrit.ProjectFilter{{Name: "wiki"}}, Cursor: st, Lookback: time.Minute, Now: now, Logger: quietLogger()})
		got, err := p.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return numbers(got)
	}

	first := s.CreateChange("wiki", "main", "first", "alice")
	if got := run(clk.Now); !slices.Equal(got, []int{first}) {
		t.Fatalf("first run = %v, want [%d]", got, first)
	}
	clk.Advance(2 * time.Hour)
	during := s.CreateChange("wiki", "main", "while down", "alice")
	clk.Advance(2 * time.Hour)
	// Without the stored watermark a one-minute look-back would miss it;
	// the first change comes again because it sits at the watermark, within
	// the overlap.
	if got := run(clk.Now); !slices.Equal(got, []int{during, first}) {
		t.Errorf("after restart = %v, want [%d %d]", got, during, first)
	}
}
