// Package console is a chat adapter for local use and the demo: it reads
// command lines from an io.Reader (stdin) and prints replies and
// announcements to an io.Writer.
package console

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/ductbot/ductbot/bot/chat"
)

// Network is the adapter's name in identities and ReplyTo.
const Network = "console"

// Config configures the console adapter.
type Config struct {
	In  io.Reader
	Out io.Writer
	// User is the identity the lines are typed as: console:<User>.
	// Default "local".
	User string
}

// Adapter is the console chat adapter. Build it with New.
type Adapter struct {
	in   io.Reader
	user string

	mu  sync.Mutex // serialises writes to out
	out io.Writer
}

// New makes a console adapter.
func New(cfg Config) *Adapter {
	if cfg.User == "" {
		cfg.User = "local"
	}
	return &Adapter{in: cfg.In, out: cfg.Out, user: cfg.User}
}

// Name returns "console".
func (a *Adapter) Name() string { return Network }

// Serves reports true: the console shows every announcement.
func (a *Adapter) Serves(string) bool { return true }

// Identity is the identity lines are typed as.
func (a *Adapter) Identity() chat.Identity {
	return chat.Identity{Network: Network, ID: a.user, Display: a.user}
}

// Run reads lines until the reader ends or ctx is done, answering each with
// h. It returns nil at the end of input; Send keeps working afterwards, so
// announcements still print.
func (a *Adapter) Run(ctx context.Context, h chat.Handler) error {
	lines := make(chan string)
	errc := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(a.in)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
		errc <- sc.Err()
		close(lines)
	}()
	id := a.Identity()
	for {
		select {
		case <-ctx.Done():
			return nil
		case line, ok := <-lines:
			if !ok {
				if err := <-errc; err != nil {
					return fmt.Errorf("console: reading input: %w", err)
				}
				return nil
			}
			in := chat.Incoming{From: id, Text: line, ReplyTo: chat.ReplyTo{Network: Network, User: id.String()}}
			if reply, ok := h.Handle(ctx, in); ok {
				if err := a.Send(ctx, chat.Target{}, reply); err != nil {
					return err
				}
			}
		}
	}
}

// Send prints m at once, one line per line, prefixed with the channel when
// there is one and addressed to the mentioned user. Control characters are
// removed so that untrusted text cannot drive the terminal.
func (a *Adapter) Send(_ context.Context, t chat.Target, m chat.Message) error {
	prefix := ""
	if t.Channel != "" {
		prefix = "[" + chat.StripControl(t.Channel) + "] "
	}
	if t.Mention != "" {
		prefix += chat.StripControl(chat.MentionName(t.Mention)) + ": "
	}
	var sb strings.Builder
	for _, l := range m.PlainLines() {
		sb.WriteString(prefix + chat.StripControl(l) + "\n")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, err := io.WriteString(a.out, sb.String()); err != nil {
		return fmt.Errorf("console: writing: %w", err)
	}
	return nil
}
