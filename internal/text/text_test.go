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
