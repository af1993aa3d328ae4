package k8s_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/release"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/ductbot/ductbot/core/k8s"
	"github.com/ductbot/ductbot/core/k8s/localcluster"
)

func TestMain(m *testing.M) { os.Exit(localcluster.RunTests(m)) }

const exampleChart = "../../examples/chart/wikifunctions"

func setup(t *testing.T) (*k8s.Client, *localcluster.Cluster, *chart.Chart) {
	t.Helper()
	c := localcluster.Shared(t)
	kc, err := k8s.New(k8s.Options{Kubeconfig: c.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := loader.Load(exampleChart)
	if err != nil {
		t.Fatal(err)
	}
	return kc, c, ch
}

func values(orchestratorTag, outcome, log string) map[string]any {
	return map[string]any{
		"orchestrator": map[string]any{"image": map[string]any{"tag": orchestratorTag}},
		"e2e":          map[string]any{"simulate": map[string]any{"outcome": outcome, "log": log}},
	}
}

// TestExampleChartLifecycle is issue 2's end-to-end check through the Helm
// SDK on a real API server: install and wait, tests pass with their log,
// tests fail with their log, teardown removes the namespace.
func TestExampleChartLifecycle(t *testing.T) {
	kc, c, ch := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const ns, name = "ductbot-lifecycle", "wf-lifecycle"
	labels := map[string]string{k8s.LabelManagedBy: k8s.ManagedBy, k8s.LabelEnv: name}

	rel := k8s.Release{Name: name, Namespace: ns, Chart: ch, Labels: labels, Timeout: 2 * time.Minute,
		Values: values("abc", "pass", "e2e: all 4 passing")}
	if err := kc.Deploy(ctx, rel); err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	dep, err := c.Client.AppsV1().Deployments(ns).Get(ctx, name+"-orchestrator", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := dep.Spec.Template.Spec.Containers[0].Image; !strings.HasSuffix(img, ":abc") {
		t.Errorf("orchestrator image = %q, want the tag abc from values", img)
	}
	if dep.Status.ReadyReplicas != 1 {
		t.Errorf("orchestrator ready replicas = %d after Deploy, want 1", dep.Status.ReadyReplicas)
	}
	info, err := kc.Status(ctx, ns, name)
	if err != nil || info.Status != release.StatusDeployed || info.Revision != 1 {
		t.Fatalf("Status = %+v, %v; want deployed revision 1", info, err)
	}

	res, err := kc.Test(ctx, ns, name, time.Minute)
	if err != nil {
		t.Fatalf("Test: %v", err)
	}
	if !res.Passed || len(res.Pods) != 1 {
		t.Fatalf("Test = %+v, want passed with one pod", res)
	}
	if res.Pods[0].Phase != "Succeeded" || !strings.Contains(res.Pods[0].Log, "e2e: all 4 passing") {
		t.Errorf("test pod = %+v, want Succeeded with its log", res.Pods[0])
	}

	rel.Values = values("abc", "fail", "e2e: Z801 returned nothing\nFAIL 1 of 4")
	if err := kc.Deploy(ctx, rel); err != nil {
		t.Fatalf("Deploy (upgrade): %v", err)
	}
	res, err = kc.Test(ctx, ns, name, time.Minute)
	if err != nil {
		t.Fatalf("Test (failing): %v", err)
	}
	if res.Passed {
		t.Fatalf("Test passed; the chart asked the test pod to fail")
	}
	if res.Pods[0].Phase != "Failed" || !strings.Contains(res.Pods[0].Log, "FAIL 1 of 4") || res.Detail == "" {
		t.Errorf("failing test = %+v, want Failed with its log and a detail", res)
	}

	nss, err := kc.Namespaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !hasNamespace(nss, ns) {
		t.Errorf("Namespaces() = %v, want it to include %s", nss, ns)
	}

	if err := kc.Teardown(ctx, ns, name, time.Minute); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	if _, err := c.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("namespace %s after Teardown: err = %v, want NotFound", ns, err)
	}
	if err := kc.Teardown(ctx, ns, name, time.Minute); err != nil {
		t.Errorf("a second Teardown should find nothing to do: %v", err)
	}
}

// TestLogsOfDeletedHookPods: a chart whose test pods are deleted on success
// still gives ductbot their logs.
func TestLogsOfDeletedHookPods(t *testing.T) {
	kc, c, ch := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const ns, name = "ductbot-hooklogs", "wf-hooklogs"
	vals := values("def", "pass", "kept after deletion")
	vals["e2e"].(map[string]any)["deletePolicy"] = "before-hook-creation,hook-succeeded"
	if err := kc.Deploy(ctx, k8s.Release{Name: name, Namespace: ns, Chart: ch, Values: vals, Timeout: 2 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	defer kc.Teardown(context.Background(), ns, name, time.Minute)
	res, err := kc.Test(ctx, ns, name, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Passed || len(res.Pods) != 1 || !strings.Contains(res.Pods[0].Log, "kept after deletion") {
		t.Fatalf("Test = %+v, want passed with the deleted pod's log", res)
	}
	if _, err := c.Client.CoreV1().Pods(ns).Get(ctx, name+"-e2e", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("test pod still exists (err %v); the hook-succeeded policy should have deleted it", err)
	}
}

// TestRepairPendingRelease: a release left pending-upgrade by a crash is
// rolled back and upgraded by the next Deploy instead of blocking it.
func TestRepairPendingRelease(t *testing.T) {
	kc, c, ch := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const ns, name = "ductbot-pending", "wf-pending"
	rel := k8s.Release{Name: name, Namespace: ns, Chart: ch, Values: values("v1", "pass", "ok"), Timeout: 2 * time.Minute}
	if err := kc.Deploy(ctx, rel); err != nil {
		t.Fatal(err)
	}
	defer kc.Teardown(context.Background(), ns, name, time.Minute)

	// What a process killed during `helm upgrade` leaves behind.
	cfg := helmConfig(t, c.Kubeconfig, ns)
	last, err := cfg.Releases.Last(name)
	if err != nil {
		t.Fatal(err)
	}
	stuck := *last
	info := *last.Info
	stuck.Info, stuck.Version = &info, last.Version+1
	stuck.Info.Status = release.StatusPendingUpgrade
	if err := cfg.Releases.Create(&stuck); err != nil {
		t.Fatal(err)
	}
	if st, _ := kc.Status(ctx, ns, name); st.Status != release.StatusPendingUpgrade {
		t.Fatalf("setup: status = %s, want pending-upgrade", st.Status)
	}

	rel.Values = values("v2", "pass", "ok")
	if err := kc.Deploy(ctx, rel); err != nil {
		t.Fatalf("Deploy over a pending release: %v", err)
	}
	st, err := kc.Status(ctx, ns, name)
	if err != nil || st.Status != release.StatusDeployed {
		t.Fatalf("status after repair and upgrade = %+v, %v; want deployed", st, err)
	}
	dep, err := c.Client.AppsV1().Deployments(ns).Get(ctx, name+"-orchestrator", metav1.GetOptions{})
	if err != nil || !strings.HasSuffix(dep.Spec.Template.Spec.Containers[0].Image, ":v2") {
		t.Fatalf("orchestrator after repair: %v, %v; want tag v2", dep.Spec.Template.Spec.Containers[0].Image, err)
	}
}

func helmConfig(t *testing.T, kubeconfig, ns string) *action.Configuration {
	t.Helper()
	f := genericclioptions.NewConfigFlags(true)
	f.KubeConfig, f.Namespace = &kubeconfig, &ns
	cfg := new(action.Configuration)
	if err := cfg.Init(f, ns, "secret", func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func hasNamespace(nss []k8s.Namespace, name string) bool {
	for _, n := range nss {
		if n.Name == name {
			return true
		}
	}
	return false
}

// A test pod the API server refuses (here: a quota that wants CPU requests
// from a pod that sets none) is an error, not a failed test.
func TestRefusedTestPodIsAnError(t *testing.T) {
	kc, _, ch := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const ns, name = "ductbot-refused", "wf-refused"
	vals := values("q", "pass", "never runs")
	vals["e2e"].(map[string]any)["resources"] = nil // null removes the chart default
	for _, comp := range []string{"wiki", "orchestrator", "evaluator"} {
		vals[comp] = map[string]any{"resources": map[string]any{"requests": map[string]any{"cpu": "10m"}}}
	}
	vals["orchestrator"].(map[string]any)["image"] = map[string]any{"tag": "q"}
	rel := k8s.Release{Name: name, Namespace: ns, Chart: ch, Values: vals, Timeout: 2 * time.Minute,
		Policy: k8s.NamespacePolicy{Quota: map[string]string{"requests.cpu": "2"}}}
	if err := kc.Deploy(ctx, rel); err != nil {
		t.Fatal(err)
	}
	defer kc.Teardown(context.Background(), ns, name, time.Minute)
	res, err := kc.Test(ctx, ns, name, time.Minute)
	if err == nil {
		t.Fatalf("Test = %+v, nil; want an error: the quota refuses the test pod", res)
	}
	if !strings.Contains(err.Error(), "could not start") {
		t.Errorf("error = %v, want it to say the test could not start", err)
	}
}

// TestTestLogsAreBounded: a test that prints more than MaxLogBytes gives a
// log of at most MaxLogBytes that keeps its first and last lines and says
// how much was cut.
func TestTestLogsAreBounded(t *testing.T) {
	_, c, ch := setup(t)
	kc, err := k8s.New(k8s.Options{Kubeconfig: c.Kubeconfig, MaxLogBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const ns, name = "ductbot-biglog", "wf-biglog"
	var log strings.Builder
	log.WriteString("e2e: FIRST LINE\n")
	for i := range 400 {
		fmt.Fprintf(&log, "e2e: step %d of a chatty suite\n", i)
	}
	log.WriteString("e2e: LAST LINE")
	if err := kc.Deploy(ctx, k8s.Release{Name: name, Namespace: ns, Chart: ch, Values: values("big", "fail", log.String()), Timeout: 2 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	defer kc.Teardown(context.Background(), ns, name, time.Minute)
	res, err := kc.Test(ctx, ns, name, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if res.Passed || len(res.Pods) != 1 {
		t.Fatalf("Test = %+v, want one failed pod", res)
	}
	got := res.Pods[0].Log
	if len(got) > 4096 || !strings.Contains(got, "FIRST LINE") || !strings.Contains(got, "LAST LINE") || !strings.Contains(got, "bytes cut by ductbot") {
		t.Errorf("log of %d bytes (limit 4096), want head, tail and the cut marker:\n%s", len(got), got)
	}
}
