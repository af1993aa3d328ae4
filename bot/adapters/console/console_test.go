package console

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ductbot/ductbot/bot/adapters"
	"github.com/ductbot/ductbot/bot/chat"
	"github.com/ductbot/ductbot/core/run"
)

var _ adapters.Adapter = (*Adapter)(nil)

func TestScriptedSession(t *testing.T) {
	var out bytes.Buffer
	a := New(Config{In: strings.NewReader("!whoami\nnot a command\n!evil\n"), Out: &out, User: "tester"})
	var seen []chat.Incoming
	h := chat.HandlerFunc(func(_ context.Context, in chat.Incoming) (chat.Message, bool) {
		seen = append(seen, in)
		switch in.Text {
		case "!whoami":
			return chat.Message{Title: "you are", Lines: []string{in.From.String()}}, true
		case "!evil":
			return chat.Textf("subject: fix\x1b[2J\r\nQUIT"), true
		}
		return chat.Message{}, false
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Run(ctx, h); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 3 || seen[0].ReplyTo.Network != "console" || seen[0].ReplyTo.User != "console:tester" {
		t.Fatalf("handler saw %+v", seen)
	}
	want := "you are\nconsole:tester\nsubject: fix[2J\nQUIT\n"
	if out.String() != want {
		t.Fatalf("output = %q, want %q", out.String(), want)
	}

	// Announcements still print after the input ended.
	out.Reset()
	an := adapters.NewAnnouncer(nil, a)
	err := an.Announce(ctx, run.Announcement{
		Run:      run.Run{ID: 7, Change: 12345, PatchSet: 2, Subject: "Add a thing", Owner: "Ann", State: run.StateDone, Result: run.ResultPassed, Matrix: run.Matrix{"wiki": "abc"}},
		Env:      run.Env{Name: "e-12345", URL: "https://e-12345.example"},
		Channels: []string{"#dev"},
		RunURL:   "https://ductbot.example/runs/7",
		ReplyTo:  chat.ReplyTo{Network: "console", User: "console:tester"}.Encode(),
	})
	if err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, w := range []string{"[#dev] ✔ PASSED: change 12345 patch set 2 “Add a thing” by Ann", "[#dev] env: https://e-12345.example",
		"[#dev] logs: https://ductbot.example/runs/7", "[#dev] matrix: wiki=abc", "tester: ✔ PASSED"} {
		if !strings.Contains(got, w) {
			t.Errorf("announcement output lacks %q:\n%s", w, got)
		}
	}
}
