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

// Query selects changes. Conditions of different fields are ANDed; values
// within one field are ORed. The zero Query is refused: say what you want.
type Query struct {
	Projects []string
	Branches []string
	// Open selects status:open, Closed selects merged or abandoned changes;
	// both or neither select every status.
	Open   bool
	Closed bool
	// After selects changes updated at or after this time (to the second).
	After          time.Time
	ExcludeWIP     bool
	ExcludePrivate bool
	Numbers        []int
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
	or("project", q.Projects, true)
	or("branch", q.Branches, true)
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
	return strings.Join(terms, " ")
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
	nums := slices.Clone(numbers)
	slices.Sort(nums)
	nums = slices.Compact(nums)
	out := make(map[int]*Change, len(nums))
	for batch := range slices.Chunk(nums, batchSize) {
		changes, err := c.Query(ctx, Query{Numbers: batch, PageSize: len(batch)})
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
