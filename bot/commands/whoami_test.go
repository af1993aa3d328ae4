package commands

import (
	"strings"
	"testing"

	"github.com/ductbot/ductbot/bot/chat"
	"github.com/ductbot/ductbot/config"
)

// !whoami answers with the identity exactly as chat.permissions takes it:
// written there, it lets that person run a command.
func TestWhoami(t *testing.T) {
	tests := []struct {
		name  string
		from  chat.Identity
		title string   // the identity string, in "You are ..."
		has   []string // hints
	}{
		{"slack", chat.Identity{Network: "slack", ID: "U0ADMIN01", Display: "U0ADMIN01"}, "slack:U0ADMIN01", nil},
		{"irc account", chat.Identity{Network: "irc", ID: "carol", Mask: "Carol_!c@home.example", Display: "Carol_"}, "irc:carol",
			[]string{"services account", "only while you are logged in", "Carol_!c@home.example", `"irc:*!*@home.example"`}},
		{"irc mask", chat.Identity{Network: "irc", Mask: "bob!b@guest.example", Display: "bob"}, "irc:bob!b@guest.example",
			[]string{"does not say you are logged in", `"irc:*!*@guest.example"`, "irc:<account>"}},
		{"console", chat.Identity{Network: "console", ID: "local", Display: "local"}, "console:local", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Only env is listed; whoami stays open to everyone.
			perms, err := NewPermissions(PermissionConfig{Commands: map[string][]string{"env": {"slack:UOTHER"}}})
			if err != nil {
				t.Fatal(err)
			}
			r := newTestRouter(t, newFake(0), Options{Permissions: perms})
			m, ok := say(r, tt.from, "!whoami")
			if !ok || m.Error {
				t.Fatalf("!whoami = %+v, %v; want an answer", m, ok)
			}
			if want := "You are " + tt.title; m.Title != want {
				t.Errorf("title %q, want %q", m.Title, want)
			}
			text := strings.Join(m.PlainLines(), "\n")
			for _, h := range append(tt.has, `add "`+tt.title+`" to its list under chat.permissions`) {
				if !strings.Contains(text, h) {
					t.Errorf("answer does not contain %q:\n%s", h, text)
				}
			}

			// The string passes validate and, in a command's list, admits them.
			if err := config.CheckIdentityPattern(tt.title); err != nil {
				t.Errorf("config rejects %q: %v", tt.title, err)
			}
			perms, err = NewPermissions(PermissionConfig{Commands: map[string][]string{"env": {tt.title}}})
			if err != nil {
				t.Fatal(err)
			}
			env := r.byName["env"]
			if !perms.Allowed(env, tt.from) {
				t.Errorf("chat.permissions.env: [%q] does not admit %+v", tt.title, tt.from)
			}
			if perms.Allowed(env, chat.Identity{Network: tt.from.Network, ID: "someone-else", Mask: "x!y@elsewhere.example", Display: "x"}) {
				t.Errorf("chat.permissions.env: [%q] admits someone else", tt.title)
			}
		})
	}
}

// whoami is in the help of everyone, also where the default allow-list is
// empty, and can be closed by listing it.
func TestWhoamiPermissions(t *testing.T) {
	closed, err := NewPermissions(PermissionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	r := newTestRouter(t, newFake(0), Options{Permissions: closed})
	for _, who := range []chat.Identity{alice, bob, carol} {
		help, _ := say(r, who, "!help")
		if text := strings.Join(help.PlainLines(), "\n"); !strings.Contains(text, "!whoami — Tells you your identity as it goes in chat.permissions.") {
			t.Errorf("!help for %s does not list !whoami:\n%s", who, text)
		}
		if m, _ := say(r, who, "!whoami"); m.Error || m.Title != "You are "+who.String() {
			t.Errorf("!whoami for %s = %+v", who, m)
		}
	}
	if m, _ := say(r, alice, "!whoami please"); !m.Error || !strings.Contains(strings.Join(m.PlainLines(), "\n"), "Usage: !whoami") {
		t.Errorf("!whoami with an argument = %+v, want a usage error", m)
	}

	listed, err := NewPermissions(PermissionConfig{Commands: map[string][]string{"whoami": {alice.String()}}})
	if err != nil {
		t.Fatal(err)
	}
	r = newTestRouter(t, newFake(0), Options{Permissions: listed})
	if m, _ := say(r, alice, "!whoami"); m.Error {
		t.Errorf("listed alice refused: %+v", m)
	}
	if m, _ := say(r, bob, "!whoami"); !m.Error || !strings.Contains(m.Title+strings.Join(m.PlainLines(), ""), "not allowed") {
		t.Errorf("unlisted bob: %+v, want a refusal", m)
	}
}
