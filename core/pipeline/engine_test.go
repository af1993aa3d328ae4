package pipeline_test

// Fast tests of the engine's wiring: fakes of the pipeline's own Cluster and
// Gerrit interfaces, a real SQLite store, no Kubernetes. They run under
// -short in seconds; the local-cluster tests in loop_test.go prove the same
// loop on real parts.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ductbot/ductbot/config"
	"github.com/ductbot/ductbot/core/gerrit"
	"github.com/ductbot/ductbot/core/k8s"
	"github.com/ductbot/ductbot/core/metrics"
	"github.com/ductbot/ductbot/core/pipeline"
	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/core/store"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeCluster deploys and tests nothing; each release's deploys and tests
// can be held until released, and it records whether two operations ever
// ran on one release at once.
type fakeCluster struct {
	mu       sync.Mutex
	hold     map[string]chan struct{} // release -> closed to let its deploys finish
	busy     map[string]bool
	overlap  bool
	deployed []string        // releases, in order
	fail     bool            // tests fail
	asleep   map[string]bool // namespace -> scaled to 0 (Sleep and Wake)
	sleeps   int
	wakes    int
}

func newFakeCluster() *fakeCluster {
	return &fakeCluster{hold: map[string]chan struct{}{}, busy: map[string]bool{}}
}

func (c *fakeCluster) holdDeploys(release string) func() {
	ch := make(chan struct{})
	c.mu.Lock()
	c.hold[release] = ch
	c.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

func (c *fakeCluster) enter(name string) func() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.busy[name] {
		c.overlap = true
	}
	c.busy[name] = true
	return func() { c.mu.Lock(); delete(c.busy, name); c.mu.Unlock() }
}

func (c *fakeCluster) Deploy(ctx context.Context, rel k8s.Release) error {
	defer c.enter(rel.Name)()
	c.mu.Lock()
	c.deployed = append(c.deployed, rel.Name)
	ch := c.hold[rel.Name]
	c.mu.Unlock()
	if ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (c *fakeCluster) Test(ctx context.Context, ns, name string, _ time.Duration) (*k8s.TestResult, error) {
	defer c.enter(name)()
	c.mu.Lock()
	fail := c.fail
	c.mu.Unlock()
	if fail {
		return &k8s.TestResult{Passed: false, Detail: "e2e failed", Pods: []k8s.PodLog{{Pod: "e2e", Phase: "Failed", Log: strings.Repeat("x", 50000)}}}, nil
	}
	return &k8s.TestResult{Passed: true, Pods: []k8s.PodLog{{Pod: "e2e", Phase: "Succeeded", Log: "4 passing"}}}, nil
}

func (c *fakeCluster) Teardown(ctx context.Context, ns, name string, _ time.Duration) error {
	defer c.enter(name)()
	return nil
}

func (c *fakeCluster) Sleep(ctx context.Context, ns string) error {
	defer c.enter("ns:" + ns)()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.asleep == nil {
		c.asleep = map[string]bool{}
	}
	c.asleep[ns] = true
	c.sleeps++
	return nil
}

func (c *fakeCluster) Wake(ctx context.Context, ns string, _ time.Duration) error {
	defer c.enter("ns:" + ns)()
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.asleep, ns)
	c.wakes++
	return nil
}

func (c *fakeCluster) isAsleep(ns string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.asleep[ns]
}

// fakeGerrit holds changes in memory and records reviews.
type fakeGerrit struct {
	mu      sync.Mutex
	changes map[int]*gerrit.Change
	reviews []review
	groups  map[string][]gerrit.Account
}

type review struct {
	change   int
	revision string
	gerrit.Review
}

func (g *fakeGerrit) put(ch *gerrit.Change) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := *ch
	g.changes[ch.Number] = &c
}

func (g *fakeGerrit) Change(_ context.Context, _ string, n int) (*gerrit.Change, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ch, ok := g.changes[n]
	if !ok {
		return nil, gerrit.ErrNotFound
	}
	c := *ch
	return &c, nil
}

func (g *fakeGerrit) Changes(_ context.Context, ns []int) (map[int]*gerrit.Change, error) {
	out := map[int]*gerrit.Change{}
	for _, n := range ns {
		if ch, err := g.Change(context.Background(), "", n); err == nil {
			out[n] = ch
		}
	}
	return out, nil
}

// Query answers queries by number and by Change-Id, within the scopes'
// projects when there are scopes.
func (g *fakeGerrit) Query(_ context.Context, q gerrit.Query) ([]gerrit.Change, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []gerrit.Change
	for _, ch := range g.changes {
		inScope := len(q.Scopes) == 0 || slices.ContainsFunc(q.Scopes, func(p gerrit.ProjectFilter) bool { return p.Name == ch.Project })
		if inScope && (slices.Contains(q.Numbers, ch.Number) || slices.Contains(q.ChangeIDs, ch.ChangeID)) {
			out = append(out, *ch)
		}
	}
	return out, nil
}

func (g *fakeGerrit) PostReview(_ context.Context, _ string, n int, rev string, r gerrit.Review) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.reviews = append(g.reviews, review{n, rev, r})
	if ch, ok := g.changes[n]; ok {
		ch.Messages = append(ch.Messages, gerrit.Message{Author: self, Text: r.Message, Tag: r.Tag, Date: time.Now().UTC(), PatchSet: ch.PatchSet})
	}
	return nil
}

func (g *fakeGerrit) GroupMembers(_ context.Context, group string) ([]gerrit.Account, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ms, ok := g.groups[group]
	if !ok {
		return nil, gerrit.ErrNotFound
	}
	return ms, nil
}

func (g *fakeGerrit) votes() []review {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []review
	for _, r := range g.reviews {
		if len(r.Labels) > 0 {
			out = append(out, r)
		}
	}
	return out
}

var (
	self    = gerrit.Account{ID: 1, Username: "ductbot"}
	alice   = gerrit.Account{ID: 10, Name: "Alice", Username: "alice", Email: "alice@example.org"}
	mallory = gerrit.Account{ID: 66, Name: "Mallory", Username: "mallory", Email: "mallory@example.org"}
)

// rig is an engine on fakes and a real SQLite file.
type rig struct {
	t       *testing.T
	cfg     *config.Config
	store   pipeline.Store
	db      *store.Store
	cluster *fakeCluster
	gerrit  *fakeGerrit
	engine  *pipeline.Engine
	service *pipeline.Service
	metrics *metrics.Metrics
	cancel  context.CancelFunc
	done    chan struct{}
}

func newRig(t *testing.T, maxEnvs int, extraYAML string) *rig {
	t.Helper()
	t.Setenv("DUCTBOT_FAKE_GERRIT_PASSWORD", "unused")
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
gerrit: {url: "http://gerrit.invalid", username: ductbot, password_env: DUCTBOT_FAKE_GERRIT_PASSWORD, poll_interval: 1s, lookback: 1h}
projects:
  - name: wiki
    component: wiki
    trusted: {accounts: [alice]}
  - name: svc/orchestrator
    component: orchestrator
    trusted: {accounts: [alice]}
components:
  - {name: wiki, default_ref: wiki-stable, values: {wiki.image.tag: "{{.Ref}}"}}
  - {name: orchestrator, default_ref: orch-stable, values: {orchestrator.image.tag: "{{.Ref}}"}}
chart: {ref: ../../examples/chart/wikifunctions}
kubernetes: {namespace_prefix: t-, retries: 0, retry_backoff: 10ms, max_envs: %d}
web: {public_url: "http://ductbot.test"}
%s`, maxEnvs, extraYAML)))
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxLogBytes(cfg.Report.MaxLogBytes) // as cmd/ductbot does
	return &rig{t: t, cfg: cfg, store: db, db: db, cluster: newFakeCluster(), gerrit: &fakeGerrit{changes: map[int]*gerrit.Change{}, groups: map[string][]gerrit.Account{}}}
}

// build makes the engine without running it.
func (r *rig) build() {
	r.metrics = metrics.New()
	r.engine = pipeline.New(pipeline.Options{
		Config: r.cfg, Store: r.store, Cluster: r.cluster, Gerrit: r.gerrit, Self: &self, Metrics: r.metrics,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	r.service = pipeline.NewService(r.engine, nil)
}

func (r *rig) start() {
	if r.engine == nil {
		r.build()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go func() { defer close(r.done); _ = r.engine.Run(ctx, 5*time.Second) }()
	r.t.Cleanup(r.stop)
}

func (r *rig) stop() {
	if r.cancel != nil {
		r.cancel()
		<-r.done
		r.cancel = nil
	}
}

// upload makes patch set ps of change n current, uploaded by up, and hands
// the change to the engine as the Gerrit watcher would.
func (r *rig) upload(n, ps int, up gerrit.Account, msgs ...gerrit.Message) *gerrit.Change {
	r.t.Helper()
	ch := &gerrit.Change{
		Project: "wiki", Branch: "main", Number: n, Status: gerrit.StatusNew, Subject: "change " + fmt.Sprint(n),
		PatchSet: ps, CurrentRevision: fmt.Sprintf("rev%d-%d", n, ps), Uploader: up, Owner: up, Messages: msgs,
	}
	r.gerrit.put(ch)
	if err := r.engine.HandleChange(context.Background(), *ch); err != nil {
		r.t.Fatal(err)
	}
	return ch
}

func (r *rig) waitFor(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitEnv waits until the environment's record has status.
func (r *rig) waitEnv(name string, status run.EnvStatus) {
	r.t.Helper()
	r.waitFor(name+" "+string(status), func() bool {
		env, err := r.store.GetEnv(context.Background(), name)
		return err == nil && env.Status == status
	})
}

func (r *rig) runs(f store.RunFilter) []*run.Run {
	r.t.Helper()
	runs, err := r.store.ListRuns(context.Background(), f)
	if err != nil {
		r.t.Fatal(err)
	}
	return runs
}

func (r *rig) finished(id int64) bool {
	got, err := r.store.GetRun(context.Background(), id)
	return err == nil && got.State == run.StateDone
}

func TestUploadDeploysTestsAndVotesOnce(t *testing.T) {
	r := newRig(t, 0, "")
	r.start()
	ch := r.upload(1, 1, alice)
	runs := r.runs(store.RunFilter{Change: 1})
	if len(runs) != 1 {
		t.Fatalf("runs = %d, want 1", len(runs))
	}
	r.waitFor("the run done", func() bool { return r.finished(runs[0].ID) })
	// The watcher delivers the change again (its overlap window): nothing new.
	if err := r.engine.HandleChange(context.Background(), *ch); err != nil {
		t.Fatal(err)
	}
	if n := len(r.runs(store.RunFilter{Change: 1})); n != 1 {
		t.Errorf("after re-delivery runs = %d, want 1", n)
	}
	votes := r.gerrit.votes()
	if len(votes) != 1 || votes[0].revision != "rev1-1" || votes[0].Labels["Verified"] != 1 {
		t.Fatalf("votes = %+v, want one +1 on rev1-1", votes)
	}
	if strings.Contains(votes[0].Message, "@") {
		t.Errorf("the vote message shows an e-mail address: %q", votes[0].Message)
	}
	env, err := r.store.GetEnv(context.Background(), "change-1")
	if err != nil || env.Status != run.EnvReady || env.Revision != "rev1-1" || strings.Contains(env.Owner, "@") {
		t.Errorf("env = %+v, err %v", env, err)
	}
}

// Defect 1: a trusted recheck on patch set 1 must not deploy an untrusted
// patch set 2 uploaded right after it.
func TestRecheckDoesNotDeployALaterUntrustedPatchSet(t *testing.T) {
	r := newRig(t, 0, "")
	r.start()
	r.upload(2, 1, mallory) // first sight: a notice, no run
	rc := gerrit.Message{Author: alice, PatchSet: 1, Date: time.Now().UTC().Add(time.Second), Text: "Patch Set 1:\n\nrecheck"}
	r.upload(2, 2, mallory, rc)
	for _, run := range r.runs(store.RunFilter{Change: 2}) {
		t.Errorf("run %d of patch set %d (trigger %s) started; want none", run.ID, run.PatchSet, run.Trigger)
	}
	// A trusted recheck on patch set 2 itself deploys it.
	rc2 := gerrit.Message{Author: alice, PatchSet: 2, Date: time.Now().UTC().Add(2 * time.Second), Text: "recheck"}
	r.upload(2, 2, mallory, rc, rc2)
	runs := r.runs(store.RunFilter{Change: 2})
	if len(runs) != 1 || runs[0].PatchSet != 2 || runs[0].Trigger != run.TriggerRecheck {
		t.Fatalf("runs = %+v, want one recheck run of patch set 2", runs)
	}
}

// Defect 2: !env of an untrusted change deploys only when the asker may
// vouch; so does a change:N ref.
func TestEnvRequestGoesThroughTheGate(t *testing.T) {
	r := newRig(t, 0, "")
	r.start()
	r.upload(3, 1, mallory)
	r.upload(4, 1, alice)
	ctx := context.Background()
	_, err := r.service.RequestEnv(ctx, pipeline.EnvRequest{Change: 3, By: "irc:bob"})
	if err == nil || !strings.Contains(err.Error(), "change 3") || !strings.Contains(err.Error(), "vouch") {
		t.Fatalf("untrusted !env: err = %v, want a refusal naming change 3 and how to vouch", err)
	}
	_, err = r.service.RequestEnv(ctx, pipeline.EnvRequest{Change: 4, By: "irc:bob", Overrides: run.Matrix{"wiki": "change:3"}})
	if err == nil || !strings.Contains(err.Error(), "change 3") {
		t.Fatalf("change:3 ref: err = %v, want a refusal naming change 3", err)
	}
	if n := len(r.runs(store.RunFilter{Change: 3})) + len(r.runs(store.RunFilter{Change: 4, PatchSet: 1, Env: "x"})); n != 0 {
		t.Fatalf("refused requests queued %d runs", n)
	}
	tk, err := r.service.RequestEnv(ctx, pipeline.EnvRequest{Change: 3, By: "irc:maint", Vouched: true})
	if err != nil {
		t.Fatalf("vouched !env: %v", err)
	}
	r.waitFor("the vouched run done", func() bool { return r.finished(tk.RunID) })
}

// Defect 4: !retest tests the deployed patch set and votes only if it is
// still current.
func TestRetestTestsTheDeployedPatchSet(t *testing.T) {
	r := newRig(t, 0, "")
	r.start()
	r.upload(5, 1, alice)
	first := r.runs(store.RunFilter{Change: 5})[0]
	r.waitFor("patch set 1 done", func() bool { return r.finished(first.ID) })
	// Patch set 2 from an untrusted uploader: not deployed.
	r.upload(5, 2, mallory)
	tk, err := r.service.Retest(context.Background(), "5", "irc:bob", "")
	if err != nil {
		t.Fatal(err)
	}
	r.waitFor("the retest done", func() bool { return r.finished(tk.RunID) })
	got, _ := r.store.GetRun(context.Background(), tk.RunID)
	if got.PatchSet != 1 || got.Revision != "rev5-1" {
		t.Errorf("retest ran patch set %d (%s), want the deployed 1 (rev5-1)", got.PatchSet, got.Revision)
	}
	for _, v := range r.gerrit.votes() {
		if v.revision == "rev5-2" {
			t.Errorf("voted %v on rev5-2, which was never deployed", v.Labels)
		}
	}
	if n := len(r.gerrit.votes()); n != 1 {
		t.Errorf("votes = %d, want 1 (the retest of an outdated patch set is not voted)", n)
	}
}

// Defect 5: kubernetes.max_envs holds for uploads; the excess waits in the
// queue with a position.
func TestMaxEnvsHoldsForUploads(t *testing.T) {
	r := newRig(t, 1, "")
	release := r.cluster.holdDeploys("change-6")
	defer release()
	r.start()
	r.upload(6, 1, alice)
	r.upload(7, 1, alice)
	second := r.runs(store.RunFilter{Change: 7})[0]
	r.waitEnv("change-6", run.EnvDeploying)
	time.Sleep(200 * time.Millisecond) // a dispatch round that must not start change 7
	if got, _ := r.store.GetRun(context.Background(), second.ID); got.State != run.StateQueued {
		t.Fatalf("change 7's run is %s past max_envs=1, want queued", got.State)
	}
	if pos := r.engine.Position(second.ID); pos != 1 {
		t.Errorf("change 7's queue position = %d, want 1", pos)
	}
	release()
	if err := r.engine.DestroyEnv(context.Background(), "change-6", "test"); err != nil {
		t.Fatal(err)
	}
	r.waitFor("change 7 done once change 6 is gone", func() bool { return r.finished(second.ID) })
}

// Defect 7: !keep and !extend during a run survive the run's writes.
func TestKeepAndExtendDuringARunSurvive(t *testing.T) {
	r := newRig(t, 0, "")
	release := r.cluster.holdDeploys("change-8")
	r.start()
	r.upload(8, 1, alice)
	r.waitEnv("change-8", run.EnvDeploying)
	ctx := context.Background()
	if err := r.service.Keep(ctx, "change-8", true, "irc:bob"); err != nil {
		t.Fatal(err)
	}
	exp, err := r.service.Extend(ctx, "change-8", 2*time.Hour, "irc:bob")
	if err != nil {
		t.Fatal(err)
	}
	release()
	id := r.runs(store.RunFilter{Change: 8})[0].ID
	r.waitFor("the run done", func() bool { return r.finished(id) })
	env, err := r.store.GetEnv(ctx, "change-8")
	if err != nil {
		t.Fatal(err)
	}
	if !env.Protected || !env.ExpiresAt.Equal(exp) {
		t.Errorf("after the run: protected=%v expires=%v, want true and %v", env.Protected, env.ExpiresAt, exp)
	}
}

// A superseding patch set never runs two operations on one release.
func TestSupersedeNeverOverlapsOperations(t *testing.T) {
	r := newRig(t, 0, "")
	release := r.cluster.holdDeploys("change-9")
	r.start()
	r.upload(9, 1, alice)
	r.waitEnv("change-9", run.EnvDeploying)
	r.upload(9, 2, alice)
	release()
	runs := r.runs(store.RunFilter{Change: 9})
	r.waitFor("both runs done", func() bool { return r.finished(runs[0].ID) && r.finished(runs[1].ID) })
	byPS := map[int]run.Result{}
	for _, run := range r.runs(store.RunFilter{Change: 9}) {
		byPS[run.PatchSet] = run.Result
	}
	if byPS[1] != run.ResultSuperseded || byPS[2] != run.ResultPassed {
		t.Errorf("results = %v, want 1 superseded and 2 passed", byPS)
	}
	r.cluster.mu.Lock()
	defer r.cluster.mu.Unlock()
	if r.cluster.overlap {
		t.Errorf("two operations ran on one release at once")
	}
	if votes := r.gerrit.votes(); len(votes) != 1 || votes[0].revision != "rev9-2" {
		t.Errorf("votes = %+v, want one, on rev9-2", votes)
	}
}

// Test logs are bounded per run (report.max_log_bytes), head and tail kept.
func TestTestLogsAreBounded(t *testing.T) {
	r := newRig(t, 0, "report: {max_log_bytes: 8192}\n")
	r.cluster.fail = true
	r.start()
	r.upload(10, 1, alice)
	id := r.runs(store.RunFilter{Change: 10})[0].ID
	r.waitFor("the run done", func() bool { return r.finished(id) })
	logs, err := r.db.TestLogs(context.Background(), id)
	if err != nil || len(logs) != 1 {
		t.Fatalf("logs = %d, err %v", len(logs), err)
	}
	if n := len(logs[0].Log); n > 8192 || !strings.Contains(logs[0].Log, "cut by ductbot") {
		t.Errorf("stored log is %d bytes (limit 8192), cut marked: %v", n, strings.Contains(logs[0].Log, "cut by ductbot"))
	}
}

// failingStore fails environment reads with an error that is not "absent".
type failingStore struct {
	pipeline.Store
}

var errDisk = errors.New("disk I/O error")

func (failingStore) GetEnv(context.Context, string) (*run.Env, error) { return nil, errDisk }

// Defect 13: a store error is not taken for absence.
func TestStoreErrorsAreNotAbsence(t *testing.T) {
	r := newRig(t, 0, "")
	r.store = failingStore{r.db}
	r.start()
	ctx := context.Background()
	if err := r.service.Keep(ctx, "change-11", true, "irc:bob"); !errors.Is(err, errDisk) {
		t.Errorf("Keep: err = %v, want the store's error", err)
	}
	if _, err := r.service.Extend(ctx, "change-11", time.Hour, "irc:bob"); !errors.Is(err, errDisk) {
		t.Errorf("Extend: err = %v, want the store's error", err)
	}
	r.gerrit.put(&gerrit.Change{Project: "wiki", Branch: "main", Number: 11, Status: gerrit.StatusNew, PatchSet: 1, CurrentRevision: "r", Uploader: alice})
	if _, err := r.service.RequestEnv(ctx, pipeline.EnvRequest{Change: 11, By: "irc:bob", Overrides: run.Matrix{"orchestrator": "abc"}}); !errors.Is(err, errDisk) {
		t.Errorf("RequestEnv: err = %v, want the store's error", err)
	}
	if n := len(r.runs(store.RunFilter{Change: 11})); n != 0 {
		t.Errorf("%d runs queued on a failing store, want 0", n)
	}
}

// A change made private goes at once: its runs are canceled and its
// environment torn down, so it is no longer shown anywhere.
func TestPrivateChangeIsTornDown(t *testing.T) {
	r := newRig(t, 0, "")
	r.start()
	ch := r.upload(12, 1, alice)
	id := r.runs(store.RunFilter{Change: 12})[0].ID
	r.waitFor("the run done", func() bool { return r.finished(id) })
	ch.Private = true
	r.gerrit.put(ch)
	if err := r.engine.HandleChange(context.Background(), *ch); err != nil {
		t.Fatal(err)
	}
	envs, err := r.store.ListEnvs(context.Background(), store.EnvFilter{Change: 12, Alive: true})
	if err != nil || len(envs) != 0 {
		t.Errorf("live environments of the private change: %d (err %v), want 0", len(envs), err)
	}
}

// Runs queued while the engine starts (the watcher and chat start beside
// it) are queued once, not again by the engine's resume.
func TestRunsQueuedAtStartAreQueuedOnce(t *testing.T) {
	r := newRig(t, 1, "")
	release := r.cluster.holdDeploys("change-13")
	defer release()
	r.build()
	r.upload(13, 1, alice)
	r.upload(14, 1, alice)
	r.start()
	r.waitEnv("change-13", run.EnvDeploying)
	time.Sleep(100 * time.Millisecond) // a dispatch round
	if got := testutil.ToFloat64(r.metrics.QueueDepth); got != 1 {
		t.Errorf("queue depth = %v with one run deploying and one waiting, want 1", got)
	}
}
