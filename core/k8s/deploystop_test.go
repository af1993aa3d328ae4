package k8s_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/release"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ductbot/ductbot/core/k8s"
	"github.com/ductbot/ductbot/core/k8s/localcluster"
)

// simulate returns values whose component runs in the given simulation mode.
func simulate(tag, component, mode string) map[string]any {
	v := values(tag, "pass", "e2e: ok")
	c, _ := v[component].(map[string]any)
	if c == nil {
		c = map[string]any{}
		v[component] = c
	}
	c["simulate"] = map[string]any{"mode": mode}
	return v
}

// releaseRecord is one revision's Helm storage Secret, as stored.
type releaseRecord struct {
	Revision        string
	Status          string
	ResourceVersion string
}

// releaseRecords reads a release's history straight from Helm's storage
// Secrets (owner=helm, name=<release>), ordered by revision.
func releaseRecords(ctx context.Context, t testing.TB, c *localcluster.Cluster, ns, name string) []releaseRecord {
	t.Helper()
	list, err := c.Client.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm,name=" + name})
	if err != nil {
		t.Fatal(err)
	}
	var out []releaseRecord
	for _, s := range list.Items {
		out = append(out, releaseRecord{Revision: s.Labels["version"], Status: s.Labels["status"], ResourceVersion: s.ResourceVersion})
	}
	sort.Slice(out, func(i, j int) bool {
		return len(out[i].Revision) < len(out[j].Revision) || out[i].Revision < out[j].Revision
	})
	return out
}

// waitWaiting returns once Helm is waiting for the release's resources: its
// last revision is pending and the component's pod runs (not Ready).
func waitWaiting(ctx context.Context, t testing.TB, kc *k8s.Client, c *localcluster.Cluster, ns, name, component string) {
	t.Helper()
	for {
		info, err := kc.Status(ctx, ns, name)
		if err == nil && info.Status.IsPending() {
			pods, _ := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=" + component})
			for _, p := range pods.Items {
				if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
					return
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("release %s/%s never got to waiting for a running %s (last status %+v, %v)", ns, name, component, info, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// markReady plays the kubelet: the component's pods become Ready, as if
// their readiness probe had started to pass.
func markReady(ctx context.Context, t testing.TB, c *localcluster.Cluster, ns, component string) {
	t.Helper()
	pods, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=" + component})
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		p.Status.Conditions = []corev1.PodCondition{
			{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		}
		for i := range p.Status.ContainerStatuses {
			p.Status.ContainerStatuses[i].Ready = true
		}
		if _, err := c.Client.CoreV1().Pods(ns).UpdateStatus(ctx, &p, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("marking pod %s ready: %v", p.Name, err)
		}
	}
}

// cancelMidWait runs Deploy of rel, cancels it while Helm waits for the
// never-ready orchestrator, and returns Deploy's error and how long Deploy
// took to return after the cancel.
func cancelMidWait(ctx context.Context, t *testing.T, kc *k8s.Client, c *localcluster.Cluster, rel k8s.Release) (error, time.Duration) {
	t.Helper()
	dctx, cancelDeploy := context.WithCancel(ctx)
	defer cancelDeploy()
	done := make(chan error, 1)
	go func() { done <- kc.Deploy(dctx, rel) }()
	waitWaiting(ctx, t, kc, c, rel.Namespace, rel.Name, "orchestrator")
	time.Sleep(time.Second)
	cancelled := time.Now()
	cancelDeploy()
	select {
	case err := <-done:
		return err, time.Since(cancelled)
	case <-time.After(time.Minute):
		t.Fatal("Deploy did not return within a minute of its cancel")
		return nil, 0
	}
}

// checkNoLaterWrite asserts that after a cancelled Deploy returned, the
// release's last revision is no longer pending (Helm's failure path ran
// before Deploy returned) and that nothing rewrites any revision later,
// even when the pods Helm was waiting for become ready meanwhile (Helm's
// own goroutine, had it gone on, would record the revision "deployed").
func checkNoLaterWrite(ctx context.Context, t *testing.T, kc *k8s.Client, c *localcluster.Cluster, ns, name string, deployErr error) []releaseRecord {
	t.Helper()
	before := releaseRecords(ctx, t, c, ns, name)
	if !errors.Is(deployErr, context.Canceled) {
		t.Errorf("cancelled Deploy = %v, want an error wrapping context.Canceled", deployErr)
	}
	if last := before[len(before)-1]; last.Status == string(release.StatusPendingInstall) || last.Status == string(release.StatusPendingUpgrade) {
		t.Errorf("after the cancelled Deploy returned, revision %s is still %s: Helm had not finished", last.Revision, last.Status)
	}
	markReady(ctx, t, c, ns, "orchestrator")
	time.Sleep(8 * time.Second) // Helm polls every 2s; a wait still going would see the pods ready now
	after := releaseRecords(ctx, t, c, ns, name)
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("release history changed after Deploy returned:\nwhen it returned: %v\n8 s later:        %v", before, after)
	}
	return after
}

// TestCancelledInstallFinishesBeforeReturning: cancelling a Deploy while
// Helm installs and waits ends Helm's install (revision 1 recorded failed)
// before Deploy returns; nothing writes to the release afterwards, and the
// next Deploy upgrades it cleanly.
func TestCancelledInstallFinishesBeforeReturning(t *testing.T) {
	kc, c, ch := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const ns, name = "ductbot-cancel-install", "wf-cancel-install"
	rel := k8s.Release{Name: name, Namespace: ns, Chart: ch, Timeout: 90 * time.Second,
		Values: simulate("ni", "orchestrator", localcluster.ModeNeverReady)}
	defer kc.Teardown(context.Background(), ns, name, time.Minute)

	err, lag := cancelMidWait(ctx, t, kc, c, rel)
	if lag > 15*time.Second {
		t.Errorf("Deploy returned %s after its cancel, want seconds", lag)
	}
	hist := checkNoLaterWrite(ctx, t, kc, c, ns, name, err)
	if len(hist) != 1 || hist[0].Status != string(release.StatusFailed) {
		t.Errorf("history after the cancelled install = %v, want revision 1 failed", hist)
	}

	rel.Values = values("ok", "pass", "e2e: ok")
	if err := kc.Deploy(ctx, rel); err != nil {
		t.Fatalf("the next Deploy: %v", err)
	}
	hist = releaseRecords(ctx, t, c, ns, name)
	if last := hist[len(hist)-1]; len(hist) != 2 || last.Status != string(release.StatusDeployed) {
		t.Errorf("history after the next Deploy = %v, want revision 2 deployed after the failed 1", hist)
	}
}

// TestCancelledUpgradeFinishesBeforeReturning: the same for an upgrade.
func TestCancelledUpgradeFinishesBeforeReturning(t *testing.T) {
	kc, c, ch := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const ns, name = "ductbot-cancel-upgrade", "wf-cancel-upgrade"
	rel := k8s.Release{Name: name, Namespace: ns, Chart: ch, Timeout: 90 * time.Second, Values: values("v1", "pass", "e2e: ok")}
	if err := kc.Deploy(ctx, rel); err != nil {
		t.Fatal(err)
	}
	defer kc.Teardown(context.Background(), ns, name, time.Minute)

	rel.Values = simulate("v2", "orchestrator", localcluster.ModeNeverReady)
	err, lag := cancelMidWait(ctx, t, kc, c, rel)
	if lag > 15*time.Second {
		t.Errorf("Deploy returned %s after its cancel, want seconds", lag)
	}
	hist := checkNoLaterWrite(ctx, t, kc, c, ns, name, err)
	if got := statuses(hist); got != "deployed failed" {
		t.Errorf("history after the cancelled upgrade = %v, want revision 1 deployed, 2 failed", hist)
	}

	rel.Values = values("v3", "pass", "e2e: ok")
	if err := kc.Deploy(ctx, rel); err != nil {
		t.Fatalf("the next Deploy: %v", err)
	}
	if got := statuses(releaseRecords(ctx, t, c, ns, name)); got != "superseded failed deployed" {
		t.Errorf("history after the next Deploy: %s, want superseded failed deployed", got)
	}
}

func statuses(rs []releaseRecord) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.Status)
	}
	return strings.Join(s, " ")
}
