package leader

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ductbot/ductbot/core/k8s/localcluster"
	"github.com/ductbot/ductbot/core/store/pgtest"
)

func TestMain(m *testing.M) {
	code := pgtest.RunTests(runFunc(func() int { return localcluster.RunTests(m) }))
	for _, f := range afterTests {
		f()
	}
	os.Exit(code)
}

// runFunc lets pgtest stop its server after the tests that the local
// cluster's RunTests ran.
type runFunc func() int

func (f runFunc) Run() int { return f() }

var afterTests []func()

// AfterTests runs f once all the tests ran (the external tests' shared
// files, such as the ductbot binary they build).
func AfterTests(f func()) { afterTests = append(afterTests, f) }

// Short timings, so that a takeover takes seconds.
const (
	leaseDuration = 4 * time.Second
	renewDeadline = 2 * time.Second
	retryPeriod   = 500 * time.Millisecond
)

var leaseSeq atomic.Int64

func leaseName() string { return fmt.Sprintf("test-%d-%d", os.Getpid(), leaseSeq.Add(1)) }

// cuttable is a transport that fails every request once cut: a replica
// that can no longer reach the API server, as when its node dies.
type cuttable struct {
	rt  http.RoundTripper
	cut atomic.Bool
}

func (c *cuttable) RoundTrip(r *http.Request) (*http.Response, error) {
	if c.cut.Load() {
		return nil, errors.New("cut off from the API server")
	}
	return c.rt.RoundTrip(r)
}

// replica is one elector on its own connection to the API server.
type replica struct {
	name    string
	e       *Elector
	net     *cuttable
	leads   atomic.Int32 // terms started
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan error
	leadFor time.Duration // how long lead takes to return once told to stop
}

func newReplica(t testing.TB, cfg *rest.Config, lease, name string) *replica {
	t.Helper()
	r := &replica{name: name, net: &cuttable{}, done: make(chan error, 1)}
	c := rest.CopyConfig(cfg)
	c.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { r.net.rt = rt; return r.net }
	client, err := kubernetes.NewForConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	r.e, err = New(Options{
		Client: client, Namespace: "default", Name: lease, Identity: name,
		Labels:        map[string]string{"app.kubernetes.io/managed-by": "ductbot"},
		LeaseDuration: leaseDuration, RenewDeadline: renewDeadline, RetryPeriod: retryPeriod,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *replica) start(t testing.TB) {
	r.ctx, r.cancel = context.WithCancel(context.Background())
	t.Cleanup(r.cancel)
	go func() {
		r.done <- r.e.Run(r.ctx, func(ctx context.Context) {
			r.leads.Add(1)
			<-ctx.Done()
			time.Sleep(r.leadFor)
		})
	}()
}

// waitFor polls cond until it holds or the time is up, and says how long
// it took.
func waitFor(t testing.TB, what string, limit time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// leaderAndFollower starts replica a on a new Lease, waits until it leads,
// and starts replica b. a's lead takes leadFor to return once told to stop.
func leaderAndFollower(t *testing.T, leadFor time.Duration) (*localcluster.Cluster, string, *replica, *replica) {
	t.Helper()
	cluster := localcluster.Shared(t)
	lease := leaseName()
	a := newReplica(t, cluster.RESTConfig, lease, "replica-a")
	a.leadFor = leadFor
	b := newReplica(t, cluster.RESTConfig, lease, "replica-b")
	a.start(t)
	waitFor(t, "a leads", 30*time.Second, a.e.Leading)
	b.start(t)
	return cluster, lease, a, b
}

// TestOneLeadsTheOtherTakesOver: of two electors on one Lease one leads,
// the other waits; when the leader is cut off from the API server its
// guard turns false before the other may take over, the other leads within
// the lease duration + 5 s, and the first's Run reports the loss.
func TestOneLeadsTheOtherTakesOver(t *testing.T) {
	cluster, lease, a, b := leaderAndFollower(t, 0)

	// For two lease durations exactly one leads: a.
	for end := time.Now().Add(2 * leaseDuration); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if !a.e.Leading() || b.e.Leading() || b.leads.Load() != 0 {
			t.Fatalf("a leading %v, b leading %v (terms %d): want a only", a.e.Leading(), b.e.Leading(), b.leads.Load())
		}
	}
	l, err := cluster.Client.CoordinationV1().Leases("default").Get(t.Context(), lease, metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != "replica-a" {
		t.Fatalf("lease = %+v, %v; want held by replica-a", l, err)
	}
	if l.Labels["app.kubernetes.io/managed-by"] != "ductbot" {
		t.Errorf("lease labels %v, want managed-by ductbot", l.Labels)
	}

	// a's node dies: it can no longer renew.
	stopped := time.Now()
	a.net.cut.Store(true)
	var guardOff, bLeads time.Duration
	for bLeads == 0 {
		now := time.Since(stopped)
		aLeads, bLeading := a.e.Leading(), b.e.Leading()
		if aLeads && bLeading {
			t.Fatalf("both lead %s after a was cut off", now.Round(time.Millisecond))
		}
		if !aLeads && guardOff == 0 {
			guardOff = now
		}
		if bLeading {
			bLeads = now
		}
		if now > leaseDuration+5*time.Second {
			t.Fatalf("b does not lead %s after a was cut off (lease duration %s)", now, leaseDuration)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("a's guard off after %s, b leads after %s (lease duration %s, renew deadline %s)", guardOff, bLeads, leaseDuration, renewDeadline)
	if guardOff > renewDeadline+100*time.Millisecond {
		t.Errorf("a's guard stayed on %s, want at most the renew deadline %s", guardOff, renewDeadline)
	}
	if bLeads-guardOff < leaseDuration-renewDeadline-time.Second {
		t.Errorf("b led %s after a's guard went off, want about the margin %s", bLeads-guardOff, leaseDuration-renewDeadline)
	}
	select {
	case err := <-a.done:
		if !errors.Is(err, ErrLost) {
			t.Errorf("a's Run = %v, want ErrLost", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("a's Run did not return after it lost the lease")
	}
	if a.e.Leading() {
		t.Error("a's guard is on after it lost the lease")
	}
	a.net.cut.Store(false) // back on the network, a's guard stays off
	time.Sleep(2 * retryPeriod)
	if a.e.Leading() || !b.e.Leading() {
		t.Errorf("after a is back: a leading %v, b leading %v; want b only", a.e.Leading(), b.e.Leading())
	}
}

// TestGracefulHandover: a leader that is stopped keeps the Lease (and its
// guard) while its work finishes, then releases it, and the follower leads
// at once, long before the lease duration.
func TestGracefulHandover(t *testing.T) {
	_, _, a, b := leaderAndFollower(t, 3*time.Second) // a's in-flight work takes 3 s to finish
	time.Sleep(leaseDuration)

	stopped := time.Now()
	a.cancel()
	for time.Since(stopped) < a.leadFor-200*time.Millisecond {
		if !a.e.Leading() || b.e.Leading() {
			t.Fatalf("%s into a's shutdown: a leading %v, b leading %v; want a while its work finishes",
				time.Since(stopped).Round(time.Millisecond), a.e.Leading(), b.e.Leading())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := <-a.done; err != nil {
		t.Errorf("a's Run after a stop = %v, want nil", err)
	}
	if a.e.Leading() {
		t.Error("a's guard is on after it released the lease")
	}
	took := waitFor(t, "b leads", leaseDuration+5*time.Second, b.e.Leading)
	t.Logf("b leads %s after a released the lease", took)
	if took > leaseDuration/2 {
		t.Errorf("b took %s to lead after a released the lease, want well under the lease duration %s", took, leaseDuration)
	}
}

// TestRunStopsBeforeLeading: a follower stopped before it ever leads
// returns at once.
func TestRunStopsBeforeLeading(t *testing.T) {
	_, _, a, b := leaderAndFollower(t, 0)
	time.Sleep(retryPeriod)
	b.cancel()
	select {
	case err := <-b.done:
		if err != nil || b.leads.Load() != 0 {
			t.Errorf("b's Run = %v after %d terms, want nil after none", err, b.leads.Load())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a follower's Run did not return when stopped")
	}
	if !a.e.Leading() {
		t.Error("a stopped leading when b stopped")
	}
}

func TestOptions(t *testing.T) {
	for _, o := range []Options{
		{},
		{Client: fakeClient(), Namespace: "ns"},
		{Client: fakeClient(), Namespace: "ns", Name: "l", LeaseDuration: 1500 * time.Millisecond, RenewDeadline: time.Second},
		{Client: fakeClient(), Namespace: "ns", Name: "l", LeaseDuration: 10 * time.Second, RenewDeadline: 10 * time.Second},
		{Client: fakeClient(), Namespace: "ns", Name: "l", LeaseDuration: 10 * time.Second, RenewDeadline: 9 * time.Second},
		{Client: fakeClient(), Namespace: "ns", Name: "l", RetryPeriod: 10 * time.Second},
		{Client: fakeClient(), Namespace: "ns", Name: "l", LeaseDuration: 5 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 2500 * time.Millisecond}, // client-go: renew deadline > 1.2 x retry
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
	e, err := New(Options{Client: fakeClient(), Namespace: "ns", Name: "l"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Leading() {
		t.Error("a new elector leads")
	}
	if id := e.Identity(); id == "" || !strings.Contains(id, "_") || id == DefaultIdentity() {
		t.Errorf("identity %q, want host_random, unique", id)
	}
}

func fakeClient() kubernetes.Interface {
	c, _ := kubernetes.NewForConfig(&rest.Config{Host: "http://127.0.0.1:1"})
	return c
}

// TestPausedLeaderDoesNotAct: a leader process stopped with SIGSTOP past
// the lease duration loses the Lease to the other replica; when it resumes,
// its guard is off from the first moment it runs, before it learns that it
// lost, and it never leads again in this term.
func TestPausedLeaderDoesNotAct(t *testing.T) {
	cluster := localcluster.Shared(t)
	lease := leaseName()
	child := exec.Command(os.Args[0], "-test.run=^TestHelperElector$")
	child.Env = append(os.Environ(), "LEADER_HELPER_KUBECONFIG="+cluster.Kubeconfig, "LEADER_HELPER_LEASE="+lease)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	pid := child.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(pid, syscall.SIGCONT)
		_ = child.Process.Kill()
		_ = child.Wait()
	})
	// The child prints "<leading>" every 10 ms, and "lost" when Run ends.
	var (
		mu    sync.Mutex
		lines []string
	)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			mu.Lock()
			lines = append(lines, sc.Text())
			mu.Unlock()
		}
	}()
	since := func(i int) []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), lines[min(i, len(lines)):]...)
	}
	last := func() string {
		l := since(0)
		if len(l) == 0 {
			return ""
		}
		return l[len(l)-1]
	}
	waitFor(t, "the child leads", 60*time.Second, func() bool { return last() == "true" })

	b := newReplica(t, cluster.RESTConfig, lease, "replica-b")
	b.start(t)
	time.Sleep(leaseDuration)
	if b.e.Leading() {
		t.Fatal("b leads while the child renews")
	}

	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	took := waitFor(t, "b leads while the child is paused", leaseDuration+5*time.Second, b.e.Leading)
	t.Logf("b leads %s after the leader was paused", took)
	time.Sleep(time.Second)
	mark := len(since(0))
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the child reports it lost", 15*time.Second, func() bool { return slices.Contains(since(mark), "lost") })
	after := since(mark)
	after = after[:slices.Index(after, "lost")]
	if len(after) < 2 {
		t.Fatalf("the child printed %q after it resumed, want its guard checks", after)
	}
	for i, l := range after {
		if l == "true" {
			t.Fatalf("the child's guard was on after it resumed (%s paused, check %d of %q)", time.Since(paused), i, after)
		}
	}
	if !b.e.Leading() {
		t.Error("b stopped leading when the child resumed")
	}
}

// TestHelperElector is the child process of TestPausedLeaderDoesNotAct.
func TestHelperElector(t *testing.T) {
	kubeconfig := os.Getenv("LEADER_HELPER_KUBECONFIG")
	if kubeconfig == "" {
		t.Skip("the child of TestPausedLeaderDoesNotAct")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Options{
		Client: client, Namespace: "default", Name: os.Getenv("LEADER_HELPER_LEASE"), Identity: "child",
		LeaseDuration: leaseDuration, RenewDeadline: renewDeadline, RetryPeriod: retryPeriod,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(context.Background(), func(ctx context.Context) { <-ctx.Done() }) }()
	w := bufio.NewWriter(os.Stdout)
	for {
		select {
		case err := <-done:
			fmt.Fprintf(w, "lost\n")
			w.Flush()
			if !errors.Is(err, ErrLost) {
				t.Errorf("Run = %v, want ErrLost", err)
			}
			return
		case <-time.After(10 * time.Millisecond):
		}
		fmt.Fprintf(w, "%v\n", e.Leading())
		w.Flush()
	}
}
