package gerrittest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ductbot/ductbot/core/gerrit/gerrittest"
)

// gerritTime is the format Gerrit documents for JSON timestamps.
var gerritTime = regexp.MustCompile(`^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{9}$`)

type response struct {
	status int
	header http.Header
	body   string
}

// call sends a raw request and returns the answer.
func call(t *testing.T, method, url, user, pass, body string) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

// decodeJSON checks the XSSI prefix and decodes the rest into v.
func decodeJSON(t *testing.T, r response, v any) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, body %q", r.status, r.body)
	}
	rest, ok := strings.CutPrefix(r.body, ")]}'\n")
	if !ok {
		t.Fatalf("JSON body does not start with the XSSI prefix: %q", r.body[:min(len(r.body), 20)])
	}
	if err := json.Unmarshal([]byte(rest), v); err != nil {
		t.Fatalf("decoding %q: %v", rest, err)
	}
}

func wantPlainText(t *testing.T, r response, status int, contains string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d (body %q)", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want text/plain", ct)
	}
	if strings.HasPrefix(r.body, ")]}'") {
		t.Errorf("error body has the XSSI prefix: %q", r.body)
	}
	if !strings.Contains(r.body, contains) {
		t.Errorf("body %q does not contain %q", r.body, contains)
	}
}

func TestChangeInfoFormat(t *testing.T) {
	s := gerrittest.New()
	defer s.Close()
	s.AddAccount("alice", "Alice Liddell", "alice@example.org")
	n := s.CreateChange("svc/orchestrator", "main", "Add a cache", "alice")
	ps, sha := s.UploadPatchSet(n, "bob", "Add a cache, v2")
	s.AddComment(n, "carol", "recheck")

	var got []map[string]any
	decodeJSON(t, call(t, "GET", s.URL()+"/changes/?q=status:open&o=CURRENT_REVISION&o=CURRENT_COMMIT&o=DETAILED_ACCOUNTS&o=MESSAGES", "", "", ""), &got)
	if len(got) != 1 {
		t.Fatalf("got %d changes, want 1", len(got))
	}
	c := got[0]
	for key, want := range map[string]any{
		"id": fmt.Sprintf("svc/orchestrator~%d", n), "project": "svc/orchestrator", "branch": "main",
		"subject": "Add a cache, v2", "status": "NEW", "_number": float64(n), "current_revision": sha,
	} {
		if c[key] != want {
			t.Errorf("%s = %v, want %v", key, c[key], want)
		}
	}
	for _, key := range []string{"work_in_progress", "is_private", "_more_changes"} {
		if _, ok := c[key]; ok {
			t.Errorf("%s present, want it omitted when false", key)
		}
	}
	for _, key := range []string{"created", "updated"} {
		if s, _ := c[key].(string); !gerritTime.MatchString(s) {
			t.Errorf("%s = %q, not in Gerrit's timestamp format", key, c[key])
		}
	}
	owner := c["owner"].(map[string]any)
	if owner["name"] != "Alice Liddell" || owner["email"] != "alice@example.org" || owner["username"] != "alice" || owner["_account_id"] == nil {
		t.Errorf("owner = %v, want a detailed account", owner)
	}
	revs := c["revisions"].(map[string]any)
	if len(revs) != 1 {
		t.Fatalf("revisions = %v, want only the current one", revs)
	}
	rev := revs[sha].(map[string]any)
	if rev["_number"] != float64(ps) || rev["ref"] != fmt.Sprintf("refs/changes/%02d/%d/%d", n%100, n, ps) {
		t.Errorf("revision = %v", rev)
	}
	if up := rev["uploader"].(map[string]any); up["username"] != "bob" {
		t.Errorf("uploader = %v, want bob", up)
	}
	if commit := rev["commit"].(map[string]any); commit["subject"] != "Add a cache, v2" || !strings.Contains(commit["message"].(string), "Change-Id: I") {
		t.Errorf("commit = %v", commit)
	}
	msgs := c["messages"].([]any)
	if len(msgs) != 3 {
		t.Fatalf("got %d messages, want 3", len(msgs))
	}
	last := msgs[2].(map[string]any)
	if last["message"] != "Patch Set 2:\n\nrecheck" || last["_revision_number"] != float64(2) {
		t.Errorf("last message = %v", last)
	}
	if d, _ := last["date"].(string); !gerritTime.MatchString(d) {
		t.Errorf("message date %q not in Gerrit's format", d)
	}
	if a := last["author"].(map[string]any); a["username"] != "carol" {
		t.Errorf("author = %v, want carol", a)
	}

	// Without options: no revisions, no messages, owner by ID only.
	var bare []map[string]any
	decodeJSON(t, call(t, "GET", s.URL()+"/changes/?q=status:open", "", "", ""), &bare)
	for _, key := range []string{"revisions", "current_revision", "messages"} {
		if _, ok := bare[0][key]; ok {
			t.Errorf("%s present without the option asking for it", key)
		}
	}
	if owner := bare[0]["owner"].(map[string]any); len(owner) != 1 {
		t.Errorf("owner without DETAILED_ACCOUNTS = %v, want only _account_id", owner)
	}
}

func TestQueryPaging(t *testing.T) {
	s := gerrittest.New()
	defer s.Close()
	for i := range 5 {
		s.CreateChange("wiki", "main", fmt.Sprintf("change %d", i), "alice")
	}
	type item struct {
		Number int  `json:"_number"`
		More   bool `json:"_more_changes"`
	}
	var pages [][]item
	for _, start := range []int{0, 2, 4} {
		var page []item
		decodeJSON(t, call(t, "GET", fmt.Sprintf("%s/changes/?q=project:wiki&n=2&S=%d", s.URL(), start), "", "", ""), &page)
		pages = append(pages, page)
	}
	want := [][]item{
		{{5, false}, {4, true}},
		{{3, false}, {2, true}},
		{{1, false}},
	}
	if fmt.Sprint(pages) != fmt.Sprint(want) {
		t.Errorf("pages = %v, want %v (newest first, _more_changes on the last element only)", pages, want)
	}
	var empty []item
	decodeJSON(t, call(t, "GET", s.URL()+"/changes/?q=project:nothing", "", "", ""), &empty)
	if empty == nil || len(empty) != 0 {
		t.Errorf("no match: got %v, want []", empty)
	}
}

func TestErrorsArePlainText(t *testing.T) {
	s := gerrittest.NewWithOptions(gerrittest.Options{Username: "bot", Password: "secret"})
	defer s.Close()
	n := s.CreateChange("wiki", "main", "x", "alice")

	wantPlainText(t, call(t, "GET", s.URL()+"/changes/?q=foo:bar", "", "", ""), 400, "Unsupported operator foo:bar")
	wantPlainText(t, call(t, "GET", s.URL()+"/changes/?q=status:open&o=BOGUS", "", "", ""), 400, "BOGUS")
	wantPlainText(t, call(t, "GET", s.URL()+"/changes/wiki~999/detail", "", "", ""), 404, "Not found")
	r := call(t, "GET", s.URL()+"/a/accounts/self", "bot", "wrong", "")
	wantPlainText(t, r, 401, "Unauthorized")
	if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
	}
	wantPlainText(t, call(t, "GET", s.URL()+"/a/accounts/self", "", "", ""), 401, "Unauthorized")
	wantPlainText(t, call(t, "GET", s.URL()+"/accounts/self", "", "", ""), 403, "Authentication required")
	wantPlainText(t, call(t, "POST", fmt.Sprintf("%s/changes/%d/revisions/current/review", s.URL(), n), "", "", `{"message":"hi"}`), 403, "Authentication required")

	var self map[string]any
	decodeJSON(t, call(t, "GET", s.URL()+"/a/accounts/self", "bot", "secret", ""), &self)
	if self["username"] != "bot" {
		t.Errorf("self = %v", self)
	}
}

func TestChangeIdentifiers(t *testing.T) {
	s := gerrittest.New()
	defer s.Close()
	n := s.CreateChange("svc/evaluator", "main", "x", "alice")
	c, _ := s.Change(n)
	for _, id := range []string{
		fmt.Sprintf("svc%%2Fevaluator~%d", n),
		fmt.Sprint(n),
		c.ChangeID,
		"svc%2Fevaluator~main~" + c.ChangeID,
	} {
		var got map[string]any
		decodeJSON(t, call(t, "GET", s.URL()+"/changes/"+id+"/detail", "", "", ""), &got)
		if got["_number"] != float64(n) {
			t.Errorf("%s: _number = %v", id, got["_number"])
		}
		if _, ok := got["messages"]; !ok {
			t.Errorf("%s: /detail without messages", id)
		}
	}
	wantPlainText(t, call(t, "GET", fmt.Sprintf("%s/changes/wiki~%d", s.URL(), n), "", "", ""), 404, "Not found")
}

func TestReview(t *testing.T) {
	s := gerrittest.NewWithOptions(gerrittest.Options{Username: "bot", Password: "pw"})
	defer s.Close()
	n := s.CreateChange("wiki", "main", "x", "alice")
	old, _ := s.Change(n)
	_, sha2 := s.UploadPatchSet(n, "alice", "")
	post := func(rev, body string) response {
		return call(t, "POST", fmt.Sprintf("%s/a/changes/wiki~%d/revisions/%s/review", s.URL(), n, rev), "bot", "pw", body)
	}

	before, _ := s.Change(n)
	var res map[string]any
	decodeJSON(t, post(sha2, `{"message":"Build passed","labels":{"Verified":1},"tag":"autogenerated:ductbot","notify":"NONE"}`), &res)
	after, _ := s.Change(n)
	if !after.Updated.After(before.Updated) {
		t.Errorf("updated did not advance: %v -> %v", before.Updated, after.Updated)
	}
	m := after.Messages[len(after.Messages)-1]
	if m.Text != "Patch Set 2: Verified+1\n\nBuild passed" || m.Tag != "autogenerated:ductbot" || m.Author == nil || m.Author.Username != "bot" {
		t.Errorf("message = %+v", m)
	}
	revs := s.Reviews()
	if len(revs) != 1 {
		t.Fatalf("got %d reviews, want 1", len(revs))
	}
	r := revs[0]
	if r.Change != n || r.PatchSet != 2 || r.Revision != sha2 || r.Account != "bot" || r.Labels["Verified"] != 1 || r.Notify != "NONE" || r.Tag != "autogenerated:ductbot" {
		t.Errorf("recorded review = %+v", r)
	}

	// Votes on the outdated patch set 1 are refused; comments are not.
	wantPlainText(t, post(old.PatchSets[0].Revision, `{"labels":{"Verified":-1}}`), 409, "not current")
	decodeJSON(t, post("1", `{"message":"late comment"}`), &res)
	// "current" and patch set numbers resolve.
	decodeJSON(t, post("current", `{"labels":{"Code-Review":1}}`), &res)
	wantPlainText(t, post("7", `{"message":"x"}`), 404, "Not found")
	// Invalid notify and oversized messages are refused.
	wantPlainText(t, post("current", `{"message":"x","notify":"EVERYONE"}`), 400, "notify")
	big, _ := json.Marshal(map[string]string{"message": strings.Repeat("a", 16<<10+1)})
	wantPlainText(t, post("current", string(big)), 400, "Comment size exceeds limit")

	// Forbidden labels.
	s.ForbidLabel("bot", "Verified")
	wantPlainText(t, post("current", `{"labels":{"Verified":1}}`), 403, "Verified")
	decodeJSON(t, post("current", `{"message":"no vote"}`), &res)

	// Closed changes refuse negative votes; abandoned ones any vote.
	s.SetStatus(n, gerrittest.StatusMerged)
	wantPlainText(t, post("current", `{"labels":{"Code-Review":-1}}`), 409, "change is closed")
	decodeJSON(t, post("current", `{"labels":{"Code-Review":1}}`), &res)
	s.SetStatus(n, gerrittest.StatusAbandoned)
	wantPlainText(t, post("current", `{"labels":{"Code-Review":1}}`), 409, "change is closed")

	if got := len(s.Reviews()); got != 5 {
		t.Errorf("recorded %d reviews, want the 5 accepted ones", got)
	}
}

func TestClockIsStrictlyIncreasing(t *testing.T) {
	fixed := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	s := gerrittest.NewWithOptions(gerrittest.Options{Now: func() time.Time { return fixed }})
	defer s.Close()
	a := s.CreateChange("wiki", "main", "a", "alice")
	b := s.CreateChange("wiki", "main", "b", "alice")
	s.AddComment(a, "bob", "hi")
	ca, _ := s.Change(a)
	cb, _ := s.Change(b)
	if !ca.Created.Equal(fixed) || !cb.Created.After(ca.Created) || !ca.Updated.After(cb.Created) {
		t.Errorf("timestamps a.created=%v b.created=%v a.updated=%v: want strictly increasing from the clock", ca.Created, cb.Created, ca.Updated)
	}
}

func TestFaultInjection(t *testing.T) {
	s := gerrittest.New()
	defer s.Close()
	s.CreateChange("wiki", "main", "a", "alice")
	s.FailNext(2, http.StatusServiceUnavailable)
	for range 2 {
		wantPlainText(t, call(t, "GET", s.URL()+"/changes/?q=status:open", "", "", ""), 503, "Service Unavailable")
	}
	var got []any
	decodeJSON(t, call(t, "GET", s.URL()+"/changes/?q=status:open", "", "", ""), &got)

	s.FailMatching(func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/detail") }, http.StatusTooManyRequests, 1)
	decodeJSON(t, call(t, "GET", s.URL()+"/changes/?q=status:open", "", "", ""), &got)
	wantPlainText(t, call(t, "GET", s.URL()+"/changes/1/detail", "", "", ""), 429, "Too Many Requests")
	var one map[string]any
	decodeJSON(t, call(t, "GET", s.URL()+"/changes/1/detail", "", "", ""), &one)

	if got := s.Requests(); got != 6 {
		t.Errorf("Requests() = %d, want 6", got)
	}
	counts := s.RequestCounts()
	if counts["GET /changes/"] != 4 || counts["GET /changes/{id}/detail"] != 2 {
		t.Errorf("RequestCounts() = %v", counts)
	}
	s.ResetRequests()
	if s.Requests() != 0 || len(s.RequestCounts()) != 0 {
		t.Errorf("ResetRequests left %d, %v", s.Requests(), s.RequestCounts())
	}
}

func TestDelay(t *testing.T) {
	s := gerrittest.New()
	defer s.Close()
	s.SetDelay(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL()+"/changes/?q=status:open", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("request answered before the delay")
	}
	s.SetDelay(0)
	var got []any
	decodeJSON(t, call(t, "GET", s.URL()+"/changes/?q=status:open", "", "", ""), &got)
}

func TestGroups(t *testing.T) {
	s := gerrittest.New()
	defer s.Close()
	s.AddAccount("alice", "Alice", "alice@example.org")
	uuid := s.AddGroup("Trusted Folk", "alice", "bob")
	for _, id := range []string{"Trusted%20Folk", uuid} {
		var members []map[string]any
		decodeJSON(t, call(t, "GET", s.URL()+"/groups/"+id+"/members/", "", "", ""), &members)
		if len(members) != 2 || members[0]["email"] != "alice@example.org" || members[1]["username"] != "bob" {
			t.Errorf("%s: members = %v", id, members)
		}
	}
	wantPlainText(t, call(t, "GET", s.URL()+"/groups/nope/members/", "", "", ""), 404, "Not found")
}

func TestConcurrentUse(t *testing.T) {
	s := gerrittest.NewWithOptions(gerrittest.Options{Username: "bot", Password: "pw"})
	defer s.Close()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			n := s.CreateChange("wiki", "main", fmt.Sprint(i), "alice")
			s.UploadPatchSet(n, "alice", "")
			for _, req := range []struct{ method, path, body string }{
				{"POST", fmt.Sprintf("/a/changes/%d/revisions/current/review", n), `{"labels":{"Verified":1}}`},
				{"GET", "/a/changes/?q=status:open&o=MESSAGES", ""},
			} {
				r, _ := http.NewRequest(req.method, s.URL()+req.path, strings.NewReader(req.body))
				r.SetBasicAuth("bot", "pw")
				r.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(r)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("%s %s: status %d", req.method, req.path, resp.StatusCode)
				}
			}
		})
	}
	wg.Wait()
	if got := len(s.Reviews()); got != 8 {
		t.Errorf("got %d reviews, want 8", got)
	}
}

func TestFixedAddress(t *testing.T) {
	s := gerrittest.NewWithOptions(gerrittest.Options{Addr: "127.0.0.1:0"})
	defer s.Close()
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") {
		t.Errorf("URL() = %q", s.URL())
	}
	var got []any
	decodeJSON(t, call(t, "GET", s.URL()+"/changes/?q=status:open", "", "", ""), &got)
}
