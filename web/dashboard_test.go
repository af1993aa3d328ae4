package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/core/store"
)

const refreshMeta = `<meta http-equiv="refresh" content="10">`

// The dashboard and a run page reload themselves while a run is active
// (queued, deploying, testing), and not when nothing is under way.
func TestRefreshWhileActive(t *testing.T) {
	f := newFixture(t, nil)
	ctx := t.Context()

	_, body := f.get(t, "/", http.StatusOK)
	wantContains(t, "dashboard with a testing run", body, refreshMeta)
	_, body = f.get(t, RunPath(f.testing), http.StatusOK)
	wantContains(t, "page of the testing run", body, refreshMeta)
	_, body = f.get(t, RunPath(f.passed), http.StatusOK)
	wantNotContains(t, "page of a passed run", body, `http-equiv="refresh"`)
	_, body = f.get(t, "/?project=other%2Fproject", http.StatusOK)
	wantNotContains(t, "dashboard of a project with no active run", body, `http-equiv="refresh"`)
	_, body = f.get(t, EnvPath("change-12345"), http.StatusOK)
	wantContains(t, "page of the environment whose run is testing", body, refreshMeta)
	_, body = f.get(t, EnvPath("custom-ab12"), http.StatusOK)
	wantNotContains(t, "page of a broken environment with no active run", body, `http-equiv="refresh"`)

	// Finish the testing run: nothing is active any more.
	rn, err := f.store.GetRun(ctx, f.testing)
	must(t, err)
	rn.State, rn.Result, rn.FinishedAt = run.StateDone, run.ResultPassed, now
	must(t, f.store.UpdateRun(ctx, rn))
	_, body = f.get(t, "/", http.StatusOK)
	wantNotContains(t, "idle dashboard", body, `http-equiv="refresh"`)
	_, body = f.get(t, RunPath(f.testing), http.StatusOK)
	wantNotContains(t, "page of the finished run", body, `http-equiv="refresh"`)
	_, body = f.get(t, EnvPath("change-12345"), http.StatusOK)
	wantNotContains(t, "page of the environment, its runs finished", body, `http-equiv="refresh"`)
	for _, st := range []run.EnvStatus{run.EnvWaking, run.EnvReady} {
		must(t, f.store.SetEnvStatus(ctx, "change-12345", st, now))
		_, body = f.get(t, EnvPath("change-12345"), http.StatusOK)
		if got := strings.Contains(body, refreshMeta); got != (st == run.EnvWaking) {
			t.Errorf("page of the environment while %s: refresh meta present = %v", st, got)
		}
	}

	for _, state := range []run.State{run.StateQueued, run.StateDeploying, run.StateTesting, run.StateDone} {
		t.Run(string(state), func(t *testing.T) {
			r := &run.Run{Env: "custom-ab12", Project: "other/project", Change: 777, PatchSet: 1, Trigger: run.TriggerChat, State: state, CreatedAt: now}
			if state == run.StateDone {
				r.Result, r.FinishedAt = run.ResultCanceled, now
			}
			must(t, f.store.CreateRun(ctx, r))
			defer func() { // leave nothing active for the next state
				r.State, r.Result, r.FinishedAt = run.StateDone, run.ResultCanceled, now
				must(t, f.store.UpdateRun(ctx, r))
			}()
			active := state != run.StateDone
			for _, path := range []string{"/", "/?project=other%2Fproject", RunPath(r.ID)} {
				_, body := f.get(t, path, http.StatusOK)
				if got := strings.Contains(body, refreshMeta); got != active {
					t.Errorf("%s with a %s run: refresh meta present = %v, want %v", path, state, got, active)
				}
			}
			// Older pages do not reload: they change only by shifting.
			_, body := f.get(t, "/?page=2", http.StatusOK)
			wantNotContains(t, "page 2", body, `http-equiv="refresh"`)
		})
	}
}

// The search finds runs and environments by change number, owner or
// subject, and nothing else: not by an owner's hidden e-mail address.
func TestSearch(t *testing.T) {
	f := newFixture(t, nil)
	// f.passed: change 12345, owner Jane, subject xss; f.testing: change
	// 12345, subject "Newer patch set", no owner; f.failed: change 777,
	// subject "Other change", env custom-ab12 (owner Bob).
	tests := []struct {
		q         string
		want, not []string
		phrase    string
	}{
		{"12345", []string{envRow("change-12345"), runHref(f.passed), runHref(f.testing)}, []string{envRow("custom-ab12"), runHref(f.failed)}, ""},
		{" 777 ", []string{envRow("custom-ab12"), runHref(f.failed)}, []string{envRow("change-12345"), runHref(f.passed), runHref(f.testing)}, ""},
		{"jane", []string{envRow("change-12345"), runHref(f.passed)}, []string{envRow("custom-ab12"), runHref(f.failed), runHref(f.testing)}, ""},
		{"BOB", []string{envRow("custom-ab12")}, []string{envRow("change-12345"), `class="run-link"`}, "No runs match “BOB”."},
		{"newer PATCH", []string{runHref(f.testing)}, []string{runHref(f.passed), runHref(f.failed), `class="env-link"`}, ""},
		{"other change", []string{envRow("custom-ab12"), runHref(f.failed)}, []string{envRow("change-12345"), runHref(f.passed), runHref(f.testing)}, ""},
		// The subject's markup is searchable text, shown escaped.
		{"<script>", []string{envRow("change-12345"), runHref(f.passed), `value="&lt;script&gt;"`, "Runs matching “&lt;script&gt;”"}, []string{runHref(f.testing), "<script>"}, ""},
		// Hidden e-mail addresses are not searchable.
		{"jane@example.org", nil, []string{`class="env-link"`, `class="run-link"`}, "No runs match “jane@example.org”."},
		{"example", nil, []string{`class="env-link"`, `class="run-link"`}, ""},
		// Not wildcards.
		{"%", nil, []string{`class="env-link"`, `class="run-link"`}, ""},
		{"_", nil, []string{`class="env-link"`, `class="run-link"`}, ""},
		{"nothing like it", nil, []string{`class="env-link"`, `class="run-link"`}, "No runs match “nothing like it”."},
	}
	for _, tt := range tests {
		t.Run(tt.q, func(t *testing.T) {
			path := "/?" + url.Values{"q": {tt.q}}.Encode()
			_, body := f.get(t, path, http.StatusOK)
			wantContains(t, path, body, tt.want...)
			wantNotContains(t, path, body, tt.not...)
			if tt.phrase != "" {
				wantContains(t, path, body, tt.phrase)
			}
			wantContains(t, path, body, `<a class="clear" href="/">Clear</a>`)
		})
	}
	// Search combines with the other filters.
	_, body := f.get(t, "/?q=12345&result=passed", http.StatusOK)
	wantContains(t, "search and result", body, runHref(f.passed))
	wantNotContains(t, "search and result", body, runHref(f.testing), runHref(f.failed))
	_, body = f.get(t, "/?q=12345&project=other%2Fproject", http.StatusOK)
	wantNotContains(t, "search and project", body, `class="env-link"`, `class="run-link"`)
}

// countingReader counts the runs the pages read from the store.
type countingReader struct {
	Reader
	mu   sync.Mutex
	runs int
}

func (c *countingReader) ListRuns(ctx context.Context, f store.RunFilter) ([]*run.Run, error) {
	runs, err := c.Reader.ListRuns(ctx, f)
	c.mu.Lock()
	c.runs += len(runs)
	c.mu.Unlock()
	return runs, err
}

func (c *countingReader) read() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.runs
	c.runs = 0
	return n
}

// A store with thousands of runs renders one page of them, with links to
// the pages before and after, keeping the filters; reading a bounded
// number of runs.
func TestPaging(t *testing.T) {
	f := newFixture(t, nil)
	ctx := t.Context()
	// The fixture has 3 runs; add 2,100 finished ones: every 10th passed,
	// the rest failed, each with its own subject.
	const added = 2100
	for i := range added {
		r := &run.Run{Env: "custom-ab12", Project: "other/project", Change: 1000 + i, PatchSet: 1,
			Subject: fmt.Sprintf("bulk %04d", i), Trigger: run.TriggerChat, State: run.StateDone,
			Result: run.ResultFailed, CreatedAt: now.Add(-time.Duration(added-i) * time.Second), FinishedAt: now}
		if i%10 == 0 {
			r.Result = run.ResultPassed
		}
		must(t, f.store.CreateRun(ctx, r))
	}
	total := added + 3
	counter := &countingReader{Reader: f.store}
	f.server = New(Options{Store: counter, GerritURL: gerritURL, Now: func() time.Time { return now }})

	runLinks := func(body string) int { return strings.Count(body, `class="run-link"`) }
	lastPage := (total + runsPerPage - 1) / runsPerPage
	tests := []struct {
		path       string
		rows       int
		prev, next string // hrefs as in the page; "" for none
		range_     string
		maxRead    int
	}{
		{"/", runsPerPage, "", `href="/?page=2"`, "1–50", runsPerPage + 2},
		{"/?page=2", runsPerPage, `href="/"`, `href="/?page=3"`, "51–100", runsPerPage + 1},
		{fmt.Sprintf("/?page=%d", lastPage), total - (lastPage-1)*runsPerPage, fmt.Sprintf(`href="/?page=%d"`, lastPage-1), "", fmt.Sprintf("2101–%d", total), runsPerPage + 1},
		{fmt.Sprintf("/?page=%d", lastPage+1), 0, fmt.Sprintf(`href="/?page=%d"`, lastPage), "", "", runsPerPage + 1},
		{"/?page=nonsense", runsPerPage, "", `href="/?page=2"`, "1–50", runsPerPage + 2},
		{"/?page=-3", runsPerPage, "", `href="/?page=2"`, "1–50", runsPerPage + 2},
		// Filters the store cannot apply scan a bounded number of runs and
		// the links keep them.
		{"/?result=passed&project=other%2Fproject", runsPerPage, "", `href="/?page=2&amp;project=other%2Fproject&amp;result=passed"`, "1–50", maxScan + 1},
		{"/?result=passed&page=2", runsPerPage, `href="/?result=passed"`, "", "51–100", maxScan + 1},
		// 100 passed runs among the newest 1,000: no page 3 within reach.
		{"/?result=passed&page=3", 0, `href="/?page=2&amp;result=passed"`, "", "", maxScan + 1},
		{"/?q=bulk+0", runsPerPage, "", `href="/?page=2&amp;q=bulk&#43;0"`, "1–50", maxScan + 1},
		{"/?q=bulk+0&page=20", runsPerPage, `href="/?page=19&amp;q=bulk&#43;0"`, "", "951–1000", maxScan + 1},
		// Beyond what one request scans: a note, not an unbounded read.
		{"/?result=superseded", 0, "", "", "", maxScan + 1},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			counter.read()
			_, body := f.get(t, tt.path, http.StatusOK)
			if got := runLinks(body); got != tt.rows {
				t.Errorf("%d runs listed, want %d", got, tt.rows)
			}
			if read := counter.read(); read > tt.maxRead {
				t.Errorf("read %d runs from the store to render one page, want at most %d", read, tt.maxRead)
			}
			checkLink := func(class, want string) {
				t.Helper()
				has := strings.Contains(body, `<a class="`+class+`"`)
				switch {
				case want == "" && has:
					t.Errorf("a %s link, want none", class)
				case want != "" && !strings.Contains(body, `<a class="`+class+`" rel="`+class+`" `+want+`>`):
					t.Errorf("no %s link %s", class, want)
				}
			}
			checkLink("prev", tt.prev)
			checkLink("next", tt.next)
			if tt.range_ != "" {
				wantContains(t, tt.path, body, `<span class="count">`+tt.range_+`</span>`)
			}
		})
	}
	_, body := f.get(t, "/?result=superseded", http.StatusOK)
	wantContains(t, "scan cut short", body, fmt.Sprintf("Only the newest %d runs were looked at", maxScan))
	_, body = f.get(t, "/?page=2", http.StatusOK)
	wantContains(t, "page 2", body, "bulk 2049<", "bulk 2000<")
	wantNotContains(t, "page 2", body, "bulk 2050<", "bulk 1999<")
}
