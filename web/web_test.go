package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/core/store"
)

// get serves one request and returns the response and its body.
func (f *fixture) do(t *testing.T, method, target string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	f.server.Handler().ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), method, target, nil))
	res := rec.Result()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(body)
}

func (f *fixture) get(t *testing.T, target string, wantStatus int) (*http.Response, string) {
	t.Helper()
	res, body := f.do(t, http.MethodGet, target)
	if res.StatusCode != wantStatus {
		t.Fatalf("GET %s: status %d, want %d; body:\n%s", target, res.StatusCode, wantStatus, body)
	}
	return res, body
}

func wantContains(t *testing.T, what, body string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(body, s) {
			t.Errorf("%s does not contain %q", what, s)
		}
	}
}

func wantNotContains(t *testing.T, what, body string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if strings.Contains(body, s) {
			t.Errorf("%s contains %q", what, s)
		}
	}
}

const escapedXSS = `&lt;script&gt;alert(1)&lt;/script&gt; Fix &#34;quotes&#34; &amp; things`

func TestDashboard(t *testing.T) {
	f := newFixture(t, nil)
	res, body := f.get(t, "/", http.StatusOK)
	if ct := res.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy = %q, want scripts forbidden", csp)
	}
	wantContains(t, "dashboard", body,
		`href="/envs/change-12345"`, `href="/envs/custom-ab12"`,
		escapedXSS,
		`href="https://gerrit.example.org/c/mediawiki/extensions/WikiLambda/&#43;/12345/3"`,
		`href="https://change-12345.envs.example.org"`,
		"<td>Jane</td>", "protected", "in 2h 0m", "3h 0m ago", "never",
		"orchestrator", "change:12345/3",
		runHref(f.passed), runHref(f.failed), runHref(f.testing),
		"2m 37s", // the passed run took 157s
	)
	wantNotContains(t, "dashboard", body, "<script>", `href="/envs/change-99"`, runHref(f.pruned), "jane@example.org", "example.org&gt;")

	tests := []struct {
		query      string
		want, not  []string
		wantPhrase string
	}{
		{"?project=other%2Fproject", []string{envRow("custom-ab12"), runHref(f.failed)}, []string{envRow("change-12345"), runHref(f.passed)}, ""},
		{"?status=gone", []string{envRow("change-99")}, []string{envRow("change-12345"), envRow("custom-ab12")}, ""},
		{"?status=broken", []string{envRow("custom-ab12")}, []string{envRow("change-12345")}, ""},
		{"?result=failed", []string{runHref(f.failed)}, []string{runHref(f.passed), runHref(f.testing)}, ""},
		{"?result=running", []string{runHref(f.testing)}, []string{runHref(f.passed), runHref(f.failed)}, ""},
		{"?project=nope", nil, []string{`class="env-link"`}, "No live environments for nope."},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			_, body := f.get(t, "/"+tt.query, http.StatusOK)
			wantContains(t, tt.query, body, tt.want...)
			wantNotContains(t, tt.query, body, tt.not...)
			if tt.wantPhrase != "" {
				wantContains(t, tt.query, body, tt.wantPhrase)
			}
		})
	}
}

func TestRunPage(t *testing.T) {
	f := newFixture(t, nil)
	_, body := f.get(t, RunPath(f.passed), http.StatusOK)
	wantContains(t, "run page", body,
		escapedXSS, "passed",
		`href="https://gerrit.example.org/c/mediawiki/extensions/WikiLambda/&#43;/12345/3"`,
		`href="/envs/change-12345"`, `href="https://change-12345.envs.example.org"`,
		fmt.Sprintf(`href="/runs/%d/log.txt"`, f.passed),
		// timings: queued 5s, deploying 1m 30s, testing 1m 0s, reporting 2s
		"<td>queued</td>", "<td class=\"num\">5s</td>", "1m 30s", "1m 0s", "2s</td>", "2026-03-14 10:02:37 UTC",
		// the logs: numbered lines with anchors, colours gone, \r redraw resolved, markup escaped
		`id="L1"`, `href="#L1"`, "change-12345-e2e", "change-12345-smoke",
		`id="L3"`, "PASS wiki loads", "progress 100%", "&lt;b&gt;not bold&lt;/b&gt; &amp; done",
		`id="L8"`, "smoke ok",
	)
	wantNotContains(t, "run page", body, "<script>", "\x1b", "progress 10%", `id="L9"`)

	// Line anchors match the raw log's line numbers.
	_, raw := f.get(t, runLogPath(f.passed), http.StatusOK)
	lines := strings.Split(strings.TrimSuffix(raw, "\n"), "\n")
	for _, n := range []int{2, 8} {
		re := regexp.MustCompile(fmt.Sprintf(`id="L%d"><a class="ln" href="#L%d">%d</a>([^\n<]*)`, n, n, n))
		m := re.FindStringSubmatch(body)
		if m == nil {
			t.Errorf("no line %d on the page", n)
			continue
		}
		if m[1] != lines[n-1] {
			t.Errorf("page line %d = %q, raw log line %d = %q", n, m[1], n, lines[n-1])
		}
	}

	// An unfinished run shows how long its phase has run so far.
	_, body = f.get(t, RunPath(f.testing), http.StatusOK)
	wantContains(t, "unfinished run", body, "testing", "5m 0s so far", "No test logs yet.")
	_, body = f.get(t, RunPath(f.failed), http.StatusOK)
	wantContains(t, "failed run", body, "failed", "test e2e failed: exit code 1", "irc:bob")
}

func TestRunPageErrors(t *testing.T) {
	f := newFixture(t, nil)
	_, body := f.get(t, "/runs/abc", http.StatusBadRequest)
	wantContains(t, "bad id page", body, "Not a run number", "&#34;abc&#34;")
	_, body = f.get(t, "/runs/"+fmt.Sprint(f.testing+1000), http.StatusNotFound)
	wantContains(t, "missing run page", body, "There is no run")
	_, body = f.get(t, RunPath(f.pruned), http.StatusGone)
	wantContains(t, "expired run page", body, fmt.Sprintf("Run %d has expired", f.pruned), "recheck")

	f.get(t, "/runs/x/log.txt", http.StatusBadRequest)
	f.get(t, runLogPath(f.testing+1000), http.StatusNotFound)
	f.get(t, runLogPath(f.pruned), http.StatusGone)
	f.get(t, "/no/such/page", http.StatusNotFound)
}

func TestRunLog(t *testing.T) {
	f := newFixture(t, nil)
	res, body := f.get(t, runLogPath(f.passed), http.StatusOK)
	if ct := res.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if cd, want := res.Header.Get("Content-Disposition"), fmt.Sprintf(`attachment; filename="ductbot-run-%d.log"`, f.passed); cd != want {
		t.Errorf("Content-Disposition = %q, want %q", cd, want)
	}
	want := "=== pod change-12345-e2e (Succeeded) ===\n" + testLog + "=== pod change-12345-smoke (Succeeded) ===\nsmoke ok\n"
	if body != want {
		t.Errorf("raw log =\n%q\nwant\n%q", body, want)
	}
	// A run without logs has an empty log.
	_, body = f.get(t, runLogPath(f.testing), http.StatusOK)
	if body != "" {
		t.Errorf("raw log of a run without logs = %q, want empty", body)
	}
}

func TestEnvPage(t *testing.T) {
	f := newFixture(t, nil)
	_, body := f.get(t, EnvPath("change-12345"), http.StatusOK)
	wantContains(t, "env page", body, "change-12345", escapedXSS, "ready", "protected",
		"ductbot-change-12345", `href="https://change-12345.envs.example.org"`, "in 2h 0m",
		runHref(f.passed), runHref(f.testing))
	wantNotContains(t, "env page", body, runHref(f.failed), "<script>")

	f.get(t, EnvPath("no-such-env"), http.StatusNotFound)

	if err := f.store.DeleteEnv(t.Context(), "custom-ab12"); err != nil {
		t.Fatal(err)
	}
	_, body = f.get(t, EnvPath("custom-ab12"), http.StatusOK)
	wantContains(t, "removed env page", body, "record was removed", runHref(f.failed))
}

func TestAPIEnvs(t *testing.T) {
	f := newFixture(t, nil)
	res, body := f.get(t, "/api/v1/envs", http.StatusOK)
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var out struct {
		Envs []map[string]any `json:"envs"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	if len(out.Envs) != 2 {
		t.Fatalf("%d envs, want the 2 live ones: %s", len(out.Envs), body)
	}
	e := out.Envs[0] // oldest first
	want := map[string]any{
		"name": "change-12345", "patch_set": 3.0, "change": 12345.0, "subject": xss, "status": "ready",
		"protected": true, "project": project, "url": "https://change-12345.envs.example.org",
		"created_at": "2026-03-14T09:00:00Z", "expires_at": "2026-03-14T14:00:00Z",
		"web_url":    publicURL + "/envs/change-12345",
		"change_url": gerritURL + "/c/mediawiki/extensions/WikiLambda/+/12345/3",
		"matrix":     map[string]any{"wiki": "change:12345/3", "orchestrator": "main", "evaluator": "main"},
	}
	for k, v := range want {
		if got := e[k]; fmt.Sprint(got) != fmt.Sprint(v) {
			t.Errorf("env %s = %v, want %v", k, got, v)
		}
	}
	if _, ok := e["gone_at"]; ok {
		t.Errorf("gone_at present for a live env: %v", e["gone_at"])
	}
	for k := range e {
		if k != strings.ToLower(k) || strings.ContainsAny(k, "- ") {
			t.Errorf("field %q is not lower_snake_case", k)
		}
	}

	_, body = f.get(t, "/api/v1/envs?status=gone", http.StatusOK)
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Envs) != 1 || out.Envs[0]["name"] != "change-99" {
		t.Errorf("status=gone gave %v", out.Envs)
	}
	_, body = f.get(t, "/api/v1/envs?project=none", http.StatusOK)
	if !strings.Contains(body, `"envs": []`) {
		t.Errorf("empty list is not []: %s", body)
	}
}

func TestAPIRun(t *testing.T) {
	f := newFixture(t, nil)
	_, body := f.get(t, "/api/v1/runs/"+fmt.Sprint(f.passed), http.StatusOK)
	var r RunJSON
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	if r.ID != f.passed || r.Result != "passed" || r.State != "done" || r.Subject != xss || r.PatchSet != 3 {
		t.Errorf("run = %+v", r)
	}
	if r.DurationSeconds != 157 {
		t.Errorf("duration_seconds = %v, want 157", r.DurationSeconds)
	}
	if r.WebURL != publicURL+RunPath(f.passed) || r.LogURL != publicURL+runLogPath(f.passed) {
		t.Errorf("web_url %q, log_url %q", r.WebURL, r.LogURL)
	}
	for name, s := range map[string]string{"created_at": r.CreatedAt, "finished_at": r.FinishedAt} {
		if _, err := time.Parse(time.RFC3339, s); err != nil {
			t.Errorf("%s = %q is not RFC 3339: %v", name, s, err)
		}
	}
	if r.FinishedAt != "2026-03-14T10:02:37Z" {
		t.Errorf("finished_at = %q", r.FinishedAt)
	}
	wantTests := []TestJSON{{"change-12345-e2e", "Succeeded", 5}, {"change-12345-smoke", "Succeeded", 1}}
	if fmt.Sprint(r.Tests) != fmt.Sprint(wantTests) {
		t.Errorf("tests = %+v, want %+v", r.Tests, wantTests)
	}
	wantContains(t, "run JSON", body, `"patch_set": 3`, `"test_only": false`)

	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/api/v1/runs/abc", http.StatusBadRequest},
		{"/api/v1/runs/" + fmt.Sprint(f.testing+1000), http.StatusNotFound},
		{"/api/v1/runs/" + fmt.Sprint(f.pruned), http.StatusGone},
	} {
		res, body := f.get(t, tc.path, tc.status)
		var e apiError
		if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" || res.Header.Get("Content-Type") != "application/json" {
			t.Errorf("GET %s: body %q is not a JSON error (%v)", tc.path, body, err)
		}
	}
}

func TestHealthAndReady(t *testing.T) {
	var notReady error
	f := newFixture(t, func() error { return notReady })
	f.get(t, "/healthz", http.StatusOK)
	_, body := f.get(t, "/readyz", http.StatusOK)
	wantContains(t, "readyz", body, "ready")

	notReady = errors.New("cluster unreachable: dial tcp 127.0.0.1:6443: connection refused")
	_, body = f.get(t, "/readyz", http.StatusServiceUnavailable)
	wantContains(t, "readyz", body, "cluster unreachable")
	f.get(t, "/healthz", http.StatusOK)

	// Ready is optional.
	s := New(Options{Store: f.store})
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("readyz without Ready: %d", rec.Code)
	}
}

func TestMetrics(t *testing.T) {
	f := newFixture(t, nil)
	f.metrics.SetProjects([]string{project})
	f.metrics.RunsTotal.WithLabelValues(f.metrics.Project(project), string(run.ResultPassed)).Add(3)
	f.metrics.RunsTotal.WithLabelValues(f.metrics.Project("not/configured"), string(run.ResultError)).Inc()
	f.metrics.QueueDepth.Set(2)
	_, body := f.get(t, "/metrics", http.StatusOK)
	wantContains(t, "metrics", body, `ductbot_runs_total{project="`+project+`",result="passed"} 3`,
		`ductbot_runs_total{project="other",result="error"} 1`, `ductbot_runs_total{project="other",result="passed"} 0`,
		"ductbot_queue_depth 2", "go_goroutines")
}

func TestReadOnly(t *testing.T) {
	f := newFixture(t, nil)
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		for _, path := range []string{"/", RunPath(f.passed), "/api/v1/envs", "/metrics", "/nope"} {
			res, _ := f.do(t, method, path)
			if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: status %d, Allow %q; want 405, GET, HEAD", method, path, res.StatusCode, res.Header.Get("Allow"))
			}
		}
	}
	srv := httptest.NewServer(f.server.Handler())
	defer srv.Close()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodHead, srv.URL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || len(body) != 0 {
		t.Errorf("HEAD /: status %d, body %d bytes", res.StatusCode, len(body))
	}
}

func TestStaticCSS(t *testing.T) {
	f := newFixture(t, nil)
	res, body := f.get(t, "/static/style.css", http.StatusOK)
	if !strings.HasPrefix(res.Header.Get("Content-Type"), "text/css") || !strings.Contains(body, ".badge") {
		t.Errorf("style.css: %q, %d bytes", res.Header.Get("Content-Type"), len(body))
	}
}

func TestPaths(t *testing.T) {
	if got := RunPath(42); got != "/runs/42" {
		t.Errorf("RunPath(42) = %q", got)
	}
	if got := EnvPath("change-1"); got != "/envs/change-1" {
		t.Errorf("EnvPath = %q", got)
	}
	if got := EnvPath("a/b c"); got != "/envs/a%2Fb%20c" {
		t.Errorf("EnvPath escapes = %q", got)
	}
	s := New(Options{Store: (*store.Store)(nil), GerritURL: "https://g.example/"})
	if got, want := s.changeURL("a/b c", 5, 2), "https://g.example/c/a/b%20c/+/5/2"; got != want {
		t.Errorf("changeURL = %q, want %q", got, want)
	}
	if got := s.changeURL("p", 0, 0); got != "" {
		t.Errorf("changeURL without change = %q", got)
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                           "0s",
		45 * time.Second:            "45s",
		192 * time.Second:           "3m 12s",
		2*time.Hour + 5*time.Minute: "2h 5m",
		76 * time.Hour:              "3d 4h",
		-90 * time.Second:           "1m 30s",
		1499 * time.Millisecond:     "1s",
		59*time.Minute + 59500*1e6:  "1h 0m",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestDisplayLine(t *testing.T) {
	for in, want := range map[string]string{
		"plain":                    "plain",
		"\x1b[1;31mred\x1b[0m":     "red",
		"a\tb":                     "a\tb",
		"10%\r50%\r100%":           "100%",
		"done\r":                   "done",
		"bell\x07 nul\x00 del\x7f": "bell nul del",
		"\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\": "link",
		"bad \xff utf8": "bad \uFFFD utf8",
	} {
		if got := displayLine(in); got != want {
			t.Errorf("displayLine(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNumberLogsLong(t *testing.T) {
	var b strings.Builder
	for i := 1; i <= maxShownLines+10; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	secs := numberLogs([]run.TestLog{{Pod: "a", Log: "x\ny"}, {Pod: "b", Log: b.String()}})
	if len(secs) != 2 {
		t.Fatalf("%d sections", len(secs))
	}
	a, long := secs[0], secs[1]
	if a.Header != 1 || len(a.Lines) != 2 || a.Lines[1].N != 3 || a.Hidden != 0 {
		t.Errorf("first section = %+v", a)
	}
	if long.Header != 4 || long.Total != maxShownLines+10 || long.Hidden != 10 || len(long.Lines) != maxShownLines {
		t.Errorf("long section: header %d total %d hidden %d shown %d", long.Header, long.Total, long.Hidden, len(long.Lines))
	}
	// The head is shown from "line 1" (raw log line 5); lines 1001 to 1010
	// are skipped; the tail starts at "line 1011", raw log line 4+1011.
	if first := long.Lines[0]; first.N != 5 || first.Text != "line 1" || first.Skipped != 0 {
		t.Errorf("first shown line = %+v, want {5 line 1 0}", first)
	}
	if l := long.Lines[headShownLines-1]; l.Text != "line 1000" || l.Skipped != 0 {
		t.Errorf("last line of the head = %+v", l)
	}
	if l := long.Lines[headShownLines]; l.N != 1015 || l.Text != "line 1011" || l.Skipped != 10 {
		t.Errorf("first line of the tail = %+v, want {1015 line 1011 10}", l)
	}
	if last := long.Lines[len(long.Lines)-1]; last.Text != fmt.Sprintf("line %d", maxShownLines+10) {
		t.Errorf("last shown line = %+v", last)
	}
}

// A cut marker in the middle of a long log is shown even though the lines
// around it are not.
func TestNumberLogsShowsTheCut(t *testing.T) {
	var b strings.Builder
	for i := 1; i <= 3*maxShownLines; i++ {
		if i == 3*maxShownLines/2 {
			b.WriteString("[… 123 bytes cut by ductbot: logs are limited to 4096 bytes …]\n")
			continue
		}
		fmt.Fprintf(&b, "line %d\n", i)
	}
	sec := numberLogs([]run.TestLog{{Pod: "p", Log: b.String()}})[0]
	if len(sec.Lines) != maxShownLines+1 || sec.Hidden != 3*maxShownLines-maxShownLines-1 {
		t.Fatalf("shown %d, hidden %d", len(sec.Lines), sec.Hidden)
	}
	cut := sec.Lines[headShownLines]
	if !strings.Contains(cut.Text, cutMarker) || cut.N != 1+3*maxShownLines/2 || cut.Skipped != 3*maxShownLines/2-1-headShownLines {
		t.Errorf("line after the head = %+v, want the cut marker", cut)
	}
}
