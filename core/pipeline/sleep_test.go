package pipeline_test

import (
	"context"
	"strings"
	"testing"
	"time"

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
