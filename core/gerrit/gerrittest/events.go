package gerrittest

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The stream-events JSON, as Gerrit's Documentation/cmd-stream-events.txt
// and json.txt describe it: every event has a type and (except
// dropped-output) eventCreatedOn in seconds since the epoch; change events
// carry a change attribute and most a patchSet attribute; account
// attributes hold name, email and username. Gerrit writes approval values
// as strings ("1", "-1"), and change.number, deprecated, as a number.

type eventAccount struct {
	Name     string `json:"name,omitempty"`
	Email    string `json:"email,omitempty"`
	Username string `json:"username,omitempty"`
}

type eventChange struct {
	Project       string        `json:"project"`
	Branch        string        `json:"branch"`
	ID            string        `json:"id"`
	Number        int           `json:"number"`
	Subject       string        `json:"subject"`
	Owner         *eventAccount `json:"owner,omitempty"`
	URL           string        `json:"url"`
	CommitMessage string        `json:"commitMessage"`
	CreatedOn     int64         `json:"createdOn"`
	Status        string        `json:"status"`
}

type eventPatchSet struct {
	Number         int           `json:"number"`
	Revision       string        `json:"revision"`
	Parents        []string      `json:"parents"`
	Ref            string        `json:"ref"`
	Uploader       *eventAccount `json:"uploader,omitempty"`
	Author         *eventAccount `json:"author,omitempty"`
	CreatedOn      int64         `json:"createdOn"`
	Kind           string        `json:"kind"`
	SizeInsertions int           `json:"sizeInsertions"`
	SizeDeletions  int           `json:"sizeDeletions"`
}

type eventApproval struct {
	Type        string `json:"type"`
	Description string `json:"description"`
	Value       string `json:"value"`
}

type eventRefUpdate struct {
	OldRev  string `json:"oldRev"`
	NewRev  string `json:"newRev"`
	RefName string `json:"refName"`
	Project string `json:"project"`
}

// event is one stream-events line. Only the fields of its type are set.
type event struct {
	Type      string          `json:"type"`
	Change    *eventChange    `json:"change,omitempty"`
	PatchSet  *eventPatchSet  `json:"patchSet,omitempty"`
	Uploader  *eventAccount   `json:"uploader,omitempty"`
	Author    *eventAccount   `json:"author,omitempty"`
	Approvals []eventApproval `json:"approvals,omitempty"`
	Comment   *string         `json:"comment,omitempty"`
	Submitter *eventAccount   `json:"submitter,omitempty"`
	NewRev    string          `json:"newRev,omitempty"`
	Abandoner *eventAccount   `json:"abandoner,omitempty"`
	Restorer  *eventAccount   `json:"restorer,omitempty"`
	Reason    *string         `json:"reason,omitempty"`
	Changer   *eventAccount   `json:"changer,omitempty"`
	Deleter   *eventAccount   `json:"deleter,omitempty"`
	RefUpdate *eventRefUpdate `json:"refUpdate,omitempty"`
	// EventCreatedOn is absent only from dropped-output.
	EventCreatedOn int64 `json:"eventCreatedOn,omitempty"`
}

func eventAcct(a *account) *eventAccount {
	if a == nil {
		return nil
	}
	return &eventAccount{Name: a.name, Email: a.email, Username: a.username}
}

// changeURL is the change's canonical web URL, in the form Gerrit 3 uses.
func (s *Server) changeURL(c *change) string {
	return s.ts.URL + "/c/" + (&url.URL{Path: c.project}).EscapedPath() + "/+/" + strconv.Itoa(c.number)
}

// eventChangeLocked renders c as a change attribute. Callers hold s.mu.
func (s *Server) eventChangeLocked(c *change) *eventChange {
	cur := c.current()
	return &eventChange{
		Project: c.project, Branch: c.branch, ID: c.changeID, Number: c.number,
		Subject: cur.subject, Owner: eventAcct(c.owner), URL: s.changeURL(c),
		CommitMessage: cur.message, CreatedOn: c.created.Unix(), Status: c.status,
	}
}

func eventPS(c *change, ps *patchSet) *eventPatchSet {
	return &eventPatchSet{
		Number: ps.number, Revision: ps.sha, Parents: []string{ps.parent}, Ref: changeRef(c.number, ps.number),
		Uploader: eventAcct(ps.uploader), Author: eventAcct(ps.uploader), CreatedOn: ps.created.Unix(),
		Kind: "REWORK",
	}
}

// changeEventLocked starts an event about c's current patch set at t.
// Callers hold s.mu.
func (s *Server) changeEventLocked(typ string, c *change, t time.Time) *event {
	return &event{Type: typ, Change: s.eventChangeLocked(c), PatchSet: eventPS(c, c.current()), EventCreatedOn: t.Unix()}
}

func strPtr(s string) *string { return &s }

// approvalsOf renders votes as Gerrit's approval attributes, in label order.
func approvalsOf(labels map[string]int) []eventApproval {
	var out []eventApproval
	for _, l := range sortedKeys(labels) {
		out = append(out, eventApproval{Type: l, Description: l, Value: strconv.Itoa(labels[l])})
	}
	return out
}

// publishLocked sends ev to every stream-events session subscribed to its
// type. It never blocks: a session whose queue is full loses the event and
// is sent dropped-output, as Gerrit does. Callers hold s.mu, so events go
// out in the order of the state changes.
func (s *Server) publishLocked(ev *event) {
	if s.ssh == nil {
		return
	}
	b, err := json.Marshal(ev)
	if err != nil {
		panic("gerrittest: encoding an event: " + err.Error())
	}
	s.ssh.publish(ev.Type, b)
}

// refUpdatedLocked is the ref-updated event of a ref moving to newRev.
func refUpdated(project, ref, oldRev, newRev string, by *account, t time.Time) *event {
	if oldRev == "" {
		oldRev = strings.Repeat("0", 40)
	}
	return &event{Type: "ref-updated", Submitter: eventAcct(by),
		RefUpdate: &eventRefUpdate{OldRev: oldRev, NewRev: newRev, RefName: ref, Project: project}, EventCreatedOn: t.Unix()}
}
