// Package pipeline runs environments: it turns triggers (a new patch set, a
// recheck, a chat request) into runs, queues them under limits, takes each
// through the run lifecycle (core/run), supersedes older patch sets, reports
// to Gerrit and announces results. Runs are persisted at every step, so a
// restarted ductbot resumes what it was doing: none is lost and none
// reported twice.
//
// The rules live in one place each, as pure functions with table tests:
//
//	Gate        (gate.go)     who may get code deployed, on every path
//	Decide      (decide.go)   what a change's update asks for
//	VoteTarget  (vote.go)     whether and where a result is voted
//	Admit       (capacity.go) whether a queued run may start under max_envs
//	run.Move    (core/run)    the run lifecycle
//
// The Engine (this file and execute.go, report.go, triggers.go) observes,
// asks those functions, and carries out what they decide; Service
// (service.go) is what chat commands call. They talk to Gerrit, Kubernetes,
// the store and chat through the small interfaces in ports.go.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"helm.sh/helm/v3/pkg/chart"

	"github.com/ductbot/ductbot/config"
	"github.com/ductbot/ductbot/core/gerrit"
	"github.com/ductbot/ductbot/core/metrics"
	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/core/store"
)

// Options configures an Engine.
type Options struct {
	Config    *config.Config
	Chart     *chart.Chart
	Store     Store
	Cluster   Cluster
	Gerrit    Gerrit
	Announcer Announcer // may be nil
	Metrics   *metrics.Metrics
	Logger    *slog.Logger
	Now       func() time.Time
	// Self is ductbot's own Gerrit account: its comments never trigger
	// anything, and only its messages count as reviews already posted.
	Self *gerrit.Account
	// Leading, when set, is asked right before each review is posted and
	// each write of a running run's progress (its state, its environment's
	// status, its test logs); if it says false (this replica lost or may
	// have lost the leader lease) the review and the write are left to the
	// leader, which resumes the run from the store.
	Leading func() bool
}

// Engine runs environments. Create it with New, start it with Run.
type Engine struct {
	cfg     *config.Config
	chart   *chart.Chart
	store   Store
	cluster Cluster
	gerrit  Gerrit
	announc Announcer
	metrics *metrics.Metrics
	log     *slog.Logger
	now     func() time.Time
	plan    *MatrixPlan
	self    *gerrit.Account
	trust   *trustCache
	leading func() bool // nil: always

	requestMu sync.Mutex // serialises requests' check-then-enqueue
	sleepMu   sync.Mutex // one SleepIdle pass at a time

	mu       sync.Mutex // guards what follows; never held across I/O
	queue    []queued
	active   map[int64]*activeRun     // running runs by ID
	held     map[string]chan struct{} // environments a run or a teardown holds; closed on release
	wake     chan struct{}
	stopping bool
	wg       sync.WaitGroup
}

type queued struct {
	id  int64
	env string
}

type activeRun struct {
	cancel context.CancelCauseFunc
}

// Causes of a run's context being canceled.
var (
	errSuperseded = errors.New("superseded by a newer patch set")
	errCanceled   = errors.New("canceled")
	errShutdown   = errors.New("ductbot is shutting down")
)

// New makes an engine; nothing runs until Run.
func New(o Options) *Engine {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New()
	}
	if o.Config != nil { // the project label of run metrics: a configured project, else "other"
		names := make([]string, 0, len(o.Config.Projects))
		for _, p := range o.Config.Projects {
			names = append(names, p.Name)
		}
		o.Metrics.SetProjects(names)
	}
	return &Engine{
		cfg: o.Config, chart: o.Chart, store: o.Store, cluster: o.Cluster, gerrit: o.Gerrit,
		announc: o.Announcer, metrics: o.Metrics, log: o.Logger, now: o.Now, plan: NewMatrixPlan(o.Config),
		self: o.Self, trust: newTrustCache(o.Gerrit, 5*time.Minute, o.Now, o.Logger), leading: o.Leading,
		active: map[int64]*activeRun{}, held: map[string]chan struct{}{},
		wake: make(chan struct{}, 1),
	}
}

// Run resumes unfinished runs from the store and then dispatches queued runs
// until ctx ends. It then stops taking new work and waits up to grace for
// running steps to finish; what is still unfinished is left in the store to
// resume at the next start.
func (e *Engine) Run(ctx context.Context, grace time.Duration) error {
	if err := e.resume(ctx); err != nil {
		return err
	}
	base, cancelAll := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelAll(errShutdown)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		if err := e.RepairSleep(base); err != nil {
			e.log.Warn("finishing interrupted sleeps and wakes", "err", err)
		}
	}()
	reporter := make(chan struct{})
	go func() { defer close(reporter); e.retryReports(ctx) }()
	defer func() { <-reporter }()
	var sleptAt time.Time
	for {
		e.dispatch(base)
		if e.cfg.Cleanup.SleepAfter > 0 && time.Since(sleptAt) >= sleepCheckEvery {
			sleptAt = time.Now()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				slept, err := e.SleepIdle(base)
				if err != nil {
					e.log.Warn("putting idle environments to sleep", "err", err)
				}
				if len(slept) > 0 {
					e.log.Info("idle environments put to sleep", "envs", slept)
				}
			}()
		}
		select {
		case <-ctx.Done():
			e.mu.Lock()
			e.stopping = true
			e.mu.Unlock()
			done := make(chan struct{})
			go func() { e.wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(grace):
				e.log.Warn("shutdown grace period over; unfinished runs resume at the next start")
				e.mu.Lock()
				for _, a := range e.active {
					a.cancel(errShutdown)
				}
				e.mu.Unlock()
				<-done
			}
			return nil
		case <-e.wake:
		case <-time.After(5 * time.Second): // an environment may have gone
		}
	}
}

func (e *Engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// resume puts unfinished runs back to work after a restart.
func (e *Engine) resume(ctx context.Context) error {
	runs, err := e.store.ListRuns(ctx, store.RunFilter{Unfinished: true})
	if err != nil {
		return fmt.Errorf("reading unfinished runs: %w", err)
	}
	slices.SortFunc(runs, func(a, b *run.Run) int { return int(a.ID - b.ID) })
	var q []queued
	for _, r := range runs {
		switch r.State {
		case run.StateReporting:
			continue // has its result; retryReports posts it if needed
		case run.StateDeploying, run.StateTesting:
			e.log.Info("resuming a run interrupted by a restart", runAttrs(r)...)
			if err := run.Move(r, run.StateQueued, e.now()); err != nil {
				return err
			}
			if err := e.store.UpdateRun(ctx, r); err != nil {
				return fmt.Errorf("requeueing run %d: %w", r.ID, err)
			}
		}
		q = append(q, queued{r.ID, r.Env})
	}
	// Requests may have queued runs since the store was read: each run is
	// queued once.
	e.mu.Lock()
	queuedAlready := map[int64]bool{}
	for _, x := range e.queue {
		queuedAlready[x.id] = true
	}
	var fresh []queued
	for _, x := range q {
		if _, running := e.active[x.id]; !running && !queuedAlready[x.id] {
			fresh = append(fresh, x)
		}
	}
	e.queue = append(fresh, e.queue...)
	e.metrics.QueueDepth.Set(float64(len(e.queue)))
	e.mu.Unlock()
	return nil
}

// dispatch starts as many queued runs as the limits allow: at most
// max_parallel at once, one per environment, and, by Admit, no new
// environment in the cluster past max_envs (runs wait in the queue, in
// order, until one goes). It observes the store first and holds the lock
// only to choose.
func (e *Engine) dispatch(base context.Context) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	envs, err := e.store.ListEnvs(ctx, store.EnvFilter{Alive: true})
	if err != nil {
		e.log.Error("listing environments to dispatch runs", "err", err)
		return
	}
	status := make(map[string]run.EnvStatus, len(envs))
	inCluster := 0
	for _, env := range envs {
		status[env.Name] = env.Status
		if env.Status.InCluster() {
			inCluster++
		}
	}
	e.metrics.LiveEnvs.Set(float64(inCluster))

	type start struct {
		q      queued
		ctx    context.Context
		cancel context.CancelCauseFunc
	}
	var starts []start
	e.mu.Lock()
	if e.stopping {
		e.mu.Unlock()
		return
	}
	// Environments a run holds are in the cluster even when the store does
	// not say so yet (the run has not written "deploying").
	for name := range e.held {
		if !status[name].InCluster() {
			inCluster++
			status[name] = run.EnvDeploying
		}
	}
	var rest []queued
	for i, q := range e.queue {
		if len(e.active) >= e.cfg.Kubernetes.MaxParallel {
			rest = append(rest, e.queue[i:]...)
			break
		}
		_, held := e.held[q.env]
		if held || !Admit(status[q.env], inCluster, e.cfg.Kubernetes.MaxEnvs) {
			rest = append(rest, q)
			continue
		}
		if !status[q.env].InCluster() {
			inCluster++ // it will be
			status[q.env] = run.EnvDeploying
		}
		e.held[q.env] = make(chan struct{})
		rctx, cancel := context.WithCancelCause(base)
		e.active[q.id] = &activeRun{cancel: cancel}
		starts = append(starts, start{q, rctx, cancel})
	}
	e.queue = rest
	e.metrics.QueueDepth.Set(float64(len(e.queue)))
	e.wg.Add(len(starts))
	e.mu.Unlock()

	for _, s := range starts {
		go func() {
			defer e.wg.Done()
			// An asleep environment wakes before its run: a retest needs
			// it up, and a deploy must not leave the sleep annotations.
			if err := e.wakeHeld(s.ctx, s.q.env, "a run"); err != nil {
				e.log.Warn("waking before a run", "env", s.q.env, "run", s.q.id, "err", err)
			}
			e.execute(s.ctx, s.q.id)
			e.mu.Lock()
			delete(e.active, s.q.id)
			e.mu.Unlock()
			e.releaseEnv(s.q.env)
			s.cancel(nil)
		}()
	}
}

// Position is a queued run's 1-based place in the queue, or 0 when it is
// running or finished.
func (e *Engine) Position(id int64) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, q := range e.queue {
		if q.id == id {
			return i + 1
		}
	}
	return 0
}

// acquireEnv waits until no run or teardown holds the environment, then
// holds it.
func (e *Engine) acquireEnv(ctx context.Context, name string) error {
	for {
		e.mu.Lock()
		ch, held := e.held[name]
		if !held {
			e.held[name] = make(chan struct{})
			e.mu.Unlock()
			return nil
		}
		e.mu.Unlock()
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s's run to stop: %w", name, ctx.Err())
		case <-ch:
		}
	}
}

// releaseEnv lets the next run or teardown of the environment go.
func (e *Engine) releaseEnv(name string) {
	e.mu.Lock()
	ch, ok := e.held[name]
	delete(e.held, name)
	e.mu.Unlock()
	if ok {
		close(ch)
	}
	e.poke()
}

// enqueue creates (or revives) the run's environment record, persists the
// run, supersedes the older unfinished runs of the same environment and
// queues it. It returns the run's place in the queue.
func (e *Engine) enqueue(ctx context.Context, r *run.Run, env *run.Env, replyTo string) (int, error) {
	r.State, r.CreatedAt = run.StateQueued, e.now().UTC()
	if _, err := e.store.CreateOrReviveEnv(ctx, env); err != nil {
		return 0, fmt.Errorf("saving environment %s: %w", env.Name, err)
	}
	if err := e.store.CreateRun(ctx, r); err != nil {
		return 0, fmt.Errorf("saving run: %w", err)
	}
	if replyTo != "" {
		if err := e.store.PutReplyTarget(ctx, r.ID, replyTo); err != nil {
			e.log.Warn("saving where to reply", append(runAttrs(r), "err", err)...)
		}
	}
	if err := e.supersedeOlder(ctx, r); err != nil {
		e.log.Error("superseding older runs", append(runAttrs(r), "err", err)...)
	}
	e.mu.Lock()
	// resume, at start, may have read the run from the store and queued
	// it already: each run is queued once.
	pos := slices.IndexFunc(e.queue, func(q queued) bool { return q.id == r.ID }) + 1
	if _, running := e.active[r.ID]; pos == 0 && !running {
		e.queue = append(e.queue, queued{r.ID, r.Env})
		pos = len(e.queue)
	}
	e.metrics.QueueDepth.Set(float64(len(e.queue)))
	e.mu.Unlock()
	e.log.Info("run queued", append(runAttrs(r), "position", pos, "trigger", r.Trigger)...)
	e.poke()
	return pos, nil
}

// supersedeOlder ends the unfinished runs of r's environment that came
// before it: queued ones at once, running ones by canceling them. Runs that
// already have a result keep it and are reported.
func (e *Engine) supersedeOlder(ctx context.Context, r *run.Run) error {
	older, err := e.store.ListRuns(ctx, store.RunFilter{Env: r.Env, Unfinished: true})
	if err != nil {
		return fmt.Errorf("listing runs to supersede: %w", err)
	}
	var errs []error
	for _, o := range older {
		if o.ID >= r.ID || o.State == run.StateReporting {
			continue
		}
		errs = append(errs, e.stop(ctx, o, run.ResultSuperseded, errSuperseded, fmt.Sprintf("superseded by run %d (patch set %d)", r.ID, r.PatchSet)))
	}
	return errors.Join(errs...)
}

// stop ends an unfinished run with result: a queued run is finished here,
// a running one is canceled and finishes itself.
func (e *Engine) stop(ctx context.Context, r *run.Run, result run.Result, cause error, detail string) error {
	e.mu.Lock()
	if a, ok := e.active[r.ID]; ok {
		a.cancel(cause)
		e.mu.Unlock()
		return nil
	}
	n := len(e.queue)
	e.queue = slices.DeleteFunc(e.queue, func(q queued) bool { return q.id == r.ID })
	wasQueued := len(e.queue) < n
	e.mu.Unlock()
	if !wasQueued && r.State != run.StateQueued {
		return nil // finished meanwhile
	}
	if err := run.End(r, result, detail, e.now()); err != nil {
		return err
	}
	if err := e.store.UpdateRun(ctx, r); err != nil {
		return fmt.Errorf("ending run %d: %w", r.ID, err)
	}
	e.forgetReply(ctx, r.ID)
	e.countRun(r, result)
	e.log.Info("run ended before it started", append(runAttrs(r), "result", result)...)
	return nil
}

// countRun counts a finished run in ductbot_runs_total, under its project
// (bounded: see metrics.Project) and result; every way a run ends counts
// it here.
func (e *Engine) countRun(r *run.Run, result run.Result) {
	e.metrics.RunsTotal.WithLabelValues(e.metrics.Project(r.Project), string(result)).Inc()
}

// CancelChange ends every unfinished run of a change (merged, abandoned,
// made private).
func (e *Engine) CancelChange(ctx context.Context, change int, why string) error {
	return e.cancelRuns(ctx, store.RunFilter{Change: change, Unfinished: true}, why)
}

// cancelRuns ends the unfinished runs the filter selects, except those
// that already have a result to report.
func (e *Engine) cancelRuns(ctx context.Context, f store.RunFilter, why string) error {
	runs, err := e.store.ListRuns(ctx, f)
	if err != nil {
		return fmt.Errorf("listing runs to cancel: %w", err)
	}
	var errs []error
	for _, r := range runs {
		if r.State != run.StateReporting {
			errs = append(errs, e.stop(ctx, r, run.ResultCanceled, errCanceled, why))
		}
	}
	return errors.Join(errs...)
}

func runAttrs(r *run.Run) []any {
	return []any{"run", r.ID, "env", r.Env, "change", r.Change, "patchset", r.PatchSet}
}
