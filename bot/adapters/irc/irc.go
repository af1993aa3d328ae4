// Package irc is ductbot's IRC adapter, on gopkg.in/irc.v4. It keeps one
// connection up (TLS optional), reconnecting with capped backoff and
// rejoining its channels, answers PINGs and pings the server itself,
// rate-limits what it sends, and keeps a bounded outgoing queue that
// survives reconnects. Incoming commands are handled off the read loop.
package irc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	irc "gopkg.in/irc.v4"

	"github.com/ductbot/ductbot/bot/chat"
	"github.com/ductbot/ductbot/core/metrics"
)

// Network is the adapter's name in identities and ReplyTo.
const Network = "irc"

// ErrConfig is returned (wrapped) by New for an unusable configuration.
var ErrConfig = errors.New("invalid irc configuration")

// Config configures the IRC adapter. Zero durations and sizes pick the
// documented defaults.
type Config struct {
	Server                string // host:port
	TLS                   bool
	TLSInsecureSkipVerify bool   // tests and self-signed servers only
	Nick                  string // required
	User                  string // default: Nick
	Name                  string // real name; default "ductbot"
	Password              string // server password (PASS); never logged
	NickServPassword      string // sent as "IDENTIFY" to NickServ after connecting; never logged
	Channels              []string

	SendLimit     time.Duration // one line per SendLimit after a burst; default 1s
	SendBurst     int           // default 3
	PingFrequency time.Duration // default 1m
	PingTimeout   time.Duration // default 30s
	ReconnectMin  time.Duration // default 1s
	ReconnectMax  time.Duration // default 2m
	DialTimeout   time.Duration // default 30s
	QueueSize     int           // outgoing lines kept while sending or disconnected; default 500
	Workers       int           // command handlers running at once; default 4

	Metrics *metrics.Metrics // optional
	Logger  *slog.Logger     // default slog.Default()
}

// Adapter is the IRC chat adapter. Build it with New, start it with Run,
// stop it by cancelling Run's context.
type Adapter struct {
	cfg     Config
	log     *slog.Logger
	limiter *rate.Limiter

	mu      sync.Mutex
	queue   []line // oldest first
	wake    chan struct{}
	stopped bool

	nick      atomic.Value // string: our current nick
	connected atomic.Bool  // registered (001) on the current connection
}

type line struct {
	target, text string
}

// New validates cfg and makes an adapter. It does not connect.
func New(cfg Config) (*Adapter, error) {
	var problems []string
	if _, _, err := net.SplitHostPort(cfg.Server); err != nil {
		problems = append(problems, fmt.Sprintf("server %q: want host:port", cfg.Server))
	}
	if cfg.Nick == "" || strings.ContainsAny(cfg.Nick, " \r\n\x00:!@#") {
		problems = append(problems, fmt.Sprintf("nick %q: want a plain IRC nick", cfg.Nick))
	}
	for _, ch := range cfg.Channels {
		if !isChannel(ch) || strings.ContainsAny(ch, " ,\r\n\x00\x07") {
			problems = append(problems, fmt.Sprintf("channel %q: want #name", ch))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrConfig, strings.Join(problems, "; "))
	}
	if cfg.User == "" {
		cfg.User = cfg.Nick
	}
	if cfg.Name == "" {
		cfg.Name = "ductbot"
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.SendLimit, time.Second)
	def(&cfg.PingFrequency, time.Minute)
	def(&cfg.PingTimeout, 30*time.Second)
	def(&cfg.ReconnectMin, time.Second)
	def(&cfg.ReconnectMax, 2*time.Minute)
	def(&cfg.DialTimeout, 30*time.Second)
	if cfg.SendBurst <= 0 {
		cfg.SendBurst = 3
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 500
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &Adapter{
		cfg:     cfg,
		log:     cfg.Logger.With("network", Network, "server", cfg.Server),
		limiter: rate.NewLimiter(rate.Every(cfg.SendLimit), cfg.SendBurst),
		wake:    make(chan struct{}, 1),
	}
	a.nick.Store(cfg.Nick)
	return a, nil
}

// Name returns "irc".
func (a *Adapter) Name() string { return Network }

// Serves reports whether channel is one of the configured channels.
func (a *Adapter) Serves(channel string) bool {
	return slices.ContainsFunc(a.cfg.Channels, func(c string) bool { return strings.EqualFold(c, channel) })
}

// Connected reports whether the adapter is registered on the server now.
func (a *Adapter) Connected() bool { return a.connected.Load() }

func (a *Adapter) currentNick() string { return a.nick.Load().(string) }

func isChannel(s string) bool { return s != "" && strings.ContainsRune("#&+!", rune(s[0])) }

// Send queues m for t.Channel (a channel, or a nick for a private message),
// addressed to t.Mention's nick when set. Every line is stripped of control
// characters and split to fit IRC's 512-byte limit. When the queue is full
// the oldest lines are dropped (counted and logged).
func (a *Adapter) Send(_ context.Context, t chat.Target, m chat.Message) error {
	target := chat.StripControl(t.Channel)
	if target == "" || strings.ContainsAny(target, " ,") {
		return fmt.Errorf("irc: no valid target %q", target)
	}
	prefix := ""
	if t.Mention != "" {
		prefix = chat.StripControl(chat.MentionName(t.Mention)) + ": "
	}
	budget := textBudget(a.cfg.Nick+"___", target)
	var lines []line
	for _, l := range m.PlainLines() {
		for _, piece := range splitText(prefix+chat.StripControl(l), budget) {
			lines = append(lines, line{target: target, text: piece})
		}
	}
	return a.enqueue(lines)
}

func (a *Adapter) enqueue(lines []line) error {
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		return fmt.Errorf("irc: %w", errStopped)
	}
	a.queue = append(a.queue, lines...)
	dropped := 0
	if over := len(a.queue) - a.cfg.QueueSize; over > 0 {
		dropped = over
		a.queue = slices.Delete(a.queue, 0, over)
	}
	a.mu.Unlock()
	if dropped > 0 {
		a.count("dropped", dropped)
		a.log.Warn("irc outgoing queue full: dropped oldest lines", "dropped", dropped, "queue_size", a.cfg.QueueSize)
	}
	select {
	case a.wake <- struct{}{}:
	default:
	}
	return nil
}

var errStopped = errors.New("adapter stopped")

func (a *Adapter) count(outcome string, n int) {
	if a.cfg.Metrics != nil {
		a.cfg.Metrics.ChatMessages.WithLabelValues(Network, outcome).Add(float64(n))
	}
}

// Run connects and serves until ctx is done, reconnecting with capped
// exponential backoff. It returns nil when ctx is done.
func (a *Adapter) Run(ctx context.Context, h chat.Handler) error {
	work := make(chan chat.Incoming, 64)
	var wg sync.WaitGroup
	for range a.cfg.Workers {
		wg.Go(func() { a.worker(ctx, h, work) })
	}
	defer func() {
		a.mu.Lock()
		a.stopped = true
		a.mu.Unlock()
		wg.Wait()
	}()
	backoff := a.cfg.ReconnectMin
	for {
		registered, err := a.session(ctx, work)
		if ctx.Err() != nil {
			return nil
		}
		if registered {
			backoff = a.cfg.ReconnectMin
		}
		a.log.Warn("irc disconnected; reconnecting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, a.cfg.ReconnectMax)
	}
}

func (a *Adapter) dial(ctx context.Context) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.DialTimeout)
	defer cancel()
	if a.cfg.TLS {
		host, _, _ := net.SplitHostPort(a.cfg.Server)
		d := &tls.Dialer{Config: &tls.Config{ServerName: host, InsecureSkipVerify: a.cfg.TLSInsecureSkipVerify, MinVersion: tls.VersionTLS12}} //nolint:gosec // opt-in for tests
		return d.DialContext(ctx, "tcp", a.cfg.Server)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", a.cfg.Server)
}

// session runs one connection until it fails or ctx is done. It reports
// whether the bot got registered (001) on it.
func (a *Adapter) session(ctx context.Context, work chan<- chat.Incoming) (registered bool, err error) {
	conn, err := a.dial(ctx)
	if err != nil {
		return false, fmt.Errorf("irc: dialing %s: %w", a.cfg.Server, err)
	}
	s := &session{a: a, work: work, ready: make(chan struct{}), joined: map[string]bool{}}
	client := irc.NewClient(conn, irc.ClientConfig{
		Nick: a.cfg.Nick, Pass: a.cfg.Password, User: a.cfg.User, Name: a.cfg.Name,
		PingFrequency: a.cfg.PingFrequency, PingTimeout: a.cfg.PingTimeout,
		Handler: irc.HandlerFunc(s.handle),
	})
	client.CapRequest("account-tag", false)
	s.client = client

	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { s.send(sctx) })
	err = client.RunContext(sctx)
	cancel()
	wg.Wait()
	a.connected.Store(false)
	return s.registered.Load(), err
}

// session is the state of one connection.
type session struct {
	a      *Adapter
	client *irc.Client
	work   chan<- chat.Incoming

	registered atomic.Bool
	ready      chan struct{} // closed when registered and the channels are joined (or given up on)
	readyOnce  sync.Once

	mu     sync.Mutex
	joined map[string]bool
}

// handle runs on the library's read goroutine: it must never block.
func (s *session) handle(c *irc.Client, m *irc.Message) {
	a := s.a
	switch m.Command {
	case "001":
		a.nick.Store(m.Param(0))
		s.registered.Store(true)
		a.connected.Store(true)
		a.log.Info("irc registered", "nick", m.Param(0), "account_tag", c.CapEnabled("account-tag"))
		if a.cfg.NickServPassword != "" {
			_ = c.Writef("PRIVMSG NickServ :IDENTIFY %s", a.cfg.NickServPassword)
		}
		for _, ch := range a.cfg.Channels {
			_ = c.Writef("JOIN %s", ch)
		}
		if len(a.cfg.Channels) == 0 {
			s.markReady()
		} else {
			time.AfterFunc(15*time.Second, s.markReady) // do not wait forever for a JOIN that fails
		}
	case "JOIN":
		if m.Prefix != nil && strings.EqualFold(m.Prefix.Name, a.currentNick()) {
			s.mu.Lock()
			s.joined[strings.ToLower(m.Param(0))] = true
			all := len(s.joined) >= len(a.cfg.Channels)
			s.mu.Unlock()
			if all {
				s.markReady()
			}
		}
	case "NICK":
		if m.Prefix != nil && strings.EqualFold(m.Prefix.Name, a.currentNick()) {
			a.nick.Store(m.Param(0))
		}
	case "KICK":
		if strings.EqualFold(m.Param(1), a.currentNick()) && a.Serves(m.Param(0)) {
			_ = c.Writef("JOIN %s", m.Param(0))
		}
	case "PRIVMSG":
		s.privmsg(m)
	}
}

func (s *session) markReady() { s.readyOnce.Do(func() { close(s.ready) }) }

func (s *session) privmsg(m *irc.Message) {
	a := s.a
	if m.Prefix == nil || len(m.Params) < 2 {
		return
	}
	nick := a.currentNick()
	if strings.EqualFold(m.Prefix.Name, nick) {
		return
	}
	text := m.Trailing()
	if strings.HasPrefix(text, "\x01") {
		return // CTCP
	}
	target := m.Params[0]
	in := chat.Incoming{
		From: chat.Identity{Network: Network, Mask: m.Prefix.String(), Display: m.Prefix.Name},
		Text: text,
	}
	if acct, ok := m.Tags["account"]; ok && acct != "" && acct != "*" {
		in.From.ID = acct
	}
	if isChannel(target) {
		in.ReplyTo = chat.ReplyTo{Network: Network, Channel: target}
		for _, sep := range []string{":", ","} {
			if rest, ok := cutPrefixFold(text, nick+sep); ok {
				in.Text, in.Mentioned = strings.TrimSpace(rest), true
				break
			}
		}
	} else {
		in.ReplyTo = chat.ReplyTo{Network: Network, Channel: m.Prefix.Name}
		in.Mentioned = true // a private message is addressed to the bot
	}
	select {
	case s.work <- in:
	default:
		a.log.Warn("irc: too many commands in flight; dropped one", "by", in.From.String())
	}
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// worker runs commands; replies go to the queue like everything else.
func (a *Adapter) worker(ctx context.Context, h chat.Handler, work <-chan chat.Incoming) {
	for {
		select {
		case <-ctx.Done():
			return
		case in := <-work:
			reply, ok := h.Handle(ctx, in)
			if !ok {
				continue
			}
			t := chat.Target{Channel: in.ReplyTo.Channel}
			if isChannel(t.Channel) {
				t.Mention = in.From.Display
			}
			if err := a.Send(ctx, t, reply); err != nil {
				a.log.Warn("irc: reply not queued", "err", err)
			}
		}
	}
}

// send writes queued lines once registered, at most SendBurst at once and
// then one per SendLimit. A line leaves the queue only once written, so
// lines queued during a disconnect go out after the next registration.
func (s *session) send(ctx context.Context) {
	a := s.a
	select {
	case <-ctx.Done():
		return
	case <-s.ready:
	}
	for {
		a.mu.Lock()
		var next line
		have := len(a.queue) > 0
		if have {
			next = a.queue[0]
		}
		a.mu.Unlock()
		if !have {
			select {
			case <-ctx.Done():
				return
			case <-a.wake:
				continue
			}
		}
		if err := a.limiter.Wait(ctx); err != nil {
			return
		}
		if err := s.client.Writef("PRIVMSG %s :%s", next.target, next.text); err != nil {
			a.count("retried", 1)
			return // the session ends; the line stays queued
		}
		a.mu.Lock()
		if len(a.queue) > 0 && a.queue[0] == next {
			a.queue = a.queue[1:]
		}
		a.mu.Unlock()
		a.count("sent", 1)
	}
}
