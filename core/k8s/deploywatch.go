package k8s

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/ductbot/ductbot/core/k8s/diagnose"
)

// watchTick is how often the watch re-judges the namespace when nothing
// changes (for the time limits: ready_timeout, image_wait).
const watchTick = time.Second

// deployWatch watches one namespace's pods, ReplicaSets and events while
// Helm installs or upgrades into it (informers scoped to the namespace),
// and judges them with diagnose.Classify on every change and every second.
// The first decided verdict is kept and handed to onVerdict, once.
type deployWatch struct {
	policy    diagnose.Policy
	since     time.Time
	now       func() time.Time
	onVerdict func(diagnose.Verdict)

	factory informers.SharedInformerFactory
	stop    chan struct{}
	kick    chan struct{}
	done    chan struct{}
	once    sync.Once

	mu      sync.Mutex
	verdict diagnose.Verdict
}

// watchSyncTimeout bounds how long watchDeploy waits for its first view
// of the namespace before Helm starts; without one, the deploy goes on
// unwatched (Helm's own timeout ends it, and the failure is still
// explained from a fresh read of the namespace).
const watchSyncTimeout = 10 * time.Second

// watchDeploy starts watching namespace and returns once it has seen what
// is there (or after watchSyncTimeout): pods there before the deploy are
// not judged while Helm waits, since the deploy may replace them. close
// stops it.
func (c *Client) watchDeploy(namespace string, p diagnose.Policy, since time.Time, onVerdict func(diagnose.Verdict)) *deployWatch {
	w := &deployWatch{
		policy: p, since: since, now: time.Now, onVerdict: onVerdict,
		factory: informers.NewSharedInformerFactoryWithOptions(c.clientset, 0, informers.WithNamespace(namespace)),
		stop:    make(chan struct{}), kick: make(chan struct{}, 1), done: make(chan struct{}),
	}
	kick := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { w.poke() },
		UpdateFunc: func(any, any) { w.poke() },
		DeleteFunc: func(any) { w.poke() },
	}
	pods := w.factory.Core().V1().Pods()
	rss := w.factory.Apps().V1().ReplicaSets()
	events := w.factory.Core().V1().Events()
	for _, inf := range []cache.SharedIndexInformer{pods.Informer(), rss.Informer(), events.Informer()} {
		_, _ = inf.AddEventHandler(kick)
	}
	w.factory.Start(w.stop)
	syncStop := make(chan struct{})
	timer := time.AfterFunc(watchSyncTimeout, func() { close(syncStop) })
	defer timer.Stop()
	synced := true
	for _, ok := range w.factory.WaitForCacheSync(syncStop) {
		synced = synced && ok
	}
	if !synced {
		c.log.Warn("could not watch the namespace's pods; the deploy is not watched for crashes", "namespace", namespace)
		close(w.done)
		return w
	}
	before := map[types.UID]bool{}
	if ps, err := pods.Lister().List(labels.Everything()); err == nil {
		for _, p := range ps {
			before[p.UID] = true
		}
	}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(watchTick)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-w.kick:
			case <-tick.C:
			}
			s := diagnose.Snapshot{Since: w.since, Before: before}
			ps, _ := pods.Lister().List(labels.Everything())
			for _, p := range ps {
				s.Pods = append(s.Pods, *p)
			}
			rs, _ := rss.Lister().List(labels.Everything())
			for _, r := range rs {
				s.ReplicaSets = append(s.ReplicaSets, *r)
			}
			evs, _ := events.Lister().List(labels.Everything())
			for _, e := range evs {
				s.Events = append(s.Events, *e)
			}
			if v := diagnose.Classify(s, w.policy, w.now()); v.Decided() {
				w.mu.Lock()
				w.verdict = v
				w.mu.Unlock()
				w.onVerdict(v)
				return
			}
		}
	}()
	return w
}

func (w *deployWatch) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// decided is the verdict that ended the wait, if one did.
func (w *deployWatch) decided() (diagnose.Verdict, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.verdict, w.verdict.Decided()
}

// close stops the informers and waits for the judging loop to end.
func (w *deployWatch) close() {
	w.once.Do(func() {
		close(w.stop)
		<-w.done
		w.factory.Shutdown()
	})
}
