// Package slack is ductbot's Slack adapter over Socket Mode (no public URL
// needed). It acknowledges every envelope, drops redelivered events, answers
// mentions and prefixed messages in threads, honours rate limits and stops
// with a clear error when its tokens are refused.
package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"

	"github.com/ductbot/ductbot/bot/chat"
	"github.com/ductbot/ductbot/core/metrics"
)

// Network is the adapter's name in identities and ReplyTo.
const Network = "slack"

// ErrAuth is returned (wrapped) by Run when Slack refuses the tokens
// (invalid_auth, token_revoked, account_inactive, not_authed).
var ErrAuth = errors.New("slack refused the token")

const (
	maxBlockText = 3000 // Block Kit text object limit
	maxText      = 3900 // below Slack's ~4000-character message limit
	maxRetries   = 3    // 429 retries per message
	callTimeout  = 30 * time.Second
	dedupeSize   = 1000
)

// Config configures the Slack adapter.
type Config struct {
	BotToken string   // xoxb-…; never logged
	AppToken string   // xapp-…; never logged
	Channels []string // channel IDs the adapter announces to
	APIURL   string   // tests: slacktest's URL
	// QueueSize bounds outgoing messages waiting to be posted; default 200.
	QueueSize int
	Metrics   *metrics.Metrics
	Logger    *slog.Logger
}

// api is the part of the Slack Web API the adapter uses.
type api interface {
	AuthTestContext(ctx context.Context) (*slack.AuthTestResponse, error)
	PostMessageContext(ctx context.Context, channel string, options ...slack.MsgOption) (string, string, error)
}

// socket is the part of the Socket Mode client the adapter uses.
type socket interface {
	RunContext(ctx context.Context) error
	Ack(req socketmode.Request, payload ...any) error
}

// Adapter is the Slack chat adapter. Build it with New; run it with Run.
type Adapter struct {
	cfg    Config
	log    *slog.Logger
	api    api
	sock   socket
	events <-chan socketmode.Event

	out   chan outgoing
	botID string

	mu   sync.Mutex
	seen map[string]bool
	ring []string
}

type outgoing struct {
	t chat.Target
	m chat.Message
}

// New makes an adapter for cfg. It does not connect.
func New(cfg Config) (*Adapter, error) {
	if !strings.HasPrefix(cfg.BotToken, "xoxb-") || !strings.HasPrefix(cfg.AppToken, "xapp-") {
		return nil, fmt.Errorf("slack: %w: want a bot token (xoxb-) and an app-level token (xapp-)", ErrAuth)
	}
	opts := []slack.Option{slack.OptionAppLevelToken(cfg.AppToken)}
	if cfg.APIURL != "" {
		opts = append(opts, slack.OptionAPIURL(cfg.APIURL))
	}
	client := slack.New(cfg.BotToken, opts...)
	sm := socketmode.New(client)
	return newAdapter(cfg, client, sm, sm.Events), nil
}

func newAdapter(cfg Config, a api, s socket, events <-chan socketmode.Event) *Adapter {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 200
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Adapter{
		cfg: cfg, log: cfg.Logger.With("network", Network), api: a, sock: s, events: events,
		out: make(chan outgoing, cfg.QueueSize), seen: map[string]bool{},
	}
}

// Name returns "slack".
func (a *Adapter) Name() string { return Network }

// Threads reports true: replies go into threads.
func (a *Adapter) Threads() bool { return true }

// Serves reports whether channel is one of the configured channel IDs.
func (a *Adapter) Serves(channel string) bool { return slices.Contains(a.cfg.Channels, channel) }

// Send queues m for t. It returns an error when the queue is full.
func (a *Adapter) Send(_ context.Context, t chat.Target, m chat.Message) error {
	select {
	case a.out <- outgoing{t, m}:
		return nil
	default:
		a.count("dropped")
		return fmt.Errorf("slack: %d messages waiting: dropped one for %s", a.cfg.QueueSize, t.Channel)
	}
}

func (a *Adapter) count(outcome string) {
	if a.cfg.Metrics != nil {
		a.cfg.Metrics.ChatMessages.WithLabelValues(Network, outcome).Inc()
	}
}

// Run checks the bot token, connects Socket Mode and serves until ctx is
// done (then it returns nil) or Slack refuses a token (an error wrapping
// ErrAuth).
func (a *Adapter) Run(ctx context.Context, h chat.Handler) error {
	actx, cancel := context.WithTimeout(ctx, callTimeout)
	auth, err := a.api.AuthTestContext(actx)
	cancel()
	if err != nil {
		if isAuthError(err) {
			return fmt.Errorf("slack: checking the bot token: %w: %v", ErrAuth, err)
		}
		return fmt.Errorf("slack: checking the bot token: %w", err)
	}
	a.botID = auth.UserID

	ctx, cancel = context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { a.sender(ctx) })
	wg.Go(func() { a.dispatch(ctx, h) })

	err = a.sock.RunContext(ctx)
	if ctx.Err() != nil {
		return nil
	}
	if isAuthError(err) {
		return fmt.Errorf("slack: socket mode: %w: %v", ErrAuth, err)
	}
	return fmt.Errorf("slack: socket mode stopped: %w", err)
}

func isAuthError(err error) bool {
	if err == nil {
		return false
	}
	switch err.Error() {
	case "invalid_auth", "token_revoked", "account_inactive", "not_authed":
		return true
	}
	return false
}

func (a *Adapter) dispatch(ctx context.Context, h chat.Handler) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-a.events:
			if !ok {
				return
			}
			if ev.Request != nil && ev.Request.EnvelopeID != "" {
				if err := a.sock.Ack(*ev.Request); err != nil {
					a.log.Warn("slack: ack failed", "err", err)
				}
			}
			if ev.Type != socketmode.EventTypeEventsAPI {
				continue
			}
			api, ok := ev.Data.(slackevents.EventsAPIEvent)
			if !ok {
				continue
			}
			if cb, ok := api.Data.(*slackevents.EventsAPICallbackEvent); ok && a.duplicate(cb.EventID) {
				continue
			}
			if in, ok := a.incoming(api.InnerEvent.Data); ok {
				go a.answer(ctx, h, in)
			}
		}
	}
}

// duplicate reports whether the event ID was seen before, remembering a
// bounded number of IDs.
func (a *Adapter) duplicate(id string) bool {
	if id == "" {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.seen[id] {
		return true
	}
	a.seen[id] = true
	a.ring = append(a.ring, id)
	if len(a.ring) > dedupeSize {
		delete(a.seen, a.ring[0])
		a.ring = a.ring[1:]
	}
	return false
}

func (a *Adapter) incoming(data any) (chat.Incoming, bool) {
	var user, text, channel, ts, thread, bot string
	mentioned := false
	switch e := data.(type) {
	case *slackevents.AppMentionEvent:
		user, text, channel, ts, thread, bot = e.User, e.Text, e.Channel, e.TimeStamp, e.ThreadTimeStamp, e.BotID
		mentioned = true
	case *slackevents.MessageEvent:
		if e.SubType != "" || strings.Contains(e.Text, "<@"+a.botID+">") {
			return chat.Incoming{}, false // edits, joins; mentions come as app_mention
		}
		user, text, channel, ts, thread, bot = e.User, e.Text, e.Channel, e.TimeStamp, e.ThreadTimeStamp, e.BotID
	default:
		return chat.Incoming{}, false
	}
	if bot != "" || user == "" || user == a.botID {
		return chat.Incoming{}, false
	}
	text = strings.TrimSpace(strings.ReplaceAll(text, "<@"+a.botID+">", ""))
	if mentioned && strings.HasPrefix(text, "<@") { // the app's mention, whatever ID it was addressed by
		if i := strings.IndexByte(text, '>'); i > 0 {
			text = strings.TrimSpace(text[i+1:])
		}
	}
	if thread == "" {
		thread = ts
	}
	return chat.Incoming{
		From:      chat.Identity{Network: Network, ID: user, Display: user},
		Text:      unescape(text),
		Mentioned: mentioned,
		ReplyTo:   chat.ReplyTo{Network: Network, Channel: channel, Thread: thread},
	}, true
}

func (a *Adapter) answer(ctx context.Context, h chat.Handler, in chat.Incoming) {
	reply, ok := h.Handle(ctx, in)
	if !ok {
		return
	}
	if err := a.Send(ctx, chat.Target{Channel: in.ReplyTo.Channel, Thread: in.ReplyTo.Thread}, reply); err != nil {
		a.log.Warn("slack: reply not queued", "err", err)
	}
}

func (a *Adapter) sender(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case o := <-a.out:
			a.post(ctx, o)
		}
	}
}

// post sends one message, retrying after Retry-After on 429 a bounded
// number of times.
func (a *Adapter) post(ctx context.Context, o outgoing) {
	text := render(o.t, o.m)
	opts := []slack.MsgOption{
		slack.MsgOptionText(text, false),
		slack.MsgOptionBlocks(slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, bound(text, maxBlockText), false, false), nil, nil)),
	}
	if o.t.Thread != "" {
		opts = append(opts, slack.MsgOptionTS(o.t.Thread))
	}
	for attempt := 0; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, callTimeout)
		_, _, err := a.api.PostMessageContext(pctx, o.t.Channel, opts...)
		cancel()
		if err == nil {
			a.count("sent")
			return
		}
		var rl *slack.RateLimitedError
		if errors.As(err, &rl) && attempt < maxRetries {
			a.count("retried")
			select {
			case <-ctx.Done():
				return
			case <-time.After(rl.RetryAfter):
				continue
			}
		}
		a.count("dropped")
		a.log.Warn("slack: message not posted", "channel", o.t.Channel, "err", err)
		return
	}
}

// render is the escaped, bounded text of m for Slack mrkdwn.
func render(t chat.Target, m chat.Message) string {
	lines := m.PlainLines()
	for i, l := range lines {
		lines[i] = escape(l)
	}
	if len(lines) > 0 && m.Title != "" {
		lines[0] = "*" + lines[0] + "*"
	}
	text := strings.Join(lines, "\n")
	if t.Mention != "" {
		if id, ok := strings.CutPrefix(t.Mention, Network+":"); ok {
			text = "<@" + escape(id) + "> " + text
		}
	}
	return bound(text, maxText)
}

// escape makes untrusted text inert in Slack mrkdwn: &, < and > are the
// characters Slack requires escaped (they form links and mentions).
func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(strings.ToValidUTF8(s, "\uFFFD"))
}

func unescape(s string) string {
	return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(s)
}

// bound cuts s to at most n runes, marking the cut.
func bound(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
