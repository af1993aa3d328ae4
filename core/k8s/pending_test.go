package k8s_test

import (
	"context"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/release"
	helmtime "helm.sh/helm/v3/pkg/time"

	"github.com/ductbot/ductbot/core/k8s"
)

// writeRecord stores a release record through Helm's own storage, as an
// interrupted helm operation leaves it, without deploying anything.
func writeRecord(t *testing.T, kubeconfig, ns, name string, version int, status release.Status, labels map[string]string) {
	t.Helper()
	cfg := helmConfig(t, kubeconfig, ns)
	rel := &release.Release{
		Name: name, Namespace: ns, Version: version, Labels: labels,
		Info: &release.Info{Status: status, FirstDeployed: helmtime.Now(), LastDeployed: helmtime.Now()},
	}
	if err := cfg.Releases.Create(rel); err != nil {
		t.Fatalf("writing release record %s/%s v%d: %v", ns, name, version, err)
	}
}

// TestPendingReleases: only pending revisions of ductbot's releases are
// listed, in every namespace, with their status, revision and age.
func TestPendingReleases(t *testing.T) {
	kc, c, _ := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ours := func(env string) map[string]string {
		return map[string]string{k8s.LabelManagedBy: k8s.ManagedBy, k8s.LabelEnv: env}
	}
	const nsA, nsB = "ductbot-pending-a", "ductbot-pending-b"
	for _, ns := range []string{nsA, nsB} {
		if err := kc.EnsureNamespace(ctx, ns, ours(ns), nil); err != nil {
			t.Fatal(err)
		}
		defer kc.DeleteNamespace(context.Background(), ns, time.Minute)
	}
	before := time.Now().Add(-time.Minute)

	writeRecord(t, c.Kubeconfig, nsA, "upgrading", 1, release.StatusSuperseded, ours(nsA))
	writeRecord(t, c.Kubeconfig, nsA, "upgrading", 2, release.StatusPendingUpgrade, ours(nsA))
	writeRecord(t, c.Kubeconfig, nsA, "fine", 1, release.StatusDeployed, ours(nsA))
	writeRecord(t, c.Kubeconfig, nsB, "installing", 1, release.StatusPendingInstall, ours(nsB))
	writeRecord(t, c.Kubeconfig, nsB, "rolling", 3, release.StatusPendingRollback, ours(nsB))
	// Rolled back over an interrupted upgrade: Helm leaves revision 2
	// marked pending under the deployed revision 3. Not pending any more.
	writeRecord(t, c.Kubeconfig, nsA, "rolledback", 1, release.StatusSuperseded, ours(nsA))
	writeRecord(t, c.Kubeconfig, nsA, "rolledback", 2, release.StatusPendingUpgrade, ours(nsA))
	writeRecord(t, c.Kubeconfig, nsA, "rolledback", 3, release.StatusDeployed, ours(nsA))
	// The same release name in another namespace is another release.
	writeRecord(t, c.Kubeconfig, nsB, "upgrading", 4, release.StatusPendingUpgrade, ours(nsB))
	// Someone else's release, pending in a namespace ductbot labelled: not ours.
	writeRecord(t, c.Kubeconfig, nsB, "foreign", 1, release.StatusPendingInstall, nil)

	got, err := kc.PendingReleases(ctx)
	if err != nil {
		t.Fatalf("PendingReleases: %v", err)
	}
	// Other tests share the cluster: look only at this test's namespaces.
	var mine []k8s.PendingRelease
	for _, p := range got {
		if p.Namespace == nsA || p.Namespace == nsB {
			mine = append(mine, p)
		}
	}
	want := []k8s.PendingRelease{
		{Namespace: nsA, Name: "upgrading", Status: "pending-upgrade", Revision: 2},
		{Namespace: nsB, Name: "installing", Status: "pending-install", Revision: 1},
		{Namespace: nsB, Name: "rolling", Status: "pending-rollback", Revision: 3},
		{Namespace: nsB, Name: "upgrading", Status: "pending-upgrade", Revision: 4},
	}
	if len(mine) != len(want) {
		t.Fatalf("PendingReleases = %+v, want %+v", mine, want)
	}
	for i, w := range want {
		g := mine[i]
		if g.Namespace != w.Namespace || g.Name != w.Name || g.Status != w.Status || g.Revision != w.Revision {
			t.Errorf("pending[%d] = %+v, want %+v", i, g, w)
		}
		if g.Since.Before(before) || g.Since.After(time.Now().Add(time.Minute)) {
			t.Errorf("pending[%d].Since = %v, want the time the record was written (about now)", i, g.Since)
		}
	}
}
