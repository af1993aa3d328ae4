package commands

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ductbot/ductbot/bot/chat"
)

var (
	alice = chat.Identity{Network: "slack", ID: "U1ALICE", Display: "alice"}
	bob   = chat.Identity{Network: "irc", Mask: "bob!b@guest.example", Display: "bob"}
	carol = chat.Identity{Network: "irc", ID: "carol", Mask: "carol!c@home.example", Display: "carol"}
)

var fixedNow = func() time.Time { return time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC) }

func newTestRouter(t testing.TB, b Backend, opts Options) *Router {
	t.Helper()
	if opts.Now == nil {
		opts.Now = fixedNow
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return New(b, opts)
}

func say(r *Router, from chat.Identity, text string) (chat.Message, bool) {
	return r.Handle(context.Background(), chat.Incoming{From: from, Text: text, ReplyTo: chat.ReplyTo{Network: from.Network, Channel: "#dev"}})
}

func TestRouter(t *testing.T) {
	tests := []struct {
		line    string
		ignored bool
		isErr   bool
		has     []string
	}{
		{line: "hello there", ignored: true},
		{line: "!", ignored: true},
		{line: "!envs", has: []string{"3 live environments", "e-10002", "10001/1", "ready", "https://e-10000.example"}},
		{line: "  !ENVS  ", has: []string{"3 live environments"}},
		{line: "!envs now", isErr: true, has: []string{"no arguments", "Usage: !envs"}},
		{line: "!status 10001", has: []string{"e-10001", "run #2", "passed", "https://ductbot.example/runs/2"}},
		{line: "!status e-10001", has: []string{"run #2"}},
		{line: "!status 424242", isErr: true, has: []string{"Not found"}},
		{line: "!status", isErr: true, has: []string{"Expected exactly one", "Usage: !status <change|env>"}},
		{line: "!status Bad_Name", isErr: true, has: []string{"not an environment name"}},
		{line: "!destroy e-10000", has: []string{"Destroyed environment e-10000"}},
		{line: "!retest 10002", has: []string{"Retesting e-10002", "run #99", "starting now"}},
		{line: "!extend e-10000 2d", has: []string{"e-10000 now expires 2026-01-03"}},
		{line: "!extend e-10000", isErr: true, has: []string{"environment name and a duration"}},
		{line: "!extend e-10000 never", isErr: true, has: []string{"not a duration"}},
		{line: "!keep e-10000", has: []string{"protected"}},
		{line: "!unkeep e-10000", has: []string{"no longer protected"}},
		{line: "!sweep", has: []string{"removed 1", "e-1 (ttl)"}},
		{line: "!sleep e-10001", has: []string{"e-10001 is asleep", "wake it with !wake e-10001"}},
		{line: "!wake 10001", has: []string{"e-10001 is awake and ready", "https://"}},
		{line: "!sleep", isErr: true, has: []string{"Usage: !sleep"}},
		{line: "!help", has: []string{"!sleep <env|change>", "!wake <env|change>"}},
		{line: "!logs #42", has: []string{"https://ductbot.example/runs/42"}},
		{line: "!logs 10002", has: []string{"Run #3 of e-10002", "https://ductbot.example/runs/3"}},
		{line: "!logs #x", isErr: true, has: []string{"not a run number"}},
		{line: "!env 12345 orchestrator=abc", has: []string{"Building environment e-12345-x", "queue position 2", "run #77", "https://ductbot.example/runs/77"}},
		{line: "!env 12345 orchestrater=abc", isErr: true, has: []string{`did you mean "orchestrator"`, "Usage: !env <change>"}},
		{line: "!env 12345 ttl=30d", isErr: true, has: []string{"longer than the maximum, 7d"}},
		{line: "!envz", isErr: true, has: []string{"Did you mean !env"}},
		{line: "!frobnicate", isErr: true, has: []string{"Unknown command", "!help"}},
		{line: "!help", has: []string{"!env <change>", "!envs — Lists live environments", "!sweep"}},
		{line: "!help env", has: []string{"!env <change>[/<patchset>]", "e.g. !env 12345"}},
		{line: "!help !logs", has: []string{"!logs <env|change|#run>"}},
		{line: "!help nope", isErr: true, has: []string{"Unknown command"}},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			r := newTestRouter(t, newFake(3), Options{MaxTTL: 7 * 24 * time.Hour})
			m, ok := say(r, alice, tt.line)
			if ok == tt.ignored {
				t.Fatalf("Handle(%q) ok = %v, want %v (reply %q)", tt.line, ok, !tt.ignored, m.Text())
			}
			if tt.ignored {
				return
			}
			text := m.Text()
			if text == "" || m.Error != tt.isErr {
				t.Fatalf("Handle(%q) = %q (error %v), want non-empty with error %v", tt.line, text, m.Error, tt.isErr)
			}
			for _, h := range tt.has {
				if !strings.Contains(text, h) {
					t.Errorf("Handle(%q) = %q, want it to contain %q", tt.line, text, h)
				}
			}
		})
	}
}

func TestRouterEnvRequest(t *testing.T) {
	f := newFake(0)
	r := newTestRouter(t, f, Options{})
	in := chat.Incoming{From: alice, Text: "!env 12345/3 wiki=change:1/2 ttl=2h",
		ReplyTo: chat.ReplyTo{Network: "slack", Channel: "C1", Thread: "111.222"}}
	if m, _ := r.Handle(context.Background(), in); m.Error {
		t.Fatalf("reply %q", m.Text())
	}
	if len(f.requests) != 1 {
		t.Fatalf("backend got %d requests, want 1", len(f.requests))
	}
	req := f.requests[0]
	if req.By != "slack:U1ALICE" || req.Change != 12345 || req.PatchSet != 3 || req.TTL != 2*time.Hour || req.Overrides["wiki"] != "change:1/2" {
		t.Errorf("request = %+v", req)
	}
	want := chat.ReplyTo{Network: "slack", Channel: "C1", Thread: "111.222", User: "slack:U1ALICE"}
	if got, ok := chat.DecodeReplyTo(req.ReplyTo); !ok || got != want {
		t.Errorf("ReplyTo = %+v, want %+v", req.ReplyTo, want)
	}
}

func TestRouterMention(t *testing.T) {
	r := newTestRouter(t, newFake(1), Options{})
	m, ok := r.Handle(context.Background(), chat.Incoming{From: alice, Text: "envs", Mentioned: true})
	if !ok || !strings.Contains(m.Text(), "1 live environments") {
		t.Fatalf("mentioned envs = %v %q", ok, m.Text())
	}
	m, ok = r.Handle(context.Background(), chat.Incoming{From: alice, Text: "", Mentioned: true})
	if !ok || !strings.Contains(m.Text(), "Commands you can run") {
		t.Fatalf("bare mention = %v %q", ok, m.Text())
	}
	if _, ok := r.Handle(context.Background(), chat.Incoming{From: alice, Text: "envs"}); ok {
		t.Fatal("an unprefixed line without a mention was answered")
	}
}

func TestRouterPrefix(t *testing.T) {
	r := newTestRouter(t, newFake(1), Options{Prefix: "duct:"})
	if _, ok := say(r, alice, "!envs"); ok {
		t.Fatal("answered the default prefix when another is configured")
	}
	if m, ok := say(r, alice, "duct:help"); !ok || !strings.Contains(m.Text(), "duct:envs") {
		t.Fatalf("help = %q", m.Text())
	}
}

func TestRouterEnvCap(t *testing.T) {
	f := newFake(0)
	r := newTestRouter(t, f, Options{MaxEnvsPerUser: 2})
	for i := range 2 {
		if m, _ := say(r, alice, fmt.Sprintf("!env %d", 100+i)); m.Error {
			t.Fatalf("env %d refused: %q", i, m.Text())
		}
	}
	m, _ := say(r, alice, "!env 102")
	if !m.Error || !strings.Contains(m.Text(), "limit is 2") || !strings.Contains(m.Text(), "e-100-x") {
		t.Fatalf("third env = %q, want a refusal naming the limit and the envs", m.Text())
	}
	if len(f.requests) != 2 {
		t.Fatalf("backend got %d requests, want 2", len(f.requests))
	}
	if m, _ := say(r, bob, "!env 103"); m.Error {
		t.Fatalf("another user was refused: %q", m.Text())
	}
}

func TestRouterRateLimit(t *testing.T) {
	now := fixedNow()
	clock := func() time.Time { return now }
	r := newTestRouter(t, newFake(1), Options{RatePerMinute: 3, Now: clock})
	for i := range 3 {
		if m, _ := say(r, alice, "!help"); m.Error {
			t.Fatalf("command %d refused: %q", i, m.Text())
		}
	}
	m, _ := say(r, alice, "!help")
	if !m.Error || !strings.Contains(m.Text(), "at most 3 commands a minute") {
		t.Fatalf("fourth command = %q, want a rate-limit refusal", m.Text())
	}
	if m, _ := say(r, bob, "!help"); m.Error {
		t.Fatalf("another user was limited: %q", m.Text())
	}
	now = now.Add(21 * time.Second) // one token back
	if m, _ := say(r, alice, "!help"); m.Error {
		t.Fatalf("after refill: %q", m.Text())
	}
}

func TestRouterBackendErrors(t *testing.T) {
	var logs bytes.Buffer
	f := newFake(1)
	r := newTestRouter(t, f, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})

	f.err = errors.New("dial tcp 10.0.0.1:6443: secret internals")
	m, _ := say(r, alice, "!destroy e-10000")
	if !m.Error || strings.Contains(m.Text(), "10.0.0.1") || !strings.Contains(m.Text(), "failed on my side") {
		t.Fatalf("internal error reply = %q", m.Text())
	}
	if !strings.Contains(logs.String(), "10.0.0.1") || !strings.Contains(logs.String(), "by=slack:U1ALICE") {
		t.Errorf("log lacks the error or the identity: %s", logs.String())
	}

	f.err = capacityError{}
	m, _ = say(r, alice, "!env 5")
	if !m.Error || m.Text() != "At capacity: 10 environments. Oldest: e-1." {
		t.Fatalf("user error reply = %q", m.Text())
	}
}

type capacityError struct{}

func (capacityError) Error() string       { return "capacity" }
func (capacityError) UserMessage() string { return "At capacity: 10 environments. Oldest: e-1." }

func TestRouterLogsNoText(t *testing.T) {
	var logs bytes.Buffer
	r := newTestRouter(t, newFake(1), Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	say(r, alice, "!destroy e-10000")
	say(r, alice, "!env 777 wiki=secretref")
	out := logs.String()
	if !strings.Contains(out, "command=destroy") || !strings.Contains(out, "by=slack:U1ALICE") {
		t.Errorf("mutating command not logged with identity: %s", out)
	}
	if strings.Contains(out, "secretref") || strings.Contains(out, "777") {
		t.Errorf("message text leaked into logs: %s", out)
	}
}

func TestRouterEnvsBounded(t *testing.T) {
	r := newTestRouter(t, newFake(25), Options{})
	m, _ := say(r, alice, "!envs")
	if len(m.Lines) != maxListed+1 {
		t.Fatalf("envs lines = %d, want %d: %q", len(m.Lines), maxListed+1, m.Text())
	}
	if last := m.Lines[len(m.Lines)-1]; last != "and 15 more: https://ductbot.example/" {
		t.Errorf("last line = %q", last)
	}
	if !strings.Contains(m.Lines[0], "e-10024") {
		t.Errorf("first line %q is not the newest env", m.Lines[0])
	}
}
