package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ductbot/ductbot/cmd/internal/demo"
	"github.com/ductbot/ductbot/config"
	"github.com/ductbot/ductbot/core/gerrit/gerrittest"
	"github.com/ductbot/ductbot/core/k8s/localcluster"
	"github.com/ductbot/ductbot/core/leader"
	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/core/store"
	"github.com/ductbot/ductbot/core/store/pgtest"
)

// cutProxy forwards TCP to the API server until cut: then it drops every
// connection and accepts none, as when a replica's node falls off the
// network.
type cutProxy struct {
	ln    net.Listener
	to    string
	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

func newCutProxy(t *testing.T, to string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, to: to}
	t.Cleanup(func() { ln.Close(); p.Cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.cut {
				p.mu.Unlock()
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", to)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

// Cut drops every connection and refuses new ones.
func (p *cutProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for _, c := range p.conns {
		c.Close()
	}
}

// kubeconfigVia writes a copy of kubeconfig whose API server is reached
// through a proxy the test can cut.
func kubeconfigVia(t *testing.T, kubeconfig string) (string, *cutProxy) {
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	var proxy *cutProxy
	for _, c := range cfg.Clusters {
		u, err := url.Parse(c.Server)
		if err != nil || proxy != nil {
			t.Fatalf("kubeconfig %s: want one cluster with a URL (%v)", kubeconfig, err)
		}
		proxy = newCutProxy(t, u.Host)
		u.Host = proxy.ln.Addr().String()
		c.Server = u.String()
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path, proxy
}

// haReplica is one ductbot process of a highly available installation.
type haReplica struct {
	a    *App
	url  string
	logs *syncBuffer
	stop context.CancelFunc
	done chan error
}

// TestHAFailover: two ductbots share one PostgreSQL database and one
// Lease. The follower serves the dashboard and is ready. The leader can no
// longer renew the Lease while a patch set's tests run (its Lease requests
// go through a proxy the test cuts; its Helm work goes on, with a long
// grace period, like a leader that was paused): the follower leads within
// the lease duration + 5 s and resumes the run; the old leader's tests
// finish but its guard keeps its vote back; exactly one review is posted,
// by the new leader, and no release is left pending.
func TestHAFailover(t *testing.T) {
	cluster := localcluster.Shared(t)
	dsn := pgtest.NewDatabase(t)
	g := gerrittest.NewWithOptions(gerrittest.Options{Username: "ductbot", Password: "pw"})
	defer g.Close()
	g.AddAccount("alice", "Alice Developer", "alice@example.org")
	t.Setenv("DUCTBOT_DEMO_GERRIT_PASSWORD", "pw")
	t.Setenv("DUCTBOT_HA_TEST_DSN", dsn)
	chartPath, _ := filepath.Abs("../../../examples/chart/wikifunctions")
	lease := fmt.Sprintf("ha-test-%d", os.Getpid())
	const leaseDuration = 4 * time.Second

	start := func(name, kubeconfig string, leaseClient kubernetes.Interface) *haReplica {
		t.Helper()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		cfg, err := config.Parse([]byte(demo.Config(g.URL(), chartPath, kubeconfig, addr, "unused.db")))
		if err != nil {
			t.Fatal(err)
		}
		cfg.State = config.State{Driver: config.DriverPostgres, DSNEnv: "DUCTBOT_HA_TEST_DSN"}
		cfg.HA = config.HA{Enabled: true, LeaseName: lease, LeaseNamespace: "default",
			LeaseDuration: config.Duration(leaseDuration), RenewDeadline: config.Duration(2 * time.Second),
			RetryPeriod: config.Duration(500 * time.Millisecond)}
		cfg.Chat.Console = false
		cfg.Kubernetes.NamespacePrefix = "ha-"
		cfg.Kubernetes.Instance = "ha-test"
		if errs := cfg.Validate(); len(errs) > 0 {
			t.Fatal(errs)
		}
		logs := &syncBuffer{}
		a, err := New(context.Background(), cfg, Options{
			Logger: slog.New(slog.NewTextHandler(logs, nil)),
			Lease:  leader.Options{Client: leaseClient, Identity: name}, // the timings come from cfg.HA
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		r := &haReplica{a: a, url: "http://" + addr, logs: logs, stop: cancel, done: make(chan error, 1)}
		go func() { r.done <- a.Run(ctx, time.Minute) }()
		t.Cleanup(func() {
			cancel()
			select {
			case <-r.done:
			case <-time.After(30 * time.Second):
				t.Errorf("%s did not stop", name)
			}
			if t.Failed() {
				t.Logf("%s's log:\n%s", name, logs.String())
			}
		})
		return r
	}
	wait := func(what string, limit time.Duration, cond func() bool) time.Duration {
		t.Helper()
		begin := time.Now()
		for !cond() {
			if time.Since(begin) > limit {
				t.Fatalf("%s: not within %s", what, limit)
			}
			time.Sleep(50 * time.Millisecond)
		}
		return time.Since(begin)
	}

	kubeA, proxy := kubeconfigVia(t, cluster.Kubeconfig)
	restA, err := clientcmd.BuildConfigFromFlags("", kubeA)
	if err != nil {
		t.Fatal(err)
	}
	leaseA, err := kubernetes.NewForConfig(restA)
	if err != nil {
		t.Fatal(err)
	}
	a := start("replica-a", cluster.Kubeconfig, leaseA)
	wait("a leads", 30*time.Second, a.a.elector.Leading)
	b := start("replica-b", cluster.Kubeconfig, nil)

	// The follower serves the dashboard from the shared store, and is ready.
	wait("b serves", 10*time.Second, func() bool {
		resp, err := http.Get(b.url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if resp, err := http.Get(b.url + "/"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the follower's dashboard: %v %v", resp, err)
	}
	if b.a.elector.Leading() {
		t.Fatal("b leads while a does")
	}

	// A patch set whose tests take 20 s; a runs them.
	st, err := store.OpenPostgres(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	change := g.CreateChange(demo.Project, "master", "Cache evaluator results SLOW", "alice")
	var runID int64
	wait("a tests the patch set", 2*time.Minute, func() bool {
		runs, err := st.ListRuns(t.Context(), store.RunFilter{Change: change})
		if err != nil || len(runs) == 0 {
			return false
		}
		runID = runs[0].ID
		return runs[0].State == run.StateTesting
	})
	time.Sleep(2 * time.Second)

	cut := time.Now()
	proxy.Cut()
	took := wait("b leads", leaseDuration+5*time.Second, b.a.elector.Leading)
	t.Logf("b leads %s after a was cut off (lease duration %s)", took.Round(10*time.Millisecond), leaseDuration)
	select {
	case err := <-a.done:
		if !errors.Is(err, leader.ErrLost) {
			t.Errorf("a's run = %v, want leader.ErrLost", err)
		}
		a.done <- err // for the cleanup
	case <-time.After(10 * time.Second):
		t.Error("a did not stop after losing the lease")
	}

	// b resumes the run and votes, once.
	wait("the review", 3*time.Minute, func() bool { return len(g.Reviews()) > 0 })
	t.Logf("the review %s after the cut", time.Since(cut).Round(time.Second))
	wait("a's tests end and its guard holds its review back", time.Minute, func() bool {
		return strings.Contains(a.logs.String(), "this replica is not the leader")
	})
	time.Sleep(5 * time.Second) // time for a late, second one
	reviews := g.Reviews()
	if len(reviews) != 1 {
		t.Fatalf("%d reviews, want exactly 1: %+v", len(reviews), reviews)
	}
	if rv := reviews[0]; rv.Change != change || rv.PatchSet != 1 || rv.Labels["Verified"] != 1 ||
		!strings.Contains(rv.Message, "PASSED") || !strings.Contains(rv.Message, b.url+"/runs/") {
		t.Errorf("review = %+v, want Verified+1 PASSED on patch set 1 by b (links to %s)", rv, b.url)
	}
	if strings.Contains(a.logs.String(), "review posted") {
		t.Errorf("a posted a review after it lost the lease")
	}
	r, err := st.GetRun(t.Context(), runID)
	if err != nil || r.State != run.StateDone || r.Result != run.ResultPassed || !r.Reported {
		t.Errorf("run %d = %+v, %v; want done, passed, reported", runID, r, err)
	}
	if strings.Contains(b.logs.String(), "not the leader") {
		t.Errorf("b, the leader, held back a review")
	}
	if pend, err := b.a.cluster.PendingReleases(t.Context()); err != nil || len(pend) != 0 {
		t.Errorf("pending releases %+v, %v; want none", pend, err)
	}
	if unfinished, err := st.ListRuns(t.Context(), store.RunFilter{Unfinished: true}); err != nil || len(unfinished) != 0 {
		t.Errorf("unfinished runs %+v, %v; want none", unfinished, err)
	}
}
