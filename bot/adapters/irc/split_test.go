package irc

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSplitText(t *testing.T) {
	tests := []struct {
		text  string
		limit int
		want  []string
	}{
		{"short", 40, []string{"short"}},
		{"aaaa bbbb cccc", 9, []string{"aaaa bbbb", "cccc"}},
		{"aaaa bbbb cccc", 10, []string{"aaaa bbbb", "cccc"}},
		{strings.Repeat("x", 70), 32, []string{strings.Repeat("x", 32), strings.Repeat("x", 32), "xxxxxx"}},
		{strings.Repeat("é", 20), 33, []string{strings.Repeat("é", 16), strings.Repeat("é", 4)}},
		{"", 40, nil},
	}
	for _, tt := range tests {
		got := splitText(tt.text, tt.limit)
		if strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("splitText(%q, %d) = %q, want %q", tt.text, tt.limit, got, tt.want)
		}
	}
}

func FuzzSplitText(f *testing.F) {
	f.Add("hello wörld ✔ "+strings.Repeat("ab ", 300), 100)
	f.Fuzz(func(t *testing.T, text string, limit int) {
		if !utf8.ValidString(text) || strings.ContainsAny(text, "\r\n") {
			return
		}
		limit = 32 + abs(limit)%500
		pieces := splitText(text, limit)
		for _, p := range pieces {
			if len(p) > limit || !utf8.ValidString(p) || p == "" {
				t.Fatalf("piece %q (limit %d) of %q", p, limit, text)
			}
		}
		if strings.Join(strings.Fields(strings.Join(pieces, " ")), "") != strings.Join(strings.Fields(text), "") {
			t.Fatalf("pieces %q lost text of %q", pieces, text)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

func TestTextBudget(t *testing.T) {
	nick, target := "ductbot", "#dev"
	text := strings.Repeat("x", textBudget(nick, target))
	relayed := ":" + nick + "!" + strings.Repeat("u", maxUserLen) + "@" + strings.Repeat("h", maxHostLen) + " PRIVMSG " + target + " :" + text + "\r\n"
	if len(relayed) != maxLine {
		t.Fatalf("relayed line is %d bytes, want exactly %d", len(relayed), maxLine)
	}
}
