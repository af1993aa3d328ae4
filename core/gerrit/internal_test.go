package gerrit

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ductbot/ductbot/internal/text"
)

func TestTimestampJSON(t *testing.T) {
	want := time.Date(2013, 2, 21, 11, 16, 36, 775000000, time.UTC)
	var ts Timestamp
	if err := json.Unmarshal([]byte(`"2013-02-21 11:16:36.775000000"`), &ts); err != nil {
		t.Fatal(err)
	}
	if !ts.Equal(want) || ts.Location() != time.UTC {
		t.Errorf("parsed %v, want %v in UTC", ts.Time, want)
	}
	b, err := json.Marshal(Timestamp{want.In(time.FixedZone("X", 3600))})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `"2013-02-21 11:16:36.775000000"` {
		t.Errorf("marshalled %s", b)
	}
	for in, want := range map[string]time.Time{
		`"2013-02-21 11:16:36"`:   time.Date(2013, 2, 21, 11, 16, 36, 0, time.UTC),
		`"2013-02-21 11:16:36.5"`: time.Date(2013, 2, 21, 11, 16, 36, 5e8, time.UTC),
		`null`:                    {},
		`""`:                      {},
	} {
		var ts Timestamp
		if err := json.Unmarshal([]byte(in), &ts); err != nil || !ts.Equal(want) {
			t.Errorf("Unmarshal(%s) = %v, %v; want %v", in, ts.Time, err, want)
		}
	}
	for _, in := range []string{`"2013-02-21T11:16:36Z"`, `12`, `"yesterday"`} {
		var ts Timestamp
		if err := json.Unmarshal([]byte(in), &ts); err == nil {
			t.Errorf("Unmarshal(%s) succeeded", in)
		}
	}
	if b, _ := json.Marshal(Timestamp{}); string(b) != "null" {
		t.Errorf("zero marshals as %s, want null", b)
	}
}

func TestTruncateMessage(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		limit int
	}{
		{"short", "hello", 100},
		{"exact", strings.Repeat("a", 100), 100},
		{"ascii", strings.Repeat("a", 101), 100},
		{"two-byte runes", "a" + strings.Repeat("é", 100), 100},
		{"four-byte runes", strings.Repeat("😀", 100), 100},
		{"invalid utf-8", "ok\xff\xfe" + strings.Repeat("b", 200), 100},
		{"limit below marker", strings.Repeat("a", 50), 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := text.Truncate(tt.in, tt.limit, truncatedMarker)
			if !utf8.ValidString(got) {
				t.Errorf("result is not valid UTF-8: %q", got)
			}
			valid := strings.ToValidUTF8(tt.in, "\uFFFD")
			if len(valid) <= tt.limit {
				if got != valid {
					t.Errorf("short input changed: %q -> %q", tt.in, got)
				}
				return
			}
			if !strings.HasSuffix(got, truncatedMarker) {
				t.Errorf("no truncation marker: %q", got)
			}
			if tt.limit >= len(truncatedMarker) && len(got) > tt.limit {
				t.Errorf("len %d > limit %d", len(got), tt.limit)
			}
			kept := strings.TrimSuffix(got, truncatedMarker)
			if !strings.HasPrefix(valid, kept) {
				t.Errorf("kept %q is not a prefix of the input", kept)
			}
			if tt.limit > len(truncatedMarker)+4 && len(kept) < tt.limit-len(truncatedMarker)-3 {
				t.Errorf("kept only %d bytes of a %d-byte budget", len(kept), tt.limit-len(truncatedMarker))
			}
		})
	}
}

func TestRetryAfterHeader(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"3":                             3 * time.Second,
		"-1":                            0,
		"soon":                          0,
		"Thu, 01 Jan 2026 00:00:10 GMT": 10 * time.Second,
		"Wed, 31 Dec 2025 23:00:00 GMT": 0,
	} {
		if got := retryAfter(in, now); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	c := &Client{backoff: 100 * time.Millisecond}
	for attempt, base := range []time.Duration{100, 200, 400, 800} {
		base *= time.Millisecond
		for range 20 {
			if d := c.backoffFor(attempt); d < base/2 || d > base {
				t.Fatalf("backoffFor(%d) = %v, want in [%v, %v]", attempt, d, base/2, base)
			}
		}
	}
	if d := c.backoffFor(60); d > maxBackoff || d < maxBackoff/2 {
		t.Errorf("backoffFor(60) = %v, want capped at %v", d, maxBackoff)
	}
}
