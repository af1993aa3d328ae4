package web

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/core/store"
	"github.com/ductbot/ductbot/internal/people"
	"github.com/ductbot/ductbot/internal/text"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/style.css
var styleCSS []byte

// recentRuns is how many runs the dashboard and an environment page list.
const recentRuns = 50

// pages holds one parsed template set per page, each with the layout.
type pages struct {
	dashboard, run, env, errorPage *template.Template
}

func parsePages(s *Server) *pages {
	parse := func(name string) *template.Template {
		return template.Must(template.New(name).ParseFS(templateFS, "templates/layout.html", "templates/"+name))
	}
	return &pages{
		dashboard: parse("dashboard.html"),
		run:       parse("run.html"),
		env:       parse("env.html"),
		errorPage: parse("error.html"),
	}
}

// render executes a page into a buffer first, so a template error becomes a
// 500 rather than half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, t *template.Template, data any) {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		s.log.Error("render page", "path", r.URL.Path, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorView is the data of an error page.
type errorView struct {
	Title   string
	Refresh int // always 0
	Status  int
	Heading string
	Message string
}

func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, status int, heading, message string) {
	s.render(w, r, status, s.pages.errorPage, errorView{
		Title: heading, Status: status, Heading: heading, Message: message,
	})
}

func (s *Server) internalError(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Error("serve page", "path", r.URL.Path, "err", err)
	s.errorPage(w, r, http.StatusInternalServerError, "Something went wrong",
		"ductbot could not read its state. Try again in a moment; if it keeps happening, the operators will find the error in ductbot's log.")
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	s.errorPage(w, r, http.StatusNotFound, "Page not found", "There is nothing at this address.")
}

// envView is an environment as the pages show it.
type envView struct {
	Name, Path        string
	Project           string
	ProjectPath       string // the dashboard filtered to the project
	Change, PatchSet  int
	ChangeURL         string
	Subject, Owner    string
	Revision          string
	Kind              string
	RequestedBy       string
	Matrix            []pair
	Status            string
	Hint              string // how to wake an asleep environment
	Age, Created      string
	Expiry, ExpiresAt string
	Active            string
	Gone              string
	Protected         bool
	URL               string
	Namespace         string
	Release           string
}

func (s *Server) envView(now time.Time, e *run.Env) envView {
	return envView{
		Name: e.Name, Path: EnvPath(e.Name),
		Project: e.Project, ProjectPath: "/?" + url.Values{"project": {e.Project}}.Encode(),
		Change: e.Change, PatchSet: e.PatchSet, ChangeURL: s.changeURL(e.Project, e.Change, e.PatchSet),
		Subject: e.Subject, Owner: people.DisplayName(e.Owner), Revision: e.Revision,
		Kind: string(e.Kind), RequestedBy: people.DisplayName(e.RequestedBy),
		Matrix: sortedMatrix(e.Matrix),
		Status: string(e.Status), Hint: s.wakeHint(e),
		Age: ago(now, e.CreatedAt), Created: stamp(e.CreatedAt),
		Expiry: expiry(now, e.ExpiresAt), ExpiresAt: stamp(e.ExpiresAt),
		Active: ago(now, e.ActiveAt), Gone: stamp(e.GoneAt),
		Protected: e.Protected,
		URL:       e.URL, Namespace: e.Namespace, Release: e.Release,
	}
}

// runView is a run as the pages show it.
type runView struct {
	ID               int64
	Path, LogPath    string
	Status           string
	Finished         bool
	Env, EnvPath     string
	Project          string
	Change, PatchSet int
	ChangeURL        string
	Subject, Owner   string
	Revision         string
	Trigger          string
	RequestedBy      string
	TestOnly         bool
	Attempts         int
	Detail           string
	QueuePosition    int // place in the deploy queue while queued
	Matrix           []pair
	Deps             []depView // what Depends-On footers brought in
	Duration         string
	When, Created    string
}

// depView is one dependency of a run: "change 5 patch set 2 (wiki)" and a
// link to it.
type depView struct {
	Text, URL string
}

// queuePosition is where a queued run waits, when the server knows.
func (s *Server) queuePosition(r *run.Run) int {
	if s.position == nil || r.State != run.StateQueued {
		return 0
	}
	return s.position(r.ID)
}

func (s *Server) runView(now time.Time, r *run.Run) runView {
	v := runView{
		ID: r.ID, Path: RunPath(r.ID), LogPath: runLogPath(r.ID),
		Status: runStatus(r), Finished: r.Finished(),
		Env: r.Env, Project: r.Project,
		Change: r.Change, PatchSet: r.PatchSet, ChangeURL: s.changeURL(r.Project, r.Change, r.PatchSet),
		Subject: r.Subject, Owner: people.DisplayName(r.Owner), Revision: r.Revision,
		Trigger: string(r.Trigger), RequestedBy: people.DisplayName(r.RequestedBy), TestOnly: r.TestOnly,
		Attempts: r.Attempts, Detail: r.Detail,
		Matrix:        sortedMatrix(r.Matrix),
		QueuePosition: s.queuePosition(r),
		When:          ago(now, r.CreatedAt), Created: stamp(r.CreatedAt),
	}
	if r.Env != "" {
		v.EnvPath = EnvPath(r.Env)
	}
	for _, d := range r.Deps {
		v.Deps = append(v.Deps, depView{Text: d.String(), URL: s.changeURL(d.Project, d.Change, d.PatchSet)})
	}
	if d := runDuration(now, r); d > 0 {
		v.Duration = humanDuration(d)
	}
	return v
}

// dashboardView is the data of /.
type dashboardView struct {
	Title          string
	Refresh        int // seconds; 0: no meta refresh
	Project        string
	Status, Result string
	Query          string // the search, ?q=
	Statuses       []string
	Results        []string
	Filtered       bool
	Envs           []envView
	Runs           []runView
	Page           int    // 1-based page of runs, ?page=
	First, Last    int    // the 1-based positions of the runs shown
	PrevPath       string // the previous (newer) page of runs; empty on the first
	NextPath       string // the next (older) page; empty on the last
	Capped         bool   // only the newest maxScan runs were looked at
	Scanned        int    // maxScan
}

// The choices of the dashboard's filters. "running" selects unfinished runs.
var (
	envStatuses = []string{string(run.EnvWaiting), string(run.EnvDeploying), string(run.EnvReady), string(run.EnvBroken), string(run.EnvAsleep), string(run.EnvTearingDown), string(run.EnvGone)}
	runResults  = []string{"running", string(run.ResultPassed), string(run.ResultFailed), string(run.ResultError), string(run.ResultSuperseded), string(run.ResultCanceled)}
)

// Paging and refreshing.
const (
	// runsPerPage is how many runs a page of the dashboard lists.
	runsPerPage = recentRuns
	// maxScan bounds how many runs one request reads to find a page of
	// runs that the store cannot select by itself (by result, or a
	// search that must not match hidden e-mail addresses).
	maxScan = 20 * runsPerPage
	// scanBatch is how many runs each read of such a scan asks for.
	scanBatch = 4 * runsPerPage
	// maxPage bounds ?page= so the offset cannot overflow.
	maxPage = 1_000_000
	// maxQuery bounds the search text (bytes).
	maxQuery = 200
	// refreshSeconds is how often the dashboard and a run page reload
	// themselves while a run is active.
	refreshSeconds = 10
)

func (s *Server) dashboard(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := storeCtx(r)
	defer cancel()
	now := s.now()
	q := r.URL.Query()
	v := dashboardView{
		Title:    "Environments and runs",
		Project:  q.Get("project"),
		Status:   q.Get("status"),
		Result:   q.Get("result"),
		Query:    searchTerm(q.Get("q")),
		Statuses: envStatuses,
		Results:  runResults,
		Page:     pageNumber(q.Get("page")),
		Scanned:  maxScan,
	}
	v.Filtered = v.Project != "" || v.Status != "" || v.Result != "" || v.Query != ""

	envs, err := s.listEnvs(ctx, v.Project, v.Status)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	for _, e := range envs {
		if v.Query == "" || matches(v.Query, e.Change, e.Subject, e.Owner) {
			v.Envs = append(v.Envs, s.envView(now, e))
		}
	}

	runs, more, capped, err := s.pageRuns(ctx, store.RunFilter{Project: v.Project}, v.Result, v.Query, v.Page)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	for _, r := range runs {
		v.Runs = append(v.Runs, s.runView(now, r))
	}
	v.Capped = capped
	if len(runs) > 0 {
		v.First = (v.Page-1)*runsPerPage + 1
		v.Last = v.First + len(runs) - 1
	}
	if v.Page > 1 {
		v.PrevPath = pagePath(q, v.Page-1)
	}
	if more {
		v.NextPath = pagePath(q, v.Page+1)
	}

	// Reload while something is under way, and only then: on the first
	// page, which is where new runs and changing states show.
	if v.Page == 1 {
		active, err := s.store.ListRuns(ctx, store.RunFilter{Project: v.Project, Unfinished: true, Limit: 1})
		if err != nil {
			s.internalError(w, r, err)
			return
		}
		if len(active) > 0 {
			v.Refresh = refreshSeconds
		}
	}
	s.render(w, r, http.StatusOK, s.pages.dashboard, v)
}

// searchTerm is ?q= as searched: trimmed, and cut to maxQuery bytes at a
// character boundary.
func searchTerm(q string) string {
	q = strings.TrimSpace(strings.ToValidUTF8(q, ""))
	if len(q) > maxQuery {
		q = strings.ToValidUTF8(q[:maxQuery], "")
	}
	return q
}

// pageNumber is ?page= as a page number: 1 unless it is a number from 1
// to maxPage.
func pageNumber(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxPage {
		return 1
	}
	return n
}

// pagePath is the dashboard with the query q but on page n.
func pagePath(q url.Values, n int) string {
	q = maps.Clone(q)
	if n <= 1 {
		q.Del("page")
	} else {
		q.Set("page", strconv.Itoa(n))
	}
	if len(q) == 0 {
		return "/"
	}
	return "/?" + q.Encode()
}

// matches reports whether a run or an environment shows the search term q
// in public: its change number is q, or its subject or its owner's shown
// name (people.DisplayName, never an e-mail address) holds q, ignoring
// case.
func matches(q string, change int, subject, owner string) bool {
	if n, err := strconv.Atoi(q); err == nil && n == change {
		return true
	}
	lq := strings.ToLower(q)
	return strings.Contains(strings.ToLower(subject), lq) ||
		strings.Contains(strings.ToLower(people.DisplayName(owner)), lq)
}

// listEnvs returns the environments of project (all when empty) with the
// given status; an empty status means every status but gone.
func (s *Server) listEnvs(ctx context.Context, project, status string) ([]*run.Env, error) {
	f := store.EnvFilter{Project: project, Alive: status == ""}
	envs, err := s.store.ListEnvs(ctx, f)
	if err != nil {
		return nil, err
	}
	if status != "" {
		envs = slices.DeleteFunc(envs, func(e *run.Env) bool { return string(e.Status) != status })
	}
	return envs, nil
}

// pageRuns returns page (1-based) of the runs, newest first, that f
// selects, whose status (see runResults) is result (any when empty) and
// that match the search query (see matches; any when empty), runsPerPage
// to a page. more says whether there is a next page. What the store can
// select by itself is one bounded query; the rest is a scan of at most
// maxScan runs, and capped says it stopped there without filling the page.
func (s *Server) pageRuns(ctx context.Context, f store.RunFilter, result, query string, page int) (runs []*run.Run, more, capped bool, err error) {
	var keep []func(*run.Run) bool
	switch result {
	case "":
	case "running":
		f.Unfinished = true
	default: // the store cannot select by result
		keep = append(keep, func(r *run.Run) bool { return r.Finished() && string(r.Result) == result })
	}
	if query != "" {
		// The store matches the owner as stored, e-mail address and all;
		// keep only what the page shows, so a search cannot probe for one.
		f.Search = query
		keep = append(keep, func(r *run.Run) bool { return matches(query, r.Change, r.Subject, r.Owner) })
	}
	skip := (page - 1) * runsPerPage
	if len(keep) == 0 {
		f.Offset, f.Limit = skip, runsPerPage+1
		runs, err := s.store.ListRuns(ctx, f)
		if err != nil {
			return nil, false, false, err
		}
		if len(runs) > runsPerPage {
			return runs[:runsPerPage], true, false, nil
		}
		return runs, false, false, nil
	}
	f.Limit = scanBatch
	for scanned := 0; scanned < maxScan; {
		f.Offset = scanned
		batch, err := s.store.ListRuns(ctx, f)
		if err != nil {
			return nil, false, false, err
		}
		scanned += len(batch)
	next:
		for _, r := range batch {
			for _, k := range keep {
				if !k(r) {
					continue next
				}
			}
			if skip > 0 {
				skip--
				continue
			}
			if len(runs) == runsPerPage {
				return runs, true, false, nil
			}
			runs = append(runs, r)
		}
		if len(batch) < scanBatch {
			return runs, false, false, nil
		}
	}
	return runs, false, true, nil
}

// phaseView is one phase of a run on its page.
type phaseView struct {
	Name    string
	Started string
	Took    string
}

// runPageView is the data of /runs/{id}.
type runPageView struct {
	Title     string
	Refresh   int // seconds; 0: no meta refresh
	Run       runView
	EnvURL    string
	Phases    []phaseView
	Diagnosis *diagnosisView
	Logs      []logSection
}

// diagnosisView is why a run's deploy failed, as its pods showed it.
type diagnosisView struct {
	Heading   string // "orchestrator is broken", "An image could not be pulled", …
	Component string
	Own       bool
	Reason    string
	Image     string
	Pod       string
	Container string
	Others    []string
	Logs      []logLine
	Events    []string
}

func newDiagnosisView(d *run.Diagnosis, maxLog int) *diagnosisView {
	if d == nil {
		return nil
	}
	v := &diagnosisView{Component: d.Component, Own: d.Own, Reason: d.Reason, Image: d.Image, Pod: d.Pod,
		Container: d.Container, Others: d.Others, Events: d.Events}
	comp := d.Component
	if comp == "" {
		comp = "A component"
	}
	switch d.Class {
	case run.DiagnosisBroken:
		v.Heading = comp + " is broken"
	case run.DiagnosisImage:
		v.Heading = "An image could not be pulled"
	default:
		v.Heading = "The cluster was in the way"
	}
	logs := strings.TrimRight(text.HeadTail(d.Logs, maxLog), "\n")
	if strings.TrimSpace(logs) != "" {
		for i, l := range strings.Split(logs, "\n") {
			v.Logs = append(v.Logs, logLine{N: i + 1, Text: displayLine(l)})
		}
	}
	return v
}

// runPhases lists the phases from queued to done with their durations;
// a phase that has not ended shows how long it has run so far.
func runPhases(now time.Time, r *run.Run) []phaseView {
	marks := run.Marks(r) // the lifecycle's own list of phases
	var out []phaseView
	for i, m := range marks {
		if m.Start.IsZero() {
			continue
		}
		p := phaseView{Name: string(m.State), Started: stamp(m.Start)}
		if m.State != run.StateDone {
			end := time.Time{}
			for _, next := range marks[i+1:] {
				if !next.Start.IsZero() {
					end = next.Start
					break
				}
			}
			switch {
			case !end.IsZero():
				p.Took = humanDuration(end.Sub(m.Start))
			case !r.Finished():
				p.Took = humanDuration(now.Sub(m.Start)) + " so far"
			}
		}
		out = append(out, p)
	}
	return out
}

// lookupRun reads the run of the {id} path value. When it fails it has
// answered the request already, with 400, 404, 410 or 500.
func (s *Server) lookupRun(w http.ResponseWriter, r *http.Request, ctx context.Context, fail func(status int, heading, msg string)) (*run.Run, bool) {
	id, ok := parseID(r)
	if !ok {
		fail(http.StatusBadRequest, "Not a run number", fmt.Sprintf("%q is not a run number; run addresses look like /runs/12.", r.PathValue("id")))
		return nil, false
	}
	rn, err := s.store.GetRun(ctx, id)
	if err == nil {
		return rn, true
	}
	if !errors.Is(err, store.ErrNotFound) {
		s.log.Error("read run", "run", id, "err", err)
		fail(http.StatusInternalServerError, "Something went wrong", "ductbot could not read its state; try again in a moment.")
		return nil, false
	}
	existed, err := s.store.RunExisted(ctx, id)
	if err != nil {
		s.log.Error("read run", "run", id, "err", err)
		fail(http.StatusInternalServerError, "Something went wrong", "ductbot could not read its state; try again in a moment.")
		return nil, false
	}
	if existed {
		fail(http.StatusGone, fmt.Sprintf("Run %d has expired", id),
			"Old runs and their test logs are cleaned up after a while, and this one is gone. "+
				"The comment on the change in Gerrit still says how it ended. To test the change again, comment \"recheck\" on it.")
		return nil, false
	}
	fail(http.StatusNotFound, fmt.Sprintf("There is no run %d", id), "No run with this number was ever started. Check the link.")
	return nil, false
}

func (s *Server) runPage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := storeCtx(r)
	defer cancel()
	rn, ok := s.lookupRun(w, r, ctx, func(status int, heading, msg string) { s.errorPage(w, r, status, heading, msg) })
	if !ok {
		return
	}
	logs, err := s.testLogs(ctx, rn.ID)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	now := s.now()
	v := runPageView{
		Title:     fmt.Sprintf("Run %d: %s", rn.ID, runStatus(rn)),
		Run:       s.runView(now, rn),
		Phases:    runPhases(now, rn),
		Diagnosis: newDiagnosisView(rn.Diagnosis, s.maxLog),
		Logs:      numberLogs(logs),
	}
	if !rn.Finished() { // reload until the run is done
		v.Refresh = refreshSeconds
	}
	if rn.Env != "" {
		env, err := s.store.GetEnv(ctx, rn.Env)
		switch {
		case err == nil:
			if env.Status != run.EnvGone {
				v.EnvURL = env.URL
			}
		case !errors.Is(err, store.ErrNotFound):
			s.internalError(w, r, err)
			return
		}
	}
	s.render(w, r, http.StatusOK, s.pages.run, v)
}

// testLogs reads a run's test logs, bounded to the configured size.
func (s *Server) testLogs(ctx context.Context, runID int64) ([]run.TestLog, error) {
	logs, err := s.store.TestLogs(ctx, runID)
	if err != nil {
		return nil, err
	}
	return run.BoundLogs(logs, s.maxLog), nil
}

func (s *Server) runLog(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := storeCtx(r)
	defer cancel()
	rn, ok := s.lookupRun(w, r, ctx, func(status int, _, msg string) { http.Error(w, msg, status) })
	if !ok {
		return
	}
	logs, err := s.testLogs(ctx, rn.ID)
	if err != nil {
		s.log.Error("read test logs", "run", rn.ID, "err", err)
		http.Error(w, "could not read the test logs", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="ductbot-run-`+strconv.FormatInt(rn.ID, 10)+`.log"`)
	h.Set("Cache-Control", "no-cache")
	if err := writeRawLog(w, logs); err != nil {
		s.log.Debug("write raw log", "run", rn.ID, "err", err)
	}
}

// envPageView is the data of /envs/{name}.
type envPageView struct {
	Title   string
	Refresh int // seconds; 0: no meta refresh
	Name    string
	Env     *envView // nil when the record was removed but runs remain
	Runs    []runView
}

func (s *Server) envPage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := storeCtx(r)
	defer cancel()
	name := r.PathValue("name")
	now := s.now()
	v := envPageView{Title: "Environment " + name, Name: name}

	env, err := s.store.GetEnv(ctx, name)
	switch {
	case err == nil:
		ev := s.envView(now, env)
		v.Env = &ev
	case !errors.Is(err, store.ErrNotFound):
		s.internalError(w, r, err)
		return
	}
	runs, err := s.store.ListRuns(ctx, store.RunFilter{Env: name, Limit: recentRuns})
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if v.Env == nil && len(runs) == 0 {
		s.errorPage(w, r, http.StatusNotFound, "No such environment", fmt.Sprintf("There is no environment called %q, and none by that name ever ran.", name))
		return
	}
	for _, rn := range runs {
		v.Runs = append(v.Runs, s.runView(now, rn))
		if !rn.Finished() { // reload while a run of it is under way
			v.Refresh = refreshSeconds
		}
	}
	if env != nil && envInTransition(env.Status) {
		v.Refresh = refreshSeconds
	}
	s.render(w, r, http.StatusOK, s.pages.env, v)
}

// envInTransition reports whether an environment's status is about to
// change by itself: waiting for room, deploying, going to sleep, waking,
// being torn down.
func envInTransition(st run.EnvStatus) bool {
	switch st {
	case run.EnvWaiting, run.EnvDeploying, run.EnvSleeping, run.EnvWaking, run.EnvTearingDown:
		return true
	}
	return false
}

// wakeHint tells how to wake an environment that sleeps (or is falling
// asleep); empty otherwise.
func (s *Server) wakeHint(e *run.Env) string {
	if !e.Status.Dormant() {
		return ""
	}
	return "wake it with " + s.chatPrefix + "wake " + e.Name
}
