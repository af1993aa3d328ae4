package commands

import (
	"context"
	"fmt"
	"strings"

	"github.com/ductbot/ductbot/bot/chat"
)

// whoamiCommand answers with the asker's identity exactly as it goes in
// chat.permissions (chat.Identity.String, which the permission patterns
// match), so people know what to ask an admin to add. It changes nothing,
// so it is open to everyone unless chat.permissions lists it.
func whoamiCommand() *Command {
	return &Command{
		Name: "whoami", Summary: "Tells you your identity as it goes in chat.permissions.",
		Parse: noArgs,
		Run: func(_ context.Context, call *Call, _ any) (chat.Message, error) {
			return whoami(call.From), nil
		},
	}
}

func whoami(id chat.Identity) chat.Message {
	who := id.String()
	m := chat.Message{Title: "You are " + who}
	add := func(format string, args ...any) { m.Lines = append(m.Lines, fmt.Sprintf(format, args...)) }
	switch {
	case id.Network == "irc" && id.ID != "":
		add("That is your IRC services account: it matches you only while you are logged in.")
		if id.Mask != "" {
			add("Your mask now is %s; a mask pattern such as %q would match you without the login.", id.Mask, hostPattern(id.Mask))
		}
	case id.Network == "irc":
		add("The server does not say you are logged in to services, so only your nick!user@host mask identifies you; %q matches any nick from your host.", hostPattern(id.Mask))
		add("Log in to services (and ask again) to be named by your account instead: irc:<account>.")
	}
	add("To be allowed a command, ask an admin to add %q to its list under chat.permissions.", who)
	return m
}

// hostPattern is the IRC mask pattern matching any nick and user at the
// host of mask (nick!user@host).
func hostPattern(mask string) string {
	_, host, ok := strings.Cut(mask, "@")
	if !ok || host == "" {
		return "irc:" + mask
	}
	return "irc:*!*@" + host
}
