package cleanup_test

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ductbot/ductbot/core/k8s"
	"github.com/ductbot/ductbot/core/pipeline/cleanup"
)

// TestSweepKeepsToItsInstance: a staging and a production ductbot share a
// cluster, and neither has any record (an empty store), so every namespace
// a sweep sees is an orphan. Staging's sweep removes staging's orphan only:
// production's namespace, and one from a ductbot older than the instance
// label (the default instance's), stay. Then production's removes its own.
func TestSweepKeepsToItsInstance(t *testing.T) {
	h := newHarness(t, "inst")
	clients := map[string]*k8s.Client{}
	for _, inst := range []string{"staging", "prod"} {
		kc, err := k8s.New(k8s.Options{Kubeconfig: h.lc.Kubeconfig, Instance: inst})
		if err != nil {
			t.Fatal(err)
		}
		clients[inst] = kc
		labels := map[string]string{k8s.LabelManagedBy: k8s.ManagedBy, k8s.LabelEnv: inst + "-env", "sweeptest": h.tag}
		if err := kc.EnsureNamespace(h.ctx, h.ns(inst+"-env"), labels, nil); err != nil {
			t.Fatal(err)
		}
	}
	legacy := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: h.ns("legacy-env"),
		Labels: map[string]string{k8s.LabelManagedBy: k8s.ManagedBy, k8s.LabelEnv: "legacy-env", "sweeptest": h.tag}}}
	if _, err := h.lc.Client.CoreV1().Namespaces().Create(h.ctx, legacy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(2 * cleanup.DefaultOrphanGrace)

	sweeper := func(inst string) *cleanup.Sweeper {
		return cleanup.New(cleanup.Options{Store: h.st, Gerrit: gerritClient(t, h.gs.URL()), Cluster: clients[inst],
			Destroyer: h.d, Policy: h.policy, Now: h.clock.Now, Logger: discard()})
	}
	sum := h.sweep(sweeper("staging"))
	if got := actions(sum.Removed); !slices.Equal(got, []string{"staging-env:orphan"}) {
		t.Errorf("staging's sweep removed %v, want only its own orphan", got)
	}
	if len(sum.Skipped) != 0 {
		t.Errorf("staging's sweep skipped %v", actions(sum.Skipped))
	}
	if h.exists("staging-env") {
		t.Errorf("staging's orphan survived staging's sweep")
	}
	for _, name := range []string{"prod-env", "legacy-env"} {
		if !h.exists(name) {
			t.Errorf("staging's sweep removed %s, which is not staging's", name)
		}
	}

	sum = h.sweep(sweeper("prod"))
	if got := actions(sum.Removed); !slices.Equal(got, []string{"prod-env:orphan"}) {
		t.Errorf("prod's sweep removed %v, want only its own orphan", got)
	}
	if h.exists("prod-env") || !h.exists("legacy-env") {
		t.Errorf("after prod's sweep: prod's namespace exists %v (want false), the legacy one %v (want true)", h.exists("prod-env"), h.exists("legacy-env"))
	}
}
