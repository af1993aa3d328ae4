package deploy

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart/loader"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ductbot/ductbot/core/k8s"
	"github.com/ductbot/ductbot/core/leader"
)

// TestChartInstallHA installs the chart with config.ha.enabled and two
// replicas on a real API server (RBAC and the admission guard on), and
// then, as the chart's ServiceAccount, runs the leader election ductbot
// runs: it takes and renews its Lease; another Lease it may not create or
// change.
func TestChartInstallHA(t *testing.T) {
	c, ctx, admin := clusterAdmin(t)
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	const ns, name = "ductbot-ha", "ductbot-ha"
	vals := haValues(2)
	vals["image"] = map[string]any{"repository": "registry.invalid/ductbot", "tag": "test"}
	vals["secretEnv"].(map[string]any)["GERRIT_PASSWORD"] = map[string]any{"name": "ductbot-gerrit", "key": "password"}
	if err := admin.EnsureNamespace(ctx, ns, nil, nil); err != nil {
		t.Fatal(err)
	}
	for secret, data := range map[string]map[string]string{
		"ductbot-gerrit": {"password": "s3cret"},
		"ductbot-state":  {"dsn": "postgres://ductbot:s3cret@db/ductbot"},
	} {
		if _, err := c.Client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: secret}, StringData: data,
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	installAsOperator(t, ctx, c, admin, k8s.Release{Name: name, Namespace: ns, Chart: ch, Timeout: 2 * time.Minute, Values: vals}, nil)

	dep, err := c.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if dep.Status.ReadyReplicas != 2 || dep.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
		t.Errorf("Deployment: %d ready, strategy %s; want 2 ready, RollingUpdate", dep.Status.ReadyReplicas, dep.Spec.Strategy.Type)
	}
	if _, err := c.Client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
		t.Errorf("PodDisruptionBudget: %v", err)
	}

	sa, err := k8s.New(k8s.Options{Kubeconfig: asServiceAccount(t, c.Kubeconfig, "system:serviceaccount:"+ns+":"+name)})
	if err != nil {
		t.Fatal(err)
	}
	cs := sa.Clientset()

	// The guard is loaded asynchronously: wait until it refuses a Lease of
	// another name, which RBAC lets the ServiceAccount create.
	stray := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "someone-elses"}}
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	err = waitFor(ctx, "the admission guard", func() (bool, error) {
		_, err := cs.CoordinationV1().Leases(ns).Create(ctx, stray, dry)
		return apierrors.IsForbidden(err) && strings.Contains(err.Error(), name+"-guard"), err
	})
	if err != nil {
		t.Fatal(err)
	}

	e, err := leader.New(leader.Options{
		Client: cs, Namespace: ns, Name: name + "-leader", Identity: "pod-0",
		LeaseDuration: 4 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 500 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.Run(runCtx, func(ctx context.Context) { <-ctx.Done() }) }()
	leadCtx, leadCancel := context.WithTimeout(ctx, 30*time.Second)
	defer leadCancel()
	if err := waitFor(leadCtx, "the ServiceAccount leads", func() (bool, error) { return e.Leading(), nil }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // several renewals
	if !e.Leading() {
		t.Error("the ServiceAccount could not renew its Lease")
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}

	// Another namespace's Lease, or another Lease here: refused.
	if _, err := cs.CoordinationV1().Leases("default").Create(ctx, stray, dry); !apierrors.IsForbidden(err) {
		t.Errorf("creating a Lease in default: %v, want Forbidden", err)
	}
	_, _ = admin.Clientset().CoordinationV1().Leases(ns).Create(ctx, stray, metav1.CreateOptions{})
	got, err := cs.CoordinationV1().Leases(ns).Get(ctx, stray.Name, metav1.GetOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("reading another Lease: %v, %v; want Forbidden", got, err)
	}
}
