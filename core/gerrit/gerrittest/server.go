// Package gerrittest is an in-process Gerrit server for tests, benchmarks and
// the local demo. It speaks the part of Gerrit's documented REST API that
// ductbot uses, with Gerrit's wire details: the )]}' XSSI prefix on every JSON
// body, plain-text error bodies, timestamps as "2006-01-02 15:04:05.000000000"
// UTC, basic auth under /a/, offset paging with S= and _more_changes, and the
// refusals a real server gives (409 on closed or outdated patch sets, 403 on
// a label the account may not vote).
//
// Tests drive it with methods such as [Server.CreateChange],
// [Server.UploadPatchSet] and [Server.AddComment], inspect what a client
// posted with [Server.Reviews], and inject faults with [Server.FailNext],
// [Server.FailMatching] and [Server.SetDelay]. All methods are safe for
// concurrent use.
package gerrittest

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Server.
type Options struct {
	// Username and Password, when Username is set, create an account that
	// can authenticate under /a/ with HTTP basic auth.
	Username string
	Password string
	// Addr, when set, is the address to listen on, such as
	// "127.0.0.1:8081" for a demo with a fixed URL; by default the server
	// listens on a free loopback port.
	Addr string
	// Now is the server's clock, used for created, updated and message
	// dates. The server makes its timestamps strictly increasing, so two
	// events never share one. Defaults to time.Now.
	Now func() time.Time
}

// Server is an in-process Gerrit. The zero value is not usable: call New or
// NewWithOptions.
type Server struct {
	ts  *httptest.Server
	now func() time.Time

	mu         sync.RWMutex
	last       time.Time // the last timestamp handed out
	seq        int       // feeds generated SHA-1s and message IDs
	nextChange int
	nextAcct   int
	changes    map[int]*change
	byChangeID map[string]*change
	accounts   map[string]*account // by username
	groups     map[string]*group   // by name and by UUID
	forbidden  map[forbiddenKey]bool
	reviews    []RecordedReview

	faultMu  sync.Mutex
	failures []*failure
	delay    time.Duration

	requests atomic.Int64
	countMu  sync.Mutex
	counts   map[string]int64

	ssh *sshServer // nil until StartSSH; set under mu
}

type forbiddenKey struct{ username, label string }

type failure struct {
	match  func(*http.Request) bool
	status int
	left   int
}

// New starts a server without credentials: anonymous reads work, and
// accounts for /a/ can be added with AddAccount and SetHTTPPassword.
func New() *Server { return NewWithOptions(Options{}) }

// NewWithOptions starts a server configured by opts. It panics if it cannot
// listen on opts.Addr, like httptest.NewServer.
func NewWithOptions(opts Options) *Server {
	s := &Server{
		now:        opts.Now,
		nextChange: 1,
		nextAcct:   1000000,
		changes:    make(map[int]*change),
		byChangeID: make(map[string]*change),
		accounts:   make(map[string]*account),
		groups:     make(map[string]*group),
		forbidden:  make(map[forbiddenKey]bool),
		counts:     make(map[string]int64),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if opts.Username != "" {
		s.AddAccount(opts.Username, opts.Username, opts.Username+"@example.com")
		s.SetHTTPPassword(opts.Username, opts.Password)
	}
	s.ts = httptest.NewUnstartedServer(s.routes())
	if opts.Addr != "" {
		l, err := net.Listen("tcp", opts.Addr)
		if err != nil {
			panic(fmt.Sprintf("gerrittest: listening on %s: %v", opts.Addr, err))
		}
		s.ts.Listener.Close()
		s.ts.Listener = l
	}
	s.ts.Start()
	return s
}

// URL is the server's base URL, without a trailing slash.
func (s *Server) URL() string { return s.ts.URL }

// Close shuts the server down, its SSH endpoint included, and blocks until
// its requests and sessions are done.
func (s *Server) Close() {
	if ss := s.sshServer(); ss != nil {
		ss.close()
	}
	s.ts.Close()
}

// tick returns the next timestamp: the clock, or just after the previous
// timestamp when the clock did not move. Callers hold s.mu.
func (s *Server) tick() time.Time {
	t := s.now().UTC().Truncate(time.Microsecond)
	if !t.After(s.last) {
		t = s.last.Add(time.Microsecond)
	}
	s.last = t
	return t
}

func (s *Server) nextSHA(parts ...any) string {
	s.seq++
	return hashID(append(parts, s.seq)...)
}

// AddAccount creates an account, or updates the name and email of an
// existing one, and returns it.
func (s *Server) AddAccount(username, name, email string) Account {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accountLocked(username)
	a.name, a.email = name, email
	return a.snapshot()
}

// accountLocked returns the account for username, creating it with default
// name and email when missing. Callers hold s.mu.
func (s *Server) accountLocked(username string) *account {
	if a, ok := s.accounts[username]; ok {
		return a
	}
	a := &account{id: s.nextAcct, username: username, name: username, email: username + "@example.com"}
	s.nextAcct++
	s.accounts[username] = a
	return a
}

// SetHTTPPassword lets username authenticate under /a/ with password,
// creating the account if needed.
func (s *Server) SetHTTPPassword(username, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accountLocked(username).password = password
}

// AddGroup creates or replaces a group with the given members (usernames,
// created as accounts if needed) and returns its UUID. The group can be
// looked up by name or UUID.
func (s *Server) AddGroup(name string, members ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := &group{name: name, uuid: hashID("group", name)}
	for _, m := range members {
		g.members = append(g.members, s.accountLocked(m))
	}
	s.groups[g.name] = g
	s.groups[g.uuid] = g
	return g.uuid
}

// ForbidLabel makes votes on label by username fail with 403, as when the
// account lacks the permission for that label.
func (s *Server) ForbidLabel(username, label string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forbidden[forbiddenKey{username, label}] = true
}

// CreateChange creates a change on project and branch, owned by owner
// (created as an account if needed), with patch set 1 uploaded by the owner,
// and returns its number.
func (s *Server) CreateChange(project, branch, subject, owner string) int {
	return s.CreateChangeMessage(project, branch, subject, owner)
}

// CreateChangeMessage creates a change whose first patch set has the full
// commit message given: its first line is the subject, and its footers
// (Depends-On: and the like) are kept. A Change-Id footer in the message
// is used as the change's Change-Id; without one the server makes one up
// and appends the footer, as Gerrit's commit-msg hook would.
func (s *Server) CreateChangeMessage(project, branch, message, owner string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.createLocked(project, branch, message, s.accountLocked(owner), "")
}

// CherryPick creates a change on branch with the same Change-Id and commit
// message as change number's current patch set, as Gerrit's cherry-pick
// does, and returns its number.
func (s *Server) CherryPick(number int, branch, owner string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	from := s.mustChange(number)
	return s.createLocked(from.project, branch, from.current().message, s.accountLocked(owner), from.changeID)
}

func (s *Server) createLocked(project, branch, message string, owner *account, changeID string) int {
	now := s.tick()
	c := &change{
		number:  s.nextChange,
		project: project,
		branch:  strings.TrimPrefix(branch, "refs/heads/"),
		status:  StatusNew,
		owner:   owner,
		created: now,
	}
	s.nextChange++
	switch {
	case changeID != "":
		c.changeID = changeID
	case changeIDFooter(message) != "":
		c.changeID = changeIDFooter(message)
	default:
		c.changeID = "I" + hashID("change-id", project, c.number)
	}
	s.changes[c.number] = c
	if s.byChangeID[c.changeID] == nil {
		s.byChangeID[c.changeID] = c
	}
	s.uploadLocked(c, c.owner, message, now)
	return c.number
}

// UploadPatchSet uploads a new patch set to change number, by uploader
// (created as an account if needed), and returns its number and SHA-1. An
// empty subject keeps the previous commit message. It panics if the change
// does not exist, since that is a mistake in the test.
func (s *Server) UploadPatchSet(number int, uploader, subject string) (ps int, sha string) {
	return s.UploadPatchSetMessage(number, uploader, subject)
}

// UploadPatchSetMessage is UploadPatchSet with a full commit message (see
// CreateChangeMessage); an empty message keeps the previous one.
func (s *Server) UploadPatchSetMessage(number int, uploader, message string) (ps int, sha string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.mustChange(number)
	if message == "" {
		message = c.current().message
	}
	p := s.uploadLocked(c, s.accountLocked(uploader), message, s.tick())
	return p.number, p.sha
}

// uploadLocked adds a patch set with the commit message given (its first
// line the subject), appending the change's Change-Id footer when the
// message has none.
func (s *Server) uploadLocked(c *change, uploader *account, message string, now time.Time) *patchSet {
	message = strings.TrimRight(message, "\n")
	if changeIDFooter(message) == "" {
		sep := "\n\n"
		if hasFooters(message) {
			sep = "\n"
		}
		message += sep + "Change-Id: " + c.changeID
	}
	subject, _, _ := strings.Cut(message, "\n")
	p := &patchSet{
		number:   len(c.patchSets) + 1,
		uploader: uploader,
		created:  now,
		subject:  subject,
		message:  message + "\n",
		parent:   hashID("parent", c.project, c.branch),
	}
	p.sha = s.nextSHA("revision", c.number, p.number)
	c.patchSets = append(c.patchSets, p)
	s.addMessageLocked(c, uploader, now, fmt.Sprintf("Uploaded patch set %d.", p.number), "autogenerated:gerrit:newPatchSet", p.number)
	c.updated = now
	s.publishLocked(refUpdated(c.project, changeRef(c.number, p.number), "", p.sha, uploader, now))
	ev := s.changeEventLocked("patchset-created", c, now)
	ev.Uploader = eventAcct(uploader)
	s.publishLocked(ev)
	return p
}

// changeIDFooter returns the value of the message's Change-Id footer, or "".
func changeIDFooter(message string) string {
	lines := strings.Split(strings.TrimRight(message, "\n"), "\n")
	for i := len(lines) - 1; i > 0 && lines[i] != ""; i-- {
		if v, ok := strings.CutPrefix(lines[i], "Change-Id: "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// hasFooters reports whether the message's last paragraph (not its
// subject) is made of "Key: value" lines.
func hasFooters(message string) bool {
	paras := strings.Split(strings.TrimRight(message, "\n"), "\n\n")
	if len(paras) < 2 {
		return false
	}
	for _, l := range strings.Split(paras[len(paras)-1], "\n") {
		k, _, ok := strings.Cut(l, ": ")
		if !ok || k == "" || strings.Contains(k, " ") {
			return false
		}
	}
	return true
}

func (s *Server) addMessageLocked(c *change, author *account, date time.Time, text, tag string, ps int) {
	c.messages = append(c.messages, &message{
		id: s.nextSHA("message", c.number), author: author, date: date, text: text, tag: tag, ps: ps,
	})
}

// AddComment adds a change message by author on the current patch set, the
// way Gerrit records a reply without votes: "Patch Set N:\n\n" + text.
func (s *Server) AddComment(number int, author, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.mustChange(number)
	now := s.tick()
	ps := c.current().number
	a := s.accountLocked(author)
	msg := fmt.Sprintf("Patch Set %d:\n\n%s", ps, text)
	s.addMessageLocked(c, a, now, msg, "", ps)
	c.updated = now
	ev := s.changeEventLocked("comment-added", c, now)
	ev.Author, ev.Comment = eventAcct(a), strPtr(msg)
	s.publishLocked(ev)
}

// SetStatus sets a change's status to StatusNew, StatusMerged or
// StatusAbandoned, adding the message Gerrit writes for it.
func (s *Server) SetStatus(number int, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.mustChange(number)
	now := s.tick()
	var text, tag string
	switch status {
	case StatusMerged:
		text, tag = "Change has been successfully merged", "autogenerated:gerrit:merged"
		c.submitted = now
	case StatusAbandoned:
		text, tag = "Abandoned", "autogenerated:gerrit:abandon"
	case StatusNew:
		text, tag = "Restored", "autogenerated:gerrit:restore"
	default:
		panic(fmt.Sprintf("gerrittest: unknown status %q", status))
	}
	c.status = status
	s.addMessageLocked(c, nil, now, text, tag, c.current().number)
	c.updated = now
	// The test server has no actor for these: the owner acts.
	switch status {
	case StatusMerged:
		ev := s.changeEventLocked("change-merged", c, now)
		ev.Submitter, ev.NewRev = eventAcct(c.owner), c.current().sha
		s.publishLocked(refUpdated(c.project, "refs/heads/"+c.branch, c.current().parent, c.current().sha, c.owner, now))
		s.publishLocked(ev)
	case StatusAbandoned:
		ev := s.changeEventLocked("change-abandoned", c, now)
		ev.Abandoner, ev.Reason = eventAcct(c.owner), strPtr("")
		s.publishLocked(ev)
	case StatusNew:
		ev := s.changeEventLocked("change-restored", c, now)
		ev.Restorer, ev.Reason = eventAcct(c.owner), strPtr("")
		s.publishLocked(ev)
	}
}

// SetWIP marks a change work in progress or ready for review.
func (s *Server) SetWIP(number int, wip bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.mustChange(number)
	now := s.tick()
	c.wip = wip
	text := "Set Ready For Review"
	if wip {
		text = "Set Work In Progress"
	}
	s.addMessageLocked(c, c.owner, now, text, "autogenerated:gerrit:setWorkInProgress", c.current().number)
	c.updated = now
	ev := s.changeEventLocked("wip-state-changed", c, now)
	ev.Changer = eventAcct(c.owner)
	s.publishLocked(ev)
}

// SetPrivate marks a change private or public.
func (s *Server) SetPrivate(number int, private bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.mustChange(number)
	c.private = private
	c.updated = s.tick()
	ev := s.changeEventLocked("private-state-changed", c, c.updated)
	ev.Changer = eventAcct(c.owner)
	s.publishLocked(ev)
}

// DeleteChange deletes a change, as Gerrit's DELETE /changes/{id} does:
// queries and lookups no longer find it. It panics if the change does not
// exist.
func (s *Server) DeleteChange(number int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.mustChange(number)
	delete(s.changes, number)
	if s.byChangeID[c.changeID] == c {
		delete(s.byChangeID, c.changeID)
	}
	ev := s.changeEventLocked("change-deleted", c, s.tick())
	ev.Deleter = eventAcct(c.owner)
	s.publishLocked(ev)
}

// Change returns a snapshot of change number, and false if it does not exist.
func (s *Server) Change(number int) (Change, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.changes[number]
	if !ok {
		return Change{}, false
	}
	return c.snapshot(), true
}

// Reviews returns the reviews accepted so far, oldest first.
func (s *Server) Reviews() []RecordedReview {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]RecordedReview, len(s.reviews))
	for i, r := range s.reviews {
		r.Labels = cloneLabels(r.Labels)
		out[i] = r
	}
	return out
}

func (s *Server) mustChange(number int) *change {
	c, ok := s.changes[number]
	if !ok {
		panic(fmt.Sprintf("gerrittest: no change %d", number))
	}
	return c
}

// Requests returns how many HTTP requests the server has received,
// including those answered with an injected failure.
func (s *Server) Requests() int64 { return s.requests.Load() }

// RequestCounts returns the number of requests per route, keyed by method
// and route pattern, such as "GET /changes/" or
// "POST /changes/{id}/revisions/{rev}/review" (the /a/ prefix is dropped).
func (s *Server) RequestCounts() map[string]int64 {
	s.countMu.Lock()
	defer s.countMu.Unlock()
	out := make(map[string]int64, len(s.counts))
	for k, v := range s.counts {
		out[k] = v
	}
	return out
}

// ResetRequests sets the request counters to zero.
func (s *Server) ResetRequests() {
	s.countMu.Lock()
	defer s.countMu.Unlock()
	s.requests.Store(0)
	clear(s.counts)
}

// FailNext makes the next n requests fail with status and a plain-text
// body, before authentication, as a proxy or an overloaded server would.
func (s *Server) FailNext(n, status int) { s.FailMatching(nil, status, n) }

// FailMatching makes the next n requests for which match returns true fail
// with status. A nil match matches every request. Failures registered
// earlier are consulted first.
func (s *Server) FailMatching(match func(*http.Request) bool, status, n int) {
	if n <= 0 {
		return
	}
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.failures = append(s.failures, &failure{match: match, status: status, left: n})
}

// SetDelay makes every request wait d before it is handled (0 turns it off).
func (s *Server) SetDelay(d time.Duration) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.delay = d
}

// injected returns the status of an injected failure for r, or 0.
func (s *Server) injected(r *http.Request) int {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	for i, f := range s.failures {
		if f.match != nil && !f.match(r) {
			continue
		}
		f.left--
		if f.left <= 0 {
			s.failures = append(s.failures[:i], s.failures[i+1:]...)
		}
		return f.status
	}
	return 0
}
