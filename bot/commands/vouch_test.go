package commands

import (
	"slices"
	"strings"
	"testing"

	"github.com/ductbot/ductbot/bot/chat"
	"github.com/ductbot/ductbot/config"
	"github.com/ductbot/ductbot/core/run"
)

// The !env request the backend receives says whether the asker is on
// chat.permissions.vouch, and only then.
func TestEnvRequestVouched(t *testing.T) {
	perms, err := NewPermissions(PermissionConfig{
		Commands: map[string][]string{
			"env":   {"*"},
			"vouch": {"slack:U1ALICE", "irc:carol", "irc:*!*@maintainers.example"},
			// Running commands is not vouching: being allowed to destroy,
			// or by default, says nothing about untrusted code.
			"destroy": {"slack:U2DAVE"},
		},
		Default: []string{"slack:U3ERIN"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		perms *Permissions
		from  chat.Identity
		want  bool
	}{
		{"listed Slack user", perms, alice, true},
		{"listed IRC account", perms, carol, true},
		{"IRC mask on the list", perms, chat.Identity{Network: "irc", Mask: "Mia!m@Maintainers.example"}, true},
		{"same nick, no account", perms, chat.Identity{Network: "irc", Mask: "carol!c@elsewhere.example"}, false},
		{"not listed", perms, bob, false},
		{"another Slack user", perms, chat.Identity{Network: "slack", ID: "U9MALLORY", Display: "alice"}, false},
		{"may destroy, may not vouch", perms, chat.Identity{Network: "slack", ID: "U2DAVE"}, false},
		{"default allow-list, may not vouch", perms, chat.Identity{Network: "slack", ID: "U3ERIN"}, false},
		{"open permissions vouch for nobody", OpenPermissions(), alice, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(0)
			r := newTestRouter(t, f, Options{Permissions: tt.perms})
			if m, _ := say(r, tt.from, "!env 4242"); m.Error {
				t.Fatalf("!env refused: %q", m.Text())
			}
			if len(f.requests) != 1 {
				t.Fatalf("backend got %d requests, want 1", len(f.requests))
			}
			if got := f.requests[0].Vouched; got != tt.want {
				t.Errorf("Vouched = %v, want %v", got, tt.want)
			}
			if got := tt.perms.Vouches(tt.from); got != tt.want {
				t.Errorf("Vouches(%s) = %v, want %v", tt.from, got, tt.want)
			}
		})
	}
}

// vouch is a list in chat.permissions, not a command: help never lists it,
// and "!vouch" is unknown, even to those on the list.
func TestVouchIsNotACommand(t *testing.T) {
	perms, err := NewPermissions(PermissionConfig{
		Commands: map[string][]string{"vouch": {"slack:U1ALICE"}},
		Default:  []string{"*"},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := newTestRouter(t, newFake(1), Options{Permissions: perms})
	for _, who := range []chat.Identity{alice, bob} {
		help, _ := say(r, who, "!help")
		if strings.Contains(help.Text(), "vouch") || !strings.Contains(help.Text(), "!env") {
			t.Errorf("help for %s:\n%s", who, help.Text())
		}
		for _, line := range []string{"!vouch 123", "!help vouch"} {
			if m, _ := say(r, who, line); !m.Error || !strings.Contains(m.Text(), "Unknown command") {
				t.Errorf("%s from %s = %q, want an unknown command", line, who, m.Text())
			}
		}
	}
}

func TestNewPermissionsChecksVouchPatterns(t *testing.T) {
	_, err := NewPermissions(PermissionConfig{Commands: map[string][]string{"vouch": {"slack:U1", "alice"}}})
	if err == nil || !strings.Contains(err.Error(), `vouch[1]: pattern "alice"`) {
		t.Fatalf("err = %v, want the bad vouch pattern named", err)
	}
}

// config validates chat.permissions keys against config.ChatCommands; it
// must name exactly the commands the router registers.
func TestConfigKnowsTheCommands(t *testing.T) {
	var names []string
	for _, c := range newTestRouter(t, newFake(0), Options{}).Commands() {
		names = append(names, c.Name)
	}
	want := slices.Sorted(slices.Values(config.ChatCommands))
	if !slices.Equal(names, want) {
		t.Errorf("registered commands %v, config.ChatCommands %v", names, want)
	}
	if slices.Contains(names, config.VouchKey) {
		t.Errorf("%q is registered as a command", config.VouchKey)
	}
}

// Announcements show the owner's name, never an e-mail address.
func TestFormatAnnouncementShowsNoEmail(t *testing.T) {
	for owner, want := range map[string]string{
		"Jane Doe <jane@example.org>": " by Jane Doe",
		"jane@example.org":            " by jane",
		"jane":                        " by jane",
		"":                            "",
	} {
		a := run.Announcement{Run: run.Run{Change: 1, PatchSet: 2, Owner: owner, State: run.StateDone, Result: run.ResultPassed}}
		title := FormatAnnouncement(a).Title
		if strings.Contains(title, "@") || !strings.HasSuffix(title, "patch set 2"+want) {
			t.Errorf("owner %q: title %q, want it to end with %q", owner, title, "patch set 2"+want)
		}
	}
}
