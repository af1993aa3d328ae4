package pipeline_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ductbot/ductbot/core/run"
)

// TestLostLeaderWritesNothing: a replica that loses the leader lease while
// a run's tests go on (paused past the lease, or cut off from the API
// server) finishes the step it was in, but writes nothing of it: the run's
// row stays as the store had it (testing), with no result, no test logs
// and no review, for the new leader, which resumes the run from the store,
// to write. Without the guard its late result would overwrite what the new
// leader wrote meanwhile.
func TestLostLeaderWritesNothing(t *testing.T) {
	h := newHarness(t, "")
	var leading atomic.Bool
	leading.Store(true)
	h.leading = leading.Load
	h.start()

	change := h.upload(0, "alice", "Cache evaluator results SLOW") // 20 s of tests
	var (
		id      int64
		envName string
	)
	h.waitFor(2*time.Minute, "the run testing", func() bool {
		runs := h.runs(change)
		if len(runs) == 1 && runs[0].State == run.StateTesting {
			id, envName = runs[0].ID, runs[0].Env
			return true
		}
		return false
	})
	time.Sleep(time.Second)
	leading.Store(false) // the lease is lost; the tests go on

	// The test pod ends; the engine reads its logs and would write.
	env, err := h.store.GetEnv(context.Background(), envName)
	if err != nil {
		t.Fatal(err)
	}
	h.waitFor(time.Minute, "the test pod to end", func() bool {
		pods, err := h.kube.Clientset().CoreV1().Pods(env.Namespace).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
				return true
			}
		}
		return false
	})
	time.Sleep(5 * time.Second) // time for the writes and the review it holds back

	r, err := h.store.GetRun(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != run.StateTesting || r.Result != run.ResultNone || r.Reported {
		t.Errorf("run %d = %s %q reported %v after the lease was lost; want it left testing, without a result", id, r.State, r.Result, r.Reported)
	}
	if logs, err := h.store.TestLogs(context.Background(), id); err != nil || len(logs) != 0 {
		t.Errorf("test logs %d, %v; want none written after the lease was lost", len(logs), err)
	}
	if rv := h.reviews(change); len(rv) != 0 {
		t.Errorf("reviews %+v; want none after the lease was lost", rv)
	}
}
