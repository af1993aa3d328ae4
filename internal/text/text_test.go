package text

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in     string
		max    int
		marker string
		want   string
	}{
		{"short", 10, "…", "short"},
		{"exactly10!", 10, "…", "exactly10!"},
		{"0123456789abc", 10, "...", "0123456..."},
		{"ééééé", 6, "", "ééé"}, // 10 bytes; cut between runes
		{"aééé", 4, "", "aé"},   // never inside the second é
		{"bad\xffbyte", 100, "", "bad\uFFFDbyte"},
		{"abc", 2, "…(long marker)", "…(long marker)"},
	} {
		got := Truncate(tc.in, tc.max, tc.marker)
		if got != tc.want {
			t.Errorf("Truncate(%q, %d, %q) = %q, want %q", tc.in, tc.max, tc.marker, got, tc.want)
		}
		if !utf8.ValidString(got) {
			t.Errorf("Truncate(%q) is not valid UTF-8: %q", tc.in, got)
		}
	}
}

func TestLastLines(t *testing.T) {
	in := strings.Join([]string{"a", "b", "c", "d"}, "\n") + "\n"
	if got := LastLines(in, 2); got != "c\nd" {
		t.Errorf("LastLines(.., 2) = %q", got)
	}
	if got := LastLines("one", 5); got != "one" {
		t.Errorf("LastLines(one, 5) = %q", got)
	}
}

func TestHeadTail(t *testing.T) {
	long := strings.Repeat("a", 5000) + "MIDDLE" + strings.Repeat("z", 5000)
	cases := []struct {
		name string
		in   string
		max  int
	}{
		{"short stays", "hello", 100},
		{"no limit", long, 0},
		{"long cut", long, 1000},
		{"runes", strings.Repeat("é", 3000), 700},
		{"tiny limit", long, 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := HeadTail(c.in, c.max)
			if !utf8.ValidString(got) {
				t.Fatalf("result is not valid UTF-8")
			}
			if c.max > 0 && len(got) > c.max {
				t.Fatalf("len = %d, want at most %d", len(got), c.max)
			}
			if c.max <= 0 || len(c.in) <= c.max {
				if got != c.in {
					t.Fatalf("changed a text within the limit")
				}
				return
			}
			if c.max >= 200 {
				if !strings.Contains(got, "bytes cut by ductbot") {
					t.Errorf("no cut marker in %q", got)
				}
				if got[0] != c.in[0] || got[len(got)-1] != c.in[len(c.in)-1] {
					t.Errorf("head or tail lost: %q…%q", got[:5], got[len(got)-5:])
				}
			}
		})
	}
}
