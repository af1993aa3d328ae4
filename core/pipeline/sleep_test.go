package pipeline_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ductbot/ductbot/core/metrics"
	"github.com/ductbot/ductbot/core/pipeline"
	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/core/store"
)

// TestSleepAndWake is issue 14's sleep and wake through the chat Service on
// fakes: !sleep scales the namespace down and marks the environment asleep;
// an asleep environment does not count toward max_envs (another deploys),
// but waking it needs room; !wake restores it and answers with the URL;
// max_sleeping caps the sleepers; !retest of an asleep environment wakes it
// before its tests.
func TestSleepAndWake(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 1, "")
	r.cfg.Kubernetes.MaxSleeping = 1
	r.start()
	r.upload(1, 1, alice)
	first := r.runs(store.RunFilter{Change: 1})[0]
	r.waitFor("change 1 done", func() bool { return r.finished(first.ID) })
	env, err := r.store.GetEnv(ctx, first.Env)
	if err != nil {
		t.Fatal(err)
	}

	if _, _, err := r.service.Wake(ctx, "1", "irc:bob"); err == nil || !strings.Contains(err.Error(), "not asleep") {
		t.Errorf("Wake of a ready environment = %v, want 'not asleep'", err)
	}
	name, err := r.service.Sleep(ctx, "1", "irc:bob")
	if err != nil || name != env.Name {
		t.Fatalf("Sleep = %q, %v", name, err)
	}
	r.waitEnv(env.Name, run.EnvAsleep)
	if !r.cluster.isAsleep(env.Namespace) {
		t.Errorf("namespace %s not scaled down after Sleep", env.Namespace)
	}
	if _, err := r.service.Sleep(ctx, "1", "irc:bob"); err == nil || !strings.Contains(err.Error(), "already asleep") {
		t.Errorf("second Sleep = %v, want 'already asleep'", err)
	}

	// max_envs is 1 and change 1 sleeps: change 2 deploys.
	r.upload(2, 1, alice)
	second := r.runs(store.RunFilter{Change: 2})[0]
	r.waitFor("change 2 done past a sleeping environment", func() bool { return r.finished(second.ID) })
	// max_sleeping is 1: change 2 may not sleep too.
	if _, err := r.service.Sleep(ctx, "2", "irc:bob"); err == nil || !strings.Contains(err.Error(), "max_sleeping") {
		t.Errorf("Sleep past max_sleeping = %v, want refused naming kubernetes.max_sleeping", err)
	}
	// Waking change 1 would be a second environment in the cluster.
	if _, _, err := r.service.Wake(ctx, "1", "irc:bob"); err == nil || !strings.Contains(err.Error(), "max_envs") {
		t.Errorf("Wake past max_envs = %v, want refused naming kubernetes.max_envs", err)
	}
	if err := r.engine.DestroyEnv(ctx, second.Env, "test"); err != nil {
		t.Fatal(err)
	}
	name, url, err := r.service.Wake(ctx, "1", "irc:bob")
	if err != nil || name != env.Name || url == "" || url != env.URL {
		t.Fatalf("Wake = %q, %q, %v; want %s and its URL %q", name, url, err, env.Name, env.URL)
	}
	if got, _ := r.store.GetEnv(ctx, env.Name); got.Status != run.EnvReady {
		t.Errorf("status after Wake = %s, want ready", got.Status)
	}
	if r.cluster.isAsleep(env.Namespace) {
		t.Errorf("namespace still scaled down after Wake")
	}

	// !retest of an asleep environment wakes it first.
	if _, err := r.service.Sleep(ctx, "1", "irc:bob"); err != nil {
		t.Fatal(err)
	}
	tk, err := r.service.Retest(ctx, "1", "irc:bob", "")
	if err != nil {
		t.Fatalf("Retest of an asleep environment: %v", err)
	}
	r.waitFor("the retest done", func() bool { return r.finished(tk.RunID) })
	if r.cluster.isAsleep(env.Namespace) {
		t.Errorf("retest ran on a scaled-down namespace")
	}
	if got, _ := r.store.GetEnv(ctx, env.Name); got.Status != run.EnvReady {
		t.Errorf("status after the retest = %s, want ready", got.Status)
	}
}

// TestSleepRepairAfterCrash: a ductbot killed after recording sleeping (or
// waking) but before finishing leaves the environment half way; at the
// next start the engine finishes it, so it is all asleep (or all awake).
func TestSleepRepairAfterCrash(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 0, "")
	r.start()
	r.upload(1, 1, alice)
	r.upload(2, 1, alice)
	a, b := r.runs(store.RunFilter{Change: 1})[0], r.runs(store.RunFilter{Change: 2})[0]
	r.waitFor("both done", func() bool { return r.finished(a.ID) && r.finished(b.ID) })
	r.stop()

	// Crash: change 1 recorded sleeping, change 2 recorded waking (and
	// still scaled down in the cluster).
	envA, _ := r.store.GetEnv(ctx, a.Env)
	envB, _ := r.store.GetEnv(ctx, b.Env)
	if err := r.store.SetEnvStatus(ctx, a.Env, run.EnvSleeping, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := r.store.SetEnvStatus(ctx, b.Env, run.EnvWaking, time.Now()); err != nil {
		t.Fatal(err)
	}
	_ = r.cluster.Sleep(ctx, envB.Namespace)

	r.engine = nil
	r.start()
	r.waitEnv(a.Env, run.EnvAsleep)
	r.waitEnv(b.Env, run.EnvReady)
	if !r.cluster.isAsleep(envA.Namespace) {
		t.Errorf("%s: recorded asleep but not scaled down", a.Env)
	}
	if r.cluster.isAsleep(envB.Namespace) {
		t.Errorf("%s: recorded ready but still scaled down", b.Env)
	}
}

// TestDecideSleep is cleanup.sleep_after's decision, pure.
func TestDecideSleep(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	h := time.Hour
	env := func(status run.EnvStatus, created, updated, active time.Duration) *run.Env {
		e := &run.Env{Name: "e", Status: status, CreatedAt: now.Add(-created), UpdatedAt: now.Add(-updated)}
		if active > 0 {
			e.ActiveAt = now.Add(-active)
		}
		return e
	}
	tests := []struct {
		name            string
		env             *run.Env
		after           time.Duration
		protected, busy bool
		want            bool
	}{
		{"off", env(run.EnvReady, 99*h, 99*h, 99*h), 0, false, false, false},
		{"idle past sleep_after", env(run.EnvReady, 99*h, 5*h, 4*h), 4 * h, false, false, true},
		{"broken and idle", env(run.EnvBroken, 99*h, 5*h, 0), 4 * h, false, false, true},
		{"exactly sleep_after", env(run.EnvReady, 4*h, 4*h, 0), 4 * h, false, false, true},
		{"a recent run (status change)", env(run.EnvReady, 99*h, h, 0), 4 * h, false, false, false},
		{"a recent chat command", env(run.EnvReady, 99*h, 99*h, h), 4 * h, false, false, false},
		{"new", env(run.EnvReady, h, 99*h, 0), 4 * h, false, false, false},
		{"protected", env(run.EnvReady, 99*h, 99*h, 99*h), 4 * h, true, false, false},
		{"a run unfinished", env(run.EnvReady, 99*h, 99*h, 99*h), 4 * h, false, true, false},
		{"asleep already", env(run.EnvAsleep, 99*h, 99*h, 99*h), 4 * h, false, false, false},
		{"deploying", env(run.EnvDeploying, 99*h, 99*h, 99*h), 4 * h, false, false, false},
		{"waiting", env(run.EnvWaiting, 99*h, 99*h, 99*h), 4 * h, false, false, false},
		{"tearing down", env(run.EnvTearingDown, 99*h, 99*h, 99*h), 4 * h, false, false, false},
	}
	for _, tt := range tests {
		got, why := pipeline.DecideSleep(now, tt.env, tt.after, tt.protected, tt.busy)
		if got != tt.want || got != (why != "") {
			t.Errorf("%s: DecideSleep = %v %q, want %v (and a reason exactly when true)", tt.name, got, why, tt.want)
		}
	}
}

// TestSleepAfterPutsIdleEnvironmentsToSleep: with cleanup.sleep_after set,
// an environment idle that long is put to sleep; a protected one and a
// recently used one are not; kubernetes.max_sleeping caps them.
func TestSleepAfterPutsIdleEnvironmentsToSleep(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 0, "cleanup: {sleep_after: 2h}")
	clock := time.Now().UTC()
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	r.metrics = metrics.New()
	r.engine = pipeline.New(pipeline.Options{
		Config: r.cfg, Store: r.store, Cluster: r.cluster, Gerrit: r.gerrit, Self: &self, Metrics: r.metrics,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: now,
	})
	r.service = pipeline.NewService(r.engine, nil)
	r.start()
	var names []string
	for n := 1; n <= 4; n++ {
		r.upload(n, 1, alice)
		x := r.runs(store.RunFilter{Change: n})[0]
		r.waitFor("run done", func() bool { return r.finished(x.ID) })
		names = append(names, x.Env)
	}
	if err := r.service.Keep(ctx, "2", true, "irc:bob"); err != nil {
		t.Fatal(err)
	}
	if slept, err := r.engine.SleepIdle(ctx); err != nil || len(slept) != 0 {
		t.Fatalf("SleepIdle before sleep_after = %v, %v; want none", slept, err)
	}
	mu.Lock()
	clock = clock.Add(3 * time.Hour)
	mu.Unlock()
	if err := r.store.TouchEnv(ctx, names[2], now()); err != nil { // change 3: a chat command just now
		t.Fatal(err)
	}
	r.cfg.Kubernetes.MaxSleeping = 1
	slept, err := r.engine.SleepIdle(ctx)
	if err != nil || len(slept) != 1 || slept[0] != names[0] {
		t.Fatalf("SleepIdle with max_sleeping 1 = %v, %v; want [%s]", slept, err, names[0])
	}
	r.cfg.Kubernetes.MaxSleeping = 0
	slept, err = r.engine.SleepIdle(ctx)
	if err != nil || len(slept) != 1 || slept[0] != names[3] {
		t.Fatalf("SleepIdle = %v, %v; want [%s] (2 protected, 3 active, 1 asleep already)", slept, err, names[3])
	}
	for i, want := range []run.EnvStatus{run.EnvAsleep, run.EnvReady, run.EnvReady, run.EnvAsleep} {
		env, _ := r.store.GetEnv(ctx, names[i])
		if env.Status != want {
			t.Errorf("%s is %s, want %s", names[i], env.Status, want)
		}
		if got := r.cluster.isAsleep(env.Namespace); got != (want == run.EnvAsleep) {
			t.Errorf("%s: namespace scaled down = %v, want %v", names[i], got, want == run.EnvAsleep)
		}
	}
}
