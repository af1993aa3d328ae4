package gerrit_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ductbot/ductbot/core/gerrit"
	"github.com/ductbot/ductbot/core/gerrit/gerrittest"
)

const (
	botUser = "ductbot"
	botPass = "s3cret"
)

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newServer starts a test Gerrit with the bot's account.
func newServer(t *testing.T, opts ...func(*gerrittest.Options)) *gerrittest.Server {
	t.Helper()
	o := gerrittest.Options{Username: botUser, Password: botPass}
	for _, f := range opts {
		f(&o)
	}
	s := gerrittest.NewWithOptions(o)
	t.Cleanup(s.Close)
	return s
}

// newClient returns an authenticated client for s with fast retries.
func newClient(t *testing.T, s *gerrittest.Server, opts ...func(*gerrit.Options)) *gerrit.Client {
	t.Helper()
	o := gerrit.Options{
		URL: s.URL(), Username: botUser, Password: botPass,
		Timeout: 30 * time.Second, Retries: 3, Backoff: time.Millisecond, Logger: quietLogger(),
	}
	for _, f := range opts {
		f(&o)
	}
	c, err := gerrit.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func numbers(changes []gerrit.Change) []int {
	out := make([]int, len(changes))
	for i, c := range changes {
		out[i] = c.Number
	}
	return out
}

func TestNewRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"", "gerrit.example.org", "ftp://gerrit.example.org", "http://", "https://user:pw@gerrit.example.org", "http://gerrit.example.org/?q=1", "http://[::1"} {
		if _, err := gerrit.New(gerrit.Options{URL: u}); err == nil {
			t.Errorf("New(%q) succeeded, want an error", u)
		}
	}
	if _, err := gerrit.New(gerrit.Options{URL: "https://gerrit.example.org/r"}); err != nil {
		t.Errorf("New with a good URL: %v", err)
	}
}

func TestChange(t *testing.T) {
	s := newServer(t)
	s.AddAccount("alice", "Alice", "alice@example.org")
	n := s.CreateChange("svc/orchestrator", "main", "Add a cache", "alice")
	ps, sha := s.UploadPatchSet(n, "bob", "Add a cache (v2)")
	s.AddComment(n, "carol", "recheck")
	s.SetWIP(n, true)
	c := newClient(t, s)
	ctx := testContext(t)

	got, err := c.Change(ctx, "svc/orchestrator", n)
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := s.Change(n)
	if got.ID != fmt.Sprintf("svc/orchestrator~%d", n) || got.Number != n || got.Project != "svc/orchestrator" ||
		got.Branch != "main" || got.Subject != "Add a cache (v2)" || got.Status != gerrit.StatusNew || !got.Open() ||
		!got.WorkInProgress || got.Private || got.CurrentRevision != sha || got.PatchSet != ps ||
		got.Ref != fmt.Sprintf("refs/changes/%02d/%d/%d", n%100, n, ps) || !got.Updated.Equal(snap.Updated) {
		t.Errorf("Change() = %+v", got)
	}
	if got.Owner.Username != "alice" || got.Owner.String() != "Alice <alice@example.org>" || got.Uploader.Username != "bob" {
		t.Errorf("owner %+v, uploader %+v", got.Owner, got.Uploader)
	}
	if len(got.Messages) != 4 {
		t.Fatalf("got %d messages, want 4", len(got.Messages))
	}
	m := got.Messages[2]
	if m.Author.Username != "carol" || m.Text != "Patch Set 2:\n\nrecheck" || m.PatchSet != 2 || m.Date.IsZero() || m.ID == "" {
		t.Errorf("message = %+v", m)
	}

	_, err = c.Change(ctx, "svc/orchestrator", n+100)
	if !errors.Is(err, gerrit.ErrNotFound) {
		t.Errorf("unknown change: err = %v, want ErrNotFound", err)
	}
	_, err = c.Change(ctx, "wiki", n)
	if !errors.Is(err, gerrit.ErrNotFound) {
		t.Errorf("change in the wrong project: err = %v, want ErrNotFound", err)
	}
}

func TestAuth(t *testing.T) {
	s := newServer(t)
	ctx := testContext(t)
	self, err := newClient(t, s).Self(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if self.Username != botUser || self.ID == 0 {
		t.Errorf("Self() = %+v", self)
	}

	bad := newClient(t, s, func(o *gerrit.Options) { o.Password = "wrong" })
	before := s.Requests()
	_, err = bad.Self(ctx)
	if !errors.Is(err, gerrit.ErrUnauthorized) {
		t.Errorf("wrong password: err = %v, want ErrUnauthorized", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("error %q holds the password", err)
	}
	if got := s.Requests() - before; got != 1 {
		t.Errorf("401 sent %d requests, want 1 (no retry)", got)
	}

	anon := newClient(t, s, func(o *gerrit.Options) { o.Username, o.Password = "", "" })
	s.CreateChange("wiki", "main", "public", "alice")
	if got, err := anon.Query(ctx, gerrit.Query{Open: true}); err != nil || len(got) != 1 {
		t.Errorf("anonymous query = %v, %v; want one change", numbers(got), err)
	}
	if _, err := anon.Self(ctx); !errors.Is(err, gerrit.ErrForbidden) {
		t.Errorf("anonymous Self: err = %v, want ErrForbidden", err)
	}
}

func TestQueryString(t *testing.T) {
	at := time.Date(2026, 5, 6, 7, 8, 9, 500, time.FixedZone("CEST", 2*3600))
	tests := []struct {
		q    gerrit.Query
		want string
	}{
		{gerrit.Query{Open: true}, "status:open"},
		{gerrit.Query{Closed: true}, "(status:merged OR status:abandoned)"},
		{gerrit.Query{Open: true, Closed: true, After: at}, `after:"2026-05-06 05:08:09"`},
		{gerrit.Query{Projects: []string{"a/b"}, Branches: []string{"main", "rel"}, Open: true, ExcludeWIP: true, ExcludePrivate: true},
			`project:"a/b" (branch:"main" OR branch:"rel") status:open -is:wip -is:private`},
		{gerrit.Query{Projects: []string{`we"ird\name`}}, `project:"we\"ird\\name"`},
		{gerrit.Query{Numbers: []int{3, 14}}, "(change:3 OR change:14)"},
		{gerrit.Query{}, ""},
		// Scopes: each project with its own branches.
		{gerrit.Query{Scopes: []gerrit.ProjectFilter{{Name: "a", Branches: []string{"x", "y"}}, {Name: "b"}}},
			`((project:"a" (branch:"x" OR branch:"y")) OR project:"b")`},
		{gerrit.Query{Scopes: []gerrit.ProjectFilter{{Name: "a", Branches: []string{"x"}}, {Name: "b", Branches: []string{"y"}}}, Open: true},
			`((project:"a" branch:"x") OR (project:"b" branch:"y")) status:open`},
		{gerrit.Query{Scopes: []gerrit.ProjectFilter{{Name: "a", Branches: []string{"x"}}}, After: at},
			`(project:"a" branch:"x") after:"2026-05-06 05:08:09"`},
		{gerrit.Query{Scopes: []gerrit.ProjectFilter{{Name: "a"}}}, `project:"a"`},
		{gerrit.Query{Scopes: []gerrit.ProjectFilter{{Name: "a"}, {Name: "b"}}}, `(project:"a" OR project:"b")`},
		{gerrit.Query{Scopes: []gerrit.ProjectFilter{{Branches: []string{"x"}}, {Name: "b"}}}, `(branch:"x" OR project:"b")`},
		{gerrit.Query{Scopes: []gerrit.ProjectFilter{{Name: `we"ird\name`, Branches: []string{`re"l`}}}},
			`(project:"we\"ird\\name" branch:"re\"l")`},
		// Scopes win over Projects and Branches.
		{gerrit.Query{Scopes: []gerrit.ProjectFilter{{Name: "a"}}, Projects: []string{"z"}, Branches: []string{"q"}}, `project:"a"`},
		// A scope that matches everything selects nothing out.
		{gerrit.Query{Scopes: []gerrit.ProjectFilter{{Name: "a", Branches: []string{"x"}}, {}}, Open: true}, "status:open"},
	}
	for _, tt := range tests {
		if got := tt.q.String(); got != tt.want {
			t.Errorf("%+v.String() = %s, want %s", tt.q, got, tt.want)
		}
	}
}

func TestQueryOperators(t *testing.T) {
	clock := newClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s := newServer(t, func(o *gerrittest.Options) { o.Now = clock.Now })
	open := s.CreateChange("wiki", "main", "open", "alice")
	clock.Advance(time.Hour)
	merged := s.CreateChange("wiki", "main", "merged", "alice")
	s.SetStatus(merged, gerrittest.StatusMerged)
	abandoned := s.CreateChange("wiki", "rel", "abandoned", "alice")
	s.SetStatus(abandoned, gerrittest.StatusAbandoned)
	wip := s.CreateChange("svc/orchestrator", "main", "wip", "alice")
	s.SetWIP(wip, true)
	private := s.CreateChange("svc/orchestrator", "main", "private", "alice")
	s.SetPrivate(private, true)
	other := s.CreateChange("elsewhere", "main", "other", "alice")
	c := newClient(t, s)
	ctx := testContext(t)

	tests := []struct {
		name string
		q    gerrit.Query
		want []int // newest update first
	}{
		{"open", gerrit.Query{Open: true}, []int{other, private, wip, open}},
		{"closed", gerrit.Query{Closed: true}, []int{abandoned, merged}},
		{"projects", gerrit.Query{Projects: []string{"wiki", "svc/orchestrator"}, Open: true, Closed: true, After: clock.Start()},
			[]int{private, wip, abandoned, merged, open}},
		{"branch", gerrit.Query{Projects: []string{"wiki"}, Branches: []string{"rel"}, After: clock.Start()}, []int{abandoned}},
		{"exclusions", gerrit.Query{Open: true, ExcludeWIP: true, ExcludePrivate: true}, []int{other, open}},
		{"after", gerrit.Query{After: clock.Start().Add(30 * time.Minute), Projects: []string{"wiki"}}, []int{abandoned, merged}},
		{"numbers", gerrit.Query{Numbers: []int{open, wip, 999}}, []int{wip, open}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Query(ctx, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(numbers(got), tt.want) {
				t.Errorf("Query(%s) = %v, want %v", tt.q, numbers(got), tt.want)
			}
		})
	}
	if _, err := c.Query(ctx, gerrit.Query{}); err == nil {
		t.Error("empty query succeeded, want an error")
	}
}

// hookTransport calls after once for each request it sends, after the
// answer arrived.
type hookTransport struct {
	calls atomic.Int32
	after func(n int32, r *http.Request)
}

func (h *hookTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil {
		h.after(h.calls.Add(1), r)
	}
	return resp, err
}

func TestQueryPagingDedupes(t *testing.T) {
	s := newServer(t)
	var all []int
	for i := range 250 {
		all = append(all, s.CreateChange("wiki", "main", fmt.Sprint(i), "alice"))
	}
	// Newest first: page 1 holds all[249..150], page 2 all[149..50].
	moved := all[100]
	hook := &hookTransport{after: func(n int32, r *http.Request) {
		if n == 1 {
			// An update between page 1 and page 2 moves a change from page 2
			// to the front: every change before it shifts down by one, so
			// page 2 repeats the last change of page 1.
			s.AddComment(moved, "bob", "bump")
		}
	}}
	c := newClient(t, s, func(o *gerrit.Options) { o.HTTPClient = &http.Client{Transport: hook} })
	got, err := c.Query(testContext(t), gerrit.Query{Projects: []string{"wiki"}, Open: true})
	if err != nil {
		t.Fatal(err)
	}
	if hook.calls.Load() != 3 {
		t.Errorf("sent %d requests, want 3 pages", hook.calls.Load())
	}
	seen := make(map[int]int)
	for _, n := range numbers(got) {
		seen[n]++
	}
	for n, k := range seen {
		if k > 1 {
			t.Errorf("change %d returned %d times", n, k)
		}
	}
	if len(got) != 249 {
		t.Errorf("got %d changes, want 249 (all but the one that moved to the front mid-query)", len(got))
	}
	for _, n := range all {
		if n != moved && seen[n] == 0 {
			t.Errorf("change %d missing", n)
		}
	}
}

func TestQueryPageGuard(t *testing.T) {
	s := newServer(t)
	for i := range 5 {
		s.CreateChange("wiki", "main", fmt.Sprint(i), "alice")
	}
	c := newClient(t, s)
	_, err := c.Query(testContext(t), gerrit.Query{Open: true, PageSize: 1, MaxPages: 3})
	if !errors.Is(err, gerrit.ErrTooManyResults) {
		t.Errorf("err = %v, want ErrTooManyResults", err)
	}
	got, err := c.Query(testContext(t), gerrit.Query{Open: true, PageSize: 1, MaxPages: 5})
	if err != nil || len(got) != 5 {
		t.Errorf("with enough pages: %v, %v", numbers(got), err)
	}
}

func TestChangesBatches(t *testing.T) {
	s := newServer(t)
	var asked []int
	for i := range 120 {
		n := s.CreateChange("wiki", "main", fmt.Sprint(i), "alice")
		if i%10 == 0 {
			s.SetStatus(n, gerrittest.StatusMerged)
		}
		asked = append(asked, n)
	}
	asked = append(asked, 5000, 5001, asked[0]) // unknown ones and a duplicate
	c := newClient(t, s)
	s.ResetRequests()
	got, err := c.Changes(testContext(t), asked)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.RequestCounts()["GET /changes/"]; n != 3 {
		t.Errorf("sent %d queries for 122 distinct numbers, want 3", n)
	}
	if len(got) != 120 {
		t.Errorf("got %d changes, want 120", len(got))
	}
	for _, n := range []int{5000, 5001} {
		if _, ok := got[n]; ok {
			t.Errorf("unknown change %d present", n)
		}
	}
	if c := got[asked[10]]; c == nil || c.Status != gerrit.StatusMerged || c.Open() {
		t.Errorf("change %d = %+v, want merged", asked[10], c)
	}
	if c := got[asked[11]]; c == nil || !c.Open() {
		t.Errorf("change %d = %+v, want open", asked[11], c)
	}
}

func TestPostReview(t *testing.T) {
	s := newServer(t)
	n := s.CreateChange("svc/evaluator", "main", "x", "alice")
	ps, sha := s.UploadPatchSet(n, "alice", "")
	c := newClient(t, s)
	ctx := testContext(t)

	err := c.PostReview(ctx, "svc/evaluator", n, sha, gerrit.Review{
		Message: "Tests passed.", Labels: map[string]int{"Verified": 1}, Tag: "autogenerated:ductbot", Notify: gerrit.NotifyNone,
	})
	if err != nil {
		t.Fatal(err)
	}
	revs := s.Reviews()
	if len(revs) != 1 {
		t.Fatalf("server recorded %d reviews, want 1", len(revs))
	}
	r := revs[0]
	if r.Change != n || r.PatchSet != ps || r.Revision != sha || r.Account != botUser || r.Message != "Tests passed." ||
		r.Labels["Verified"] != 1 || r.Tag != "autogenerated:ductbot" || r.Notify != "NONE" {
		t.Errorf("recorded %+v", r)
	}
	if err := c.PostReview(ctx, "svc/evaluator", n, sha, gerrit.Review{Notify: "EVERYONE"}); err == nil {
		t.Error("bad notify accepted")
	}
}

func TestPostReviewRefusals(t *testing.T) {
	s := newServer(t)
	n := s.CreateChange("wiki", "main", "x", "alice")
	old, _ := s.Change(n)
	_, sha := s.UploadPatchSet(n, "alice", "")
	c := newClient(t, s)
	ctx := testContext(t)
	vote := func(rev string, v int) error {
		return c.PostReview(ctx, "wiki", n, rev, gerrit.Review{Message: "m", Labels: map[string]int{"Verified": v}})
	}
	// requests counts what reaches the server during f.
	requests := func(f func()) int64 {
		before := s.Requests()
		f()
		return s.Requests() - before
	}

	t.Run("outdated patch set", func(t *testing.T) {
		var err error
		if n := requests(func() { err = vote(old.PatchSets[0].Revision, 1) }); n != 1 {
			t.Errorf("sent %d requests, want 1: a 409 is never retried", n)
		}
		if !errors.Is(err, gerrit.ErrConflict) {
			t.Errorf("err = %v, want ErrConflict", err)
		}
	})
	t.Run("forbidden label", func(t *testing.T) {
		s.ForbidLabel(botUser, "Code-Review")
		err := c.PostReview(ctx, "wiki", n, sha, gerrit.Review{Message: "m", Labels: map[string]int{"Code-Review": 1}})
		if !errors.Is(err, gerrit.ErrForbidden) {
			t.Errorf("err = %v, want ErrForbidden", err)
		}
		if !strings.Contains(err.Error(), "Code-Review") {
			t.Errorf("err %q does not carry Gerrit's message", err)
		}
	})
	t.Run("injected 409", func(t *testing.T) {
		s.FailNext(1, http.StatusConflict)
		var err error
		if n := requests(func() { err = vote(sha, -1) }); n != 1 {
			t.Errorf("sent %d requests, want 1", n)
		}
		if !errors.Is(err, gerrit.ErrConflict) {
			t.Errorf("err = %v, want ErrConflict", err)
		}
	})
	// A write is sent again only when the answer says Gerrit did not apply
	// it; a 500, 502 or 504 may come after it was applied.
	for _, status := range []int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusGatewayTimeout} {
		t.Run(fmt.Sprintf("%d is not retried", status), func(t *testing.T) {
			s.FailNext(1, status)
			var err error
			if n := requests(func() { err = vote(sha, 1) }); n != 1 {
				t.Errorf("sent %d requests, want 1", n)
			}
			if !errors.Is(err, gerrit.ErrUnavailable) {
				t.Errorf("err = %v, want ErrUnavailable", err)
			}
		})
	}
	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		t.Run(fmt.Sprintf("%d then success", status), func(t *testing.T) {
			before := len(s.Reviews())
			s.FailNext(2, status)
			var err error
			if n := requests(func() { err = vote(sha, 1) }); n != 3 {
				t.Errorf("sent %d requests, want 3", n)
			}
			if err != nil {
				t.Errorf("err = %v, want success after retries", err)
			}
			if got := len(s.Reviews()) - before; got != 1 {
				t.Errorf("recorded %d reviews, want 1", got)
			}
		})
	}
	t.Run("429 exhausted", func(t *testing.T) {
		s.FailNext(4, http.StatusTooManyRequests)
		var err error
		if n := requests(func() { err = vote(sha, 1) }); n != 4 {
			t.Errorf("sent %d requests, want 1 + 3 retries", n)
		}
		if !errors.Is(err, gerrit.ErrRateLimited) {
			t.Errorf("err = %v, want ErrRateLimited", err)
		}
	})
	t.Run("503 exhausted", func(t *testing.T) {
		s.FailNext(4, http.StatusServiceUnavailable)
		err := vote(sha, 1)
		if !errors.Is(err, gerrit.ErrUnavailable) || errors.Is(err, gerrit.ErrConflict) {
			t.Errorf("err = %v, want ErrUnavailable only", err)
		}
	})
	t.Run("closed change", func(t *testing.T) {
		s.SetStatus(n, gerrittest.StatusMerged)
		err := vote(sha, -1)
		if !errors.Is(err, gerrit.ErrConflict) {
			t.Errorf("err = %v, want ErrConflict", err)
		}
		var he *gerrit.HTTPError
		if !errors.As(err, &he) || he.StatusCode != http.StatusConflict || he.Method != "POST" ||
			he.Path != fmt.Sprintf("/changes/wiki~%d/revisions/%s/review", n, sha) || he.Body != "change is closed" {
			t.Errorf("HTTPError = %+v, want method, path, status and Gerrit's message", he)
		}
	})
	t.Run("unknown change", func(t *testing.T) {
		if err := c.PostReview(ctx, "wiki", 999, sha, gerrit.Review{Message: "m"}); !errors.Is(err, gerrit.ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
	})
}

func TestPostReviewTruncatesLongMessages(t *testing.T) {
	s := newServer(t)
	n := s.CreateChange("wiki", "main", "x", "alice")
	c := newClient(t, s)
	// 'é' is two bytes; with an odd prefix, a byte cut would split one.
	msg := "x" + strings.Repeat("é", 20000)
	if err := c.PostReview(testContext(t), "wiki", n, "current", gerrit.Review{Message: msg}); err != nil {
		t.Fatal(err)
	}
	got := s.Reviews()[0].Message
	if len(got) > gerrit.MaxMessageBytes {
		t.Errorf("posted %d bytes, limit %d", len(got), gerrit.MaxMessageBytes)
	}
	if !strings.HasSuffix(got, "… (truncated)") {
		t.Errorf("posted message ends %q, want the truncation marker", got[len(got)-30:])
	}
	if body := strings.TrimSuffix(got, "\n\n… (truncated)"); !strings.HasPrefix(msg, body) || len(body) < gerrit.MaxMessageBytes-64 {
		t.Errorf("kept %d bytes of the original, want a prefix close to the limit", len(body))
	}
	if strings.ContainsRune(got, '\uFFFD') {
		t.Error("message was cut inside a rune")
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	var mu sync.Mutex
	var times []time.Time
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		first := len(times) == 1
		mu.Unlock()
		if first {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "quota exhausted", http.StatusTooManyRequests)
			return
		}
		io.WriteString(w, ")]}'\n{\"_account_id\":7,\"username\":\"bot\"}")
	}))
	defer ts.Close()
	c, err := gerrit.New(gerrit.Options{URL: ts.URL, Username: "bot", Password: "pw", Backoff: time.Millisecond, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.Self(testContext(t))
	if err != nil || a.ID != 7 {
		t.Fatalf("Self() = %+v, %v", a, err)
	}
	if len(times) != 2 {
		t.Fatalf("server saw %d requests, want 2", len(times))
	}
	if gap := times[1].Sub(times[0]); gap < time.Second {
		t.Errorf("retried after %v, want at least the Retry-After of 1s", gap)
	}
}

func TestNetworkErrorsAreUnavailable(t *testing.T) {
	ts := httptest.NewServer(http.NotFoundHandler())
	url := ts.URL
	ts.Close() // nothing listens there any more
	c, err := gerrit.New(gerrit.Options{URL: url, Retries: 2, Backoff: time.Millisecond, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Query(testContext(t), gerrit.Query{Open: true}); !errors.Is(err, gerrit.ErrUnavailable) {
		t.Errorf("err = %v, want ErrUnavailable", err)
	}
}

func TestPerRequestTimeout(t *testing.T) {
	s := newServer(t)
	s.SetDelay(time.Second)
	c := newClient(t, s, func(o *gerrit.Options) { o.Timeout = 50 * time.Millisecond; o.Retries = -1 })
	_, err := c.Self(testContext(t))
	if !errors.Is(err, gerrit.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want ErrUnavailable wrapping the deadline", err)
	}
	if got := s.Requests(); got != 1 {
		t.Errorf("server saw %d requests, want 1 with retries off", got)
	}
}

func TestGroupMembers(t *testing.T) {
	s := newServer(t)
	s.AddAccount("alice", "Alice", "alice@example.org")
	uuid := s.AddGroup("ductbot trusted/core", "alice", "bob")
	c := newClient(t, s)
	ctx := testContext(t)
	for _, id := range []string{"ductbot trusted/core", uuid} {
		got, err := c.GroupMembers(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].Email != "alice@example.org" || got[1].Username != "bob" {
			t.Errorf("GroupMembers(%q) = %+v", id, got)
		}
	}
	if _, err := c.GroupMembers(ctx, "nobody"); !errors.Is(err, gerrit.ErrNotFound) {
		t.Errorf("unknown group: err = %v, want ErrNotFound", err)
	}
}

// A review Gerrit applied but whose answer was lost (the client timed out)
// is not sent again: a retry would post it twice.
func TestPostReviewAnswerLostIsNotResent(t *testing.T) {
	s := newServer(t)
	n := s.CreateChange("wiki", "main", "x", "alice")
	ch, _ := s.Change(n)
	sha := ch.PatchSets[len(ch.PatchSets)-1].Revision
	target, _ := url.Parse(s.URL())
	proxy := httputil.NewSingleHostReverseProxy(target)
	var posts atomic.Int32
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			posts.Add(1)
			proxy.ServeHTTP(httptest.NewRecorder(), r) // Gerrit applies it...
			time.Sleep(500 * time.Millisecond)         // ...and the answer is late
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(slow.Close)
	c, err := gerrit.New(gerrit.Options{URL: slow.URL, Username: botUser, Password: botPass, Timeout: 100 * time.Millisecond, Retries: 3, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	err = c.PostReview(testContext(t), "wiki", n, sha, gerrit.Review{Message: "m", Labels: map[string]int{"Verified": 1}})
	if !errors.Is(err, gerrit.ErrUnavailable) {
		t.Errorf("err = %v, want ErrUnavailable", err)
	}
	if got := posts.Load(); got != 1 {
		t.Errorf("sent the review %d times, want once", got)
	}
	if got := len(s.Reviews()); got != 1 {
		t.Errorf("Gerrit recorded %d reviews, want 1", got)
	}
}
