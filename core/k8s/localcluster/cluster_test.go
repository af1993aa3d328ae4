package localcluster_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ductbot/ductbot/core/k8s/localcluster"
)

// TestClusterLifecycle starts a real control plane, runs a pod through the
// simulated node (ready, then a test-hook pod that fails with a served log),
// and checks that Stop leaves no process behind.
func TestClusterLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bins, err := localcluster.Install(ctx, localcluster.InstallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := localcluster.Start(ctx, localcluster.Options{Binaries: bins, Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	dir := c.Dir
	pids := c.PIDs()
	if len(pids) != 5 {
		t.Errorf("PIDs() = %v, want 5 processes", pids)
	}
	t.Cleanup(func() { _ = c.Stop() })

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "e2e", Namespace: "default",
			Annotations: map[string]string{
				"helm.sh/hook":                 "test",
				localcluster.OutcomeAnnotation: "fail",
				localcluster.LogAnnotation:     "first line\nsecond line: FAIL",
			},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "e2e", Image: "busybox"}}},
	}
	if _, err := c.Client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	phase := waitPhase(ctx, t, c, "e2e", corev1.PodFailed, corev1.PodSucceeded)
	if phase != corev1.PodFailed {
		t.Fatalf("test pod ended %s, want Failed as its annotation asked", phase)
	}
	logs, err := c.Client.CoreV1().Pods("default").GetLogs("e2e", &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		t.Fatalf("reading the simulated log: %v", err)
	}
	if got := string(logs); !strings.Contains(got, "first line") || !strings.Contains(got, "second line: FAIL") {
		t.Errorf("pod log = %q, want both annotated lines", got)
	}

	if err := c.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists after Stop (kill 0: %v)", pid, err)
		}
	}
	if left := processesMentioning(t, dir); len(left) > 0 {
		t.Errorf("processes still running with the cluster folder in their command line: %v", left)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cluster folder %s still exists after Stop", dir)
	}
}

func waitPhase(ctx context.Context, t *testing.T, c *localcluster.Cluster, name string, want ...corev1.PodPhase) corev1.PodPhase {
	t.Helper()
	for {
		p, err := c.Client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			for _, w := range want {
				if p.Status.Phase == w {
					return w
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("pod %s did not reach %v: last err %v", name, want, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func processesMentioning(t *testing.T, s string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
