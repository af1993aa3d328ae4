package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/ductbot/ductbot/internal/suggest"
)

// VouchKey is the one chat.permissions key that is not a command: the
// identities it lists vouch for code from untrusted uploaders when they ask
// for it with !env. Unset, nobody does.
const VouchKey = "vouch"

// ChatCommands are the names of the built-in chat commands, the keys
// chat.permissions may use besides VouchKey. bot/commands' tests check that
// this list matches the commands it registers.
var ChatCommands = []string{"destroy", "env", "envs", "extend", "help", "keep", "logs", "retest", "sleep", "status", "sweep", "unkeep", "wake", "whoami"}

// CheckIdentityPattern checks the syntax of one chat.permissions entry:
// "*" (everyone) or "<network>:<glob>", such as slack:U0123ABC, irc:alice
// or irc:*!*@trusted.example. bot/commands parses entries with it, so the
// file and the bot agree on what is valid.
func CheckIdentityPattern(s string) error {
	if s == "*" {
		return nil
	}
	network, glob, ok := strings.Cut(s, ":")
	if !ok || network == "" || glob == "" || strings.ContainsAny(network, " \t*?") {
		return fmt.Errorf("pattern %q: expected \"*\" or network:pattern, e.g. slack:U0123 or irc:*!*@host", s)
	}
	switch network {
	case "slack":
		if !slackIdentity.MatchString(glob) {
			return fmt.Errorf("pattern %q: Slack people are named by member ID, such as slack:U0123ABCD (profile, ⋮, Copy member ID), not by name", s)
		}
	case "irc":
		if strings.ContainsAny(glob, " \t,") {
			return fmt.Errorf("pattern %q: an IRC pattern is an account name (irc:alice) or a nick!user@host mask (irc:*!*@host), without spaces or commas", s)
		}
	case "console":
	default:
		return fmt.Errorf("pattern %q: unknown network %q; expected irc, slack or console", s, network)
	}
	return nil
}

// slackIdentity is a Slack member ID or a glob over them.
var slackIdentity = regexp.MustCompile(`^[UW*?][A-Z0-9*?]*$`)

// validatePermissions reports unknown keys of chat.permissions (with a
// suggestion) and malformed identity patterns there and in
// chat.default_allow, each with its path.
func validatePermissions(ch Chat, add func(path, format string, args ...any)) {
	keys := make([]string, 0, len(ch.Permissions))
	for k := range ch.Permissions {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	known := append(slices.Clone(ChatCommands), VouchKey)
	for _, k := range keys {
		p := "chat.permissions." + k
		if !slices.Contains(known, k) {
			msg := "not a chat command"
			if s := suggest.Closest(k, known); s != "" {
				msg += "; did you mean " + s + "?"
			} else {
				msg += "; expected one of " + strings.Join(ChatCommands, ", ") + ", or " + VouchKey + " (who may vouch for untrusted code)"
			}
			add(p, "%s", msg)
		}
		checkPatterns(p, ch.Permissions[k], add)
	}
	checkPatterns("chat.default_allow", ch.DefaultAllow, add)
}

func checkPatterns(path string, list []string, add func(path, format string, args ...any)) {
	for i, s := range list {
		if err := CheckIdentityPattern(s); err != nil {
			add(fmt.Sprintf("%s[%d]", path, i), "%v", err)
		}
	}
}
