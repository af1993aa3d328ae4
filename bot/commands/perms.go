package commands

import (
	"fmt"
	"strings"

	"github.com/ductbot/ductbot/bot/chat"
	"github.com/ductbot/ductbot/config"
)

// PermissionConfig is who may run which command, as read from configuration
// (chat.permissions).
//
// A pattern is "*" (everyone) or "<network>:<glob>", where the glob uses *
// and ? and is matched case-insensitively:
//
//	slack:U0123ABC            one Slack user (by user ID)
//	irc:alice                 an IRC services account (only users the server reports as logged in)
//	irc:*!*@trusted.example   an IRC nick!user@host mask
//	console:*                 the console adapter
//
// An IRC pattern containing "!" or "@" is a mask pattern and is matched
// against the sender's mask; any other IRC pattern is an account pattern and
// matches only a sender whose account the server reported.
type PermissionConfig struct {
	// Commands maps a command name (without prefix) to its allow-list. The
	// key "vouch" (config.VouchKey) is not a command: it lists who vouches
	// for code from untrusted uploaders (see Permissions.Vouches).
	Commands map[string][]string
	// Default is the allow-list of commands that change something and are
	// not listed in Commands. Empty means nobody. Read-only commands that are
	// not listed are open to everyone.
	Default []string
}

// Permissions decides who may run which command. The zero value is not
// usable; build one with NewPermissions.
type Permissions struct {
	commands map[string][]pattern
	def      []pattern
	vouch    []pattern // who vouches for untrusted code; empty: nobody
}

type pattern struct {
	any     bool
	network string
	glob    string // lower-cased
	mask    bool   // IRC mask pattern
}

// NewPermissions validates cfg and builds Permissions from it. It reports
// every malformed pattern.
func NewPermissions(cfg PermissionConfig) (*Permissions, error) {
	p := &Permissions{commands: make(map[string][]pattern, len(cfg.Commands))}
	var problems []string
	parse := func(where string, list []string) []pattern {
		out := make([]pattern, 0, len(list))
		for i, s := range list {
			pat, err := parsePattern(s)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s[%d]: %v", where, i, err))
				continue
			}
			out = append(out, pat)
		}
		return out
	}
	for name, list := range cfg.Commands {
		if name == config.VouchKey {
			p.vouch = parse(name, list)
			continue
		}
		p.commands[name] = parse("commands."+name, list)
	}
	p.def = parse("default", cfg.Default)
	if len(problems) > 0 {
		return nil, fmt.Errorf("chat permissions: %s", strings.Join(problems, "; "))
	}
	return p, nil
}

// OpenPermissions lets everyone run every command: for local use and tests.
// Nobody vouches for untrusted code.
func OpenPermissions() *Permissions {
	return &Permissions{commands: map[string][]pattern{}, def: []pattern{{any: true}}}
}

func parsePattern(s string) (pattern, error) {
	if err := config.CheckIdentityPattern(s); err != nil {
		return pattern{}, err
	}
	if s == "*" {
		return pattern{any: true}, nil
	}
	network, glob, _ := strings.Cut(s, ":")
	return pattern{
		network: strings.ToLower(network),
		glob:    strings.ToLower(glob),
		mask:    network == "irc" && strings.ContainsAny(glob, "!@"),
	}, nil
}

func (p pattern) matches(id chat.Identity) bool {
	if p.any {
		return true
	}
	if p.network != strings.ToLower(id.Network) {
		return false
	}
	switch {
	case p.mask:
		return id.Mask != "" && globMatch(p.glob, strings.ToLower(id.Mask))
	case id.ID != "":
		return globMatch(p.glob, strings.ToLower(id.ID))
	case id.Network == "irc":
		return false // an account pattern needs an account
	default:
		return globMatch(p.glob, strings.ToLower(id.Display))
	}
}

// Allowed reports whether id may run cmd.
func (p *Permissions) Allowed(cmd *Command, id chat.Identity) bool {
	list, listed := p.commands[cmd.Name]
	if !listed {
		if !cmd.Mutates {
			return true
		}
		list = p.def
	}
	for _, pat := range list {
		if pat.matches(id) {
			return true
		}
	}
	return false
}

// Vouches reports whether id is on chat.permissions.vouch: its !env of a
// change from an untrusted uploader may deploy that code (the pipeline's
// trust gate decides). Only that list counts: neither the command lists nor
// the default allow-list vouch for anyone.
func (p *Permissions) Vouches(id chat.Identity) bool {
	for _, pat := range p.vouch {
		if pat.matches(id) {
			return true
		}
	}
	return false
}

// globMatch matches s against a pattern where * is any run of bytes and ?
// is any one byte. It runs in O(len(pattern)·len(s)) without recursion.
func globMatch(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
