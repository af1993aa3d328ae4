// Package text holds the small string operations several parts of ductbot
// need for text from outside: cutting it to a size without breaking a
// character, and keeping the end of a long log.
package text

import (
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
