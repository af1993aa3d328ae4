// Package chat holds the types shared by ductbot's chat commands and chat
// adapters: who said something (Identity), what they said and where
// (Incoming), where a message goes (Target) and what a reply looks like
// (Message). It has no behaviour beyond rendering and matching helpers.
package chat

import (
	"context"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"encoding/json"
)

// Identity is a stable description of who sent a line.
//
// On Slack, ID is the user ID (U123…). On IRC, ID is the services account
// when the server reports one (IRCv3 account-tag), else empty; Mask is always
// the nick!user@host mask. Display is a human name for replies (the nick) and
// is never used for decisions.
type Identity struct {
	Network string // adapter name: "irc", "slack", "console"
	ID      string
	Mask    string
	Display string
}

// String is the identity as stored in run.Env.RequestedBy and
// pipeline.EnvRequest.By, and matched by permission patterns:
//
//	slack:U123            Slack user ID
//	irc:alice             IRC services account
//	irc:alice!al@host     IRC mask, when the server reports no account
//	console:local         the console adapter's configured identity
func (id Identity) String() string {
	switch {
	case id.ID != "":
		return id.Network + ":" + id.ID
	case id.Mask != "":
		return id.Network + ":" + id.Mask
	default:
		return id.Network + ":" + id.Display
	}
}

// ReplyTo says where a chat request came from, so that the result of the run
// it started can be sent back there (a thread on Slack, the channel on IRC).
// The pipeline keeps it as an opaque string (Encode, DecodeReplyTo) and never
// looks inside.
type ReplyTo struct {
	Network string `json:"network"` // adapter name: "irc", "slack", "console"
	Channel string `json:"channel"`
	Thread  string `json:"thread,omitempty"` // Slack thread timestamp; empty elsewhere
	User    string `json:"user,omitempty"`   // the asker's stable identity
}

// Encode is the opaque form the pipeline stores.
func (r ReplyTo) Encode() string {
	b, _ := json.Marshal(r) // a struct of strings always marshals
	return string(b)
}

// DecodeReplyTo reads what Encode wrote; ok is false for "" or anything else.
func DecodeReplyTo(s string) (r ReplyTo, ok bool) {
	if s == "" || json.Unmarshal([]byte(s), &r) != nil || r.Network == "" {
		return ReplyTo{}, false
	}
	return r, true
}

// Incoming is one line of chat addressed, maybe, to the bot.
type Incoming struct {
	From      Identity
	ReplyTo   ReplyTo // where the answer and later results go
	Text      string  // the line as typed (mention already removed); untrusted
	Mentioned bool    // the bot was mentioned, so the command prefix is optional
}

// Handler answers incoming lines. Handle returns ok=false when the line is
// not for the bot (no prefix, no mention); the adapter then stays silent.
// Adapters call Handle off their read loop; it may take as long as the
// backend needs, bounded by ctx.
type Handler interface {
	Handle(ctx context.Context, in Incoming) (reply Message, ok bool)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, in Incoming) (Message, bool)

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, in Incoming) (Message, bool) { return f(ctx, in) }

// Target is where an adapter sends a message.
type Target struct {
	Channel string // IRC channel, Slack channel ID; "" on the console
	Thread  string // Slack thread timestamp; empty elsewhere
	Mention string // a stable identity (Identity.String) to address; optional
}

// TargetFor turns a ReplyTo into a Target that addresses the asker.
func TargetFor(r ReplyTo) Target {
	return Target{Channel: r.Channel, Thread: r.Thread, Mention: r.User}
}

// Field is one labelled value of a Message.
type Field struct {
	Name, Value string
}

// Message is a reply or an announcement in a form every adapter can render:
// an optional one-line title, optional labelled fields, then plain lines.
// All text may contain untrusted content; adapters make it safe for their
// network (IRC strips control characters, Slack escapes and bounds it).
type Message struct {
	Title  string
	Fields []Field
	Lines  []string
	Error  bool // the message reports a refusal or failure
}

// Empty reports whether the message has nothing to show.
func (m Message) Empty() bool {
	return m.Title == "" && len(m.Fields) == 0 && len(m.Lines) == 0
}

// PlainLines renders the message as plain text lines: the title, the fields
// as "name: value", then the lines. Embedded newlines split lines.
func (m Message) PlainLines() []string {
	var out []string
	add := func(s string) {
		for l := range strings.SplitSeq(s, "\n") {
			l = strings.TrimRight(l, " \t\r")
			if l != "" {
				out = append(out, l)
			}
		}
	}
	add(m.Title)
	for _, f := range m.Fields {
		add(f.Name + ": " + f.Value)
	}
	for _, l := range m.Lines {
		add(l)
	}
	return out
}

// Text is PlainLines joined with newlines.
func (m Message) Text() string { return strings.Join(m.PlainLines(), "\n") }

// Errorf is a one-line error message.
func Errorf(format string, args ...any) Message {
	return Message{Lines: []string{fmt.Sprintf(format, args...)}, Error: true}
}

// Textf is a one-line message.
func Textf(format string, args ...any) Message {
	return Message{Lines: []string{fmt.Sprintf(format, args...)}}
}

// StripControl makes untrusted text safe for a line-oriented chat: it
// removes CR, LF, NUL and every other control character (a tab becomes a
// space) and replaces invalid UTF-8, so the text can never start a new IRC
// command or drive a terminal.
func StripControl(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var sb strings.Builder
	sb.Grow(len(s))
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch {
		case r == '\t':
			sb.WriteByte(' ')
		case unicode.IsControl(r):
		default:
			sb.WriteRune(r)
		}
	}
	return sb.String()
}

// MentionName is the short name to address the holder of a stable identity
// (Identity.String) by: the nick of an IRC mask, else the part after the
// network.
func MentionName(identity string) string {
	_, rest, ok := strings.Cut(identity, ":")
	if !ok {
		rest = identity
	}
	if nick, _, ok := strings.Cut(rest, "!"); ok {
		return nick
	}
	return rest
}
