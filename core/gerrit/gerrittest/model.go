package gerrittest

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"time"
)

// The change statuses Gerrit reports.
const (
	StatusNew       = "NEW"
	StatusMerged    = "MERGED"
	StatusAbandoned = "ABANDONED"
)

// Account is an account known to the test server.
type Account struct {
	ID       int
	Username string
	Name     string
	Email    string
}

// PatchSet is a snapshot of one uploaded revision.
type PatchSet struct {
	Number   int
	Revision string // the commit SHA-1
	Ref      string // refs/changes/NN/NUMBER/PS
	Uploader Account
	Created  time.Time
	Subject  string
}

// Message is a snapshot of one change message.
type Message struct {
	ID       string
	Author   *Account // nil for messages written by Gerrit itself
	Date     time.Time
	Text     string
	Tag      string
	PatchSet int
}

// Change is a snapshot of one change, as returned by [Server.Change].
type Change struct {
	Number    int
	Project   string
	Branch    string
	ChangeID  string // the Change-Id footer, I...
	Subject   string
	Status    string // StatusNew, StatusMerged or StatusAbandoned
	WIP       bool
	Private   bool
	Owner     Account
	Created   time.Time
	Updated   time.Time
	PatchSets []PatchSet // oldest first; the last is the current one
	Messages  []Message  // oldest first
}

// Current returns the current patch set.
func (c Change) Current() PatchSet { return c.PatchSets[len(c.PatchSets)-1] }

// RecordedReview is one review the server accepted through the REST API.
type RecordedReview struct {
	Change   int
	PatchSet int
	Revision string
	Account  string // the poster's username
	Message  string
	Labels   map[string]int
	Tag      string
	Notify   string
	Time     time.Time
}

type account struct {
	id       int
	username string
	name     string
	email    string
	password string // HTTP password; empty: cannot authenticate
}

func (a *account) snapshot() Account {
	return Account{ID: a.id, Username: a.username, Name: a.name, Email: a.email}
}

type patchSet struct {
	number   int
	sha      string
	uploader *account
	created  time.Time
	subject  string
	message  string // full commit message
	parent   string
}

type message struct {
	id     string
	author *account
	date   time.Time
	text   string
	tag    string
	ps     int
}

type change struct {
	number    int
	project   string
	branch    string
	changeID  string
	status    string
	wip       bool
	private   bool
	owner     *account
	created   time.Time
	updated   time.Time
	submitted time.Time
	patchSets []*patchSet
	messages  []*message
}

func (c *change) current() *patchSet { return c.patchSets[len(c.patchSets)-1] }

func (c *change) snapshot() Change {
	out := Change{
		Number: c.number, Project: c.project, Branch: c.branch, ChangeID: c.changeID,
		Subject: c.current().subject, Status: c.status, WIP: c.wip, Private: c.private,
		Owner: c.owner.snapshot(), Created: c.created, Updated: c.updated,
	}
	for _, ps := range c.patchSets {
		out.PatchSets = append(out.PatchSets, PatchSet{
			Number: ps.number, Revision: ps.sha, Ref: changeRef(c.number, ps.number),
			Uploader: ps.uploader.snapshot(), Created: ps.created, Subject: ps.subject,
		})
	}
	for _, m := range c.messages {
		sm := Message{ID: m.id, Date: m.date, Text: m.text, Tag: m.tag, PatchSet: m.ps}
		if m.author != nil {
			a := m.author.snapshot()
			sm.Author = &a
		}
		out.Messages = append(out.Messages, sm)
	}
	return out
}

type group struct {
	name    string
	uuid    string
	members []*account
}

// changeRef is the ref Gerrit stores a patch set under.
func changeRef(number, ps int) string {
	return fmt.Sprintf("refs/changes/%02d/%d/%d", number%100, number, ps)
}

// hashID derives a stable hex identifier from its parts.
func hashID(parts ...any) string {
	h := sha1.Sum(fmt.Append(nil, parts...))
	return hex.EncodeToString(h[:])
}

func cloneLabels(m map[string]int) map[string]int {
	if m == nil {
		return nil
	}
	return maps.Clone(m)
}

func sortedKeys(m map[string]int) []string {
	return slices.Sorted(maps.Keys(m))
}
