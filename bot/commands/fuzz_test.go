package commands

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ductbot/ductbot/bot/chat"
)

func FuzzRouter(f *testing.F) {
	for _, seed := range []string{
		"!env 12345 orchestrator=abc evaluator=def ttl=2h",
		"!env 1/2 wiki=change:3/4", "!env x", "!env 1 a=b=c", "!env 1 ttl=1d1d",
		"!envs", "!status e-1", "!destroy", "!extend e 3d", "!logs #1", "!help env",
		"!keep", "!", "!!!", "! env", "!\x00", "!env \r\nQUIT :x", "!envé 1",
	} {
		f.Add(seed, false)
	}
	f.Fuzz(func(t *testing.T, line string, mentioned bool) {
		r := newTestRouter(t, newFake(2), Options{RatePerMinute: -1})
		m, ok := r.Handle(context.Background(), chat.Incoming{From: alice, Text: line, Mentioned: mentioned})
		if !ok {
			trimmed := strings.TrimSpace(line)
			if mentioned || (strings.HasPrefix(trimmed, "!") && len(strings.Fields(trimmed[1:])) > 0) {
				t.Fatalf("Handle(%q, mentioned=%v) ignored a command line", line, mentioned)
			}
			return
		}
		text := m.Text()
		if strings.TrimSpace(text) == "" {
			t.Fatalf("Handle(%q) gave an empty reply", line)
		}
		if m.Error {
			helpful := strings.Contains(text, "!help") || strings.Contains(text, "Usage: !") ||
				strings.Contains(text, "not allowed") || strings.Contains(text, "Not found") ||
				strings.Contains(text, "too long") || strings.Contains(text, "limit")
			if !helpful {
				t.Fatalf("Handle(%q) error reply is not helpful: %q", line, text)
			}
		}
		if utf8.ValidString(line) && !utf8.ValidString(text) {
			t.Fatalf("Handle(%q) made invalid UTF-8 from valid input: %q", line, text)
		}
	})
}

func newBenchRouter(b *testing.B) *Router {
	return newTestRouter(b, newFake(1000), Options{RatePerMinute: -1})
}

func BenchmarkRouterEnvs(b *testing.B) {
	r := newBenchRouter(b)
	in := chat.Incoming{From: alice, Text: "!envs"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if m, _ := r.Handle(ctx, in); len(m.Lines) != maxListed+1 {
			b.Fatal(fmt.Sprint(len(m.Lines)))
		}
	}
}

func BenchmarkRouterHelp(b *testing.B) {
	r := newBenchRouter(b)
	in := chat.Incoming{From: alice, Text: "!help"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if m, _ := r.Handle(ctx, in); m.Error {
			b.Fatal(m.Text())
		}
	}
}
