// Package app is ductbot assembled from a configuration: the store, the
// Kubernetes and Gerrit clients, the pipeline, the chat adapters, the
// sweeps and the web server, wired and run. The production command
// (cmd/ductbot) and the development command's demo (cmd/ductbot-dev) both
// run it; only cmd/ductbot-dev links the local control plane and the
// Gerrit test server.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/ductbot/ductbot/bot/adapters"
	"github.com/ductbot/ductbot/bot/adapters/console"
	"github.com/ductbot/ductbot/bot/adapters/irc"
	"github.com/ductbot/ductbot/bot/adapters/slack"
	"github.com/ductbot/ductbot/bot/commands"
	"github.com/ductbot/ductbot/cmd/internal/buildinfo"
	"github.com/ductbot/ductbot/config"
	"github.com/ductbot/ductbot/core/gerrit"
	"github.com/ductbot/ductbot/core/k8s"
	"github.com/ductbot/ductbot/core/leader"
	"github.com/ductbot/ductbot/core/metrics"
	"github.com/ductbot/ductbot/core/pipeline"
	"github.com/ductbot/ductbot/core/store"
	"github.com/ductbot/ductbot/web"
)

// App is ductbot assembled from a configuration: every piece, wired.
type App struct {
	cfg      *config.Config
	log      *slog.Logger
	store    *store.Store
	cluster  *k8s.Client
	gerrit   *gerrit.Client
	poller   *gerrit.Poller
	stream   *gerrit.Stream // nil without gerrit.stream_events
	engine   *pipeline.Engine
	router   *commands.Router
	adapters []adapters.Adapter
	web      *http.Server
	webLn    net.Listener
	metrics  *metrics.Metrics
	sweeps   *sweepSchedule
	elector  *leader.Elector // nil without ha
	chat     *chatHealth
}

// Options are what the demo and tests change.
type Options struct {
	Logger *slog.Logger
	// ConsoleIn and ConsoleOut drive the console chat adapter when
	// chat.console is on; default stdin/stdout.
	ConsoleIn  io.Reader
	ConsoleOut io.Writer
	// Lease sets the leader election's timings and identity with ha on.
	Lease leader.Options
}

// New opens the store, loads the chart, connects the clients and builds
// the engine, the chat adapters and the web server. Nothing runs yet.
func New(ctx context.Context, cfg *config.Config, o Options) (_ *App, err error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	a := &App{cfg: cfg, log: log, metrics: metrics.New()}
	a.chat = newChatHealth(a.metrics, log)
	a.metrics.BuildInfo.WithLabelValues(buildinfo.Get()).Set(1)
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if a.store, err = openState(ctx, cfg.State); err != nil {
		return nil, err
	}
	a.store.SetMaxLogBytes(cfg.Report.MaxLogBytes)
	chart, err := k8s.LoadChart(ctx, cfg.Chart.Ref, cfg.Chart.Version)
	if err != nil {
		return nil, err
	}
	if a.cluster, err = k8s.New(k8s.Options{
		Kubeconfig: cfg.Kubernetes.Kubeconfig, Context: cfg.Kubernetes.Context, Logger: log,
		Instance: cfg.Kubernetes.Instance, MaxLogBytes: cfg.Report.MaxLogBytes,
	}); err != nil {
		return nil, err
	}
	password, err := cfg.GerritPassword()
	if err != nil {
		return nil, fmt.Errorf("gerrit.password_env: %w", err)
	}
	if a.gerrit, err = gerrit.New(gerrit.Options{URL: cfg.Gerrit.URL, Username: cfg.Gerrit.Username, Password: password, Logger: log}); err != nil {
		return nil, err
	}
	var self *gerrit.Account
	if cfg.Gerrit.Username != "" {
		if self, err = a.gerrit.Self(ctx); err != nil {
			return nil, fmt.Errorf("checking the Gerrit account %s: %w", cfg.Gerrit.Username, err)
		}
	}

	if err := a.buildAdapters(o); err != nil {
		return nil, err
	}
	announcer := adapters.NewAnnouncer(log, a.adapters...)
	if o.Lease.Logger == nil {
		o.Lease.Logger = log
	}
	if a.elector, err = newElector(cfg, a.cluster, o.Lease); err != nil {
		return nil, err
	}
	var leading func() bool
	if a.elector != nil {
		leading = a.elector.Leading // no vote from a replica that lost the lease
	}
	a.engine = pipeline.New(pipeline.Options{
		Config: cfg, Chart: chart, Store: a.store, Cluster: a.cluster, Gerrit: a.gerrit,
		Announcer: announcer, Metrics: a.metrics, Logger: log, Self: self, Leading: leading,
	})
	if a.sweeps, err = newSweepSchedule(a, announcer); err != nil {
		return nil, err
	}
	service := pipeline.NewService(a.engine, a.sweeps.sweeper)

	perms, err := commands.NewPermissions(commands.PermissionConfig{Commands: cfg.Chat.Permissions, Default: cfg.Chat.DefaultAllow})
	if err != nil {
		return nil, fmt.Errorf("chat.permissions: %w", err)
	}
	a.router = commands.New(service, commands.Options{
		Prefix: cfg.Chat.Prefix, Permissions: perms, RatePerMinute: cfg.Chat.RatePerMinute,
		MaxEnvsPerUser: cfg.Chat.MaxEnvsPerUser, MaxTTL: cfg.Cleanup.TTLMax.D(), Logger: log,
	})

	var projects []gerrit.ProjectFilter
	for _, p := range cfg.Projects {
		projects = append(projects, gerrit.ProjectFilter{Name: p.Name, Branches: p.Branches})
	}
	a.poller = gerrit.NewPoller(a.gerrit, gerrit.PollOptions{
		Projects: projects, Interval: cfg.Gerrit.PollInterval.D(), Lookback: cfg.Gerrit.Lookback.D(),
		Cursor: a.store, Logger: log,
		OnPoll: func(d time.Duration, err error) {
			a.metrics.GerritPollDuration.Observe(d.Seconds())
			if err != nil {
				a.metrics.GerritPollErrors.Inc()
			} else {
				a.metrics.LastSuccessfulPoll.SetToCurrentTime()
			}
		},
		OnCycle: func(reason string, d time.Duration, _ error) {
			a.metrics.GerritReconcileDuration.WithLabelValues(reason).Observe(d.Seconds())
		},
	})
	if se := cfg.Gerrit.StreamEvents; se != nil {
		// Events only hint at changes: the poller reads each through REST
		// and hands it to the same handler, and reconciles from its
		// watermark after every (re)connect. /readyz does not depend on
		// the stream: REST polling goes on while it reconnects.
		a.stream, err = gerrit.NewStream(a.poller, gerrit.StreamOptions{
			Address: se.Address, Username: cfg.Gerrit.Username, PrivateKeyFile: se.PrivateKeyFile,
			KnownHostsFile: se.KnownHostsFile, Projects: projects, Logger: log,
			OnConnected: func(up bool) {
				if up {
					a.metrics.GerritStreamConnected.Set(1)
				} else {
					a.metrics.GerritStreamConnected.Set(0)
				}
			},
			OnEvent:     func(typ string) { a.metrics.GerritStreamEvents.WithLabelValues(typ).Inc() },
			OnReconnect: a.metrics.GerritStreamReconnects.Inc,
		})
		if err != nil {
			return nil, fmt.Errorf("gerrit.stream_events: %w", err)
		}
	}

	webMetrics := a.metrics
	if cfg.Web.MetricsListen != "" {
		webMetrics = nil // served on its own address by run
	}
	w := web.New(web.Options{
		Store: a.store, Metrics: webMetrics, PublicURL: cfg.Web.PublicURL, GerritURL: cfg.Gerrit.URL, Logger: log,
		MaxLogBytes: cfg.Report.MaxLogBytes, ChatPrefix: cfg.Chat.Prefix,
		Ready:         a.ready,
		QueuePosition: a.engine.Position,
	})
	a.web = &http.Server{Handler: w.Handler(), ReadHeaderTimeout: 10 * time.Second}
	return a, nil
}

func (a *App) buildAdapters(o Options) error {
	cfg := a.cfg.Chat
	if cfg.Console {
		a.adapters = append(a.adapters, console.New(console.Config{In: o.ConsoleIn, Out: o.ConsoleOut}))
	}
	if c := cfg.IRC; c != nil {
		pass, _ := config.Secret(c.PasswordEnv, "")
		nsPass, _ := config.Secret(c.NickServPasswordEnv, "")
		ad, err := irc.New(irc.Config{
			Server: c.Server, TLS: c.TLS, Nick: c.Nick, Password: pass, NickServPassword: nsPass,
			Channels: c.Channels, Metrics: a.metrics, Logger: a.log,
		})
		if err != nil {
			return fmt.Errorf("chat.irc: %w", err)
		}
		a.adapters = append(a.adapters, ad)
	}
	if c := cfg.Slack; c != nil {
		bot, _ := config.Secret(c.BotTokenEnv, "")
		appTok, _ := config.Secret(c.AppTokenEnv, "")
		ad, err := slack.New(slack.Config{BotToken: bot, AppToken: appTok, Channels: c.Channels, Metrics: a.metrics, Logger: a.log})
		if err != nil {
			return fmt.Errorf("chat.slack: %w", err)
		}
		a.adapters = append(a.adapters, ad)
	}
	return nil
}

// Run runs everything until ctx ends, then shuts down in order: stop taking
// work (poller, chat, sweeps), let in-flight steps finish within the grace
// period, stop the web server, close the store.
//
// With ha, every replica serves the web, and only the holder of the Lease
// does the work (lead). A leader that loses the Lease stops taking work at
// once and run returns leader.ErrLost without waiting for in-flight steps:
// the process exits and comes back as a follower, and the new leader
// resumes the unfinished runs.
func (a *App) Run(ctx context.Context, grace time.Duration) error {
	defer a.Close()
	ln, err := net.Listen("tcp", a.cfg.Web.Listen)
	if err != nil {
		return fmt.Errorf("web.listen %s: %w", a.cfg.Web.Listen, err)
	}
	a.webLn = ln
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	goRun := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && !errors.Is(err, context.Canceled) {
				a.log.Error(name+" stopped", "err", err)
				errs <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	goRun("web", func() error {
		if err := a.web.Serve(a.webLn); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	stopMetrics := func() {}
	if addr := a.cfg.Web.MetricsListen; addr != "" {
		mln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("web.metrics_listen %s: %w", addr, err)
		}
		ms := &http.Server{Handler: metricsHandler(a.metrics), ReadHeaderTimeout: 10 * time.Second}
		stopMetrics = func() { ms.Close() }
		goRun("metrics", func() error {
			if err := ms.Serve(mln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	var workErr error
	if a.elector != nil {
		a.log.Info("ductbot serving the dashboard; waiting for the leader lease to work", "dashboard", a.cfg.Web.PublicURL, "identity", a.elector.Identity())
		leadErr := make(chan error, 1)
		workErr = a.elector.Run(ctx, func(ctx context.Context) { leadErr <- a.lead(ctx, grace, goRun) })
		if workErr == nil && len(leadErr) > 0 {
			workErr = <-leadErr
		}
	} else {
		workErr = a.lead(ctx, grace, goRun)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = a.web.Shutdown(shutdownCtx)
	stopMetrics()
	wg.Wait()
	close(errs)
	all := []error{workErr}
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// Store is the state ductbot reads and writes.
func (a *App) Store() *store.Store { return a.store }

// SweepOnce runs one cleanup sweep now, as `ductbot sweep` does.
func (a *App) SweepOnce(ctx context.Context) error { return a.sweeps.runOnce(ctx) }

// lead is the work one ductbot does: watching Gerrit, chat, the cleanup
// sweeps and the engine, until ctx ends; then no new sweep starts and
// in-flight steps get the grace period.
func (a *App) lead(ctx context.Context, grace time.Duration, goRun func(string, func() error)) error {
	goRun("gerrit poller", func() error { return a.poller.Run(ctx, a.engine.HandleChange) })
	if a.stream != nil {
		goRun("gerrit stream", func() error { return a.stream.Run(ctx) })
	}
	for _, ad := range a.adapters {
		goRun(ad.Name()+" chat", func() error { return a.chat.run(ctx, ad, a.router) })
	}
	a.sweeps.start()
	defer a.sweeps.stop()
	context.AfterFunc(ctx, a.sweeps.stop)
	a.log.Info("ductbot running", "dashboard", a.cfg.Web.PublicURL, "projects", len(a.cfg.Projects), "chat", len(a.adapters))
	return a.engine.Run(ctx, grace)
}

// ready is /readyz: no chat adapter has given up, and the cluster answers.
func (a *App) ready(ctx context.Context) error {
	if err := a.chat.ready(); err != nil {
		return err
	}
	return a.cluster.Reachable(ctx)
}

// Close releases what New opened; Run closes it too.
func (a *App) Close() {
	if a.webLn != nil {
		a.webLn.Close()
	}
	if a.store != nil {
		a.store.Close()
	}
}
