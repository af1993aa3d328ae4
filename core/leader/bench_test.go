package leader

import (
	"slices"
	"testing"
	"time"

	"github.com/ductbot/ductbot/core/k8s/localcluster"
)

// BenchmarkFailover measures, per iteration, the time from the leader
// being cut off from the API server to the follower leading, with the
// tests' lease duration (4 s; the default is 15 s, and the time scales
// with it). It reports the median and the worst as well.
func BenchmarkFailover(b *testing.B) {
	cluster := localcluster.Shared(b)
	var took []time.Duration
	for b.Loop() {
		lease := leaseName()
		a := newReplica(b, cluster.RESTConfig, lease, "replica-a")
		f := newReplica(b, cluster.RESTConfig, lease, "replica-b")
		a.start(b)
		for !a.e.Leading() {
			time.Sleep(10 * time.Millisecond)
		}
		f.start(b)
		time.Sleep(time.Second)
		cut := time.Now()
		a.net.cut.Store(true)
		for !f.e.Leading() {
			if time.Since(cut) > leaseDuration+5*time.Second {
				b.Fatalf("no takeover within %s", leaseDuration+5*time.Second)
			}
			time.Sleep(5 * time.Millisecond)
		}
		took = append(took, time.Since(cut))
		a.cancel()
		f.cancel()
		<-a.done
		<-f.done
	}
	slices.Sort(took)
	b.ReportMetric(took[len(took)/2].Seconds(), "s-median-failover")
	b.ReportMetric(took[len(took)-1].Seconds(), "s-max-failover")
	b.ReportMetric(leaseDuration.Seconds(), "s-lease")
}
