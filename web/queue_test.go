package web

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ductbot/ductbot/core/run"
)

// A queued run's page says where it waits in the deploy queue.
func TestRunPageShowsQueuePosition(t *testing.T) {
	f := newFixture(t, nil)
	r := &run.Run{Env: "change-12345", Project: project, Change: 12345, PatchSet: 4, State: run.StateQueued, Trigger: run.TriggerUpload}
	if err := f.store.CreateRun(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	asked := int64(0)
	s := New(Options{Store: f.store, QueuePosition: func(id int64) int { asked = id; return 3 }})
	for _, tc := range []struct {
		id   int64
		want bool
	}{{r.ID, true}, {f.passed, false}} {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", RunPath(tc.id), nil))
		body, _ := io.ReadAll(rec.Body)
		if got := strings.Contains(string(body), "number 3 in the queue"); got != tc.want {
			t.Errorf("run %d: page shows the queue position = %v, want %v", tc.id, got, tc.want)
		}
	}
	if asked != r.ID {
		t.Errorf("QueuePosition asked for run %d, want %d", asked, r.ID)
	}
}
