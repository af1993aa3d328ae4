package cleanup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/ductbot/ductbot/core/gerrit"
	"github.com/ductbot/ductbot/core/k8s"
	"github.com/ductbot/ductbot/core/metrics"
	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/core/store"
)

// ErrSweepRunning is returned by Sweep when another sweep is running:
// sweeps never overlap, and a second one returns at once rather than queue
// behind the first (a person who asked in chat gets an answer now, and the
// running sweep will have done the work).
var ErrSweepRunning = errors.New("a cleanup sweep is already running")

// gerritBatch is how many changes one Gerrit lookup asks for, as the
// gerrit client's own batches: a failed batch skips only its environments.
const gerritBatch = 50

// DefaultConcurrency is how many teardowns a sweep runs at once.
const DefaultConcurrency = 4

// Store is the part of the state store a sweep uses.
type Store interface {
	ListEnvs(ctx context.Context, f store.EnvFilter) ([]*run.Env, error)
	GetEnv(ctx context.Context, name string) (*run.Env, error)
	PutEnv(ctx context.Context, e *run.Env) error
	PruneRuns(ctx context.Context, before time.Time) (int, error)
}

// Gerrit looks changes up in batches (a change absent from the map is
// unknown, never merged) and queries them (for the changes closed since
// the last sweep). *gerrit.Client implements it.
type Gerrit interface {
	Changes(ctx context.Context, numbers []int) (map[int]*gerrit.Change, error)
	Query(ctx context.Context, q gerrit.Query) ([]gerrit.Change, error)
}

var _ Gerrit = (*gerrit.Client)(nil)

// closedOverlap is how far before the newest closed change it saw a sweep
// asks Gerrit again, for changes its index shows a little late.
const closedOverlap = 2 * time.Minute

// Cluster is the part of the Kubernetes client a sweep uses. Share one
// *k8s.Client with the run engine: its per-release lock then makes a
// repair wait for a deploy in progress instead of racing it. Namespaces
// and PendingReleases must list only this ductbot instance's objects (the
// *k8s.Client does, by k8s.Options.Instance), so that a sweep never removes
// or repairs another ductbot's environments on a shared cluster; its
// Teardown and Repair also refuse them.
type Cluster interface {
	Namespaces(ctx context.Context) ([]k8s.Namespace, error)
	PendingReleases(ctx context.Context) ([]k8s.PendingRelease, error)
	Repair(ctx context.Context, namespace, release string, timeout time.Duration) (bool, error)
	Teardown(ctx context.Context, namespace, release string, timeout time.Duration) error
}

var _ Cluster = (*k8s.Client)(nil)

// Destroyer tears down an environment that has a record. The run engine
// (*pipeline.Engine) implements it: it cancels the environment's runs,
// holds its lock, marks the record tearing-down, tears the release and
// namespace down, and marks the record gone. It must be idempotent: a sweep
// calls it again for a record left tearing-down.
type Destroyer interface {
	DestroyEnv(ctx context.Context, env, reason string) error
}

// Announcer sends a sweep's summary to chat.
type Announcer interface {
	AnnounceSweep(ctx context.Context, s run.SweepSummary) error
}

// Options configure a Sweeper. Store, Gerrit, Cluster and Destroyer are
// required.
type Options struct {
	Store     Store
	Gerrit    Gerrit
	Cluster   Cluster
	Destroyer Destroyer
	// Announcer, when set, gets one summary per sweep that removed,
	// skipped or repaired something.
	Announcer Announcer
	// Channels is where summaries go; passed on in SweepSummary.Channels.
	Channels []string
	Policy   Policy
	// Now is the clock; defaults to time.Now.
	Now func() time.Time
	// Metrics, when set, counts removals and skips.
	Metrics *metrics.Metrics
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Concurrency bounds the teardowns run at once; defaults to
	// DefaultConcurrency.
	Concurrency int
}

// Sweeper runs cleanup sweeps. It is safe for concurrent use; sweeps never
// overlap.
type Sweeper struct {
	opts Options
	log  *slog.Logger
	mu   sync.Mutex // held for the length of a sweep

	// What Gerrit said in earlier sweeps, so that a sweep asks only about
	// what changed (guarded by mu; in memory, so a restarted ductbot's
	// first sweep looks every change up once):
	//   - known: the last state read of each change whose environments
	//     need one;
	//   - closedSince: Gerrit's Updated time of the newest merged or
	//     abandoned change a sweep's query returned, set first from the
	//     first lookup that returned anything; zero until then.
	known       map[int]ChangeState
	closedSince time.Time
}

// New returns a Sweeper. It panics if a required option is missing, a
// programming error.
func New(opts Options) *Sweeper {
	if opts.Store == nil || opts.Gerrit == nil || opts.Cluster == nil || opts.Destroyer == nil {
		panic("cleanup.New: Store, Gerrit, Cluster and Destroyer are required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	opts.Policy.TeardownTimeout = orDefault(opts.Policy.TeardownTimeout, DefaultTeardownTimeout)
	return &Sweeper{opts: opts, log: opts.Logger.With("component", "cleanup"), known: map[int]ChangeState{}}
}

// Sweep runs one sweep, started by by (such as "cron" or a chat identity):
// it observes, plans and carries the plan out, prunes old runs, and sends
// one summary when anything was removed, skipped or repaired.
//
// One environment's failure never stops the sweep: it is logged, counted
// and reported in Summary.Skipped. The error is for what made the sweep as
// a whole incomplete: the records could not be read (then nothing is done),
// the cluster could not be listed (then no orphan is removed and no record
// marked gone, but the policies still apply), or pruning failed. It is
// ErrSweepRunning when another sweep is running.
func (s *Sweeper) Sweep(ctx context.Context, by string) (_ run.SweepSummary, err error) {
	if !s.mu.TryLock() {
		return run.SweepSummary{}, ErrSweepRunning
	}
	defer s.mu.Unlock()
	defer func() {
		if err == nil && s.opts.Metrics != nil {
			s.opts.Metrics.LastSweep.SetToCurrentTime()
		}
	}()
	p := s.opts.Policy
	log := s.log.With("by", by, "dry_run", p.DryRun)
	log.Info("cleanup sweep started")

	o, obsErr := s.observe(ctx, log)
	if o == nil {
		return run.SweepSummary{DryRun: p.DryRun, Channels: s.opts.Channels}, obsErr
	}
	pl := makePlan(*o, p)
	sum := pl.summary(p.DryRun, s.opts.Channels)
	if !p.DryRun {
		sum = s.carryOut(ctx, log, o.now, pl)
	}
	s.countSkips(pl)
	sortActions(sum.Removed)
	sortActions(sum.Skipped)
	slices.Sort(sum.Repaired)

	errs := []error{obsErr}
	if p.LogsRetention > 0 && !p.DryRun {
		n, err := s.opts.Store.PruneRuns(ctx, o.now.Add(-p.LogsRetention))
		if err != nil {
			errs = append(errs, fmt.Errorf("pruning runs: %w", err))
		} else if n > 0 {
			log.Info("pruned old runs", "runs", n, "older_than", p.LogsRetention)
		}
	}
	for _, a := range sum.Removed {
		log.Info("environment removed", "env", a.Env, "policy", a.Policy, "reason", a.Reason)
	}
	for _, a := range sum.Skipped {
		log.Warn("environment skipped", "env", a.Env, "policy", a.Policy, "reason", a.Reason)
	}
	log.Info("cleanup sweep finished", "removed", len(sum.Removed), "skipped", len(sum.Skipped),
		"repaired", len(sum.Repaired), "marked_gone", len(pl.markGone))

	if s.opts.Announcer != nil && len(sum.Removed)+len(sum.Skipped)+len(sum.Repaired) > 0 {
		if err := s.opts.Announcer.AnnounceSweep(ctx, sum); err != nil {
			log.Warn("announcing the sweep summary failed", "err", err)
		}
	}
	return sum, errors.Join(errs...)
}

// observe lists the cluster's namespaces (first: see makePlan), the live
// records, the pending releases, and the changes of the environments whose
// decision needs them. It returns nil when the records cannot be read.
func (s *Sweeper) observe(ctx context.Context, log *slog.Logger) (*observation, error) {
	var errs []error
	o := &observation{now: s.opts.Now(), changes: map[int]ChangeState{}, lookupErrs: map[int]error{}}
	nss, err := s.opts.Cluster.Namespaces(ctx)
	if err != nil {
		errs = append(errs, fmt.Errorf("listing namespaces: %w", err))
		log.Error("cannot list namespaces; no orphans removed and no records marked gone this sweep", "err", err)
	} else if nss == nil {
		nss = []k8s.Namespace{} // listed, and empty
	}
	o.namespaces = nss

	o.envs, err = s.opts.Store.ListEnvs(ctx, store.EnvFilter{Alive: true})
	if err != nil {
		log.Error("cannot list environments; nothing done this sweep", "err", err)
		return nil, errors.Join(append(errs, fmt.Errorf("listing environments: %w", err))...)
	}

	if o.pending, err = s.opts.Cluster.PendingReleases(ctx); err != nil {
		errs = append(errs, fmt.Errorf("listing pending releases: %w", err))
		log.Error("cannot list pending releases; none repaired this sweep", "err", err)
	}

	s.observeGerrit(ctx, log, o)
	return o, errors.Join(errs...)
}

// observeGerrit fills o.changes for the environments whose decision
// depends on Gerrit, asking Gerrit as little as it can:
//
//  1. one query for the changes merged or abandoned since the newest one
//     an earlier sweep saw (minus closedOverlap), in the projects of those
//     environments: with nothing closed, that is the sweep's one request;
//  2. a lookup by number (one request per 50) of the changes no sweep has
//     read yet: all of them in a new Sweeper's first sweep, then only new
//     environments' changes;
//  3. a lookup by number of the changes whose environment would now be
//     removed on a state read in an earlier sweep (a merge whose grace has
//     passed, an idle environment), since the change may have been
//     restored or have had activity since: a removal always rests on what
//     Gerrit says in this sweep.
//
// Whatever a failed request should have told is unknown: those
// environments are skipped, as when a lookup fails.
func (s *Sweeper) observeGerrit(ctx context.Context, log *slog.Logger, o *observation) {
	p := s.opts.Policy
	needed := map[int]bool{}
	projects := map[string]bool{}
	for _, env := range o.envs {
		if Decide(o.now, env, ChangeState{}, p).Skip {
			needed[env.Change] = true
			projects[env.Project] = true
		}
	}
	for n := range s.known {
		if !needed[n] {
			delete(s.known, n) // no environment needs it any more
		}
	}
	if len(needed) == 0 {
		return
	}
	fresh := map[int]bool{}
	if (p.Merged || p.Abandoned) && !s.closedSince.IsZero() {
		q := gerrit.Query{Closed: true, After: s.closedSince.Add(-closedOverlap)}
		if !projects[""] {
			q.Projects = slices.Sorted(maps.Keys(projects))
		}
		closed, err := s.opts.Gerrit.Query(ctx, q)
		if err != nil {
			log.Warn("asking Gerrit which changes closed failed; skipping the environments that depend on it", "since", q.After, "err", err)
			for n := range needed {
				o.lookupErrs[n] = err
			}
		}
		for _, ch := range closed {
			if ch.Updated.After(s.closedSince) {
				s.closedSince = ch.Updated
			}
			if needed[ch.Number] {
				s.known[ch.Number] = ChangeState{Known: true, Status: ch.Status, Updated: ch.Updated}
				fresh[ch.Number] = true
			}
		}
	}
	lookup := map[int]bool{}
	for n := range needed {
		if _, ok := s.known[n]; !ok {
			lookup[n] = true
		}
	}
	for _, env := range o.envs {
		n := env.Change
		st, ok := s.known[n]
		if !needed[n] || !ok || fresh[n] || o.lookupErrs[n] != nil {
			continue
		}
		if d := Decide(o.now, env, st, p); d.Remove && d.Policy != PolicyTTL && d.Policy != PolicyResume {
			lookup[n] = true
		}
	}
	numbers := slices.Sorted(maps.Keys(lookup))
	for batch := range slices.Chunk(numbers, gerritBatch) {
		got, err := s.opts.Gerrit.Changes(ctx, batch)
		if err != nil {
			log.Warn("Gerrit lookup failed; skipping the environments of these changes", "changes", len(batch), "first", batch[0], "err", err)
			for _, n := range batch {
				o.lookupErrs[n] = err
			}
			continue
		}
		var newest time.Time
		for _, n := range batch {
			ch, ok := got[n]
			if !ok {
				delete(s.known, n) // unknown now: asked again next sweep
				continue
			}
			s.known[n] = ChangeState{Known: true, Status: ch.Status, Updated: ch.Updated}
			fresh[n] = true
			if ch.Updated.After(newest) {
				newest = ch.Updated
			}
		}
		if s.closedSince.IsZero() && !newest.IsZero() {
			// The first states known: a change closed after this lookup
			// is updated after it, so the queries of the next sweeps,
			// from here, find it. (Once set, only the query moves it: a
			// later lookup comes after that sweep's query, so it cannot
			// miss what closed before.)
			s.closedSince = newest
		}
	}
	for n := range needed {
		if fresh[n] {
			delete(o.lookupErrs, n) // read in this sweep, whatever else failed
		} else if o.lookupErrs[n] != nil {
			continue
		}
		if st, ok := s.known[n]; ok {
			o.changes[n] = st
		}
	}
}

// carryOut runs the plan and returns what really happened: a removal or
// repair that failed moves to Skipped.
func (s *Sweeper) carryOut(ctx context.Context, log *slog.Logger, now time.Time, pl plan) run.SweepSummary {
	p := s.opts.Policy
	sum := run.SweepSummary{Channels: s.opts.Channels}
	for _, sk := range pl.skipped {
		sum.Skipped = append(sum.Skipped, sk.action)
	}
	failed := func(a run.SweepAction, err error) {
		a.Reason = fmt.Sprintf("%s; removal failed: %v", a.Reason, err)
		sum.Skipped = append(sum.Skipped, a)
		if s.opts.Metrics != nil {
			s.opts.Metrics.SweepSkips.WithLabelValues(SkipFailed).Inc()
		}
	}

	for _, env := range pl.markGone {
		if err := s.markGone(ctx, now, env.Name); err != nil {
			log.Warn("could not mark an environment whose namespace is gone", "env", env.Name, "namespace", env.Namespace, "err", err)
			continue
		}
		log.Info("namespace gone; record marked gone", "env", env.Name, "namespace", env.Namespace, "change", env.Change)
	}

	for _, r := range pl.repair {
		rlog := log.With("namespace", r.Namespace, "release", r.Name, "status", r.Status, "revision", r.Revision)
		repaired, err := s.opts.Cluster.Repair(ctx, r.Namespace, r.Name, p.TeardownTimeout)
		switch {
		case err != nil:
			rlog.Error("repairing a stuck release failed", "err", err)
			failed(run.SweepAction{Env: r.Namespace, Policy: PolicyStuck, Reason: fmt.Sprintf("release %s %s since %s", r.Name, r.Status, stamp(r.Since))}, err)
		case repaired:
			rlog.Info("repaired a stuck release", "pending_since", r.Since)
			sum.Repaired = append(sum.Repaired, r.Namespace+"/"+r.Name)
		default:
			rlog.Info("release no longer pending; nothing to repair")
		}
	}

	var mu sync.Mutex
	var wg sync.WaitGroup
	slots := make(chan struct{}, s.opts.Concurrency)
	run := func(a run.SweepAction, attrs []any, remove func() error) {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			err := remove()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				log.Error("removing an environment failed; the next sweep tries again", append(attrs, "policy", a.Policy, "err", err)...)
				failed(a, err)
				return
			}
			sum.Removed = append(sum.Removed, a)
			if s.opts.Metrics != nil {
				s.opts.Metrics.SweepRemovals.WithLabelValues(a.Policy).Inc()
			}
		})
	}
	for _, t := range pl.destroy {
		run(t.action, []any{"env", t.env.Name, "change", t.env.Change, "namespace", t.env.Namespace}, func() error {
			return s.opts.Destroyer.DestroyEnv(ctx, t.env.Name, t.action.Policy+": "+t.action.Reason)
		})
	}
	for _, o := range pl.orphans {
		run(o.action, []any{"env", o.action.Env, "namespace", o.namespace, "release", o.release}, func() error {
			log.Warn("removing an orphaned namespace", "env", o.action.Env, "namespace", o.namespace, "release", o.release)
			return s.opts.Cluster.Teardown(ctx, o.namespace, o.release, p.TeardownTimeout)
		})
	}
	wg.Wait()
	return sum
}

// markGone re-reads the record and marks it gone unless it changed under
// the sweep (a new deploy started, or it is already gone).
func (s *Sweeper) markGone(ctx context.Context, now time.Time, name string) error {
	env, err := s.opts.Store.GetEnv(ctx, name)
	if err != nil {
		return err
	}
	if env.Status == run.EnvDeploying || env.Status == run.EnvGone {
		return nil
	}
	env.Status, env.GoneAt = run.EnvGone, now.UTC()
	return s.opts.Store.PutEnv(ctx, env)
}

// countSkips counts the plan's skips (removals and failed removals are
// counted as they happen).
func (s *Sweeper) countSkips(pl plan) {
	if s.opts.Metrics == nil {
		return
	}
	for _, sk := range pl.skipped {
		s.opts.Metrics.SweepSkips.WithLabelValues(sk.reason).Inc()
	}
}
