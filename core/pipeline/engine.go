// Package pipeline runs environments: it turns triggers (a new patch set, a
// recheck, a chat request) into runs, queues them under a limit on parallel
// deploys, takes each through its states (queued → deploying → testing →
// reporting → done), supersedes older patch sets, reports to Gerrit and
// announces results. Runs are persisted at every step, so a restarted
// ductbot resumes what it was doing: none is lost and none reported twice.
//
// The pipeline talks to Gerrit, Kubernetes, the store and chat through the
// small interfaces in this file; cmd/ductbot wires the concrete clients.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ductbot/ductbot/config"
	"github.com/ductbot/ductbot/core/gerrit"
	"github.com/ductbot/ductbot/core/k8s"
	"github.com/ductbot/ductbot/core/metrics"
	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/core/store"
	"helm.sh/helm/v3/pkg/chart"
)

// Store is the durable state the pipeline needs.
type Store interface {
	CreateRun(ctx context.Context, r *run.Run) error
	UpdateRun(ctx context.Context, r *run.Run) error
	GetRun(ctx context.Context, id int64) (*run.Run, error)
	ListRuns(ctx context.Context, f store.RunFilter) ([]*run.Run, error)
	PutEnv(ctx context.Context, e *run.Env) error
	GetEnv(ctx context.Context, name string) (*run.Env, error)
	ListEnvs(ctx context.Context, f store.EnvFilter) ([]*run.Env, error)
	PutTestLogs(ctx context.Context, runID int64, logs []run.TestLog) error
	GetMeta(ctx context.Context, key string) (string, bool, error)
	SetMeta(ctx context.Context, key, value string) error
}

// Cluster deploys, tests and removes environments.
type Cluster interface {
	Deploy(ctx context.Context, rel k8s.Release) error
	Test(ctx context.Context, namespace, name string, timeout time.Duration) (*k8s.TestResult, error)
	Teardown(ctx context.Context, namespace, name string, timeout time.Duration) error
}

// Gerrit is what the pipeline reads from and writes to Gerrit.
type Gerrit interface {
	Change(ctx context.Context, project string, number int) (*gerrit.Change, error)
	Changes(ctx context.Context, numbers []int) (map[int]*gerrit.Change, error)
	PostReview(ctx context.Context, project string, number int, revision string, r gerrit.Review) error
	GroupMembers(ctx context.Context, group string) ([]gerrit.Account, error)
}

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
	// Sweeper runs a cleanup sweep on request (chat !sweep); may be nil.
	Sweeper interface {
		Sweep(ctx context.Context, by string) (run.SweepSummary, error)
	}
	// Self is ductbot's own Gerrit account: its comments never trigger anything.
	Self *gerrit.Account
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
	sweeper interface {
		Sweep(ctx context.Context, by string) (run.SweepSummary, error)
	}
	self  *gerrit.Account
	trust *trustCache

	requestMu sync.Mutex // serialises chat requests' check-then-enqueue

	mu       sync.Mutex
	queue    []int64              // waiting run IDs, oldest first
	active   map[int64]*activeRun // running runs by ID
	busy     map[string]bool      // environments with a run or a teardown in progress
	replies  map[int64]string     // chat requests waiting for their result (opaque reply targets)
	wake     chan struct{}
	stopping bool
	wg       sync.WaitGroup
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
	return &Engine{
		cfg: o.Config, chart: o.Chart, store: o.Store, cluster: o.Cluster, gerrit: o.Gerrit,
		announc: o.Announcer, metrics: o.Metrics, log: o.Logger, now: o.Now, plan: NewMatrixPlan(o.Config),
		sweeper: o.Sweeper, self: o.Self, trust: newTrustCache(o.Gerrit, 5*time.Minute, o.Now, o.Logger),
		active: map[int64]*activeRun{}, busy: map[string]bool{}, replies: map[int64]string{},
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
	reporter := make(chan struct{})
	go func() { defer close(reporter); e.retryReports(ctx) }()
	defer func() { <-reporter }()
	for {
		e.dispatch(base)
		e.countLiveEnvs(ctx)
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
		case <-time.After(5 * time.Second): // capacity may have freed up
		}
	}
}

// rememberReply records where a chat-started run's result goes, in memory
// and in the store, so that it still reaches the asker after a restart.
func (e *Engine) rememberReply(ctx context.Context, runID int64, to string) {
	if to == "" {
		return
	}
	e.mu.Lock()
	if _, ok := e.replies[runID]; ok {
		e.mu.Unlock()
		return
	}
	e.replies[runID] = to
	e.mu.Unlock()
	if err := e.store.SetMeta(ctx, replyKey(runID), to); err != nil {
		e.log.Warn("saving where to reply", "run", runID, "err", err)
	}
}

// replyFor is where a run's result goes back to, if it was asked for in
// chat; forget drops it once the result is out.
func (e *Engine) replyFor(ctx context.Context, runID int64, forget bool) string {
	e.mu.Lock()
	to, ok := e.replies[runID]
	if forget {
		delete(e.replies, runID)
	}
	e.mu.Unlock()
	if !ok {
		if v, found, err := e.store.GetMeta(ctx, replyKey(runID)); err == nil && found {
			to = v
		}
	}
	if forget && to != "" {
		_ = e.store.SetMeta(ctx, replyKey(runID), "")
	}
	return to
}

func replyKey(runID int64) string { return fmt.Sprintf("reply-to:%d", runID) }

// countLiveEnvs updates the live-environments gauge.
func (e *Engine) countLiveEnvs(ctx context.Context) {
	if live, err := e.store.ListEnvs(ctx, store.EnvFilter{Alive: true}); err == nil {
		e.metrics.LiveEnvs.Set(float64(len(live)))
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
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range runs {
		switch r.State {
		case run.StateReporting:
			// Already has its result; retryReports posts it if needed.
			continue
		case run.StateDeploying, run.StateTesting:
			e.log.Info("resuming a run interrupted by a restart", runAttrs(r)...)
			r.State = run.StateQueued
			if err := e.store.UpdateRun(ctx, r); err != nil {
				return err
			}
		}
		e.queue = append(e.queue, r.ID)
	}
	e.metrics.QueueDepth.Set(float64(len(e.queue)))
	return nil
}

// dispatch starts as many queued runs as the limits allow: at most
// max_parallel at once, one per environment, and no new environment past
// max_envs (per-patch runs wait in the queue until one goes).
func (e *Engine) dispatch(base context.Context) {
	ctx := context.Background()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopping {
		return
	}
	var rest []int64
	for i, id := range e.queue {
		if len(e.active) >= e.cfg.Kubernetes.MaxParallel {
			rest = append(rest, e.queue[i:]...)
			break
		}
		r, err := e.store.GetRun(ctx, id)
		if err != nil {
			e.log.Error("reading a queued run", "run", id, "err", err)
			rest = append(rest, id)
			continue
		}
		if r.Finished() {
			continue
		}
		if e.busy[r.Env] || !e.hasCapacity(ctx, r.Env) {
			rest = append(rest, id)
			continue
		}
		e.busy[r.Env] = true
		rctx, cancel := context.WithCancelCause(base)
		e.active[id] = &activeRun{cancel: cancel}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.execute(rctx, r)
			e.mu.Lock()
			delete(e.active, r.ID)
			delete(e.busy, r.Env)
			e.mu.Unlock()
			cancel(nil)
			e.poke()
		}()
	}
	e.queue = rest
	e.metrics.QueueDepth.Set(float64(len(e.queue)))
}

// hasCapacity reports whether env may be deployed under kubernetes.max_envs:
// an environment that exists always may; a new one only below the cap.
func (e *Engine) hasCapacity(ctx context.Context, env string) bool {
	max := e.cfg.Kubernetes.MaxEnvs
	if max == 0 {
		return true
	}
	if cur, err := e.store.GetEnv(ctx, env); err == nil && cur.Status != run.EnvGone {
		return true
	}
	live, err := e.store.ListEnvs(ctx, store.EnvFilter{Alive: true})
	if err != nil {
		return false
	}
	return len(live) < max
}

// Position is a queued run's 1-based place in the queue, or 0 when it is
// running or finished.
func (e *Engine) Position(id int64) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, q := range e.queue {
		if q == id {
			return i + 1
		}
	}
	return 0
}

// enqueue persists a new run, supersedes the older unfinished runs of the
// same environment, and queues it.
func (e *Engine) enqueue(ctx context.Context, r *run.Run, env *run.Env, reply string) (int, error) {
	r.State, r.CreatedAt = run.StateQueued, e.now().UTC()
	if err := e.store.PutEnv(ctx, env); err != nil {
		return 0, fmt.Errorf("saving environment %s: %w", env.Name, err)
	}
	if err := e.store.CreateRun(ctx, r); err != nil {
		return 0, fmt.Errorf("saving run: %w", err)
	}
	e.supersedeOlder(ctx, r)
	e.rememberReply(ctx, r.ID, reply)
	e.mu.Lock()
	e.queue = append(e.queue, r.ID)
	pos := len(e.queue)
	e.metrics.QueueDepth.Set(float64(len(e.queue)))
	e.mu.Unlock()
	e.log.Info("run queued", append(runAttrs(r), "position", pos, "trigger", r.Trigger)...)
	e.poke()
	return pos, nil
}

// supersedeOlder ends the unfinished runs of r's environment that test an
// older patch set (or the same environment's earlier request): queued ones at
// once, running ones by canceling them. Only the newest is reported.
func (e *Engine) supersedeOlder(ctx context.Context, r *run.Run) {
	older, err := e.store.ListRuns(ctx, store.RunFilter{Env: r.Env, Unfinished: true})
	if err != nil {
		e.log.Error("listing runs to supersede", append(runAttrs(r), "err", err)...)
		return
	}
	for _, o := range older {
		if o.ID == r.ID || o.ID > r.ID || o.State == run.StateReporting {
			continue
		}
		e.stop(ctx, o, run.ResultSuperseded, errSuperseded, fmt.Sprintf("superseded by run %d (patch set %d)", r.ID, r.PatchSet))
	}
}

// stop ends an unfinished run with result: a queued run is finished here,
// a running one is canceled and finishes itself.
func (e *Engine) stop(ctx context.Context, r *run.Run, result run.Result, cause error, detail string) {
	e.mu.Lock()
	if a, ok := e.active[r.ID]; ok {
		a.cancel(cause)
		e.mu.Unlock()
		return
	}
	e.queue = slices.DeleteFunc(e.queue, func(id int64) bool { return id == r.ID })
	e.mu.Unlock()
	r.State, r.Result, r.Detail, r.FinishedAt = run.StateDone, result, detail, e.now().UTC()
	r.Reported = true // nothing to report for a run that never ran
	if err := e.store.UpdateRun(ctx, r); err != nil {
		e.log.Error("ending a run", append(runAttrs(r), "err", err)...)
		return
	}
	e.metrics.RunsTotal.WithLabelValues(string(result)).Inc()
	e.log.Info("run ended before it started", append(runAttrs(r), "result", result)...)
}

// CancelChange ends every unfinished run of a change (merged or abandoned).
func (e *Engine) CancelChange(ctx context.Context, change int, why string) {
	e.cancelRuns(ctx, store.RunFilter{Change: change, Unfinished: true}, why)
}

// cancelRuns ends the unfinished runs the filter selects, except those
// that already have a result to report.
func (e *Engine) cancelRuns(ctx context.Context, f store.RunFilter, why string) {
	runs, err := e.store.ListRuns(ctx, f)
	if err != nil {
		e.log.Error("listing runs to cancel", "change", f.Change, "env", f.Env, "err", err)
		return
	}
	for _, r := range runs {
		if r.State != run.StateReporting {
			e.stop(ctx, r, run.ResultCanceled, errCanceled, why)
		}
	}
}

func runAttrs(r *run.Run) []any {
	return []any{"run", r.ID, "env", r.Env, "change", r.Change, "patchset", r.PatchSet}
}
