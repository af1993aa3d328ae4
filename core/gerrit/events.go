package gerrit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Stream event types ductbot subscribes to (Gerrit's
// Documentation/cmd-stream-events.txt).
const (
	EventPatchsetCreated     = "patchset-created"
	EventCommentAdded        = "comment-added"
	EventChangeMerged        = "change-merged"
	EventChangeAbandoned     = "change-abandoned"
	EventChangeRestored      = "change-restored"
	EventWIPStateChanged     = "wip-state-changed"
	EventPrivateStateChanged = "private-state-changed"
	EventDroppedOutput       = "dropped-output"
)

// StreamEventTypes are the types a Stream subscribes to: each names a change
// whose state may matter, except dropped-output, which says events were lost.
var StreamEventTypes = []string{
	EventPatchsetCreated, EventCommentAdded, EventChangeMerged, EventChangeAbandoned,
	EventChangeRestored, EventWIPStateChanged, EventPrivateStateChanged, EventDroppedOutput,
}

// Event is what ductbot reads of one stream-events line. Gerrit documents
// that any field may be missing: each is its zero value then.
type Event struct {
	Type    string
	Project string
	Branch  string // without refs/heads/
	// Number is the change number: change.number, else read from
	// change.url or patchSet.ref; 0 when none says.
	Number   int
	ChangeID string // the Change-Id, I...
	PatchSet int    // patchSet.number
	// Author is the comment's author (comment-added), by username.
	Author  string
	Created time.Time // eventCreatedOn; zero when missing
}

// errNotObject marks a line that is not a JSON object.
var errNotObject = errors.New("not a JSON object")

// looseInt reads a JSON number, or a string holding one, as old Gerrit
// versions wrote some numbers; anything else (null, bool, object) is 0.
type looseInt int64

func (n *looseInt) UnmarshalJSON(b []byte) error {
	*n = 0
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if json.Unmarshal(b, &s) != nil {
			return nil
		}
		b = []byte(strings.TrimSpace(s))
	}
	if v, err := strconv.ParseInt(string(b), 10, 64); err == nil {
		*n = looseInt(v)
		return nil
	}
	if f, err := strconv.ParseFloat(string(b), 64); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		*n = looseInt(f)
	}
	return nil
}

// looseString reads a JSON string; anything else is "".
type looseString string

func (s *looseString) UnmarshalJSON(b []byte) error {
	var v string
	if json.Unmarshal(b, &v) == nil {
		*s = looseString(v)
	} else {
		*s = ""
	}
	return nil
}

// looseObject decodes an object field into T, and leaves T's zero value for
// anything else (null, a string, an array), so one odd field does not make
// the whole line unreadable.
type looseObject[T any] struct{ v T }

func (o *looseObject[T]) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return nil
	}
	var v T
	if json.Unmarshal(b, &v) == nil {
		o.v = v
	}
	return nil
}

type wireAccount struct {
	Username looseString `json:"username"`
}

type wireEvent struct {
	Type   looseString `json:"type"`
	Change looseObject[struct {
		Project looseString `json:"project"`
		Branch  looseString `json:"branch"`
		ID      looseString `json:"id"`
		Number  looseInt    `json:"number"`
		URL     looseString `json:"url"`
	}] `json:"change"`
	PatchSet looseObject[struct {
		Number looseInt    `json:"number"`
		Ref    looseString `json:"ref"`
	}] `json:"patchSet"`
	Author         looseObject[wireAccount] `json:"author"`
	EventCreatedOn looseInt                 `json:"eventCreatedOn"`
}

// ParseEvent reads one stream-events line. It fails only when the line is
// not a JSON object; missing or oddly typed fields are left zero.
func ParseEvent(line []byte) (Event, error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return Event{}, errNotObject
	}
	var w wireEvent
	if err := json.Unmarshal(line, &w); err != nil {
		return Event{}, fmt.Errorf("bad JSON: %w", err)
	}
	ch, ps := w.Change.v, w.PatchSet.v
	ev := Event{
		Type:     string(w.Type),
		Project:  string(ch.Project),
		Branch:   strings.TrimPrefix(string(ch.Branch), "refs/heads/"),
		ChangeID: string(ch.ID),
		Author:   string(w.Author.v.Username),
	}
	if n := int64(ps.Number); n > 0 && n <= math.MaxInt32 {
		ev.PatchSet = int(n)
	}
	if n := int64(ch.Number); n > 0 && n <= math.MaxInt32 {
		ev.Number = int(n)
	}
	if ev.Number == 0 {
		ev.Number = numberFromURL(string(ch.URL))
	}
	if ev.Number == 0 {
		ev.Number, _ = parseChangeRef(string(ps.Ref))
	}
	if secs := int64(w.EventCreatedOn); secs > 0 && secs < 1<<40 {
		ev.Created = time.Unix(secs, 0).UTC()
	}
	return ev, nil
}

// numberFromURL reads the change number at the end of a change URL:
// https://host/c/project/+/12345 or, from older Gerrits, https://host/12345.
func numberFromURL(u string) int {
	u = strings.TrimRight(u, "/")
	i := strings.LastIndexByte(u, '/')
	if i < 0 || !strings.Contains(u[:i], "://") {
		return 0
	}
	return positive(u[i+1:])
}

// parseChangeRef reads refs/changes/45/12345/3 as change 12345, patch set 3.
func parseChangeRef(ref string) (number, ps int) {
	rest, ok := strings.CutPrefix(ref, "refs/changes/")
	if !ok {
		return 0, 0
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return 0, 0
	}
	n := positive(parts[1])
	if n == 0 || fmt.Sprintf("%02d", n%100) != parts[0] {
		return 0, 0
	}
	return n, positive(parts[2])
}

// positive reads s, decimal digits only, as a positive int; else 0.
func positive(s string) int {
	if len(s) == 0 || len(s) > 9 || strings.Trim(s, "0123456789") != "" {
		return 0
	}
	n, _ := strconv.Atoi(s)
	return n
}
