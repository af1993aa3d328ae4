package cleanup_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ductbot/ductbot/core/gerrit/gerrittest"
	"github.com/ductbot/ductbot/core/k8s"
	"github.com/ductbot/ductbot/core/k8s/localcluster"
	"github.com/ductbot/ductbot/core/pipeline/cleanup"
	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/core/store"
)

// countingCluster counts the calls a sweep makes to the cluster. Each of
// Namespaces and PendingReleases is one List request (PendingReleases makes
// a second only when something is pending, which the benchmark never has).
type countingCluster struct {
	cleanup.Cluster
	calls atomic.Int64
}

func (c *countingCluster) Namespaces(ctx context.Context) ([]k8s.Namespace, error) {
	c.calls.Add(1)
	return c.Cluster.Namespaces(ctx)
}

func (c *countingCluster) PendingReleases(ctx context.Context) ([]k8s.PendingRelease, error) {
	c.calls.Add(1)
	return c.Cluster.PendingReleases(ctx)
}

func (c *countingCluster) Repair(ctx context.Context, ns, rel string, timeout time.Duration) (bool, error) {
	c.calls.Add(1)
	return c.Cluster.Repair(ctx, ns, rel, timeout)
}

func (c *countingCluster) Teardown(ctx context.Context, ns, rel string, timeout time.Duration) error {
	c.calls.Add(1)
	return c.Cluster.Teardown(ctx, ns, rel, timeout)
}

type noDestroy struct{ calls atomic.Int64 }

func (d *noDestroy) DestroyEnv(context.Context, string, string) error { d.calls.Add(1); return nil }

// bench1000 is the benchmark's world, built once per test binary: 1,000
// environment namespaces on the local cluster, 1,000 open changes, and
// 1,000 ready records in a SQLite store.
var bench1000 struct {
	once sync.Once
	kc   *k8s.Client
	st   *store.Store
	gs   *gerrittest.Server
	dir  string
	err  error
}

func setup1000(b *testing.B) {
	b.Helper()
	lc := localcluster.Shared(b)
	bench1000.once.Do(func() {
		ctx := context.Background()
		w := &bench1000
		if w.kc, w.err = k8s.New(k8s.Options{Kubeconfig: lc.Kubeconfig}); w.err != nil {
			return
		}
		if w.dir, w.err = mkdirTemp(); w.err != nil {
			return
		}
		if w.st, w.err = store.Open(ctx, filepath.Join(w.dir, "state.db")); w.err != nil {
			return
		}
		w.gs = gerrittest.New()
		now := time.Now().UTC()
		var wg sync.WaitGroup
		errs := make(chan error, 1000)
		sem := make(chan struct{}, 16)
		for i := range 1000 {
			n := w.gs.CreateChange("wiki", "master", "change", "alice")
			name := fmt.Sprintf("bench-%04d", i)
			e := &run.Env{Name: name, Namespace: name, Release: name, Kind: run.EnvPatch, Change: n,
				Status: run.EnvReady, CreatedAt: now, ActiveAt: now}
			if w.err = w.st.PutEnv(ctx, e); w.err != nil {
				return
			}
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name,
					Labels: map[string]string{k8s.LabelManagedBy: k8s.ManagedBy, k8s.LabelEnv: name}}}
				if _, err := w.kc.Clientset().CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		w.err = <-errs
	})
	if bench1000.err != nil {
		b.Fatalf("setting up 1,000 environments: %v", bench1000.err)
	}
}

// BenchmarkSweep1000 is a sweep over 1,000 live environments with nothing
// to remove, on the real local cluster, store and Gerrit test server. It
// reports the Kubernetes calls and Gerrit requests per sweep, after a
// first sweep that looks every change up once (20 requests): with every
// policy on, the merged/abandoned policies ask Gerrit one question, which
// changes closed since the last sweep; with only TTL and idle, Gerrit is
// asked about nothing until an environment's record says it may be idle.
func BenchmarkSweep1000(b *testing.B) {
	setup1000(b)
	w := &bench1000
	policies := map[string]cleanup.Policy{
		"all-policies": cleanup.DefaultPolicy(),
		"ttl-idle-orphans": func() cleanup.Policy {
			p := cleanup.DefaultPolicy()
			p.Merged, p.Abandoned = false, false
			return p
		}(),
	}
	for _, name := range []string{"all-policies", "ttl-idle-orphans"} {
		b.Run(name, func(b *testing.B) {
			cc := &countingCluster{Cluster: w.kc}
			d := &noDestroy{}
			s := cleanup.New(cleanup.Options{Store: w.st, Gerrit: gerritClient(b, w.gs.URL()), Cluster: cc, Destroyer: d,
				Policy: policies[name], Logger: discard()})
			if _, err := s.Sweep(context.Background(), "warm-up"); err != nil {
				b.Fatal(err)
			}
			w.gs.ResetRequests()
			cc.calls.Store(0)
			b.ResetTimer()
			for b.Loop() {
				sum, err := s.Sweep(context.Background(), "bench")
				if err != nil {
					b.Fatal(err)
				}
				if len(sum.Removed)+len(sum.Skipped) != 0 || d.calls.Load() != 0 {
					b.Fatalf("sweep removed or skipped something: %+v", sum)
				}
			}
			b.ReportMetric(float64(cc.calls.Load())/float64(b.N), "k8s-req/op")
			b.ReportMetric(float64(w.gs.Requests())/float64(b.N), "gerrit-req/op")
		})
	}
}
