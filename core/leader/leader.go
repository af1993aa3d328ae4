// Package leader decides which of several ductbot replicas does the work,
// with a coordination.k8s.io Lease and client-go's leader election: the
// replica holding the Lease watches Gerrit, runs the queue and the sweeps
// and talks in chat; the others wait, serving the dashboard, and one of
// them takes over when the holder stops renewing.
//
// Leading is the guard to consult right before an effect that must not
// happen twice, such as posting a vote: it turns false as soon as the
// holder can no longer be sure that nobody else holds the Lease, before
// any other replica may take it, also when the holder was paused and has
// not noticed yet.
package leader

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Defaults of Options: the lease duration and renew deadline of
// Kubernetes' own controllers, and a retry period of 1 s rather than their
// 2 s. A follower tries every retry period stretched by a random factor of
// up to 1 + JitterFactor (2.2 times), so it may see the leader's last
// renewal that much late, and try to take over that much after the lease
// expired: a takeover comes up to the lease duration + 4.4 retry periods
// after the leader's last renewal. With 2 s that is 8.8 s past the lease,
// over the 5 s ductbot promises (seen: 20.1 s with a 15 s lease); with 1 s
// it is 4.4 s.
const (
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 1 * time.Second
)

// JitterFactor is client-go's leaderelection.JitterFactor: the retry
// period is stretched by up to this factor, and the renew deadline must be
// longer than the retry period times it.
const JitterFactor = leaderelection.JitterFactor

// MinMargin is how much shorter than the lease duration the renew deadline
// must be.
const MinMargin = 2 * time.Second

// ErrLost is returned by Run when this replica lost the Lease while it
// led: it could not renew it in time, or another replica holds it. The
// replica's work was told to stop at once; the process should exit, so
// that it comes back as a follower.
var ErrLost = errors.New("lost the leader lease")

// Options configure an Elector.
type Options struct {
	Client    kubernetes.Interface
	Namespace string // of the Lease
	Name      string // of the Lease
	// Identity names this replica in the Lease; default the host name
	// (the pod's name) and a random suffix, unique per process.
	Identity string
	// Labels go on the Lease when this replica takes it.
	Labels map[string]string
	// LeaseDuration is how long followers wait after the last renewal
	// they saw before taking over (whole seconds). RenewDeadline is how
	// long the leader keeps trying to renew before it gives up, and the
	// age of the last renewal after which Leading is false. The
	// difference is the safety margin, at least MinMargin: followers see
	// renewals only to the second (the Lease's times are compared as
	// written, in whole seconds), so one may take over up to a second
	// before LeaseDuration has passed since the last renewal.
	// RetryPeriod is the time between attempts.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	Logger                                    *slog.Logger
}

// Elector campaigns for the Lease. Create it with New, run it with Run.
type Elector struct {
	o       Options
	lock    resourcelock.Interface
	epoch   time.Time    // renewed is measured from here, on the monotonic clock
	renewed atomic.Int64 // since epoch: when the last successful write of the Lease naming us began
	leading atomic.Bool  // between taking the Lease and losing or releasing it
}

// New checks o and makes an Elector.
func New(o Options) (*Elector, error) {
	if o.Client == nil || o.Namespace == "" || o.Name == "" {
		return nil, errors.New("leader election: a Kubernetes client and the Lease's namespace and name are required")
	}
	if o.LeaseDuration == 0 {
		o.LeaseDuration = DefaultLeaseDuration
	}
	if o.RenewDeadline == 0 {
		o.RenewDeadline = DefaultRenewDeadline
	}
	if o.RetryPeriod == 0 {
		o.RetryPeriod = DefaultRetryPeriod
	}
	if o.LeaseDuration%time.Second != 0 || o.LeaseDuration-o.RenewDeadline < MinMargin || o.RetryPeriod <= 0 ||
		o.RenewDeadline <= time.Duration(JitterFactor*float64(o.RetryPeriod)) {
		return nil, fmt.Errorf("leader election: want a lease duration in whole seconds, at least %s longer than the renew deadline, which is longer than %v times the retry period; got %s, %s, %s",
			MinMargin, JitterFactor, o.LeaseDuration, o.RenewDeadline, o.RetryPeriod)
	}
	if o.Identity == "" {
		o.Identity = DefaultIdentity()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	e := &Elector{o: o, epoch: time.Now()}
	lock, err := resourcelock.NewWithLabels(resourcelock.LeasesResourceLock, o.Namespace, o.Name,
		o.Client.CoreV1(), o.Client.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: o.Identity}, o.Labels)
	if err != nil {
		return nil, fmt.Errorf("leader election: %w", err)
	}
	e.lock = &watchedLock{Interface: lock, e: e}
	return e, nil
}

// DefaultIdentity is the host name (a pod's name) and a random suffix.
func DefaultIdentity() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + "_" + hex.EncodeToString(b)
}

// Identity names this replica in the Lease.
func (e *Elector) Identity() string { return e.o.Identity }

// Leading reports whether this replica holds the Lease and renewed it less
// than RenewDeadline ago, so that no other replica can have taken it: it
// is false before the Lease is taken, after it is lost or released, and as
// soon as a renewal is overdue (a leader paused, cut off from the API
// server, or too busy to renew), before the others may take over. It is
// cheap and safe to call from any goroutine.
func (e *Elector) Leading() bool {
	if !e.leading.Load() {
		return false
	}
	since := time.Since(e.epoch) - time.Duration(e.renewed.Load())
	return since < e.o.RenewDeadline
}

// Run campaigns for the Lease until ctx ends. While this replica holds it,
// lead runs with a context that ends when ctx ends or the Lease is lost.
//
// When ctx ends while leading, Run waits for lead to return, renewing the
// Lease meanwhile (so in-flight work may finish and still count as the
// leader's), then releases the Lease, so a follower takes over at once, and
// returns nil; lead is never running when Run returns nil. When the Lease
// is lost, Run ends lead's context and returns ErrLost at once, without
// waiting for lead: the caller should exit.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context)) error {
	elect, stopElecting := context.WithCancel(context.WithoutCancel(ctx))
	defer stopElecting()
	var (
		started  atomic.Bool
		released atomic.Bool // lead returned after ctx ended: the Lease is given up on purpose
		mu       sync.Mutex
		closing  bool           // Run is returning: lead must not start
		running  sync.WaitGroup // lead
	)
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            e.lock,
		LeaseDuration:   e.o.LeaseDuration,
		RenewDeadline:   e.o.RenewDeadline,
		RetryPeriod:     e.o.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            e.o.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(term context.Context) {
				mu.Lock()
				if closing {
					mu.Unlock()
					return
				}
				running.Add(1)
				defer running.Done()
				mu.Unlock()
				started.Store(true)
				e.o.Logger.Info("leading: this replica holds the lease", "lease", e.o.Namespace+"/"+e.o.Name, "identity", e.o.Identity)
				work, stop := context.WithCancel(ctx)
				defer stop()
				go func() {
					select {
					case <-term.Done(): // lost, or released
					case <-work.Done():
					}
					stop()
				}()
				lead(work)
				if ctx.Err() != nil {
					released.Store(true)
					stopElecting() // release the Lease
				}
			},
			OnStoppedLeading: func() {
				e.leading.Store(false)
			},
			OnNewLeader: func(identity string) {
				if identity != e.o.Identity {
					e.o.Logger.Info("following", "leader", identity, "lease", e.o.Namespace+"/"+e.o.Name)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	// Stop campaigning when ctx ends before this replica leads.
	go func() {
		select {
		case <-ctx.Done():
		case <-elect.Done():
			return
		}
		if !started.Load() {
			stopElecting()
		}
	}()
	le.Run(elect)
	e.leading.Store(false)
	mu.Lock()
	closing = true
	mu.Unlock()
	if started.Load() && !released.Load() && ctx.Err() == nil {
		e.o.Logger.Warn("lost the lease: stopping all work now", "lease", e.o.Namespace+"/"+e.o.Name, "identity", e.o.Identity)
		return ErrLost
	}
	running.Wait()
	return nil
}

// watchedLock notes when the Lease was last written naming this replica:
// the start of that write is a moment after which no follower saw an older
// renewal, so none may take over before LeaseDuration has passed since.
type watchedLock struct {
	resourcelock.Interface
	e *Elector
}

func (l *watchedLock) Create(ctx context.Context, r resourcelock.LeaderElectionRecord) error {
	return l.write(r, func() error { return l.Interface.Create(ctx, r) })
}

func (l *watchedLock) Update(ctx context.Context, r resourcelock.LeaderElectionRecord) error {
	return l.write(r, func() error { return l.Interface.Update(ctx, r) })
}

func (l *watchedLock) write(r resourcelock.LeaderElectionRecord, do func() error) error {
	mine := r.HolderIdentity == l.e.o.Identity
	if !mine {
		l.e.leading.Store(false) // releasing: not the leader from now on, whatever comes of it
	}
	start := time.Since(l.e.epoch)
	if err := do(); err != nil {
		return err
	}
	if mine {
		l.e.renewed.Store(int64(start))
		l.e.leading.Store(true)
	}
	return nil
}
