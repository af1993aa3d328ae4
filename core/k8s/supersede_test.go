package k8s_test

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/release"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ductbot/ductbot/core/k8s"
	"github.com/ductbot/ductbot/core/k8s/localcluster"
)

// longSuite is chart values whose test pod runs for d on the local cluster.
func longSuite(tag string, d time.Duration) map[string]any {
	v := values(tag, "pass", "e2e: a long suite")
	v["e2e"].(map[string]any)["simulate"].(map[string]any)["duration"] = d.String()
	return v
}

// lockWatch records when operations on one release acquire its lock.
type lockWatch struct {
	key string
	ch  chan time.Time
}

func watchLocks(kc *k8s.Client, ns, name string) *lockWatch {
	w := &lockWatch{key: ns + "/" + name, ch: make(chan time.Time, 64)}
	k8s.SetOnLocked(kc, func(key string) {
		if key == w.key {
			select {
			case w.ch <- time.Now():
			default:
			}
		}
	})
	return w
}

// next waits for the next acquisition of the lock.
func (w *lockWatch) next(tb testing.TB, within time.Duration) time.Time {
	tb.Helper()
	select {
	case t := <-w.ch:
		return t
	case <-time.After(within):
		tb.Fatalf("no operation on %s acquired its lock within %s", w.key, within)
		return time.Time{}
	}
}

// waitTestPodRunning waits until the release's test pod is running.
func waitTestPodRunning(ctx context.Context, tb testing.TB, c *localcluster.Cluster, ns, pod string) {
	tb.Helper()
	for {
		p, err := c.Client.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
		if err == nil && p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			return
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("test pod %s/%s never ran (last: %v)", ns, pod, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// supersede starts Test on the release's long suite, cancels it once the
// test pod has run for about runFor, starts a Deploy with vals at once, and
// returns how long after the cancel the Deploy acquired the release's lock,
// with the Test's and the Deploy's errors.
func supersede(ctx context.Context, tb testing.TB, kc *k8s.Client, c *localcluster.Cluster, w *lockWatch, rel k8s.Release, runFor time.Duration) (lag time.Duration, testErr, deployErr error) {
	tb.Helper()
	testCtx, cancelTest := context.WithCancel(ctx)
	defer cancelTest()
	tested := make(chan error, 1)
	go func() {
		_, err := kc.Test(testCtx, rel.Namespace, rel.Name, 2*time.Minute)
		tested <- err
	}()
	w.next(tb, time.Minute) // the Test holds the lock
	waitTestPodRunning(ctx, tb, c, rel.Namespace, rel.Name+"-e2e")
	time.Sleep(runFor)

	cancelled := time.Now()
	cancelTest()
	deployed := make(chan error, 1)
	go func() { deployed <- kc.Deploy(ctx, rel) }()
	started := w.next(tb, 2*time.Minute)
	lag = started.Sub(cancelled)
	select {
	case testErr = <-tested:
	case <-time.After(time.Minute):
		tb.Fatal("Test did not return within a minute of its cancel")
	}
	return lag, testErr, <-deployed
}

// TestSupersededTestStopsAtOnce: cancelling a Test whose suite would run
// for a minute stops the suite (its pods are deleted) and releases the
// release's lock within seconds, so the next Deploy starts at once; Helm's
// history shows the test and the upgrade one after the other, nothing
// pending.
func TestSupersededTestStopsAtOnce(t *testing.T) {
	kc, c, ch := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const ns, name = "ductbot-supersede", "wf-supersede"
	w := watchLocks(kc, ns, name)
	rel := k8s.Release{Name: name, Namespace: ns, Chart: ch, Timeout: 2 * time.Minute, Values: longSuite("ps1", time.Minute)}
	if err := kc.Deploy(ctx, rel); err != nil {
		t.Fatal(err)
	}
	defer kc.Teardown(context.Background(), ns, name, time.Minute)
	w.next(t, time.Second) // the Deploy's

	rel.Values = longSuite("ps2", time.Minute)
	lag, testErr, deployErr := supersede(ctx, t, kc, c, w, rel, 2*time.Second)
	t.Logf("cancel of a 60 s suite -> next Deploy holds the lock: %v", lag)
	if lag > 20*time.Second {
		t.Errorf("the Deploy acquired the lock %v after the Test was cancelled; want seconds (goal < 5 s), not the suite's length", lag)
	}
	if !errors.Is(testErr, context.Canceled) {
		t.Errorf("cancelled Test: err = %v, want context.Canceled", testErr)
	}
	if deployErr != nil {
		t.Fatalf("Deploy after the cancelled Test: %v", deployErr)
	}
	if _, err := c.Client.CoreV1().Pods(ns).Get(ctx, name+"-e2e", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("test pod after the cancel: err = %v, want it deleted", err)
	}
	checkHistory(t, helmConfig(t, c.Kubeconfig, ns), name, 2)
}

// checkHistory: revisions 1..want, the last deployed and every earlier one
// superseded (a Helm operation that went on after it lost the lock would
// have written an older revision back, or left one pending); each test run
// recorded on a revision completed before the next revision started.
func checkHistory(tb testing.TB, cfg *action.Configuration, name string, want int) {
	tb.Helper()
	hist, err := action.NewHistory(cfg).Run(name)
	if err != nil {
		tb.Fatal(err)
	}
	sort.Slice(hist, func(i, j int) bool { return hist[i].Version < hist[j].Version })
	if len(hist) != want {
		tb.Fatalf("history has %d revisions, want %d", len(hist), want)
	}
	for i, r := range hist {
		wantStatus := release.StatusSuperseded
		if i == len(hist)-1 {
			wantStatus = release.StatusDeployed
		}
		if r.Version != i+1 || r.Info.Status != wantStatus {
			tb.Errorf("revision %d: status %s, want %s", r.Version, r.Info.Status, wantStatus)
		}
		if i == len(hist)-1 {
			continue
		}
		next := hist[i+1].Info.LastDeployed.Time
		for _, h := range testHooks(r) {
			if h.LastRun.StartedAt.IsZero() {
				continue
			}
			if end := h.LastRun.CompletedAt.Time; end.IsZero() || end.After(next) {
				tb.Errorf("revision %d's test %s ran %v..%v, overlapping revision %d started at %v",
					r.Version, h.Name, h.LastRun.StartedAt.Time, end, r.Version+1, next)
			}
		}
	}
}

func testHooks(r *release.Release) []*release.Hook {
	var out []*release.Hook
	for _, h := range r.Hooks {
		for _, e := range h.Events {
			if e == release.HookTest {
				out = append(out, h)
			}
		}
	}
	return out
}

// BenchmarkSupersedeDuringTest measures how long after a Test's cancel the
// next Deploy of the same release acquires its lock, while a 60 s test
// suite runs. The goal is under 5 s.
func BenchmarkSupersedeDuringTest(b *testing.B) {
	c := localcluster.Shared(b)
	kc, err := k8s.New(k8s.Options{Kubeconfig: c.Kubeconfig, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ch := loadChart(b)
	ctx := context.Background()
	const ns, name = "ductbot-bench-supersede", "wf-bench"
	w := watchLocks(kc, ns, name)
	rel := k8s.Release{Name: name, Namespace: ns, Chart: ch, Timeout: 2 * time.Minute, Values: longSuite("v0", time.Minute)}
	if err := kc.Deploy(ctx, rel); err != nil {
		b.Fatal(err)
	}
	defer kc.Teardown(context.Background(), ns, name, time.Minute)
	w.next(b, time.Second)

	b.ResetTimer()
	var total, worst time.Duration
	for i := 0; i < b.N; i++ {
		rel.Values = longSuite("v"+time.Now().Format("150405.000000"), time.Minute)
		lag, _, err := supersede(ctx, b, kc, c, w, rel, 2*time.Second)
		if err != nil {
			b.Fatalf("Deploy after the cancelled Test: %v", err)
		}
		total += lag
		worst = max(worst, lag)
	}
	b.StopTimer()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(total.Seconds()/float64(b.N), "s-cancel-to-deploy/op")
	b.ReportMetric(worst.Seconds(), "s-worst")
}

func loadChart(tb testing.TB) *chart.Chart {
	tb.Helper()
	ch, err := loader.Load(exampleChart)
	if err != nil {
		tb.Fatal(err)
	}
	return ch
}

// TestTestTimeoutStopsTheSuite: a suite that outlasts Test's timeout is an
// error (not a failed test: nothing failed), returned at the timeout with
// the log so far, and its still-running test pod is deleted so that it does
// not go on beside the next deploy.
func TestTestTimeoutStopsTheSuite(t *testing.T) {
	kc, c, ch := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const ns, name = "ductbot-test-timeout", "wf-timeout"
	if err := kc.Deploy(ctx, k8s.Release{Name: name, Namespace: ns, Chart: ch, Timeout: 2 * time.Minute, Values: longSuite("t", time.Minute)}); err != nil {
		t.Fatal(err)
	}
	defer kc.Teardown(context.Background(), ns, name, time.Minute)
	start := time.Now()
	res, err := kc.Test(ctx, ns, name, 5*time.Second)
	took := time.Since(start)
	t.Logf("Test with a 5 s timeout returned after %v", took)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Test of a 60 s suite with a 5 s timeout: %+v, %v; want an error wrapping context.DeadlineExceeded", res, err)
	}
	if took > 20*time.Second {
		t.Errorf("Test returned after %v, want about its 5 s timeout", took)
	}
	if res == nil || len(res.Pods) != 1 || res.Passed || res.Pods[0].Phase != "Unknown" || !strings.Contains(res.Pods[0].Log, "a long suite") {
		t.Errorf("result = %+v, want the one pod, phase Unknown, with its log so far", res)
	}
	if _, err := c.Client.CoreV1().Pods(ns).Get(ctx, name+"-e2e", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("test pod after the timeout: err = %v, want it deleted", err)
	}
}
