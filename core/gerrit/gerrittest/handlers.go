package gerrittest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	// xssiPrefix starts every JSON body Gerrit writes.
	xssiPrefix = ")]}'\n"
	// timeLayout is Gerrit's JSON timestamp format, always UTC.
	timeLayout = "2006-01-02 15:04:05.000000000"
	// maxQueryLimit is Gerrit's default query limit: the most changes one
	// query answer holds, whatever n= asks for.
	maxQueryLimit = 500
	// commentSizeLimit is Gerrit's default change.commentSizeLimit.
	commentSizeLimit = 16 << 10
)

type ctxKey struct{}

func accountFrom(ctx context.Context) *account {
	a, _ := ctx.Value(ctxKey{}).(*account)
	return a
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /changes/{$}", s.handleQuery)
	mux.HandleFunc("GET /changes/{id}", s.handleChange)
	mux.HandleFunc("GET /changes/{id}/detail", s.handleChange)
	mux.HandleFunc("POST /changes/{id}/revisions/{rev}/review", s.handleReview)
	mux.HandleFunc("GET /accounts/self", s.handleSelf)
	mux.HandleFunc("GET /groups/{group}/members", s.handleMembers)
	mux.HandleFunc("GET /groups/{group}/members/{$}", s.handleMembers)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeText(w, http.StatusNotFound, "Not Found")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serve(mux, w, r) })
}

// serve counts the request, applies delays and injected failures, strips
// and authenticates /a/, and hands the request to mux.
func (s *Server) serve(mux http.Handler, w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	path := r.URL.EscapedPath()
	authed := strings.HasPrefix(path, "/a/")
	if authed {
		path = strings.TrimPrefix(path, "/a")
	}
	s.count(r.Method + " " + routeKey(path))

	s.faultMu.Lock()
	delay := s.delay
	s.faultMu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if status := s.injected(r); status != 0 {
		writeText(w, status, http.StatusText(status))
		return
	}

	ctx := r.Context()
	if authed {
		a := s.authenticate(r)
		if a == nil {
			w.Header().Set("WWW-Authenticate", `Basic realm="Gerrit Code Review"`)
			writeText(w, http.StatusUnauthorized, "Unauthorized")
			return
		}
		ctx = context.WithValue(ctx, ctxKey{}, a)
	}
	r2 := r.Clone(ctx)
	if authed {
		r2.URL.Path = strings.TrimPrefix(r.URL.Path, "/a")
		r2.URL.RawPath = strings.TrimPrefix(r.URL.RawPath, "/a")
	}
	mux.ServeHTTP(w, r2)
}

func (s *Server) authenticate(r *http.Request) *account {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, found := s.accounts[user]
	if !found || a.password == "" || a.password != pass {
		return nil
	}
	return a
}

func (s *Server) count(key string) {
	s.countMu.Lock()
	s.counts[key]++
	s.countMu.Unlock()
}

// routeKey replaces the identifiers in an escaped path by placeholders.
func routeKey(path string) string {
	segs := strings.Split(path, "/")
	placeholders := map[string]string{"changes": "{id}", "revisions": "{rev}", "groups": "{group}", "accounts": "{account}"}
	for i := 1; i < len(segs); i++ {
		if p, ok := placeholders[segs[i-1]]; ok && segs[i] != "" {
			segs[i] = p
		}
	}
	return strings.Join(segs, "/")
}

func writeText(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	fmt.Fprintln(w, msg)
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeText(w, http.StatusInternalServerError, "Internal server error")
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(xssiPrefix))
	w.Write(b)
	w.Write([]byte("\n"))
}

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// outputOptions are the o= options that change what a ChangeInfo holds.
type outputOptions struct {
	detailedAccounts bool
	currentRevision  bool
	allRevisions     bool
	currentCommit    bool
	allCommits       bool
	messages         bool
}

// knownOptions are Gerrit's ListChangesOption names; the server accepts all
// of them and implements those in outputOptions.
var knownOptions = []string{
	"LABELS", "DETAILED_LABELS", "CURRENT_REVISION", "ALL_REVISIONS", "CURRENT_COMMIT",
	"ALL_COMMITS", "CURRENT_FILES", "ALL_FILES", "DETAILED_ACCOUNTS", "REVIEWER_UPDATES",
	"MESSAGES", "CURRENT_ACTIONS", "CHANGE_ACTIONS", "REVIEWED", "SUBMITTABLE", "WEB_LINKS",
	"CHECK", "COMMIT_FOOTERS", "PUSH_CERTIFICATES", "TRACKING_IDS", "SKIP_DIFFSTAT",
	"SUBMIT_REQUIREMENTS", "CUSTOM_KEYED_VALUES", "STAR", "PARENTS", "DOWNLOAD_COMMANDS",
}

func parseOptions(values []string) (outputOptions, error) {
	var o outputOptions
	for _, v := range values {
		switch v {
		case "DETAILED_ACCOUNTS":
			o.detailedAccounts = true
		case "CURRENT_REVISION":
			o.currentRevision = true
		case "ALL_REVISIONS":
			o.allRevisions = true
		case "CURRENT_COMMIT":
			o.currentCommit = true
		case "ALL_COMMITS":
			o.allCommits = true
		case "MESSAGES":
			o.messages = true
		default:
			if !slices.Contains(knownOptions, v) {
				return o, fmt.Errorf("%q is not a valid value for \"-o\"", v)
			}
		}
	}
	return o, nil
}

type accountJSON struct {
	ID       int    `json:"_account_id"`
	Name     string `json:"name,omitempty"`
	Email    string `json:"email,omitempty"`
	Username string `json:"username,omitempty"`
}

type gitPersonJSON struct {
	Name  string `json:"name"`
	Email string `json:"email"`
	Date  string `json:"date"`
	TZ    int    `json:"tz"`
}

type commitJSON struct {
	Parents   []map[string]string `json:"parents"`
	Author    gitPersonJSON       `json:"author"`
	Committer gitPersonJSON       `json:"committer"`
	Subject   string              `json:"subject"`
	Message   string              `json:"message"`
}

type revisionJSON struct {
	Kind     string      `json:"kind"`
	Number   int         `json:"_number"`
	Created  string      `json:"created"`
	Uploader accountJSON `json:"uploader"`
	Ref      string      `json:"ref"`
	Commit   *commitJSON `json:"commit,omitempty"`
}

type messageJSON struct {
	ID       string       `json:"id"`
	Author   *accountJSON `json:"author,omitempty"`
	Date     string       `json:"date"`
	Message  string       `json:"message"`
	Tag      string       `json:"tag,omitempty"`
	Revision int          `json:"_revision_number"`
}

type changeJSON struct {
	ID              string                  `json:"id"`
	TripletID       string                  `json:"triplet_id"`
	Project         string                  `json:"project"`
	Branch          string                  `json:"branch"`
	ChangeID        string                  `json:"change_id"`
	Subject         string                  `json:"subject"`
	Status          string                  `json:"status"`
	Created         string                  `json:"created"`
	Updated         string                  `json:"updated"`
	Submitted       string                  `json:"submitted,omitempty"`
	Insertions      int                     `json:"insertions"`
	Deletions       int                     `json:"deletions"`
	Number          int                     `json:"_number"`
	Owner           accountJSON             `json:"owner"`
	WorkInProgress  bool                    `json:"work_in_progress,omitempty"`
	IsPrivate       bool                    `json:"is_private,omitempty"`
	CurrentRevision string                  `json:"current_revision,omitempty"`
	Revisions       map[string]revisionJSON `json:"revisions,omitempty"`
	Messages        []messageJSON           `json:"messages,omitempty"`
	MoreChanges     bool                    `json:"_more_changes,omitempty"`
}

func (o outputOptions) account(a *account) accountJSON {
	if !o.detailedAccounts {
		return accountJSON{ID: a.id}
	}
	return accountJSON{ID: a.id, Name: a.name, Email: a.email, Username: a.username}
}

// changeJSON renders c as a ChangeInfo. Callers hold s.mu for reading.
func (o outputOptions) change(c *change) changeJSON {
	cur := c.current()
	out := changeJSON{
		ID:        c.project + "~" + strconv.Itoa(c.number),
		TripletID: c.project + "~" + c.branch + "~" + c.changeID,
		Project:   c.project, Branch: c.branch, ChangeID: c.changeID,
		Subject: cur.subject, Status: c.status,
		Created: formatTime(c.created), Updated: formatTime(c.updated),
		Number: c.number, Owner: o.account(c.owner),
		WorkInProgress: c.wip, IsPrivate: c.private,
	}
	if !c.submitted.IsZero() && c.status == StatusMerged {
		out.Submitted = formatTime(c.submitted)
	}
	if o.currentRevision || o.allRevisions {
		out.CurrentRevision = cur.sha
		out.Revisions = make(map[string]revisionJSON)
		for _, ps := range c.patchSets {
			isCurrent := ps == cur
			if !isCurrent && !o.allRevisions {
				continue
			}
			rev := revisionJSON{
				Kind: "REWORK", Number: ps.number, Created: formatTime(ps.created),
				Uploader: o.account(ps.uploader), Ref: changeRef(c.number, ps.number),
			}
			if o.allCommits || (o.currentCommit && isCurrent) {
				person := gitPersonJSON{Name: ps.uploader.name, Email: ps.uploader.email, Date: formatTime(ps.created)}
				rev.Commit = &commitJSON{
					Parents:   []map[string]string{{"commit": ps.parent, "subject": "Parent"}},
					Author:    person,
					Committer: person,
					Subject:   ps.subject,
					Message:   ps.message,
				}
			}
			out.Revisions[ps.sha] = rev
		}
	}
	if o.messages {
		out.Messages = make([]messageJSON, 0, len(c.messages))
		for _, m := range c.messages {
			mj := messageJSON{ID: m.id, Date: formatTime(m.date), Message: m.text, Tag: m.tag, Revision: m.ps}
			if m.author != nil {
				a := o.account(m.author)
				mj.Author = &a
			}
			out.Messages = append(out.Messages, mj)
		}
	}
	return out
}

func (s *Server) handleQuery(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if len(q["q"]) > 1 {
		writeText(w, http.StatusBadRequest, "the test server supports one q= per request")
		return
	}
	pred, err := parseQuery(q.Get("q"))
	if err != nil {
		writeText(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), errQuery.Error()+": "))
		return
	}
	opts, err := parseOptions(q["o"])
	if err != nil {
		writeText(w, http.StatusBadRequest, err.Error())
		return
	}
	limit, err := intParam(q.Get("n"), maxQueryLimit)
	if err != nil || limit <= 0 || limit > maxQueryLimit {
		limit = maxQueryLimit
	}
	startParam := q.Get("S")
	if startParam == "" {
		startParam = q.Get("start")
	}
	start, err := intParam(startParam, 0)
	if err != nil || start < 0 {
		writeText(w, http.StatusBadRequest, "Invalid start: "+startParam)
		return
	}

	s.mu.RLock()
	var matched []*change
	for _, c := range s.changes {
		if pred(c) {
			matched = append(matched, c)
		}
	}
	slices.SortFunc(matched, func(a, b *change) int {
		if d := b.updated.Compare(a.updated); d != 0 {
			return d
		}
		return b.number - a.number
	})
	out := []changeJSON{}
	end := min(start+limit, len(matched))
	for i := start; i < end; i++ {
		out = append(out, opts.change(matched[i]))
	}
	s.mu.RUnlock()
	if end < len(matched) && len(out) > 0 {
		out[len(out)-1].MoreChanges = true
	}
	writeJSON(w, out)
}

func intParam(s string, def int) (int, error) {
	if s == "" {
		return def, nil
	}
	return strconv.Atoi(s)
}

func (s *Server) handleChange(w http.ResponseWriter, r *http.Request) {
	opts, err := parseOptions(r.URL.Query()["o"])
	if err != nil {
		writeText(w, http.StatusBadRequest, err.Error())
		return
	}
	if strings.HasSuffix(r.URL.Path, "/detail") {
		opts.detailedAccounts, opts.messages = true, true
	}
	id := r.PathValue("id")
	s.mu.RLock()
	c := s.lookupLocked(id)
	var out changeJSON
	if c != nil {
		out = opts.change(c)
	}
	s.mu.RUnlock()
	if c == nil {
		writeText(w, http.StatusNotFound, "Not found: "+id)
		return
	}
	writeJSON(w, out)
}

// lookupLocked finds a change by any identifier Gerrit accepts:
// project~number, project~branch~Change-Id, number or Change-Id.
func (s *Server) lookupLocked(id string) *change {
	if parts := strings.Split(id, "~"); len(parts) == 3 {
		c := s.byChangeID[parts[2]]
		if c != nil && c.project == parts[0] && c.branch == strings.TrimPrefix(parts[1], "refs/heads/") {
			return c
		}
		return nil
	}
	if i := strings.LastIndexByte(id, '~'); i >= 0 {
		n, err := strconv.Atoi(id[i+1:])
		if c := s.changes[n]; err == nil && c != nil && c.project == id[:i] {
			return c
		}
		return nil
	}
	if n, err := strconv.Atoi(id); err == nil {
		return s.changes[n]
	}
	return s.byChangeID[id]
}

func resolveRevision(c *change, rev string) *patchSet {
	if rev == "current" {
		return c.current()
	}
	if n, err := strconv.Atoi(rev); err == nil && len(rev) < 7 {
		if n >= 1 && n <= len(c.patchSets) {
			return c.patchSets[n-1]
		}
		return nil
	}
	if len(rev) < 4 {
		return nil
	}
	for _, ps := range c.patchSets {
		if strings.HasPrefix(ps.sha, rev) {
			return ps
		}
	}
	return nil
}

type reviewInput struct {
	Message string         `json:"message"`
	Labels  map[string]int `json:"labels"`
	Tag     string         `json:"tag"`
	Notify  string         `json:"notify"`
}

// errHTTP carries a status and a plain-text message to the handler.
type errHTTP struct {
	status int
	msg    string
}

func (e *errHTTP) Error() string { return e.msg }

func (s *Server) handleReview(w http.ResponseWriter, r *http.Request) {
	a := accountFrom(r.Context())
	if a == nil {
		writeText(w, http.StatusForbidden, "Authentication required")
		return
	}
	var in reviewInput
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	if err := dec.Decode(&in); err != nil {
		writeText(w, http.StatusBadRequest, "Invalid JSON: "+err.Error())
		return
	}
	switch in.Notify {
	case "", "NONE", "OWNER", "OWNER_REVIEWERS", "ALL":
	default:
		writeText(w, http.StatusBadRequest, "Invalid value for notify: "+in.Notify)
		return
	}
	if err := s.review(a, r.PathValue("id"), r.PathValue("rev"), in); err != nil {
		var he *errHTTP
		if errors.As(err, &he) {
			writeText(w, he.status, he.msg)
			return
		}
		writeText(w, http.StatusInternalServerError, "Internal server error")
		return
	}
	writeJSON(w, map[string]any{"labels": in.Labels})
}

func (s *Server) review(a *account, id, rev string, in reviewInput) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.lookupLocked(id)
	if c == nil {
		return &errHTTP{http.StatusNotFound, "Not found: " + id}
	}
	ps := resolveRevision(c, rev)
	if ps == nil {
		return &errHTTP{http.StatusNotFound, "Not found: " + rev}
	}
	labels := sortedKeys(in.Labels)
	if len(labels) > 0 {
		negative := slices.ContainsFunc(labels, func(l string) bool { return in.Labels[l] < 0 })
		if c.status == StatusAbandoned || (c.status == StatusMerged && negative) {
			return &errHTTP{http.StatusConflict, "change is closed"}
		}
		if ps != c.current() {
			return &errHTTP{http.StatusConflict, fmt.Sprintf("cannot vote on patch set %d of change %d: it is not current", ps.number, c.number)}
		}
		for _, l := range labels {
			if s.forbidden[forbiddenKey{a.username, l}] {
				return &errHTTP{http.StatusForbidden, fmt.Sprintf("Applying label %q: %d is restricted", l, in.Labels[l])}
			}
		}
	}
	if len(in.Message) > commentSizeLimit {
		return &errHTTP{http.StatusBadRequest, fmt.Sprintf("Comment size exceeds limit (%d > %d)", len(in.Message), commentSizeLimit)}
	}
	now := s.tick()
	s.reviews = append(s.reviews, RecordedReview{
		Change: c.number, PatchSet: ps.number, Revision: ps.sha, Account: a.username,
		Message: in.Message, Labels: cloneLabels(in.Labels), Tag: in.Tag, Notify: in.Notify, Time: now,
	})
	if in.Message == "" && len(labels) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Patch Set %d:", ps.number)
	for _, l := range labels {
		switch v := in.Labels[l]; {
		case v > 0:
			fmt.Fprintf(&b, " %s+%d", l, v)
		case v < 0:
			fmt.Fprintf(&b, " %s%d", l, v)
		default:
			fmt.Fprintf(&b, " -%s", l)
		}
	}
	if in.Message != "" {
		b.WriteString("\n\n" + in.Message)
	}
	s.addMessageLocked(c, a, now, b.String(), in.Tag, ps.number)
	c.updated = now
	ev := s.changeEventLocked("comment-added", c, now)
	ev.PatchSet = eventPS(c, ps)
	ev.Author, ev.Approvals, ev.Comment = eventAcct(a), approvalsOf(in.Labels), strPtr(b.String())
	s.publishLocked(ev)
	return nil
}

func (s *Server) handleSelf(w http.ResponseWriter, r *http.Request) {
	a := accountFrom(r.Context())
	if a == nil {
		writeText(w, http.StatusForbidden, "Authentication required")
		return
	}
	s.mu.RLock()
	out := outputOptions{detailedAccounts: true}.account(a)
	s.mu.RUnlock()
	writeJSON(w, out)
}

func (s *Server) handleMembers(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("group")
	s.mu.RLock()
	g := s.groups[id]
	var out []accountJSON
	if g != nil {
		out = make([]accountJSON, 0, len(g.members))
		for _, m := range g.members {
			out = append(out, outputOptions{detailedAccounts: true}.account(m))
		}
	}
	s.mu.RUnlock()
	if g == nil {
		writeText(w, http.StatusNotFound, "Not found: "+id)
		return
	}
	writeJSON(w, out)
}
