// Package text holds the small string operations several parts of ductbot
// need for text from outside: cutting it to a size without breaking a
// character, and keeping the end of a long log.
package text

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Truncate makes s valid UTF-8 and at most maxBytes long. When it has to
// cut, it cuts on a rune boundary and ends with marker (counted in maxBytes;
// a marker longer than maxBytes is returned alone).
func Truncate(s string, maxBytes int, marker string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= maxBytes {
		return s
	}
	cut := max(maxBytes-len(marker), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + marker
}

// LastLines returns the last n lines of s, without a trailing newline.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// CutMarker is the line that replaces the middle of a log limited to limit
// bytes, saying how many bytes were cut.
func CutMarker(cut int64, limit int) string {
	return fmt.Sprintf("\n[… %d bytes cut by ductbot: logs are limited to %d bytes …]\n", cut, limit)
}

// HeadTail makes s valid UTF-8 and at most maxBytes long by keeping its
// beginning and its end and replacing the middle with a line that says how
// many bytes were cut. A log's head says how a test started and its tail how
// it ended; both matter more than the middle. maxBytes <= 0 means no limit.
func HeadTail(s string, maxBytes int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if maxBytes <= 0 || len(s) <= maxBytes {
		return s
	}
	// The marker's length depends on the count it names; a count is at
	// most len(s), so size the marker for that and the cut can only shrink.
	marker := func(n int) string { return CutMarker(int64(n), maxBytes) }
	room := maxBytes - len(marker(len(s)))
	if room <= 0 {
		return Truncate(s, maxBytes, "")
	}
	head := room / 2
	for head > 0 && !utf8.RuneStart(s[head]) {
		head--
	}
	tail := len(s) - (room - head)
	for tail < len(s) && !utf8.RuneStart(s[tail]) {
		tail++
	}
	return s[:head] + marker(tail-head) + s[tail:]
}
