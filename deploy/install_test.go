package deploy

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart/loader"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"

	"github.com/ductbot/ductbot/core/k8s"
	"github.com/ductbot/ductbot/core/k8s/localcluster"
)

func TestMain(m *testing.M) { os.Exit(localcluster.RunTests(m)) }

const exampleChart = "../examples/chart/wikifunctions"

// asServiceAccount writes a copy of the admin kubeconfig that impersonates
// the ServiceAccount, so that every request is authorised (and admitted) as
// the ServiceAccount's would be.
func asServiceAccount(t *testing.T, adminKubeconfig, user string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(adminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, ai := range cfg.AuthInfos {
		ai.Impersonate = user
	}
	path := filepath.Join(t.TempDir(), "kubeconfig-"+strings.ReplaceAll(user, ":", "-"))
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func waitFor(ctx context.Context, what string, cond func() (bool, error)) error {
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return errors.Join(errors.New("timed out waiting for "+what), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// clusterAdmin is the shared local control plane, a context for the test
// (five minutes) and a client with the admin's rights. It skips the test
// under -short.
func clusterAdmin(t *testing.T) (*localcluster.Cluster, context.Context, *k8s.Client) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a local control plane")
	}
	c := localcluster.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	admin, err := k8s.New(k8s.Options{Kubeconfig: c.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	return c, ctx, admin
}

// installAsOperator installs rel as an operator would, and uninstalls it
// when the test ends, then calling after.
func installAsOperator(t *testing.T, ctx context.Context, c *localcluster.Cluster, admin *k8s.Client, rel k8s.Release, after func(context.Context)) {
	t.Helper()
	if err := admin.Deploy(ctx, rel); err != nil {
		t.Fatalf("installing the chart: %v", err)
	}
	unlabelOwn(t, ctx, c, rel.Namespace)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := admin.Teardown(ctx, rel.Namespace, rel.Name, time.Minute); err != nil {
			t.Errorf("uninstalling the chart: %v", err)
		}
		if after != nil {
			after(ctx)
		}
	})
}

// unlabelOwn undoes what ductbot's client does to every namespace it
// deploys to (labelling it as one of its environments); an operator
// installs ductbot with helm, which does not. The guard must see ductbot's
// own namespace as an operator leaves it.
func unlabelOwn(t *testing.T, ctx context.Context, c *localcluster.Cluster, ns string) {
	t.Helper()
	own, err := c.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	delete(own.Labels, k8s.LabelManagedBy)
	delete(own.Labels, k8s.LabelInstance)
	if _, err := c.Client.CoreV1().Namespaces().Update(ctx, own, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestChartInstall installs the chart on a real API server (RBAC on), waits
// for ductbot's Deployment to be ready, and then, impersonating the chart's
// ServiceAccount, does what ductbot does: creates a labelled namespace,
// installs and tests the example chart in it with Helm, applies a quota,
// limits and a network policy, lists its namespaces and pending releases,
// and tears the environment down. It also checks what the ServiceAccount
// must not be able to do.
func TestChartInstall(t *testing.T) {
	c, ctx, admin := clusterAdmin(t)

	// A static volume for the state claim: the local cluster has no provisioner.
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "ductbot-state-test"},
		Spec: corev1.PersistentVolumeSpec{
			StorageClassName:              "ductbot-test",
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/lib/ductbot-test"}},
		},
	}
	if _, err := c.Client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Client.CoreV1().PersistentVolumes().Delete(context.Background(), pv.Name, metav1.DeleteOptions{})
	})

	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	const ns, name = releaseNamespace, "ductbot"
	rel := k8s.Release{Name: name, Namespace: ns, Chart: ch, Timeout: 2 * time.Minute, Values: map[string]any{
		// Any image runs on the simulated node.
		"image":     map[string]any{"repository": "registry.invalid/ductbot", "tag": "test"},
		"config":    sampleConfig(),
		"secretEnv": map[string]any{"GERRIT_PASSWORD": map[string]any{"name": "ductbot-gerrit", "key": "password"}},
		// As a release from before ReadWriteOncePod made its claim; the
		// upgrade below must keep it. (This API server is a development
		// build, v0.0.0-master, but says major 1, minor 36: the chart's
		// default here is ReadWriteOncePod.)
		"persistence": map[string]any{"storageClass": "ductbot-test", "keep": false, "accessModes": []any{"ReadWriteOnce"}},
	}}
	// The Secret the chart refers to, created the way an operator would.
	if err := admin.EnsureNamespace(ctx, ns, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "ductbot-gerrit"},
		StringData: map[string]string{"password": "s3cret"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	installAsOperator(t, ctx, c, admin, rel, func(ctx context.Context) {
		if _, err := c.Client.RbacV1().ClusterRoles().Get(ctx, "ductbot-environments", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("ClusterRole ductbot-environments after uninstall: err = %v, want NotFound", err)
		}
	})

	dep, err := c.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if dep.Status.ReadyReplicas != 1 || dep.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("Deployment: %d ready, strategy %s; want 1 ready, Recreate", dep.Status.ReadyReplicas, dep.Spec.Strategy.Type)
	}
	pvc, err := c.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil || pvc.Status.Phase != corev1.ClaimBound {
		t.Errorf("state claim: %v, err %v; want it Bound", pvc.Status.Phase, err)
	}

	// An upgrade to the default access modes (ReadWriteOncePod for this
	// cluster's version) keeps the existing claim's ReadWriteOnce: a
	// claim's modes cannot change, and patching them would fail the upgrade.
	upgraded := rel
	upgraded.Values = maps.Clone(rel.Values)
	upgraded.Values["persistence"] = map[string]any{"storageClass": "ductbot-test", "keep": false}
	if err := admin.Deploy(ctx, upgraded); err != nil {
		t.Fatalf("upgrading the chart to the default access modes: %v", err)
	}
	unlabelOwn(t, ctx, c, ns)
	pvc, err = c.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil || !slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
		t.Errorf("state claim after the upgrade: modes %v, err %v; want its ReadWriteOnce kept", pvc.Spec.AccessModes, err)
	}
	if dep, err = c.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if args := dep.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--grace") || dep.Status.ReadyReplicas != 1 {
		t.Errorf("after the upgrade: args %q, %d ready; want --grace and 1 ready", args, dep.Status.ReadyReplicas)
	}
	if _, err := c.Client.CoreV1().ServiceAccounts(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
		t.Errorf("ServiceAccount: %v", err)
	}
	for _, n := range []string{"ductbot-namespaces", "ductbot-environments"} {
		if _, err := c.Client.RbacV1().ClusterRoles().Get(ctx, n, metav1.GetOptions{}); err != nil {
			t.Errorf("ClusterRole %s: %v", n, err)
		}
		if _, err := c.Client.RbacV1().ClusterRoleBindings().Get(ctx, n, metav1.GetOptions{}); err != nil {
			t.Errorf("ClusterRoleBinding %s: %v", n, err)
		}
	}
	if _, err := c.Client.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, "ductbot-guard", metav1.GetOptions{}); err != nil {
		t.Errorf("ValidatingAdmissionPolicy: %v", err)
	}

	user := "system:serviceaccount:" + ns + ":" + name
	saKubeconfig := asServiceAccount(t, c.Kubeconfig, user)
	sa, err := k8s.New(k8s.Options{Kubeconfig: saKubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	cs := sa.Clientset()
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}

	// The guard is loaded asynchronously: wait until it refuses a write that
	// RBAC allows (a Deployment in "default"), so that everything below runs
	// with it in force.
	strayDeployment := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "stray"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "stray"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "stray"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}},
			},
		},
	}
	guardCtx, guardCancel := context.WithTimeout(ctx, 30*time.Second)
	err = waitFor(guardCtx, "the admission guard", func() (bool, error) {
		_, err := cs.AppsV1().Deployments("default").Create(guardCtx, strayDeployment, dry)
		return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "ductbot-guard"), err
	})
	guardCancel()
	if err != nil {
		t.Fatalf("a Deployment in default as %s: %v", user, err)
	}

	t.Run("ductbot's own work", func(t *testing.T) {
		const envNS, envName = "ductbot-rbac-env", "wf-rbac"
		labels := map[string]string{k8s.LabelManagedBy: k8s.ManagedBy, k8s.LabelEnv: envName}
		wf, err := loader.Load(exampleChart)
		if err != nil {
			t.Fatal(err)
		}
		env := k8s.Release{Name: envName, Namespace: envNS, Chart: wf, Labels: labels, Timeout: 2 * time.Minute,
			Values: map[string]any{"e2e": map[string]any{"simulate": map[string]any{"outcome": "pass", "log": "e2e: 4 passing"}}}}
		if err := sa.Deploy(ctx, env); err != nil {
			t.Fatalf("Deploy as %s: %v", user, err)
		}
		// Upgrade: patches existing objects and rewrites release records.
		if err := sa.Deploy(ctx, env); err != nil {
			t.Fatalf("Deploy (upgrade) as %s: %v", user, err)
		}
		res, err := sa.Test(ctx, envNS, envName, time.Minute)
		if err != nil {
			t.Fatalf("Test as %s: %v", user, err)
		}
		if !res.Passed || len(res.Pods) != 1 || !strings.Contains(res.Pods[0].Log, "e2e: 4 passing") {
			t.Errorf("Test as %s = %+v, want passed with the pod's log", user, res)
		}
		// What ductbot adds to each environment (issue 5): a quota, default
		// limits and an isolating network policy, created, changed, removed.
		meta := metav1.ObjectMeta{Name: "ductbot-limits", Labels: map[string]string{k8s.LabelManagedBy: k8s.ManagedBy}}
		quota := &corev1.ResourceQuota{ObjectMeta: meta, Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("20")}}}
		limits := &corev1.LimitRange{ObjectMeta: meta, Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
			Type: corev1.LimitTypeContainer, Default: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
		}}}}
		netpol := &networkingv1.NetworkPolicy{ObjectMeta: meta, Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}}}},
		}}
		for what, call := range map[string]func() error{
			"ResourceQuota": func() error {
				_, err := cs.CoreV1().ResourceQuotas(envNS).Create(ctx, quota, metav1.CreateOptions{})
				if err == nil {
					// The quota controller writes its status meanwhile.
					err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
						q, err := cs.CoreV1().ResourceQuotas(envNS).Get(ctx, meta.Name, metav1.GetOptions{})
						if err != nil {
							return err
						}
						q.Spec.Hard[corev1.ResourcePods] = resource.MustParse("30")
						_, err = cs.CoreV1().ResourceQuotas(envNS).Update(ctx, q, metav1.UpdateOptions{})
						return err
					})
				}
				return errors.Join(err, cs.CoreV1().ResourceQuotas(envNS).Delete(ctx, meta.Name, metav1.DeleteOptions{}))
			},
			"LimitRange": func() error {
				l, err := cs.CoreV1().LimitRanges(envNS).Create(ctx, limits, metav1.CreateOptions{})
				if err == nil {
					_, err = cs.CoreV1().LimitRanges(envNS).Update(ctx, l, metav1.UpdateOptions{})
				}
				return errors.Join(err, cs.CoreV1().LimitRanges(envNS).Delete(ctx, meta.Name, metav1.DeleteOptions{}))
			},
			"NetworkPolicy": func() error {
				n, err := cs.NetworkingV1().NetworkPolicies(envNS).Create(ctx, netpol, metav1.CreateOptions{})
				if err == nil {
					_, err = cs.NetworkingV1().NetworkPolicies(envNS).Update(ctx, n, metav1.UpdateOptions{})
				}
				return errors.Join(err, cs.NetworkingV1().NetworkPolicies(envNS).Delete(ctx, meta.Name, metav1.DeleteOptions{}))
			},
		} {
			if err := call(); err != nil {
				t.Errorf("%s in %s as %s: %v", what, envNS, user, err)
			}
		}
		if _, err := cs.CoreV1().Events(envNS).List(ctx, metav1.ListOptions{}); err != nil {
			t.Errorf("listing events as %s: %v", user, err)
		}
		nss, err := sa.Namespaces(ctx)
		if err != nil {
			t.Fatalf("Namespaces as %s: %v", user, err)
		}
		found := false
		for _, n := range nss {
			found = found || n.Name == envNS
		}
		if !found {
			t.Errorf("Namespaces as %s = %v, want %s among them", user, nss, envNS)
		}
		if _, err := sa.PendingReleases(ctx); err != nil {
			t.Errorf("PendingReleases as %s: %v", user, err)
		}

		// Inside its own environment ductbot still cannot hand out rights.
		rb := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "grab"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: ns}},
		}
		if _, err := cs.RbacV1().RoleBindings(envNS).Create(ctx, rb, dry); !apierrors.IsForbidden(err) {
			t.Errorf("creating a RoleBinding to cluster-admin as %s: err = %v, want Forbidden", user, err)
		}

		if err := sa.Teardown(ctx, envNS, envName, 2*time.Minute); err != nil {
			t.Fatalf("Teardown as %s: %v", user, err)
		}
		if _, err := c.Client.CoreV1().Namespaces().Get(ctx, envNS, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("namespace %s after Teardown: err = %v, want NotFound", envNS, err)
		}
	})

	t.Run("refused", func(t *testing.T) {
		// Someone else's namespace, with something in it.
		const other = "team-a"
		if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: other}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Client.NetworkingV1().NetworkPolicies(other).Create(ctx, &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "deny-all"}, Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		def, err := cs.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("reading namespace default as %s: %v", user, err)
		}
		def.Labels[k8s.LabelManagedBy] = k8s.ManagedBy
		bg := metav1.DeletePropagationBackground
		for what, call := range map[string]func() error{
			"creating a namespace without ductbot's label": func() error {
				_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "not-ours"}}, dry)
				return err
			},
			"adopting namespace default by labelling it": func() error {
				_, err := cs.CoreV1().Namespaces().Update(ctx, def, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
				return err
			},
			"deleting another team's namespace": func() error {
				return cs.CoreV1().Namespaces().Delete(ctx, other, metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}, PropagationPolicy: &bg})
			},
			"writing a Secret in kube-system": func() error {
				_, err := cs.CoreV1().Secrets("kube-system").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, dry)
				return err
			},
			"writing a ConfigMap in its own namespace": func() error {
				_, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, dry)
				return err
			},
			"deleting another team's NetworkPolicy": func() error {
				return cs.NetworkingV1().NetworkPolicies(other).Delete(ctx, "deny-all", metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
			},
		} {
			err := call()
			if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "ductbot-guard") {
				t.Errorf("%s as %s: err = %v, want Forbidden by the guard", what, user, err)
			}
		}
		// RBAC alone refuses these.
		for what, call := range map[string]func() error{
			"creating a ClusterRole": func() error {
				_, err := cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, dry)
				return err
			},
			"listing nodes": func() error {
				_, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
				return err
			},
			"patching a namespace": func() error {
				_, err := cs.CoreV1().Namespaces().Patch(ctx, "default", "application/merge-patch+json", []byte(`{}`), metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
				return err
			},
			"changing the admission guard": func() error {
				return cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(ctx, "ductbot-guard", metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
			},
			"creating a PersistentVolume": func() error {
				_, err := cs.CoreV1().PersistentVolumes().Create(ctx, &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, dry)
				return err
			},
		} {
			if err := call(); !apierrors.IsForbidden(err) {
				t.Errorf("%s as %s: err = %v, want Forbidden", what, user, err)
			}
		}
	})
}
