package chat

import "testing"

func TestStripControl(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain text", "plain text"},
		{"fix\r\nQUIT :x", "fixQUIT :x"},
		{"a\x00b\x01c\x7fd", "abcd"},
		{"tab\there", "tab here"},
		{"\x1b[31mred", "[31mred"},
		{"bad\xffutf8", "bad\uFFFDutf8"},
		{"c1\u0085ok", "c1ok"},
		{"héllo ✔", "héllo ✔"},
	}
	for _, tt := range tests {
		if got := StripControl(tt.in); got != tt.want {
			t.Errorf("StripControl(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestIdentityString(t *testing.T) {
	tests := []struct {
		id   Identity
		want string
	}{
		{Identity{Network: "slack", ID: "U1", Display: "al"}, "slack:U1"},
		{Identity{Network: "irc", ID: "alice", Mask: "al!a@h"}, "irc:alice"},
		{Identity{Network: "irc", Mask: "al!a@h"}, "irc:al!a@h"},
		{Identity{Network: "console", Display: "local"}, "console:local"},
	}
	for _, tt := range tests {
		if got := tt.id.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.id, got, tt.want)
		}
		if MentionName(tt.want) == "" {
			t.Errorf("MentionName(%q) is empty", tt.want)
		}
	}
	if got := MentionName("irc:al!a@h"); got != "al" {
		t.Errorf("MentionName = %q", got)
	}
}

func TestPlainLines(t *testing.T) {
	m := Message{Title: "T", Fields: []Field{{"url", "u"}}, Lines: []string{"a\nb", ""}}
	got := m.PlainLines()
	want := []string{"T", "url: u", "a", "b"}
	if len(got) != len(want) {
		t.Fatalf("PlainLines = %q", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("PlainLines = %q, want %q", got, want)
		}
	}
}
