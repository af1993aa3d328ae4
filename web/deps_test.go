package web

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ductbot/ductbot/core/run"
)

// A run's page lists what its Depends-On footers brought in, each linked
// to the dependency's patch set in Gerrit.
func TestRunPageListsDependencies(t *testing.T) {
	f := newFixture(t, nil)
	r := &run.Run{Env: "change-12346", Project: project, Change: 12346, PatchSet: 1, State: run.StateQueued, Trigger: run.TriggerDependency,
		RequestedBy: "change 777 patch set 2",
		Deps:        []run.Dep{{Change: 777, PatchSet: 2, Project: "mediawiki/services/function-orchestrator", Component: "orchestrator", Revision: "abc"}}}
	if err := f.store.CreateRun(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	s := New(Options{Store: f.store, GerritURL: gerritURL})
	for _, tc := range []struct {
		id   int64
		want bool
	}{{r.ID, true}, {f.passed, false}} {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", RunPath(tc.id), nil))
		body, _ := io.ReadAll(rec.Body)
		// html/template writes the + of the path as &#43;, which browsers read as +.
		link := `<a href="` + gerritURL + `/c/mediawiki/services/function-orchestrator/&#43;/777/2">change 777 patch set 2 (orchestrator)</a>`
		if got := strings.Contains(string(body), link); got != tc.want {
			t.Errorf("run %d: page links the dependency = %v, want %v", tc.id, got, tc.want)
		}
	}
}
