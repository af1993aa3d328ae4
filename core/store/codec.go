package store

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/ductbot/ductbot/core/run"
)

// Times are stored as UTC unix nanoseconds, and the zero time as NULL.

func timeArg(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixNano(), Valid: true}
}

func timeOf(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

// utc drops the monotonic reading and location, so a value read back
// compares equal to what was written.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.Unix(0, t.UnixNano()).UTC()
}

func matrixArg(m run.Matrix) (string, error) {
	if m == nil {
		return "{}", nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("encode matrix: %w", err)
	}
	return string(b), nil
}

// matrixOf decodes a stored matrix. An empty matrix comes back as nil.
func matrixOf(s string) (run.Matrix, error) {
	var m run.Matrix
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("decode matrix %q: %w", s, err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

// textArg is text from outside (a commit subject, an error, a test log) as
// both databases store it: valid UTF-8 without NUL bytes, which PostgreSQL
// refuses in text. Each bad byte becomes U+FFFD.
func textArg(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
