package slack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slack-go/slack/slacktest"

	"github.com/ductbot/ductbot/bot/adapters"
	"github.com/ductbot/ductbot/bot/chat"
)

var _ adapters.Adapter = (*Adapter)(nil)

const botID = "U023BECGF" // slacktest's bot user

type posted struct{ channel, text, thread, blocks string }

// fixture is a slacktest server recording chat.postMessage, optionally
// answering the first N posts with 429.
type fixture struct {
	srv      *slacktest.Server
	mu       sync.Mutex
	posts    []posted
	limit429 atomic.Int32
	handled  atomic.Int32
}

func newFixture(t *testing.T, authOK bool) *fixture {
	f := &fixture{}
	f.srv = slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			v, _ := url.ParseQuery(string(body))
			if f.limit429.Add(-1) >= 0 {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			f.mu.Lock()
			f.posts = append(f.posts, posted{v.Get("channel"), v.Get("text"), v.Get("thread_ts"), v.Get("blocks")})
			f.mu.Unlock()
			fmt.Fprintf(w, `{"ok":true,"channel":%q,"ts":"1.1"}`, v.Get("channel"))
		})
		if !authOK {
			c.Handle("/auth.test", func(w http.ResponseWriter, _ *http.Request) {
				fmt.Fprint(w, `{"ok":false,"error":"invalid_auth"}`)
			})
		}
	})
	go func() { // slacktest blocks on acks unless someone reads them
		for range f.srv.SeenFeed {
		}
	}()
	f.srv.Start()
	t.Cleanup(f.srv.Stop)
	return f
}

func (f *fixture) snapshot() []posted {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]posted(nil), f.posts...)
}

func (f *fixture) mention(envelope, eventID, text string) {
	f.srv.SendToWebsocket(fmt.Sprintf(`{"envelope_id":%q,"type":"events_api","payload":{"type":"event_callback","event_id":%q,"team_id":"T1","api_app_id":"A1","event":{"type":"app_mention","user":"U2ALICE","text":%q,"ts":"100.5","channel":"C1","event_ts":"100.5"}}}`,
		envelope, eventID, "<@"+botID+"> "+text))
}

func (f *fixture) start(t *testing.T) (*Adapter, chan error) {
	a, err := New(Config{BotToken: "xoxb-test", AppToken: "xapp-test", Channels: []string{"C1"}, APIURL: f.srv.GetAPIURL(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	h := chat.HandlerFunc(func(_ context.Context, in chat.Incoming) (chat.Message, bool) {
		if !in.Mentioned && !strings.HasPrefix(in.Text, "!") {
			return chat.Message{}, false
		}
		f.handled.Add(1)
		return chat.Message{Title: "pong", Lines: []string{in.From.String() + " said " + in.Text + " <!channel>"}}, true
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() { done <- a.Run(ctx, h); close(finished) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(30 * time.Second):
			t.Error("Run did not return")
		}
	})
	return a, done
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMentionGetsThreadedReplyOnce(t *testing.T) {
	f := newFixture(t, true)
	f.start(t)
	// Socket mode connects, then the same event arrives twice.
	f.mention("env-1", "Ev1", "!ping")
	f.mention("env-2", "Ev1", "!ping")
	f.mention("env-3", "Ev2", "!second")
	eventually(t, "two replies", func() bool { return len(f.snapshot()) >= 2 })
	posts := f.snapshot()
	if f.handled.Load() != 2 {
		t.Fatalf("handled %d events, want 2 (the duplicate dropped)", f.handled.Load())
	}
	// The two replies are posted concurrently: find the one to !ping.
	p := posts[0]
	for _, q := range posts {
		if strings.Contains(q.text, "said !ping") {
			p = q
		}
	}
	if p.channel != "C1" || p.thread != "100.5" {
		t.Errorf("reply went to %q thread %q, want C1 thread 100.5", p.channel, p.thread)
	}
	if !strings.Contains(p.text, "slack:U2ALICE said !ping &lt;!channel&gt;") || !strings.Contains(p.blocks, `"type":"section"`) {
		t.Errorf("reply text %q blocks %q", p.text, p.blocks)
	}
}

func TestRetryAfter429(t *testing.T) {
	f := newFixture(t, true)
	f.limit429.Store(1)
	a, _ := f.start(t)
	if err := a.Send(context.Background(), chat.Target{Channel: "C1"}, chat.Textf("after a 429")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the retried post", func() bool { return len(f.snapshot()) == 1 })
	if got := f.snapshot()[0].text; got != "after a 429" {
		t.Errorf("posted %q", got)
	}
	if f.limit429.Load() >= 0 {
		t.Error("the 429 was never served")
	}
}

func TestInvalidTokenStops(t *testing.T) {
	f := newFixture(t, false)
	_, done := f.start(t)
	select {
	case err := <-done:
		if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "invalid_auth") {
			t.Fatalf("Run = %v, want ErrAuth mentioning invalid_auth", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run kept going with an invalid token")
	}
}
