// Package web serves ductbot's read-only dashboard: the live environments
// and recent runs, the run pages that Gerrit comments and chat link to, a
// small JSON API, Prometheus metrics and health checks.
//
// Nothing here changes state. Changing things stays in chat and Gerrit,
// where permissions are enforced.
package web

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ductbot/ductbot/core/metrics"
	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/core/store"
)

// Reader is the part of the store the web pages read.
type Reader interface {
	GetRun(ctx context.Context, id int64) (*run.Run, error)
	RunExisted(ctx context.Context, id int64) (bool, error)
	ListRuns(ctx context.Context, f store.RunFilter) ([]*run.Run, error)
	TestLogs(ctx context.Context, runID int64) ([]run.TestLog, error)
	GetEnv(ctx context.Context, name string) (*run.Env, error)
	ListEnvs(ctx context.Context, f store.EnvFilter) ([]*run.Env, error)
}

var _ Reader = (*store.Store)(nil)

// Options configure a Server. Store is required; the rest have defaults.
type Options struct {
	Store Reader
	// Metrics is served on /metrics. Nil: no /metrics route.
	Metrics *metrics.Metrics
	// PublicURL is where people reach this server, such as
	// "https://ductbot.example.org"; it makes the absolute links in the JSON
	// API. Empty: the API gives paths only.
	PublicURL string
	// GerritURL is the Gerrit base URL the change links point to.
	GerritURL string
	// Ready reports whether ductbot can do its work (the store is open, the
	// cluster reachable); /readyz calls it. Nil: always ready.
	Ready func(ctx context.Context) error
	// QueuePosition is a queued run's 1-based place in the deploy queue (0
	// when it is not waiting); nil: positions are not shown.
	QueuePosition func(runID int64) int
	// MaxLogBytes bounds each run's test logs (all its pods together) on
	// the run page, in the raw log and in the API: a longer log keeps its
	// head and its tail and says how much was cut (report.max_log_bytes).
	// Zero or less: DefaultMaxLogBytes.
	MaxLogBytes int
	// ChatPrefix is chat.prefix, for the hints that name a command (how to
	// wake an asleep environment). Empty: "!".
	ChatPrefix string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now defaults to time.Now; ages and expiries are relative to it.
	Now func() time.Time
}

// DefaultMaxLogBytes is the bound of one run's test logs when
// Options.MaxLogBytes is not set: 1 MiB, as report.max_log_bytes.
const DefaultMaxLogBytes = 1 << 20

// Timeouts of the calls a request makes.
const (
	storeTimeout = 10 * time.Second
	readyTimeout = 5 * time.Second
)

// Server renders the pages. Make one with New.
type Server struct {
	store      Reader
	metrics    *metrics.Metrics
	publicURL  string
	gerritURL  string
	ready      func(ctx context.Context) error
	log        *slog.Logger
	now        func() time.Time
	position   func(runID int64) int
	maxLog     int
	chatPrefix string
	pages      *pages
}

// New returns a Server for opts. It panics if opts.Store is nil, as that is
// a programming error.
func New(opts Options) *Server {
	if opts.Store == nil {
		panic("web.New: Options.Store is nil")
	}
	s := &Server{
		store:      opts.Store,
		metrics:    opts.Metrics,
		publicURL:  strings.TrimRight(opts.PublicURL, "/"),
		gerritURL:  strings.TrimRight(opts.GerritURL, "/"),
		ready:      opts.Ready,
		log:        opts.Logger,
		now:        opts.Now,
		position:   opts.QueuePosition,
		maxLog:     opts.MaxLogBytes,
		chatPrefix: opts.ChatPrefix,
	}
	if s.chatPrefix == "" {
		s.chatPrefix = "!"
	}
	if s.maxLog <= 0 {
		s.maxLog = DefaultMaxLogBytes
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.pages = parsePages(s)
	return s
}

// RunPath is the path of a run's page, such as "/runs/12".
func RunPath(id int64) string { return "/runs/" + strconv.FormatInt(id, 10) }

// EnvPath is the path of an environment's page, such as "/envs/change-12345".
func EnvPath(name string) string { return "/envs/" + url.PathEscape(name) }

// runLogPath is the path of a run's raw test log.
func runLogPath(id int64) string { return RunPath(id) + "/log.txt" }

// Handler returns the HTTP handler serving every route. Only GET and HEAD
// are allowed; other methods get 405.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.dashboard)
	mux.HandleFunc("GET /runs/{id}", s.runPage)
	mux.HandleFunc("GET /runs/{id}/log.txt", s.runLog)
	mux.HandleFunc("GET /envs/{name}", s.envPage)
	mux.HandleFunc("GET /api/v1/envs", s.apiEnvs)
	mux.HandleFunc("GET /api/v1/runs/{id}", s.apiRun)
	mux.HandleFunc("GET /static/style.css", s.css)
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	if s.metrics != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("GET /", s.notFound)
	return readOnly(securityHeaders(mux))
}

// readOnly answers 405 to every method but GET and HEAD.
func readOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "read-only: use chat or Gerrit to change things", http.StatusMethodNotAllowed)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// securityHeaders forbids scripts and framing outright: the pages need
// neither, so even a templating mistake could not run injected script.
// The dashboard's reload while runs are active is a <meta http-equiv=
// "refresh">, which no CSP directive governs, and its search form is a GET
// to the same origin (form-action 'self').
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// storeCtx bounds the store calls of one request.
func storeCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), storeTimeout)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok\n"))
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if s.ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := s.ready(ctx); err != nil {
			s.log.Warn("not ready", "err", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready: " + err.Error() + "\n"))
			return
		}
	}
	_, _ = w.Write([]byte("ready\n"))
}

func (s *Server) css(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(styleCSS)
}

// parseID reads the {id} path value of a run route.
func parseID(r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	return id, err == nil && id > 0
}

// changeURL links to a patch set on Gerrit, or to the change when ps is 0.
func (s *Server) changeURL(project string, change, ps int) string {
	if s.gerritURL == "" || change == 0 {
		return ""
	}
	segs := strings.Split(project, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	u := s.gerritURL + "/c/" + strings.Join(segs, "/") + "/+/" + strconv.Itoa(change)
	if ps > 0 {
		u += "/" + strconv.Itoa(ps)
	}
	return u
}

// absolute turns a path into a URL under PublicURL.
func (s *Server) absolute(path string) string { return s.publicURL + path }
