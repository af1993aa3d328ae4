package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/slack-go/slack/slacktest"

	"github.com/ductbot/ductbot/bot/adapters/slack"
	"github.com/ductbot/ductbot/bot/chat"
	"github.com/ductbot/ductbot/cmd/internal/buildinfo"
	"github.com/ductbot/ductbot/core/metrics"
	"github.com/ductbot/ductbot/core/store"
	"github.com/ductbot/ductbot/web"
)

// A Slack adapter that gave up on invalid_auth makes /readyz fail (and
// ductbot_chat_connected{network="slack"} 0), so the pod is not left Ready
// with its chat dead.
func TestReadyzFailsAfterSlackInvalidAuth(t *testing.T) {
	srv := slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/auth.test", func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprint(w, `{"ok":false,"error":"invalid_auth"}`)
		})
	})
	go func() {
		for range srv.SeenFeed {
		}
	}()
	srv.Start()
	t.Cleanup(srv.Stop)
	log := slog.New(slog.DiscardHandler)
	ad, err := slack.New(slack.Config{BotToken: "xoxb-revoked", AppToken: "xapp-x", Channels: []string{"C1"}, APIURL: srv.GetAPIURL(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m := metrics.New()
	h := newChatHealth(m, log)
	a := &App{chat: h}
	ws := httptest.NewServer(web.New(web.Options{Store: st, Metrics: m, Logger: log,
		Ready: func(ctx context.Context) error {
			if err := a.chat.ready(); err != nil {
				return err
			}
			return nil // the cluster: not under test here
		}}).Handler())
	t.Cleanup(ws.Close)
	readyz := func() (int, string) {
		resp, err := http.Get(ws.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := readyz(); code != http.StatusOK {
		t.Fatalf("before: /readyz = %d %s", code, body)
	}

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	err = h.run(ctx, ad, chat.HandlerFunc(func(context.Context, chat.Incoming) (chat.Message, bool) { return chat.Message{}, false }))
	if err == nil || ctx.Err() != nil {
		t.Fatalf("the adapter did not give up: %v", err)
	}
	code, body := readyz()
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "chat slack stopped") || !strings.Contains(body, "invalid_auth") {
		t.Errorf("after invalid_auth: /readyz = %d %q, want 503 naming slack and invalid_auth", code, body)
	}
	if v := testutil.ToFloat64(m.ChatConnected.WithLabelValues("slack")); v != 0 {
		t.Errorf("ductbot_chat_connected{network=slack} = %v, want 0", v)
	}
}

// web.metrics_listen serves /metrics alone, build_info included.
func TestMetricsHandler(t *testing.T) {
	m := metrics.New()
	m.BuildInfo.WithLabelValues(buildinfo.Get()).Set(1)
	srv := httptest.NewServer(metricsHandler(m))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `ductbot_build_info{goversion="go`) {
		t.Errorf("/metrics = %d, want ductbot_build_info:\n%.400s", resp.StatusCode, b)
	}
	if resp, err := http.Get(srv.URL + "/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("/ on the metrics address = %d, want 404 (only /metrics is served there)", resp.StatusCode)
		}
	}
}
