package localcluster_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ductbot/ductbot/core/k8s/localcluster"
)

func TestMain(m *testing.M) { os.Exit(localcluster.RunTests(m)) }

// TestSimulatedModes: pods annotated with a simulation mode behave as a
// broken service's do on a real node, as seen through the API server.
func TestSimulatedModes(t *testing.T) {
	c := localcluster.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pods := c.Client.CoreV1().Pods("default")
	create := func(name, mode, log string) {
		t.Helper()
		ann := map[string]string{localcluster.ModeAnnotation: mode}
		if log != "" {
			ann[localcluster.LogAnnotation] = log
		}
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Annotations: ann},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.org/app:" + name}}},
		}
		if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = pods.Delete(context.Background(), name, metav1.DeleteOptions{}) })
	}
	// until polls the pod until cond holds and returns it.
	until := func(name, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
		t.Helper()
		var last *corev1.Pod
		for {
			p, err := pods.Get(ctx, name, metav1.GetOptions{})
			if err == nil {
				last = p
				if cond(p) {
					return p
				}
			}
			select {
			case <-ctx.Done():
				t.Fatalf("pod %s never %s; last status: %+v", name, what, statusOf(last))
			case <-time.After(100 * time.Millisecond):
			}
		}
	}

	create("sim-crash", localcluster.ModeCrash, "app: starting\napp: simulated crash")
	create("sim-image", localcluster.ModeImageMissing, "")
	create("sim-never", localcluster.ModeNeverReady, "")
	create("sim-normal", "", "")

	start := time.Now()
	p := until("sim-crash", "restarted twice in CrashLoopBackOff", func(p *corev1.Pod) bool {
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].RestartCount >= 2 && cs[0].State.Waiting != nil && cs[0].State.Waiting.Reason == "CrashLoopBackOff"
	})
	cs := p.Status.ContainerStatuses[0]
	if p.Status.Phase != corev1.PodRunning || cs.Ready || cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 1 {
		t.Errorf("crash-looping pod: %+v, want Running, not ready, last exit code 1", statusOf(p))
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("two restarts took %s, want seconds", d)
	}
	logs, err := pods.GetLogs("sim-crash", &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil || !strings.Contains(string(logs), "simulated crash") {
		t.Errorf("crash-looping pod's log = %q, %v; want its lines", logs, err)
	}
	prev, err := pods.GetLogs("sim-crash", &corev1.PodLogOptions{Previous: true}).DoRaw(ctx)
	if err != nil || !strings.Contains(string(prev), "simulated crash") {
		t.Errorf("crash-looping pod's previous log = %q, %v; want its lines", prev, err)
	}
	waitEvent(ctx, t, c, "sim-crash", "BackOff")

	seen := map[string]bool{}
	p = until("sim-image", "went ErrImagePull then ImagePullBackOff", func(p *corev1.Pod) bool {
		if cs := p.Status.ContainerStatuses; len(cs) == 1 && cs[0].State.Waiting != nil {
			seen[cs[0].State.Waiting.Reason] = true
		}
		return seen["ErrImagePull"] && seen["ImagePullBackOff"]
	})
	if p.Status.Phase != corev1.PodPending {
		t.Errorf("image-missing pod is %s, want Pending", p.Status.Phase)
	}
	p = until("sim-image", "said which image in ErrImagePull", func(p *corev1.Pod) bool {
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].State.Waiting != nil && cs[0].State.Waiting.Reason == "ErrImagePull"
	})
	if msg := p.Status.ContainerStatuses[0].State.Waiting.Message; !strings.Contains(msg, "example.org/app:sim-image") || !strings.Contains(msg, "not found") {
		t.Errorf("ErrImagePull message = %q, want the image and not found", msg)
	}

	p = until("sim-never", "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	time.Sleep(3 * time.Second)
	if p, _ = pods.Get(ctx, "sim-never", metav1.GetOptions{}); p.Status.ContainerStatuses[0].Started == nil || !*p.Status.ContainerStatuses[0].Started || p.Status.ContainerStatuses[0].Ready || ready(p) {
		t.Errorf("never-ready pod: %+v, want started and not Ready", statusOf(p))
	}
	waitEvent(ctx, t, c, "sim-never", "Unhealthy")

	if p = until("sim-normal", "Ready", ready); p.Status.ContainerStatuses[0].RestartCount != 0 {
		t.Errorf("a pod without a mode restarted: %+v", statusOf(p))
	}
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func waitEvent(ctx context.Context, t *testing.T, c *localcluster.Cluster, pod, reason string) {
	t.Helper()
	for {
		evs, err := c.Client.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod})
		if err == nil {
			for _, e := range evs.Items {
				if e.Reason == reason && e.Type == corev1.EventTypeWarning {
					return
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no %s warning event for pod %s (last: %v)", reason, pod, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func statusOf(p *corev1.Pod) string {
	if p == nil {
		return "(none)"
	}
	return fmt.Sprintf("phase %s, conditions %+v, containers %+v", p.Status.Phase, p.Status.Conditions, p.Status.ContainerStatuses)
}
