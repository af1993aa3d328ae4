package gerrit_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/ductbot/ductbot/core/gerrit"
)

// The commit message (with its footers) and the Change-Id come from the
// change JSON's current revision (o=CURRENT_COMMIT) and change_id, on both
// the detail and the query endpoints; a query by Change-Id finds every
// cherry-pick of it.
func TestCommitMessageAndChangeID(t *testing.T) {
	s := newServer(t)
	msg := "Use the new evaluator API\n\nLonger text.\n\nDepends-On: I0123456789abcdef0123456789abcdef01234567\n"
	n := s.CreateChangeMessage("svc/orchestrator", "main", msg, "alice")
	pick := s.CherryPick(n, "release-1", "alice")
	other := s.CreateChange("svc/orchestrator", "main", "Something else", "alice")
	c := newClient(t, s)
	ctx := testContext(t)

	got, err := c.Change(ctx, "svc/orchestrator", n)
	if err != nil {
		t.Fatal(err)
	}
	if !gerrit.IsChangeID(got.ChangeID) {
		t.Errorf("ChangeID = %q, want a Change-Id", got.ChangeID)
	}
	if got.Subject != "Use the new evaluator API" ||
		!strings.Contains(got.CommitMessage, "\nDepends-On: I0123456789abcdef0123456789abcdef01234567\nChange-Id: "+got.ChangeID+"\n") {
		t.Errorf("subject %q, commit message %q: want the footers and the Change-Id", got.Subject, got.CommitMessage)
	}

	found, err := c.Query(ctx, gerrit.Query{ChangeIDs: []string{got.ChangeID}})
	if err != nil {
		t.Fatal(err)
	}
	var nums []int
	for _, f := range found {
		nums = append(nums, f.Number)
		if f.CommitMessage == "" || f.ChangeID != got.ChangeID {
			t.Errorf("query result %d: commit message %q, Change-Id %q", f.Number, f.CommitMessage, f.ChangeID)
		}
	}
	slices.Sort(nums)
	if !slices.Equal(nums, []int{n, pick}) || slices.Contains(nums, other) {
		t.Errorf("query by Change-Id found %v, want %d and its cherry-pick %d", nums, n, pick)
	}

	if _, err := c.Query(ctx, gerrit.Query{ChangeIDs: []string{"I12"}}); err == nil || !strings.Contains(err.Error(), "40 hex digits") {
		t.Errorf("bad Change-Id: %v, want an error saying what a Change-Id is", err)
	}
}

func TestQueryStringChangeIDs(t *testing.T) {
	q := gerrit.Query{Scopes: []gerrit.ProjectFilter{{Name: "wiki"}, {Name: "orch"}}, ChangeIDs: []string{"Iaa", "Ibb"}}
	if got, want := q.String(), `(project:"wiki" OR project:"orch") (change:Iaa OR change:Ibb)`; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
