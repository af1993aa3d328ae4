package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ductbot/ductbot/bot/adapters"
	"github.com/ductbot/ductbot/bot/chat"
	"github.com/ductbot/ductbot/core/metrics"
)

// chatHealth tracks the chat adapters for /readyz and
// ductbot_chat_connected: an adapter whose Run returned while ductbot keeps
// running has given up for good (Slack's invalid_auth, say), and the pod
// should stop looking Ready so that it is noticed and restarted.
type chatHealth struct {
	metrics *metrics.Metrics
	log     *slog.Logger
	mu      sync.Mutex
	stopped map[string]error // network → why its adapter stopped
}

func newChatHealth(m *metrics.Metrics, log *slog.Logger) *chatHealth {
	return &chatHealth{metrics: m, log: log, stopped: map[string]error{}}
}

// run runs ad until ctx ends, marking it connected while it runs and
// recording why it stopped when that was not ctx ending.
func (h *chatHealth) run(ctx context.Context, ad adapters.Adapter, handler chat.Handler) error {
	network := ad.Name()
	h.metrics.ChatConnected.WithLabelValues(network).Set(1)
	err := ad.Run(ctx, handler)
	h.metrics.ChatConnected.WithLabelValues(network).Set(0)
	if ctx.Err() != nil {
		return err
	}
	if err == nil {
		err = errors.New("the adapter stopped")
	}
	h.mu.Lock()
	h.stopped[network] = err
	h.mu.Unlock()
	h.log.Error("chat adapter gave up; /readyz now fails", "network", network, "err", err)
	return err
}

// ready is an error naming every chat adapter that gave up.
func (h *chatHealth) ready() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var errs []error
	for network, err := range h.stopped {
		errs = append(errs, fmt.Errorf("chat %s stopped: %w", network, err))
	}
	return errors.Join(errs...)
}

// metricsHandler serves /metrics alone, for web.metrics_listen.
func metricsHandler(m *metrics.Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	return mux
}
