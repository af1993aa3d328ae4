package k8s_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ductbot/ductbot/core/k8s"
	"github.com/ductbot/ductbot/core/k8s/localcluster"
)

// TestSleepWake is issue 14's sleep and wake on the local cluster: sleep
// scales every Deployment to 0 and remembers its replicas in an annotation,
// the release stays; wake restores them, clears the annotation and waits for
// ready; a sleep killed between scaling two Deployments is finished by the
// next (idempotent) Sleep, and all of them wake with their own replicas.
func TestSleepWake(t *testing.T) {
	kc, c, ch := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const ns, name = "ductbot-sleep", "wf-sleep"
	labels := map[string]string{k8s.LabelManagedBy: k8s.ManagedBy, k8s.LabelEnv: name}
	vals := values("abc", "pass", "ok")
	vals["wiki"] = map[string]any{"replicas": 2}
	rel := k8s.Release{Name: name, Namespace: ns, Chart: ch, Labels: labels, Timeout: 2 * time.Minute, Values: vals}
	if err := kc.Deploy(ctx, rel); err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	t.Cleanup(func() { _ = kc.Teardown(context.Background(), ns, name, time.Minute) })
	deps := c.Client.AppsV1().Deployments(ns)

	// Another ductbot instance sharing the cluster touches nothing of ours.
	other, err := k8s.New(k8s.Options{Kubeconfig: c.Kubeconfig, Instance: "staging"})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Sleep(ctx, ns); !errors.Is(err, k8s.ErrForeignInstance) {
		t.Errorf("Sleep by another instance = %v, want ErrForeignInstance", err)
	}
	if err := other.Wake(ctx, ns, time.Second); !errors.Is(err, k8s.ErrForeignInstance) {
		t.Errorf("Wake by another instance = %v, want ErrForeignInstance", err)
	}

	want := map[string]int32{}
	list, err := deps.List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) < 2 {
		t.Fatalf("deployments: %v, %v; want at least 2", list, err)
	}
	for _, d := range list.Items {
		want[d.Name] = *d.Spec.Replicas
	}
	if want[name+"-wiki"] != 2 {
		t.Fatalf("wiki replicas = %d, want 2 from values", want[name+"-wiki"])
	}

	check := func(stage string, asleep bool) {
		t.Helper()
		list, err := deps.List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range list.Items {
			a, has := d.Annotations[k8s.AnnotationReplicas]
			if asleep {
				if *d.Spec.Replicas != 0 || a != strconv.Itoa(int(want[d.Name])) {
					t.Errorf("%s: %s replicas=%d annotation=%q; want 0 and %q", stage, d.Name, *d.Spec.Replicas, a, strconv.Itoa(int(want[d.Name])))
				}
			} else {
				if *d.Spec.Replicas != want[d.Name] || has {
					t.Errorf("%s: %s replicas=%d annotation=%q (present %v); want %d and none", stage, d.Name, *d.Spec.Replicas, a, has, want[d.Name])
				}
				if d.Status.ReadyReplicas != want[d.Name] {
					t.Errorf("%s: %s ready=%d, want %d", stage, d.Name, d.Status.ReadyReplicas, want[d.Name])
				}
			}
		}
	}

	if err := kc.Sleep(ctx, ns); err != nil {
		t.Fatalf("Sleep: %v", err)
	}
	check("after Sleep", true)
	if info, err := kc.Status(ctx, ns, name); err != nil || info.Revision != 1 {
		t.Errorf("release after Sleep = %+v, %v; want it untouched at revision 1", info, err)
	}
	if err := kc.Sleep(ctx, ns); err != nil { // idempotent: remembered replicas stay
		t.Fatalf("second Sleep: %v", err)
	}
	check("after a second Sleep", true)
	if err := kc.Wake(ctx, ns, 2*time.Minute); err != nil {
		t.Fatalf("Wake: %v", err)
	}
	check("after Wake", false)

	// kill -9 between scaling two Deployments: one is asleep (scaled and
	// annotated in one patch, as Sleep does), the others are not.
	patch := []byte(`{"metadata":{"annotations":{"` + k8s.AnnotationReplicas + `":"2"}},"spec":{"replicas":0}}`)
	if _, err := deps.Patch(ctx, name+"-wiki", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if asleep, err := kc.Asleep(ctx, ns); err != nil || !asleep {
		t.Errorf("Asleep half way = %v, %v; want true", asleep, err)
	}
	if err := kc.Sleep(ctx, ns); err != nil {
		t.Fatalf("repairing Sleep: %v", err)
	}
	check("after the repairing Sleep", true)

	// And a wake killed half way: one restored, the rest still asleep.
	restore := []byte(`{"metadata":{"annotations":{"` + k8s.AnnotationReplicas + `":null}},"spec":{"replicas":2}}`)
	if _, err := deps.Patch(ctx, name+"-wiki", types.MergePatchType, restore, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := kc.Wake(ctx, ns, 2*time.Minute); err != nil {
		t.Fatalf("repairing Wake: %v", err)
	}
	check("after the repairing Wake", false)
	if asleep, err := kc.Asleep(ctx, ns); err != nil || asleep {
		t.Errorf("Asleep after Wake = %v, %v; want false", asleep, err)
	}
}

// TestWakeFailureIsDiagnosed: a component that crash-loops when woken makes
// Wake fail with a deploy's diagnosis (the pod, CrashLoopBackOff, its log).
func TestWakeFailureIsDiagnosed(t *testing.T) {
	kc, c, ch := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const ns, name = "ductbot-wakefail", "wf-wakefail"
	labels := map[string]string{k8s.LabelManagedBy: k8s.ManagedBy, k8s.LabelEnv: name}
	rel := k8s.Release{Name: name, Namespace: ns, Chart: ch, Labels: labels, Timeout: 2 * time.Minute, Values: values("abc", "pass", "ok")}
	if err := kc.Deploy(ctx, rel); err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	t.Cleanup(func() { _ = kc.Teardown(context.Background(), ns, name, time.Minute) })
	if err := kc.Sleep(ctx, ns); err != nil {
		t.Fatal(err)
	}
	// While it sleeps, the orchestrator's pods come to crash when started.
	patch := []byte(`{"spec":{"template":{"metadata":{"annotations":{"` + localcluster.ModeAnnotation + `":"crash"}}}}}`)
	if _, err := c.Client.AppsV1().Deployments(ns).Patch(ctx, name+"-orchestrator", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	err := kc.Wake(ctx, ns, 40*time.Second)
	var f *k8s.DeployFailure
	if !errors.As(err, &f) {
		t.Fatalf("Wake = %v, want a *k8s.DeployFailure", err)
	}
	if !strings.Contains(f.Pod, "orchestrator") || !strings.Contains(f.Reason, "CrashLoopBackOff") {
		t.Errorf("diagnosis pod %q reason %q, want the orchestrator's CrashLoopBackOff", f.Pod, f.Reason)
	}
	if !strings.Contains(err.Error(), "orchestrator") {
		t.Errorf("error %q does not name the orchestrator", err)
	}
}
