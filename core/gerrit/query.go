package gerrit

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	// DefaultPageSize is how many changes one query request asks for.
	DefaultPageSize = 100
	// DefaultMaxPages bounds how many pages one Query reads.
	DefaultMaxPages = 1000
	// batchSize is how many change numbers Changes puts in one query.
	batchSize = 50
)

// ProjectFilter selects one project's changes, on some of its branches.
type ProjectFilter struct {
	// Name is the project; empty: every project (then Branches alone
	// filter).
	Name string
	// Branches are the branch names, without refs/heads/; empty: every
	// branch.
	Branches []string
}

// Query selects changes. Conditions of different fields are ANDed; values
// within one field are ORed. The zero Query is refused: say what you want.
type Query struct {
	// Projects and Branches select changes in any of Projects and on any
	// of Branches, each list applying to every project: use Scopes when
	// branch filters differ between projects.
	Projects []string
	Branches []string
	// Scopes, when set, is used instead of Projects and Branches: a change
	// matches when it matches any one scope, each scope matching its
	// project on its own branches: (project:"a" (branch:"x" OR branch:"y"))
	// OR project:"b". A scope with neither name nor branches matches every
	// change, and so the scopes select nothing out.
	Scopes []ProjectFilter
	// Open selects status:open, Closed selects merged or abandoned changes;
	// both or neither select every status.
	Open   bool
	Closed bool
	// After selects changes updated at or after this time (to the second).
	After          time.Time
	ExcludeWIP     bool
	ExcludePrivate bool
	Numbers        []int
	// ChangeIDs selects changes by Change-Id (I and 40 hex digits), on any
	// project and branch the other conditions allow.
	ChangeIDs []string
	// PageSize is the n= of each request; defaults to DefaultPageSize.
	PageSize int
	// MaxPages bounds the requests; defaults to DefaultMaxPages. Reaching
	// it fails the query with ErrTooManyResults.
	MaxPages int
	// Messages asks for each change's messages (o=MESSAGES).
	Messages bool
}

// String returns the Gerrit search expression for q, with every project and
// branch name quoted.
func (q Query) String() string {
	var terms []string
	or := func(op string, values []string, quoted bool) {
		if len(values) == 0 {
			return
		}
		parts := make([]string, len(values))
		for i, v := range values {
			if quoted {
				v = quote(v)
			}
			parts[i] = op + ":" + v
		}
		if len(parts) == 1 {
			terms = append(terms, parts[0])
			return
		}
		terms = append(terms, "("+strings.Join(parts, " OR ")+")")
	}
	if len(q.Scopes) > 0 {
		if t := scopesTerm(q.Scopes); t != "" {
			terms = append(terms, t)
		}
	} else {
		or("project", q.Projects, true)
		or("branch", q.Branches, true)
	}
	switch {
	case q.Open && !q.Closed:
		terms = append(terms, "status:open")
	case q.Closed && !q.Open:
		terms = append(terms, "(status:merged OR status:abandoned)")
	}
	if !q.After.IsZero() {
		terms = append(terms, "after:"+quote(q.After.UTC().Format(time.DateTime)))
	}
	if q.ExcludeWIP {
		terms = append(terms, "-is:wip")
	}
	if q.ExcludePrivate {
		terms = append(terms, "-is:private")
	}
	nums := make([]string, len(q.Numbers))
	for i, n := range q.Numbers {
		nums[i] = strconv.Itoa(n)
	}
	or("change", nums, false)
	or("change", q.ChangeIDs, false)
	return strings.Join(terms, " ")
}

// scopesTerm renders scopes as one term: each scope's project and branches
// as a parenthesised group, the groups ORed (and parenthesised as a whole
// when there are several, so the term ANDs with the rest of the query). It
// returns "" when a scope matches everything.
func scopesTerm(scopes []ProjectFilter) string {
	groups := make([]string, 0, len(scopes))
	for _, sc := range scopes {
		var parts []string
		if sc.Name != "" {
			parts = append(parts, "project:"+quote(sc.Name))
		}
		switch len(sc.Branches) {
		case 0:
		case 1:
			parts = append(parts, "branch:"+quote(sc.Branches[0]))
		default:
			bs := make([]string, len(sc.Branches))
			for i, b := range sc.Branches {
				bs[i] = "branch:" + quote(b)
			}
			parts = append(parts, "("+strings.Join(bs, " OR ")+")")
		}
		switch len(parts) {
		case 0:
			return "" // this scope matches every change
		case 1:
			groups = append(groups, parts[0])
		default:
			groups = append(groups, "("+strings.Join(parts, " ")+")")
		}
	}
	if len(groups) == 1 {
		return groups[0]
	}
	return "(" + strings.Join(groups, " OR ") + ")"
}

// quote puts v in double quotes, escaping backslashes and quotes the way
// Gerrit's query parser reads them.
func quote(v string) string {
	var b strings.Builder
	b.Grow(len(v) + 2)
	b.WriteByte('"')
	for _, r := range v {
		if r == '"' || r == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

// Query returns the changes matching q, newest update first, each once.
// It reads pages with S= while Gerrit says _more_changes. Gerrit pages by
// offset, so a change updated during the query can show up twice (the
// duplicate is dropped: the first, newer copy is kept) or, having moved to
// the front, be missed; its new update time is later than any returned, so
// a poller from the newest returned time sees it next time.
//
// It always asks for the current revision and commit and detailed
// accounts, and for messages when q.Messages is set.
//
// https://gerrit-review.googlesource.com/Documentation/rest-api-changes.html#list-changes
func (c *Client) Query(ctx context.Context, q Query) ([]Change, error) {
	expr := q.String()
	if expr == "" {
		return nil, fmt.Errorf("gerrit: empty query: set at least one condition")
	}
	for _, n := range q.Numbers {
		if n <= 0 {
			return nil, fmt.Errorf("gerrit: query for bad change number %d", n)
		}
	}
	for _, id := range q.ChangeIDs {
		if !IsChangeID(id) {
			return nil, fmt.Errorf("gerrit: query for bad Change-Id %q: want I followed by 40 hex digits", id)
		}
	}
	pageSize := q.PageSize
	if pageSize <= 0 {
		pageSize = DefaultPageSize
	}
	maxPages := q.MaxPages
	if maxPages <= 0 {
		maxPages = DefaultMaxPages
	}
	opts := []string{"CURRENT_REVISION", "CURRENT_COMMIT", "DETAILED_ACCOUNTS"}
	if q.Messages {
		opts = append(opts, "MESSAGES")
	}
	seen := make(map[int]bool)
	var out []Change
	start := 0
	for page := 0; page < maxPages; page++ {
		params := url.Values{"q": {expr}, "n": {strconv.Itoa(pageSize)}, "o": opts}
		if start > 0 {
			params.Set("S", strconv.Itoa(start))
		}
		var infos []changeInfo
		if err := c.do(ctx, http.MethodGet, "changes/", params, nil, &infos); err != nil {
			return nil, fmt.Errorf("querying %q (page %d): %w", expr, page+1, err)
		}
		for _, ci := range infos {
			if seen[ci.Number] {
				continue
			}
			seen[ci.Number] = true
			out = append(out, ci.change())
		}
		if len(infos) == 0 || !infos[len(infos)-1].MoreChanges {
			return out, nil
		}
		start += len(infos)
	}
	return nil, fmt.Errorf("gerrit: querying %q: %w: still more after %d pages of %d", expr, ErrTooManyResults, maxPages, pageSize)
}

// Change returns one change with its current revision and its messages. An
// unknown or invisible change gives an error wrapping ErrNotFound.
//
// https://gerrit-review.googlesource.com/Documentation/rest-api-changes.html#get-change-detail
func (c *Client) Change(ctx context.Context, project string, number int) (*Change, error) {
	params := url.Values{"o": {"CURRENT_REVISION", "CURRENT_COMMIT", "DETAILED_ACCOUNTS", "MESSAGES"}}
	var ci changeInfo
	if err := c.do(ctx, http.MethodGet, changePath(project, number)+"/detail", params, nil, &ci); err != nil {
		return nil, err
	}
	ch := ci.change()
	return &ch, nil
}

// Changes looks many changes up by number, with one query per 50 numbers,
// without messages. A change Gerrit did not return is absent from the map:
// absence means "unknown right now", not merged or deleted, so callers must
// not tear anything down because of it.
func (c *Client) Changes(ctx context.Context, numbers []int) (map[int]*Change, error) {
	return c.changesByNumber(ctx, numbers, false)
}

// changesByNumber is Changes, with each change's messages when messages is
// set.
func (c *Client) changesByNumber(ctx context.Context, numbers []int, messages bool) (map[int]*Change, error) {
	nums := slices.Clone(numbers)
	slices.Sort(nums)
	nums = slices.Compact(nums)
	out := make(map[int]*Change, len(nums))
	for batch := range slices.Chunk(nums, batchSize) {
		changes, err := c.Query(ctx, Query{Numbers: batch, PageSize: len(batch), Messages: messages})
		if err != nil {
			return nil, err
		}
		for i := range changes {
			ch := changes[i]
			if _, asked := slices.BinarySearch(batch, ch.Number); asked {
				out[ch.Number] = &ch
			}
		}
	}
	return out, nil
}
