package adapters

import (
	"context"
	"slices"
	"testing"

	"github.com/ductbot/ductbot/bot/chat"
	"github.com/ductbot/ductbot/core/run"
)

type recorder struct {
	name     string
	channels []string
	sent     []chat.Target
}

func (r *recorder) Name() string                            { return r.name }
func (r *recorder) Run(context.Context, chat.Handler) error { return nil }
func (r *recorder) Serves(ch string) bool                   { return slices.Contains(r.channels, ch) }
func (r *recorder) Send(_ context.Context, t chat.Target, _ chat.Message) error {
	r.sent = append(r.sent, t)
	return nil
}

func TestAnnouncerTargets(t *testing.T) {
	irc := &recorder{name: "irc", channels: []string{"#dev", "#ops"}}
	slack := &recorder{name: "slack", channels: []string{"C1"}}
	an := NewAnnouncer(nil, irc, slack)
	ctx := context.Background()

	// Asked on IRC in an announcement channel: one message, addressed.
	if err := an.Announce(ctx, run.Announcement{Channels: []string{"#dev", "C1", "#nowhere"},
		ReplyTo: chat.ReplyTo{Network: "irc", Channel: "#dev", User: "irc:al!a@h"}.Encode()}); err != nil {
		t.Fatal(err)
	}
	wantIRC := []chat.Target{{Channel: "#dev", Mention: "irc:al!a@h"}}
	wantSlack := []chat.Target{{Channel: "C1"}}
	if !slices.Equal(irc.sent, wantIRC) || !slices.Equal(slack.sent, wantSlack) {
		t.Fatalf("irc got %+v, slack got %+v", irc.sent, slack.sent)
	}

	// Asked in a Slack thread: the channel post and the thread reply.
	irc.sent, slack.sent = nil, nil
	if err := an.Announce(ctx, run.Announcement{Channels: []string{"C1"},
		ReplyTo: chat.ReplyTo{Network: "slack", Channel: "C1", Thread: "1.2", User: "slack:U1"}.Encode()}); err != nil {
		t.Fatal(err)
	}
	wantSlack = []chat.Target{{Channel: "C1"}, {Channel: "C1", Thread: "1.2", Mention: "slack:U1"}}
	if len(irc.sent) != 0 || !slices.Equal(slack.sent, wantSlack) {
		t.Fatalf("irc got %+v, slack got %+v", irc.sent, slack.sent)
	}

	// A sweep goes to its channels once.
	irc.sent, slack.sent = nil, nil
	if err := an.AnnounceSweep(ctx, run.SweepSummary{Channels: []string{"#ops", "#ops"}}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(irc.sent, []chat.Target{{Channel: "#ops"}}) || len(slack.sent) != 0 {
		t.Fatalf("irc got %+v, slack got %+v", irc.sent, slack.sent)
	}
}
