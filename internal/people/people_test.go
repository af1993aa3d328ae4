package people

import (
	"strings"
	"testing"
)

func TestDisplayName(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"Jane Doe <jane@example.org>", "Jane Doe"},
		{"Jane <jane@example.org>", "Jane"},
		{"  Jane   Doe  ", "Jane Doe"},
		{"jane@example.org", "jane"},
		{"<jane@example.org>", "jane"},
		{" <jane.doe@example.org> ", "jane.doe"},
		{"jane", "jane"},
		{"alice (1000042)", "alice (1000042)"},
		{"", ""},
		{"Jane jane@example.org", "Jane jane"},
		{"Jane (jane@example.org)", "Jane jane"},
		{"Jane <jane@example.org", "Jane"},           // unclosed bracket
		{"Jane <a@x.org> <b@y.org>", "Jane"},         // two addresses
		{"<>", ""},                                   // nothing at all
		{"<@example.org>", ""},                       // no user part
		{"Jane >jane@example.org", "Jane >jane"},     // a stray '>'
		{"irc:bob!b@guest.example", "irc:bob!b"},     // an IRC mask keeps no host
		{"slack:U0123ABC", "slack:U0123ABC"},         // chat identities pass
		{"Zoë Ñandú <zoe@example.org>", "Zoë Ñandú"}, // non-ASCII names
	} {
		got := DisplayName(tt.in)
		if got != tt.want {
			t.Errorf("DisplayName(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if strings.Contains(got, "@") {
			t.Errorf("DisplayName(%q) = %q still holds an '@'", tt.in, got)
		}
	}
}

func FuzzDisplayNameShowsNoAddress(f *testing.F) {
	for _, s := range []string{"Jane <jane@example.org>", "a@b", "<<a@b>>", "x <y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got := DisplayName(s); strings.Contains(got, "@") {
			t.Errorf("DisplayName(%q) = %q holds an '@'", s, got)
		}
	})
}
