package leader_test

// The harness of the process failover tests: real ductbot processes (the
// built binary, `ductbot run --config FILE`) sharing one PostgreSQL
// database (pgtest) and one Lease on the local control plane, with the
// Gerrit test server in the test process.

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ductbot/ductbot/core/gerrit/gerrittest"
	"github.com/ductbot/ductbot/core/k8s"
	"github.com/ductbot/ductbot/core/k8s/localcluster"
	"github.com/ductbot/ductbot/core/leader"
	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/core/store"
	"github.com/ductbot/ductbot/core/store/pgtest"
)

// The processes' Lease timings (ha.lease_duration and so on): short, so
// that a takeover takes seconds, with a renew deadline that a loaded
// machine still meets. The bound on a takeover is the lease duration the
// Lease itself records (spec.leaseDurationSeconds, written by its holder)
// + 5 s: the contract, whatever timings the replicas run with.
const (
	procLease = 5 * time.Second
	procRenew = 3 * time.Second
	procRetry = 500 * time.Millisecond

	project = "wikifunctions/function-orchestrator"
	// The log lines the harness follows (core/leader's and the app's).
	logLeading   = "leading: this replica holds the lease"
	logFollowing = `msg=following`
	logLost      = "lost the lease: stopping all work now"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	fleetN  atomic.Int64
)

// ductbotBinary builds cmd/ductbot once per test binary.
func ductbotBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		var dir string
		if dir, binErr = os.MkdirTemp("", "ductbot-failover-"); binErr != nil {
			return
		}
		leader.AfterTests(func() { os.RemoveAll(dir) })
		binPath = filepath.Join(dir, "ductbot")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", binPath, "github.com/ductbot/ductbot/cmd/ductbot")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/ductbot: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// fleet is one highly available installation: its Gerrit, database, Lease
// and instance name, and the ductbot processes started for it.
type fleet struct {
	t        testing.TB
	bin      string
	g        *gerrittest.Server
	gerrit   string                 // the URL the replicas reach Gerrit at: a proxy to g
	onReview atomic.Pointer[func()] // run by the proxy once g took a review, before the poster hears back
	dsn      string
	st       *store.Store
	kube     *k8s.Client
	cluster  *localcluster.Cluster
	dir      string
	lease    string
	instance string
	chart    string
	env      []string
}

func newFleet(t testing.TB) *fleet {
	t.Helper()
	// The cluster first: under -short it skips the test, before the build.
	f := &fleet{t: t, cluster: localcluster.Shared(t), dsn: pgtest.NewDatabase(t), dir: t.TempDir()}
	f.bin = ductbotBinary(t)
	n := fleetN.Add(1)
	f.lease = fmt.Sprintf("failover-%d-%d", os.Getpid(), n)
	f.instance = fmt.Sprintf("fo%d-%d", os.Getpid()%100000, n)
	var err error
	if f.chart, err = filepath.Abs("../../examples/chart/wikifunctions"); err != nil {
		t.Fatal(err)
	}
	f.g = gerrittest.NewWithOptions(gerrittest.Options{Username: "ductbot", Password: "pw"})
	t.Cleanup(f.g.Close)
	f.g.AddAccount("alice", "Alice Developer", "alice@example.org")
	f.gerrit = f.gerritProxy(t)
	f.env = append(os.Environ(), "DUCTBOT_FAILOVER_GERRIT_PASSWORD=pw", "DUCTBOT_FAILOVER_DSN="+f.dsn)
	if f.kube, err = k8s.New(k8s.Options{Kubeconfig: f.cluster.Kubeconfig, Instance: f.instance}); err != nil {
		t.Fatal(err)
	}
	return f
}

// gerritProxy forwards every request to the Gerrit test server; once g
// took a review (POST .../review), it runs onReview, if set, before it
// answers: what happens to the poster right after its vote was recorded
// and before it learned so.
func (f *fleet) gerritProxy(t testing.TB) string {
	target, err := url.Parse(f.g.URL())
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/review") {
			rp.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		rp.ServeHTTP(rec, r)
		if hook := f.onReview.Load(); hook != nil && rec.Code == http.StatusOK {
			(*hook)()
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// config is a ductbot configuration for this fleet that serves the
// dashboard on listen. Every replica has the same public URL, as behind
// one Service: the run links in the votes do not depend on which replica
// posted them.
const configTemplate = `
gerrit:
  url: %q
  username: ductbot
  password_env: DUCTBOT_FAILOVER_GERRIT_PASSWORD
  poll_interval: 1s
projects:
  - name: %s
    component: orchestrator
    trusted: {accounts: [alice]}
components:
  - {name: wiki, default_ref: "1.45.0", values: {wiki.image.tag: "{{.Ref}}"}}
  - {name: orchestrator, default_ref: "2026-11-20", ref_template: "{{printf \"%%.12s\" .Revision}}", values: {orchestrator.image.tag: "{{.Ref}}"}}
  - {name: evaluator, default_ref: "2026-11-20", values: {evaluator.image.tag: "{{.Ref}}"}}
chart:
  ref: %q
  env_values:
    ingress.host: "{{.Env}}.envs.localhost"
    e2e.simulate.outcome: '{{if contains .Subject "FAIL"}}fail{{else}}pass{{end}}'
    e2e.simulate.duration: '{{if contains .Subject "SLOW"}}20s{{else}}2s{{end}}'
  url_template: "http://{{.Env}}.envs.localhost/"
kubernetes:
  kubeconfig: %q
  instance: %s
  namespace_prefix: %s-
  deploy_timeout: 3m
  test_timeout: 3m
  retries: 1
  retry_backoff: 2s
  max_envs: 10
  default_requests: {cpu: 50m, memory: 64Mi}
web:
  listen: %q
  public_url: http://ductbot.failover.test
state: {driver: postgres, dsn_env: DUCTBOT_FAILOVER_DSN}
ha:
  enabled: true
  lease_name: %s
  lease_namespace: default
  lease_duration: %s
  renew_deadline: %s
  retry_period: %s
chat:
  default_allow: ["*"]
cleanup: {schedule: "@every 1h", ttl_default: 2h}
`

// proc is one ductbot process and what it logged, each line with the
// moment the test read it.
type proc struct {
	name   string
	cmd    *exec.Cmd
	mu     sync.Mutex
	lines  []logLine
	exited chan struct{}
	err    error // of Wait, once exited is closed
}

type logLine struct {
	at   time.Time
	text string
}

// start runs `ductbot run --config` for a replica called name, serving
// its dashboard on a free port. The process gets SIGKILL if the test
// process dies.
func (f *fleet) start(name string) *proc {
	f.t.Helper()
	// A free port each time: a port freed by a killed replica may have
	// been taken by another process's connection since.
	cfgPath := filepath.Join(f.dir, name+".yaml")
	yaml := fmt.Sprintf(configTemplate, f.gerrit, project, f.chart, f.cluster.Kubeconfig, f.instance, f.instance,
		freeAddr(f.t), f.lease, procLease, procRenew, procRetry)
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		f.t.Fatal(err)
	}
	p := &proc{name: name, exited: make(chan struct{})}
	p.cmd = exec.Command(f.bin, "run", "--config", cfgPath, "--grace", "5s")
	p.cmd.Env = f.env
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		f.t.Fatal(err)
	}
	p.cmd.Stdout = nil
	if err := p.cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			now := time.Now()
			p.mu.Lock()
			p.lines = append(p.lines, logLine{now, sc.Text()})
			p.mu.Unlock()
		}
	}()
	go func() {
		<-read
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	f.t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
		_ = p.cmd.Process.Kill()
		<-p.exited
		if f.t.Failed() {
			f.t.Logf("%s's log:\n%s", p.name, p.log())
		}
	})
	return p
}

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// log is everything the process logged.
func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, l := range p.lines {
		b.WriteString(l.text)
		b.WriteByte('\n')
	}
	return b.String()
}

// logged is the moment the first line containing s after since was read,
// zero when there is none.
func (p *proc) logged(s string, since time.Time) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		if !l.at.Before(since) && strings.Contains(l.text, s) {
			return l.at
		}
	}
	return time.Time{}
}

var identityRE = regexp.MustCompile(`identity=(\S+)`)

// identity is the process's name in the Lease, from its first log lines.
func (p *proc) identity() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		if m := identityRE.FindStringSubmatch(l.text); m != nil {
			return m[1]
		}
	}
	return ""
}

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// waitLog waits until the process logs s (after since), and returns when
// the line was read.
func (p *proc) waitLog(t testing.TB, s string, since time.Time, limit time.Duration) time.Time {
	t.Helper()
	var at time.Time
	wait(t, fmt.Sprintf("%s logs %q", p.name, s), limit, func() bool {
		at = p.logged(s, since)
		if at.IsZero() && !p.running() {
			t.Fatalf("%s exited (%v) before it logged %q", p.name, p.err, s)
		}
		return !at.IsZero()
	})
	return at
}

// kill9 kills the process with SIGKILL and waits for it; it returns the
// moment of the kill.
func (p *proc) kill9(t testing.TB) time.Time {
	t.Helper()
	at := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	return at
}

// wait polls cond until it holds or the time is up, and says how long it
// took (the in-package tests' helper).
var wait = leader.WaitFor

// leaderAndFollower starts replica a, waits until it leads, then starts
// replica b and waits until it follows.
func (f *fleet) leaderAndFollower(a, b string) (*proc, *proc) {
	f.t.Helper()
	begin := time.Now()
	pa := f.start(a)
	pa.waitLog(f.t, logLeading, begin, 3*time.Minute)
	if f.st == nil { // a migrated the database: the test may open it now
		st, err := store.OpenPostgres(context.Background(), f.dsn)
		if err != nil {
			f.t.Fatal(err)
		}
		f.t.Cleanup(func() { st.Close() })
		f.st = st
	}
	pb := f.follower(b)
	return pa, pb
}

// follower starts replica name and waits until it follows the leader.
func (f *fleet) follower(name string) *proc {
	f.t.Helper()
	begin := time.Now()
	p := f.start(name)
	p.waitLog(f.t, logFollowing, begin, 3*time.Minute)
	return p
}

// holder is the Lease's holder now.
func (f *fleet) holder(t testing.TB) string {
	l, err := f.cluster.Client.CoordinationV1().Leases("default").Get(context.Background(), f.lease, metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// leaseDuration is the lease duration the Lease records, as its holder
// runs with it.
func (f *fleet) leaseDuration(t testing.TB) time.Duration {
	t.Helper()
	l, err := f.cluster.Client.CoordinationV1().Leases("default").Get(context.Background(), f.lease, metav1.GetOptions{})
	if err != nil || l.Spec.LeaseDurationSeconds == nil {
		t.Fatalf("lease %s: %v", f.lease, err)
	}
	return time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
}

// runOf waits for the run of change's patch set 1 to exist and returns it.
func (f *fleet) runOf(t testing.TB, change int) *run.Run {
	t.Helper()
	var r *run.Run
	wait(t, fmt.Sprintf("a run of change %d", change), 3*time.Minute, func() bool {
		runs, err := f.st.ListRuns(context.Background(), store.RunFilter{Change: change})
		if err != nil || len(runs) == 0 {
			return false
		}
		r = runs[len(runs)-1]
		return true
	})
	return r
}

func (f *fleet) getRun(t testing.TB, id int64) *run.Run {
	t.Helper()
	r, err := f.st.GetRun(context.Background(), id)
	if err != nil {
		t.Fatalf("run %d: %v", id, err)
	}
	return r
}

// waitState waits until run id is in state s (read every 20 ms) and
// returns when it saw it.
func (f *fleet) waitState(t testing.TB, id int64, s run.State, limit time.Duration) {
	t.Helper()
	wait(t, fmt.Sprintf("run %d %s", id, s), limit, func() bool {
		r, err := f.st.GetRun(context.Background(), id)
		return err == nil && r.State == s
	})
}

// checkClean asserts what must hold once every run is done: each patch
// set has exactly one review, no run is unfinished, no Helm release is
// pending, and every namespace of the instance belongs to an environment
// the store has alive (no orphan).
func (f *fleet) checkClean(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	perPS := map[[2]int]int{}
	for _, rv := range f.g.Reviews() {
		perPS[[2]int{rv.Change, rv.PatchSet}]++
	}
	for k, n := range perPS {
		if n != 1 {
			t.Errorf("change %d patch set %d has %d reviews, want exactly 1: %+v", k[0], k[1], n, f.g.Reviews())
		}
	}
	if runs, err := f.st.ListRuns(ctx, store.RunFilter{Unfinished: true}); err != nil || len(runs) != 0 {
		for _, r := range runs {
			t.Errorf("run %d of change %d is unfinished: %s", r.ID, r.Change, r.State)
		}
		if err != nil {
			t.Error(err)
		}
	}
	if pend, err := f.kube.PendingReleases(ctx); err != nil || len(pend) != 0 {
		t.Errorf("pending Helm releases %+v, %v; want none", pend, err)
	}
	envs, err := f.st.ListEnvs(ctx, store.EnvFilter{Alive: true})
	if err != nil {
		t.Fatal(err)
	}
	alive := map[string]bool{}
	for _, e := range envs {
		alive[e.Namespace] = true
	}
	nss, err := f.kube.Namespaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range nss {
		if !alive[ns.Name] {
			t.Errorf("namespace %s is an orphan: no live environment in the store (alive: %v)", ns.Name, alive)
		}
	}
}

// reviewsOf are the recorded reviews of change.
func (f *fleet) reviewsOf(change int) []gerrittest.RecordedReview {
	var out []gerrittest.RecordedReview
	for _, rv := range f.g.Reviews() {
		if rv.Change == change {
			out = append(out, rv)
		}
	}
	return out
}

// takeover waits for next's first leader action after the kill at killed:
// its log line saying it leads. It asserts the contract's bound and that
// the Lease names next, and returns the time from the kill.
func (f *fleet) takeover(t testing.TB, next *proc, killed time.Time) time.Duration {
	t.Helper()
	lease := f.leaseDuration(t)
	if lease != procLease {
		t.Logf("the replicas run with a lease duration of %s, not ha.lease_duration %s", lease, procLease)
	}
	at := next.waitLog(t, logLeading, killed, 2*time.Minute)
	took := at.Sub(killed)
	if took > lease+5*time.Second {
		t.Errorf("%s led %s after the leader's kill, want at most the lease duration + 5 s = %s", next.name, took.Round(time.Millisecond), lease+5*time.Second)
	}
	if h, id := f.holder(t), next.identity(); h != id {
		t.Errorf("the Lease is held by %q, want %s (%q)", h, next.name, id)
	}
	return took
}
