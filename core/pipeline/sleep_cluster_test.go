package pipeline_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ductbot/ductbot/core/k8s"
	"github.com/ductbot/ductbot/core/run"
)

// TestSleepWakeOnCluster is issue 14 on the local cluster through the
// engine: cleanup.sleep_after puts an idle environment to sleep (every
// Deployment at 0 with its replicas in the annotation, the release kept);
// !retest wakes it before testing (replicas back, annotations gone); !sleep
// and !wake round-trip and wake answers with the URL once ready.
func TestSleepWakeOnCluster(t *testing.T) {
	h := newHarness(t, "cleanup: {sleep_after: 1h}")
	var mu sync.Mutex
	clock := time.Now().UTC()
	h.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	h.start()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	change := h.upload(0, "alice", "Sleepy change")
	h.waitFor(2*time.Minute, "the first run done", func() bool {
		rs := h.runs(change)
		return len(rs) == 1 && rs[0].State == run.StateDone
	})
	name := h.runs(change)[0].Env
	env, err := h.store.GetEnv(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	deps := h.cluster.Client.AppsV1().Deployments(env.Namespace)
	check := func(stage string, asleep bool) {
		t.Helper()
		list, err := deps.List(ctx, metav1.ListOptions{})
		if err != nil || len(list.Items) == 0 {
			t.Fatalf("%s: deployments %v, %v", stage, list, err)
		}
		for _, d := range list.Items {
			a, has := d.Annotations[k8s.AnnotationReplicas]
			switch {
			case asleep && (*d.Spec.Replicas != 0 || a != "1"):
				t.Errorf("%s: %s replicas %d, annotation %q; want 0 and \"1\"", stage, d.Name, *d.Spec.Replicas, a)
			case !asleep && (*d.Spec.Replicas != 1 || has || d.Status.ReadyReplicas != 1):
				t.Errorf("%s: %s replicas %d (ready %d), annotation %q present %v; want 1 ready and none", stage, d.Name, *d.Spec.Replicas, d.Status.ReadyReplicas, a, has)
			}
		}
	}

	if slept, err := h.engine.SleepIdle(ctx); err != nil || len(slept) != 0 {
		t.Fatalf("SleepIdle right after the run = %v, %v; want none", slept, err)
	}
	mu.Lock()
	clock = clock.Add(2 * time.Hour)
	mu.Unlock()
	if slept, err := h.engine.SleepIdle(ctx); err != nil || len(slept) != 1 || slept[0] != name {
		t.Fatalf("SleepIdle after sleep_after = %v, %v; want [%s]", slept, err, name)
	}
	check("after sleep_after", true)
	if got, _ := h.store.GetEnv(ctx, name); got.Status != run.EnvAsleep {
		t.Errorf("status %s, want asleep", got.Status)
	}
	if info, err := h.kube.Status(ctx, env.Namespace, env.Release); err != nil || info.Revision != 1 {
		t.Errorf("release while asleep = %+v, %v; want it kept at revision 1", info, err)
	}

	tk, err := h.service.Retest(ctx, strconv.Itoa(change), "irc:bob", "")
	if err != nil {
		t.Fatalf("Retest of the asleep environment: %v", err)
	}
	h.waitFor(2*time.Minute, "the retest done", func() bool {
		r, err := h.store.GetRun(ctx, tk.RunID)
		return err == nil && r.State == run.StateDone
	})
	if r, _ := h.store.GetRun(ctx, tk.RunID); r.Result != run.ResultPassed {
		t.Errorf("retest after waking: %s, want passed", r.Result)
	}
	check("after the retest", false)

	if _, err := h.service.Sleep(ctx, name, "irc:bob"); err != nil {
		t.Fatal(err)
	}
	check("after !sleep", true)
	_, url, err := h.service.Wake(ctx, name, "irc:bob")
	if err != nil || url != env.URL {
		t.Fatalf("Wake = %q, %v; want the URL %q", url, err, env.URL)
	}
	check("after !wake", false)
	if got, _ := h.store.GetEnv(ctx, name); got.Status != run.EnvReady {
		t.Errorf("status after !wake %s, want ready", got.Status)
	}
}
