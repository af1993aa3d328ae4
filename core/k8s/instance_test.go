package k8s_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/release"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ductbot/ductbot/core/k8s"
)

func TestNewRejectsABadInstance(t *testing.T) {
	for _, bad := range []string{"prod env", "-prod", strings.Repeat("x", 64), "prod/eu"} {
		if _, err := k8s.New(k8s.Options{Instance: bad}); err == nil || !strings.Contains(err.Error(), "label value") {
			t.Errorf("New(Instance %q) = %v, want an error saying it is not a label value", bad, err)
		}
	}
}

// TestInstancesAreScoped: a staging and a production ductbot share a
// cluster. Each stamps its instance on what it creates, lists only its own
// namespaces and pending releases, and refuses to tear down, delete,
// relabel or repair the other's. Namespaces from before the instance label
// belong to the default instance only.
func TestInstancesAreScoped(t *testing.T) {
	def, c, ch := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	clients := map[string]*k8s.Client{k8s.DefaultInstance: def}
	for _, inst := range []string{"staging", "prod"} {
		kc, err := k8s.New(k8s.Options{Kubeconfig: c.Kubeconfig, Instance: inst})
		if err != nil {
			t.Fatal(err)
		}
		if kc.Instance() != inst {
			t.Fatalf("Instance() = %q, want %q", kc.Instance(), inst)
		}
		clients[inst] = kc
	}
	if def.Instance() != k8s.DefaultInstance {
		t.Fatalf("default Instance() = %q, want %q", def.Instance(), k8s.DefaultInstance)
	}
	nsOf := func(inst string) string { return "ductbot-inst-" + inst }
	const name = "wf-inst"

	// Each instance deploys an environment; the caller's labels try to
	// claim another instance, and cannot.
	for _, inst := range []string{"staging", "prod"} {
		kc, ns := clients[inst], nsOf(inst)
		labels := map[string]string{k8s.LabelManagedBy: k8s.ManagedBy, k8s.LabelEnv: name, k8s.LabelInstance: "someone-else"}
		rel := k8s.Release{Name: name, Namespace: ns, Chart: ch, Labels: labels, Timeout: 2 * time.Minute,
			Values: values(inst, "pass", "ok"), Policy: k8s.NamespacePolicy{DefaultRequests: map[string]string{"cpu": "10m"}}}
		if err := kc.Deploy(ctx, rel); err != nil {
			t.Fatalf("%s: Deploy: %v", inst, err)
		}
		defer kc.Teardown(context.Background(), ns, name, time.Minute)

		got, err := c.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil || got.Labels[k8s.LabelInstance] != inst || got.Labels[k8s.LabelEnv] != name {
			t.Errorf("%s: namespace labels = %v (%v), want instance %s and the caller's env label", inst, got.Labels, err, inst)
		}
		lr, err := c.Client.CoreV1().LimitRanges(ns).Get(ctx, k8s.PolicyObjectName, metav1.GetOptions{})
		if err != nil || lr.Labels[k8s.LabelInstance] != inst || lr.Labels[k8s.LabelManagedBy] != k8s.ManagedBy {
			t.Errorf("%s: LimitRange labels = %v (%v), want managed by ductbot, instance %s", inst, lr.Labels, err, inst)
		}
		last, err := helmConfig(t, c.Kubeconfig, ns).Releases.Last(name)
		if err != nil || last.Labels[k8s.LabelInstance] != inst {
			t.Errorf("%s: Helm release labels = %v (%v), want instance %s", inst, last.Labels, err, inst)
		}

		// What a crash during an upgrade leaves: a pending record carrying
		// the release's labels, as Helm writes them.
		stuck, info := *last, *last.Info
		stuck.Info, stuck.Version = &info, last.Version+1
		stuck.Info.Status = release.StatusPendingUpgrade
		if err := helmConfig(t, c.Kubeconfig, ns).Releases.Create(&stuck); err != nil {
			t.Fatal(err)
		}
	}

	// A namespace and a pending release from a ductbot older than the
	// instance label.
	legacy := nsOf("legacy")
	old := map[string]string{k8s.LabelManagedBy: k8s.ManagedBy, k8s.LabelEnv: "old-env"}
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: legacy, Labels: old}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer def.DeleteNamespace(context.Background(), legacy, time.Minute)
	writeRecord(t, c.Kubeconfig, legacy, "old-env", 1, release.StatusPendingInstall, old)

	want := map[string]string{k8s.DefaultInstance: legacy, "staging": nsOf("staging"), "prod": nsOf("prod")}
	for inst, kc := range clients {
		nss, err := kc.Namespaces(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pending, err := kc.PendingReleases(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, ns := range []string{legacy, nsOf("staging"), nsOf("prod")} {
			mine := ns == want[inst]
			if hasNamespace(nss, ns) != mine {
				t.Errorf("instance %s: Namespaces() lists %s: %v, want %v", inst, ns, !mine, mine)
			}
			if hasPending(pending, ns) != mine {
				t.Errorf("instance %s: PendingReleases() lists %s: %v, want %v", inst, ns, !mine, mine)
			}
		}
	}

	// Refusals: staging may not touch prod's environment nor the legacy one.
	staging, prod := clients["staging"], clients["prod"]
	refused := func(what string, err error, owner string) {
		t.Helper()
		if !errors.Is(err, k8s.ErrForeignInstance) || !strings.Contains(err.Error(), `"`+owner+`"`) || !strings.Contains(err.Error(), `"staging"`) {
			t.Errorf("staging %s: err = %v, want ErrForeignInstance naming %q and \"staging\"", what, err, owner)
		}
	}
	refused("Teardown of prod's", staging.Teardown(ctx, nsOf("prod"), name, time.Minute), "prod")
	refused("DeleteNamespace of prod's", staging.DeleteNamespace(ctx, nsOf("prod"), time.Minute), "prod")
	refused("DeleteNamespace of the legacy one", staging.DeleteNamespace(ctx, legacy, time.Minute), k8s.DefaultInstance)
	refused("EnsureNamespace of prod's", staging.EnsureNamespace(ctx, nsOf("prod"), nil, nil), "prod")
	_, err := staging.Repair(ctx, nsOf("prod"), name, time.Minute)
	refused("Repair of prod's", err, "prod")
	for _, ns := range []string{nsOf("prod"), legacy} {
		got, err := c.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil || got.DeletionTimestamp != nil || got.Labels[k8s.LabelInstance] == "staging" {
			t.Errorf("namespace %s after staging's refused attempts: %v, %v; want it untouched", ns, got.Labels, err)
		}
	}
	if st, err := prod.Status(ctx, nsOf("prod"), name); err != nil || st.Status != release.StatusPendingUpgrade {
		t.Errorf("prod's release after staging's refused attempts: %+v, %v; want it as it was", st, err)
	}

	// Each may remove its own.
	if err := prod.Teardown(ctx, nsOf("prod"), name, time.Minute); err != nil {
		t.Errorf("prod tearing down its own environment: %v", err)
	}
}

func hasPending(ps []k8s.PendingRelease, ns string) bool {
	for _, p := range ps {
		if p.Namespace == ns {
			return true
		}
	}
	return false
}
