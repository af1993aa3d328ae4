// Package adapters is the contract between ductbot and a chat network, and
// the Announcer that fans results out to every running adapter. The
// networks live in sub-packages: irc, slack and console.
package adapters

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/ductbot/ductbot/bot/chat"
	"github.com/ductbot/ductbot/bot/commands"
	"github.com/ductbot/ductbot/core/run"
)

// ErrQueueFull is returned (wrapped) by Send when an adapter had to drop a
// message because its outgoing queue was full.
var ErrQueueFull = errors.New("chat outgoing queue full")

// ErrStopped is returned (wrapped) by Send after an adapter has stopped.
var ErrStopped = errors.New("chat adapter stopped")

// Adapter connects ductbot to one chat network.
type Adapter interface {
	// Name is the network name used in chat.Identity and chat.ReplyTo:
	// "irc", "slack" or "console".
	Name() string
	// Run connects, delivers incoming lines to h and sends h's replies back
	// where they came from, reconnecting as needed, until ctx is done (it
	// then returns nil) or the adapter cannot go on (bad credentials).
	Run(ctx context.Context, h chat.Handler) error
	// Send queues m for t and returns without waiting for the network. It
	// may be called before Run connects; queued messages go out once
	// connected.
	Send(ctx context.Context, t chat.Target, m chat.Message) error
	// Serves reports whether channel is one of the adapter's channels.
	Serves(channel string) bool
}

// Threader is implemented by adapters whose replies go into threads (Slack).
type Threader interface {
	Threads() bool
}

// Announcer sends run results and sweep summaries to the configured
// channels on every adapter that serves them, and results of chat-started
// runs back to the asker. cmd/ductbot hands it to the pipeline, which needs only its methods. It does not
// block: adapters queue.
type Announcer struct {
	adapters []Adapter
	log      *slog.Logger
}

// NewAnnouncer makes an Announcer over adapters. A nil logger means
// slog.Default().
func NewAnnouncer(log *slog.Logger, adapters ...Adapter) *Announcer {
	if log == nil {
		log = slog.Default()
	}
	return &Announcer{adapters: adapters, log: log}
}

// Announce queues a's result for its channels and its asker. It returns the
// errors of adapters that could not queue it, joined.
func (an *Announcer) Announce(ctx context.Context, a run.Announcement) error {
	m := commands.FormatAnnouncement(a)
	var reply *chat.ReplyTo
	if to, ok := chat.DecodeReplyTo(a.ReplyTo); ok {
		reply = &to
	}
	err := an.send(ctx, a.Channels, reply, m)
	if err != nil {
		return fmt.Errorf("announcing run %d of %s: %w", a.Run.ID, a.Env.Name, err)
	}
	return nil
}

// AnnounceSweep queues one message summarising a cleanup sweep for the
// summary's channels.
func (an *Announcer) AnnounceSweep(ctx context.Context, s run.SweepSummary) error {
	if err := an.send(ctx, s.Channels, nil, commands.FormatSweep(s)); err != nil {
		return fmt.Errorf("announcing sweep: %w", err)
	}
	return nil
}

func (an *Announcer) send(ctx context.Context, channels []string, reply *chat.ReplyTo, m chat.Message) error {
	var errs []error
	for _, ad := range an.adapters {
		for _, t := range Targets(ad, channels, reply) {
			if err := ad.Send(ctx, t, m); err != nil {
				an.log.Warn("chat announcement not queued", "network", ad.Name(), "channel", t.Channel, "err", err)
				errs = append(errs, fmt.Errorf("%s %s: %w", ad.Name(), t.Channel, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Targets is where an announcement goes on one adapter: each of channels
// the adapter serves and, when the run was asked for on this adapter, back
// to the asker. When the asker's channel is also an announcement channel
// and there is no thread, the two are merged into one message addressed to
// the asker.
func Targets(ad Adapter, channels []string, reply *chat.ReplyTo) []chat.Target {
	var out []chat.Target
	for _, ch := range channels {
		if ad.Serves(ch) && !slices.ContainsFunc(out, func(t chat.Target) bool { return t.Channel == ch }) {
			out = append(out, chat.Target{Channel: ch})
		}
	}
	if reply == nil || reply.Network != ad.Name() {
		return out
	}
	rt := chat.TargetFor(*reply)
	if rt.Thread == "" {
		if i := slices.IndexFunc(out, func(t chat.Target) bool { return t.Channel == rt.Channel }); i >= 0 {
			out[i].Mention = rt.Mention
			return out
		}
	}
	return append(out, rt)
}

// Notify queues a short message back to the person who asked for a run,
// on the adapter they asked on (the "deployed" message of !env).
func (an *Announcer) Notify(ctx context.Context, replyTo string, text string) error {
	to, ok := chat.DecodeReplyTo(replyTo)
	if !ok {
		return fmt.Errorf("notifying: %q is not a chat reply target", replyTo)
	}
	for _, ad := range an.adapters {
		if ad.Name() != to.Network {
			continue
		}
		if err := ad.Send(ctx, chat.TargetFor(to), chat.Textf("%s", text)); err != nil {
			return fmt.Errorf("notifying on %s: %w", ad.Name(), err)
		}
	}
	return nil
}
