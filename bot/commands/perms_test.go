package commands

import (
	"context"
	"strings"
	"testing"

	"github.com/ductbot/ductbot/bot/chat"
)

func TestPermissionsAllowed(t *testing.T) {
	p, err := NewPermissions(PermissionConfig{
		Commands: map[string][]string{
			"destroy": {"slack:U1ALICE", "irc:*!*@trusted.example"},
			"sweep":   {"irc:carol"},
			"status":  {"slack:*"}, // a read-only command can be restricted too
		},
		Default: []string{"slack:*", "irc:*!*@*.example"},
	})
	if err != nil {
		t.Fatal(err)
	}
	cmds := map[string]*Command{}
	for _, c := range builtins(newFake(0), Options{Prefix: "!"}) {
		cmds[c.Name] = c
	}
	trusted := chat.Identity{Network: "irc", Mask: "Dave!d@TRUSTED.example"}
	nomask := chat.Identity{Network: "irc", ID: "", Mask: "carol!c@elsewhere.org"}
	tests := []struct {
		cmd  string
		id   chat.Identity
		want bool
	}{
		{"help", bob, true},      // read-only, unlisted: everyone
		{"envs", nomask, true},   // read-only, unlisted: everyone
		{"status", bob, false},   // listed: only Slack
		{"status", alice, true},  //
		{"destroy", alice, true}, // by Slack ID
		{"destroy", chat.Identity{Network: "slack", ID: "U2OTHER"}, false},
		{"destroy", trusted, true}, // mask glob, case-insensitive
		{"destroy", bob, false},    // mask does not match
		{"sweep", carol, true},     // account pattern with account
		{"sweep", nomask, false},   // same nick, no account: refused
		{"sweep", alice, false},    //
		{"env", bob, true},         // mutating, unlisted: Default
		{"env", nomask, false},     // Default mask does not match
		{"env", chat.Identity{Network: "console", Display: "local"}, false},
	}
	for _, tt := range tests {
		if got := p.Allowed(cmds[tt.cmd], tt.id); got != tt.want {
			t.Errorf("Allowed(%s, %s) = %v, want %v", tt.cmd, tt.id, got, tt.want)
		}
	}
}

func TestPermissionsDefaultNobody(t *testing.T) {
	p, err := NewPermissions(PermissionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	r := newTestRouter(t, newFake(1), Options{Permissions: p})
	m, _ := say(r, alice, "!destroy e-10000")
	if !m.Error || !strings.Contains(m.Text(), "not allowed to run !destroy") {
		t.Fatalf("refusal = %q", m.Text())
	}
	help, _ := say(r, alice, "!help")
	text := help.Text()
	for _, hidden := range []string{"!destroy", "!env ", "!sweep", "!keep"} {
		if strings.Contains(text, hidden) {
			t.Errorf("help lists %q, which the asker may not run:\n%s", hidden, text)
		}
	}
	for _, shown := range []string{"!envs", "!status", "!logs", "!help"} {
		if !strings.Contains(text, shown) {
			t.Errorf("help lacks %q:\n%s", shown, text)
		}
	}
	detail, _ := say(r, alice, "!help destroy")
	if !strings.Contains(detail.Text(), "You are not allowed to run it") {
		t.Errorf("help destroy = %q", detail.Text())
	}
	// Unknown-command suggestions never point at commands the asker may not run.
	if m, _ := r.Handle(context.Background(), chat.Incoming{From: alice, Text: "!destro"}); strings.Contains(m.Text(), "!destroy") {
		t.Errorf("suggested a forbidden command: %q", m.Text())
	}
}

func TestNewPermissionsErrors(t *testing.T) {
	_, err := NewPermissions(PermissionConfig{
		Commands: map[string][]string{"env": {"alice"}},
		Default:  []string{"", "slack:U1"},
	})
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"commands.env[0]", `"alice"`, "default[0]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"a*b", "ab", true},
		{"a*b", "axxb", true},
		{"a*b", "axxc", false},
		{"*!*@host", "nick[away]!u@host", true},
		{"n?ck!*@*", "nick!u@h", true},
		{"n?ck!*@*", "nck!u@h", false},
		{"*a*a*a*a*b", strings.Repeat("a", 200), false},
	}
	for _, tt := range tests {
		if got := globMatch(tt.pattern, tt.s); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}
