package k8s_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ductbot/ductbot/core/k8s"
)

func TestNamespacePolicyValidate(t *testing.T) {
	tests := []struct {
		name string
		p    k8s.NamespacePolicy
		want []string // substrings of the error; none: valid
	}{
		{name: "zero", p: k8s.NamespacePolicy{}},
		{name: "valid", p: k8s.NamespacePolicy{
			Quota:           map[string]string{"requests.cpu": "2", "limits.memory": "4Gi", "pods": "20"},
			DefaultRequests: map[string]string{"cpu": "100m", "memory": "128Mi"},
			DefaultLimits:   map[string]string{"cpu": "500m"},
			Isolate:         true,
		}},
		{name: "every bad quantity named", p: k8s.NamespacePolicy{
			Quota:           map[string]string{"requests.cpu": "two", "pods": "20"},
			DefaultRequests: map[string]string{"memory": "128MB"},
			DefaultLimits:   map[string]string{"": "1"},
		}, want: []string{`quota["requests.cpu"]: "two"`, `default_requests["memory"]: "128MB"`, "default_limits: empty resource name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error naming %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to mention %q", err, w)
				}
			}
		})
	}
}

// TestApplyNamespacePolicy: the quota and the container defaults are
// enforced by the real API server, the NetworkPolicy has the intended
// peers, a changed policy updates the objects, an empty one removes them,
// and an invalid one changes nothing.
func TestApplyNamespacePolicy(t *testing.T) {
	kc, c, _ := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const ns = "ductbot-policy"
	if err := kc.EnsureNamespace(ctx, ns, map[string]string{k8s.LabelManagedBy: k8s.ManagedBy}, nil); err != nil {
		t.Fatal(err)
	}
	defer kc.DeleteNamespace(context.Background(), ns, time.Minute)

	p := k8s.NamespacePolicy{
		Quota:           map[string]string{"pods": "1", "requests.cpu": "1"},
		DefaultRequests: map[string]string{"cpu": "100m"},
		DefaultLimits:   map[string]string{"cpu": "200m", "memory": "64Mi"},
		Isolate:         true,
	}
	if err := kc.ApplyNamespacePolicy(ctx, ns, p); err != nil {
		t.Fatalf("ApplyNamespacePolicy: %v", err)
	}
	if err := kc.ApplyNamespacePolicy(ctx, ns, p); err != nil {
		t.Fatalf("ApplyNamespacePolicy again (update in place): %v", err)
	}
	waitQuotaStatus(ctx, t, c.Client, ns)

	// LimitRange defaults are applied at admission; the quota counts pods.
	pod, err := c.Client.CoreV1().Pods(ns).Create(ctx, bareCPod("first"), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating the first pod: %v", err)
	}
	res := pod.Spec.Containers[0].Resources
	if got := res.Requests[corev1.ResourceCPU]; got.Cmp(resource.MustParse("100m")) != 0 {
		t.Errorf("default cpu request = %s, want 100m from the LimitRange", got.String())
	}
	if got := res.Limits[corev1.ResourceMemory]; got.Cmp(resource.MustParse("64Mi")) != 0 {
		t.Errorf("default memory limit = %s, want 64Mi from the LimitRange", got.String())
	}
	if _, err := c.Client.CoreV1().Pods(ns).Create(ctx, bareCPod("second"), metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("a second pod over the quota of 1: err = %v, want Forbidden", err)
	}

	np, err := c.Client.NetworkingV1().NetworkPolicies(ns).Get(ctx, k8s.PolicyObjectName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("NetworkPolicy: %v", err)
	}
	if np.Labels[k8s.LabelManagedBy] != k8s.ManagedBy {
		t.Errorf("NetworkPolicy labels = %v, want managed-by ductbot", np.Labels)
	}
	if len(np.Spec.PolicyTypes) != 2 || len(np.Spec.Egress) != 1 || len(np.Spec.Egress[0].To) != 0 {
		t.Errorf("NetworkPolicy = %+v, want ingress and egress types with all egress allowed", np.Spec)
	}
	if len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].From) != 2 ||
		np.Spec.Ingress[0].From[0].PodSelector == nil || np.Spec.Ingress[0].From[0].NamespaceSelector != nil ||
		np.Spec.Ingress[0].From[1].NamespaceSelector.MatchLabels[k8s.LabelIngress] != "true" {
		t.Errorf("NetworkPolicy ingress = %+v, want same namespace and %s=true namespaces", np.Spec.Ingress, k8s.LabelIngress)
	}

	// A changed policy updates the quota in place.
	p.Quota = map[string]string{"pods": "5"}
	if err := kc.ApplyNamespacePolicy(ctx, ns, p); err != nil {
		t.Fatal(err)
	}
	q, err := c.Client.CoreV1().ResourceQuotas(ns).Get(ctx, k8s.PolicyObjectName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := q.Spec.Hard[corev1.ResourcePods]; got.Value() != 5 || len(q.Spec.Hard) != 1 {
		t.Errorf("quota after update = %v, want only pods=5", q.Spec.Hard)
	}

	// Invalid: an error naming the field, and nothing changes.
	bad := k8s.NamespacePolicy{Quota: map[string]string{"pods": "lots"}}
	if err := kc.ApplyNamespacePolicy(ctx, ns, bad); err == nil || !strings.Contains(err.Error(), `quota["pods"]`) {
		t.Errorf("invalid policy: err = %v, want one naming quota[\"pods\"]", err)
	}
	if _, err := c.Client.CoreV1().LimitRanges(ns).Get(ctx, k8s.PolicyObjectName, metav1.GetOptions{}); err != nil {
		t.Errorf("LimitRange after an invalid policy: %v, want it untouched", err)
	}

	// Empty: everything removed; again: nothing to remove is fine.
	for range 2 {
		if err := kc.ApplyNamespacePolicy(ctx, ns, k8s.NamespacePolicy{}); err != nil {
			t.Fatalf("empty policy: %v", err)
		}
	}
	if _, err := c.Client.CoreV1().ResourceQuotas(ns).Get(ctx, k8s.PolicyObjectName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("ResourceQuota after an empty policy: err = %v, want NotFound", err)
	}
	if _, err := c.Client.CoreV1().LimitRanges(ns).Get(ctx, k8s.PolicyObjectName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("LimitRange after an empty policy: err = %v, want NotFound", err)
	}
	if _, err := c.Client.NetworkingV1().NetworkPolicies(ns).Get(ctx, k8s.PolicyObjectName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("NetworkPolicy after an empty policy: err = %v, want NotFound", err)
	}
}

func bareCPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example.org/c:1"}}},
	}
}

// waitQuotaStatus waits until the quota controller has computed the quota's
// usage: until then the API server refuses every pod in the namespace.
func waitQuotaStatus(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns string) {
	t.Helper()
	for {
		q, err := cs.CoreV1().ResourceQuotas(ns).Get(ctx, k8s.PolicyObjectName, metav1.GetOptions{})
		if err == nil && len(q.Status.Hard) > 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("quota status never computed: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
