package web

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ductbot/ductbot/core/run"
)

// A run with a 3 MiB test log: the run page, the raw log and the API all
// see it bounded to report.max_log_bytes, keeping its head and its tail and
// saying where it was cut.
func TestLogsAreBounded(t *testing.T) {
	f := newFixture(t, nil)
	var b strings.Builder
	for i := 1; b.Len() < 3<<20; i++ {
		fmt.Fprintf(&b, "line %07d %s\n", i, strings.Repeat("=", 86)) // 100 bytes a line
	}
	huge := b.String()
	lastLine := huge[strings.LastIndex(strings.TrimSuffix(huge, "\n"), "\n")+1 : len(huge)-1]
	r := &run.Run{Env: "change-12345", Project: project, Change: 12345, PatchSet: 5, State: run.StateDone,
		Result: run.ResultFailed, Trigger: run.TriggerUpload, CreatedAt: now, FinishedAt: now}
	if err := f.store.CreateRun(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	if err := f.store.PutTestLogs(t.Context(), r.ID, []run.TestLog{{Pod: "e2e", Phase: "Failed", Log: huge}}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		bound int // Options.MaxLogBytes
		want  int // the bound in effect
	}{
		{"default", 0, DefaultMaxLogBytes},
		{"configured", 64 << 10, 64 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(Options{Store: f.store, MaxLogBytes: tc.bound, Now: func() time.Time { return now }})
			get := func(path string) string {
				t.Helper()
				rec := httptest.NewRecorder()
				s.Handler().ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, path, nil))
				body, _ := io.ReadAll(rec.Body)
				if rec.Code != http.StatusOK {
					t.Fatalf("GET %s: %d", path, rec.Code)
				}
				return string(body)
			}

			raw := get(runLogPath(r.ID))
			header := "=== pod e2e (Failed) ===\n"
			if len(raw) > len(header)+tc.want {
				t.Errorf("raw log is %d bytes, want at most %d", len(raw), len(header)+tc.want)
			}
			wantContains(t, "raw log", raw, header+"line 0000001 ", cutMarker, fmt.Sprintf("logs are limited to %d bytes", tc.want), lastLine+"\n")

			page := get(RunPath(r.ID))
			// The page's markup adds a bounded amount per line shown.
			if limit := tc.want + maxShownLines*200 + 64<<10; len(page) > limit {
				t.Errorf("run page is %d bytes, want at most %d", len(page), limit)
			}
			wantContains(t, "run page", page, "line 0000001 ", cutMarker, lastLine)

			var api RunJSON
			if err := json.Unmarshal([]byte(get(fmt.Sprintf("/api/v1/runs/%d", r.ID))), &api); err != nil {
				t.Fatal(err)
			}
			if rawLines := strings.Count(raw, "\n") - 1; len(api.Tests) != 1 || api.Tests[0].Lines != rawLines {
				t.Errorf("API tests = %+v, want one with the raw log's %d lines", api.Tests, rawLines)
			}
		})
	}
}
