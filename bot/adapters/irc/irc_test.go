package irc

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ductbot/ductbot/bot/adapters"
	"github.com/ductbot/ductbot/bot/chat"
	"github.com/ductbot/ductbot/core/metrics"
	"github.com/ductbot/ductbot/core/run"
)

var _ adapters.Adapter = (*Adapter)(nil)

const channel = "#dev"

// testHandler answers !ping and !many (40 lines).
var testHandler = chat.HandlerFunc(func(_ context.Context, in chat.Incoming) (chat.Message, bool) {
	switch in.Text {
	case "!ping":
		return chat.Textf("pong for %s", in.From.String()), true
	case "!many":
		var m chat.Message
		for i := 1; i <= 40; i++ {
			m.Lines = append(m.Lines, fmt.Sprintf("line %02d of 40", i))
		}
		return m, true
	}
	return chat.Message{}, false
})

func startBot(t *testing.T, addr string, fast bool) (*Adapter, *metrics.Metrics) {
	t.Helper()
	m := metrics.New()
	cfg := Config{
		Server: addr, Nick: "ductbot", Channels: []string{channel},
		ReconnectMin: 100 * time.Millisecond, ReconnectMax: time.Second,
		PingFrequency: 5 * time.Second, PingTimeout: 20 * time.Second,
		Metrics: m, Logger: slog.New(slog.DiscardHandler),
	}
	if fast {
		cfg.SendLimit, cfg.SendBurst = 20*time.Millisecond, 5
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, testHandler) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return a, m
}

func announcement(subject string) run.Announcement {
	return run.Announcement{
		Run:      run.Run{ID: 9, Change: 12345, PatchSet: 2, Subject: subject, Owner: "Ann", State: run.StateDone, Result: run.ResultFailed},
		Env:      run.Env{Name: "e-12345", URL: "https://e-12345.example"},
		Channels: []string{channel},
		RunURL:   "https://ductbot.example/runs/9",
	}
}

func TestCommandAnnouncementAndInjection(t *testing.T) {
	srv := startServer(t)
	bot, m := startBot(t, srv.addr, true)
	c := dialClient(t, srv.addr, "alice", channel)
	// The bot is in the channel once it has joined; a command proves it.
	c.waitMember(channel, "ductbot")
	c.send("PRIVMSG " + channel + " :!ping")
	c.expect("PRIVMSG "+channel+" :alice: pong for irc:alice!", 30*time.Second)

	an := adapters.NewAnnouncer(nil, bot)
	if err := an.Announce(context.Background(), announcement("Fix it\r\nQUIT :x")); err != nil {
		t.Fatal(err)
	}
	lines := c.expect("logs: https://ductbot.example/runs/9", 30*time.Second)
	text := strings.Join(lines, "\n")
	if !strings.Contains(text, "FAILED: change 12345 patch set 2 “Fix itQUIT :x” by Ann") {
		t.Fatalf("announcement not seen intact:\n%s", text)
	}
	// Mentioned form works too, and the bot is still there after the injection attempt.
	c.send("PRIVMSG " + channel + " :ductbot: !ping")
	lines = c.expect("pong for", 30*time.Second)
	for _, l := range lines {
		if strings.Contains(l, " QUIT ") || strings.HasPrefix(l, "ERROR") {
			t.Fatalf("the bot quit: %q", l)
		}
	}
	if !bot.Connected() {
		t.Fatal("bot disconnected")
	}
	// pong, three announcement lines, pong: counted once written.
	waitFor(t, func() bool { return testutil.ToFloat64(m.ChatMessages.WithLabelValues("irc", "sent")) >= 5 })
}

func TestFortyLinesWithRealisticFloodControl(t *testing.T) {
	srv := startServer(t)
	startBot(t, srv.addr, false) // SendLimit 1s, burst 3: about 40s
	c := dialClient(t, srv.addr, "alice", channel)
	c.waitMember(channel, "ductbot")
	c.send("PRIVMSG " + channel + " :!many")
	lines := c.expect("line 40 of 40", 3*time.Minute)
	got := 0
	for _, l := range lines {
		if strings.Contains(l, "QUIT") || strings.HasPrefix(l, "ERROR") {
			t.Fatalf("bot was disconnected: %q", l)
		}
		if strings.Contains(l, " of 40") {
			got++
		}
	}
	if got != 40 {
		t.Fatalf("saw %d of 40 lines:\n%s", got, strings.Join(lines, "\n"))
	}
}

func TestReconnectDeliversQueued(t *testing.T) {
	srv := startServer(t)
	bot, _ := startBot(t, srv.addr, true)
	waitFor(t, bot.Connected)

	srv.stop()
	waitFor(t, func() bool { return !bot.Connected() })
	an := adapters.NewAnnouncer(nil, bot)
	if err := an.Announce(context.Background(), announcement("Queued while down")); err != nil {
		t.Fatal(err)
	}
	srv.start()
	c := dialClient(t, srv.addr, "alice", channel)
	// The bot comes back, rejoins and delivers what was queued.
	lines := c.expect("“Queued while down”", time.Minute)
	joined := false
	for _, l := range lines {
		if strings.HasPrefix(l, ":ductbot!") && strings.Contains(l, " JOIN ") {
			joined = true
		}
	}
	if !joined {
		// It may have rejoined before the client did; NAMES tells.
		c.send("NAMES " + channel)
		names := c.expect(" 353 ", 30*time.Second)
		if !strings.Contains(names[len(names)-1], "ductbot") {
			t.Fatalf("bot not in channel after restart: %q", names)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
