package gerrittest

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// errQuery marks a query the server cannot parse or does not support; the
// handler answers it with 400 Bad Request, as Gerrit does.
var errQuery = errors.New("bad query")

// predicate decides whether a change matches one part of a query.
type predicate func(c *change) bool

type tokenKind int

const (
	tokEOF tokenKind = iota
	tokTerm
	tokLParen
	tokRParen
	tokNot
	tokAnd
	tokOr
)

type token struct {
	kind tokenKind
	op   string // tokTerm only: the operator before ':'
	val  string // tokTerm only: the unquoted value
	pos  int
}

// tokenize splits a Gerrit search expression into tokens. It understands
// parentheses, the '-' prefix, the keywords AND, OR and NOT, and terms
// "op:value" whose value is bare, "double quoted" (with backslash escapes) or
// {braced}.
func tokenize(s string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(':
			toks = append(toks, token{kind: tokLParen, pos: i})
			i++
		case c == ')':
			toks = append(toks, token{kind: tokRParen, pos: i})
			i++
		case c == '-':
			toks = append(toks, token{kind: tokNot, pos: i})
			i++
		default:
			start := i
			for i < len(s) && s[i] != ':' && !isDelim(s[i]) {
				i++
			}
			word := s[start:i]
			if i >= len(s) || s[i] != ':' {
				switch word {
				case "AND":
					toks = append(toks, token{kind: tokAnd, pos: start})
				case "OR":
					toks = append(toks, token{kind: tokOr, pos: start})
				case "NOT":
					toks = append(toks, token{kind: tokNot, pos: start})
				default:
					return nil, fmt.Errorf("%w: full-text search for %q is not supported by the test server", errQuery, word)
				}
				continue
			}
			i++ // the ':'
			val, n, err := readValue(s[i:])
			if err != nil {
				return nil, fmt.Errorf("%w: at offset %d: %w", errQuery, i, err)
			}
			i += n
			toks = append(toks, token{kind: tokTerm, op: word, val: val, pos: start})
		}
	}
	return append(toks, token{kind: tokEOF, pos: len(s)}), nil
}

func isDelim(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '(' || c == ')'
}

// readValue reads one term value from the start of s and reports how many
// bytes it used.
func readValue(s string) (string, int, error) {
	if s == "" {
		return "", 0, errors.New("missing value")
	}
	switch s[0] {
	case '"':
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			switch s[i] {
			case '\\':
				if i+1 >= len(s) {
					return "", 0, errors.New("dangling escape")
				}
				i++
				b.WriteByte(s[i])
			case '"':
				return b.String(), i + 1, nil
			default:
				b.WriteByte(s[i])
			}
		}
		return "", 0, errors.New("unterminated quoted value")
	case '{':
		end := strings.IndexByte(s, '}')
		if end < 0 {
			return "", 0, errors.New("unterminated braced value")
		}
		return s[1:end], end + 1, nil
	}
	n := 0
	for n < len(s) && !isDelim(s[n]) {
		n++
	}
	return s[:n], n, nil
}

// parser is a recursive descent parser over tokens with this grammar:
//
//	or    = and { "OR" and }
//	and   = unary { ["AND"] unary }
//	unary = ("-" | "NOT") unary | "(" or ")" | term
type parser struct {
	toks []token
	pos  int
}

// parseQuery turns a Gerrit search expression into a predicate. An empty
// expression matches every change.
func parseQuery(s string) (predicate, error) {
	toks, err := tokenize(s)
	if err != nil {
		return nil, err
	}
	if len(toks) == 1 {
		return func(*change) bool { return true }, nil
	}
	p := &parser{toks: toks}
	pred, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, fmt.Errorf("%w: unexpected token at offset %d", errQuery, t.pos)
	}
	return pred, nil
}

func (p *parser) peek() token { return p.toks[p.pos] }
func (p *parser) next() token { t := p.toks[p.pos]; p.pos++; return t }

func (p *parser) parseOr() (predicate, error) {
	left, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	for p.peek().kind == tokOr {
		p.next()
		right, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(c *change) bool { return l(c) || right(c) }
	}
	return left, nil
}

func (p *parser) parseAnd() (predicate, error) {
	left, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for {
		switch p.peek().kind {
		case tokEOF, tokRParen, tokOr:
			return left, nil
		case tokAnd:
			p.next()
		}
		right, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(c *change) bool { return l(c) && right(c) }
	}
}

func (p *parser) parseUnary() (predicate, error) {
	t := p.next()
	switch t.kind {
	case tokNot:
		inner, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		return func(c *change) bool { return !inner(c) }, nil
	case tokLParen:
		inner, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if p.next().kind != tokRParen {
			return nil, fmt.Errorf("%w: missing ')' for '(' at offset %d", errQuery, t.pos)
		}
		return inner, nil
	case tokTerm:
		return termPredicate(t.op, t.val)
	default:
		return nil, fmt.Errorf("%w: unexpected token at offset %d", errQuery, t.pos)
	}
}

// termPredicate implements the search operators the test server supports.
func termPredicate(op, val string) (predicate, error) {
	switch op {
	case "status":
		return statusPredicate(val)
	case "is":
		switch val {
		case "wip":
			return func(c *change) bool { return c.wip }, nil
		case "private":
			return func(c *change) bool { return c.private }, nil
		default:
			return statusPredicate(val)
		}
	case "project":
		return func(c *change) bool { return c.project == val }, nil
	case "branch":
		b := strings.TrimPrefix(val, "refs/heads/")
		return func(c *change) bool { return c.branch == b }, nil
	case "change":
		if n, err := strconv.Atoi(val); err == nil {
			return func(c *change) bool { return c.number == n }, nil
		}
		return func(c *change) bool { return c.changeID == val }, nil
	case "owner":
		return func(c *change) bool {
			return c.owner.username == val || c.owner.email == val || strconv.Itoa(c.owner.id) == val
		}, nil
	case "after", "since":
		t, err := parseQueryTime(val)
		if err != nil {
			return nil, err
		}
		return func(c *change) bool { return !c.updated.Before(t) }, nil
	case "before", "until":
		t, err := parseQueryTime(val)
		if err != nil {
			return nil, err
		}
		return func(c *change) bool { return !c.updated.After(t) }, nil
	}
	return nil, fmt.Errorf("%w: Unsupported operator %s:%s", errQuery, op, val)
}

func statusPredicate(val string) (predicate, error) {
	switch strings.ToLower(val) {
	case "open", "new", "pending":
		return func(c *change) bool { return c.status == StatusNew }, nil
	case "merged":
		return func(c *change) bool { return c.status == StatusMerged }, nil
	case "abandoned":
		return func(c *change) bool { return c.status == StatusAbandoned }, nil
	case "closed":
		return func(c *change) bool { return c.status != StatusNew }, nil
	}
	return nil, fmt.Errorf("%w: Unrecognized value: %s", errQuery, val)
}

// queryTimeLayouts are the forms Gerrit accepts for after: and before:; a
// missing zone means UTC.
var queryTimeLayouts = []string{
	"2006-01-02 15:04:05.999999999 -0700",
	"2006-01-02 15:04:05 -0700",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02 15:04:05",
	"2006-01-02 15:04",
	"2006-01-02",
}

func parseQueryTime(s string) (time.Time, error) {
	for _, layout := range queryTimeLayouts {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%w: Invalid timestamp: %s", errQuery, s)
}
