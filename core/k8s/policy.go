package k8s

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PolicyObjectName is the name of the ResourceQuota, LimitRange and
// NetworkPolicy ApplyNamespacePolicy manages in each namespace.
const PolicyObjectName = "ductbot"

// LabelIngress, set to "true" on a namespace (the ingress controller's),
// lets it reach the pods of isolated environments.
const LabelIngress = "ductbot.dev/ingress"

// NamespacePolicy bounds what one environment's namespace may use and whom
// it may talk to, so that one environment cannot starve or reach the rest.
// Quantities are Kubernetes quantities ("500m", "2", "1Gi"). The zero value
// applies nothing and removes what an earlier policy applied.
type NamespacePolicy struct {
	// Quota is the ResourceQuota's hard limits, by resource name, such as
	// "requests.cpu": "2", "limits.memory": "4Gi", "pods": "20".
	Quota map[string]string
	// DefaultRequests and DefaultLimits are the LimitRange's defaults for
	// containers that set none (a quota on requests.* or limits.* refuses
	// pods without them).
	DefaultRequests map[string]string
	DefaultLimits   map[string]string
	// Isolate adds a NetworkPolicy that admits ingress only from pods in the
	// same namespace and from namespaces labelled LabelIngress=true, and
	// allows all egress.
	Isolate bool
}

// Validate reports every quantity that does not parse, naming its field
// and resource, so configuration can be checked when it loads.
func (p NamespacePolicy) Validate() error {
	var errs []error
	check := func(field string, m map[string]string) {
		for _, name := range slices.Sorted(maps.Keys(m)) {
			if name == "" {
				errs = append(errs, fmt.Errorf("%s: empty resource name", field))
				continue
			}
			if _, err := resource.ParseQuantity(m[name]); err != nil {
				errs = append(errs, fmt.Errorf("%s[%q]: %q is not a Kubernetes quantity (such as 500m, 2, 1Gi): %w", field, name, m[name], err))
			}
		}
	}
	check("quota", p.Quota)
	check("default_requests", p.DefaultRequests)
	check("default_limits", p.DefaultLimits)
	return errors.Join(errs...)
}

// resourceList converts validated quantities.
func resourceList(m map[string]string) corev1.ResourceList {
	if len(m) == 0 {
		return nil
	}
	out := make(corev1.ResourceList, len(m))
	for name, q := range m {
		out[corev1.ResourceName(name)] = resource.MustParse(q)
	}
	return out
}

// ApplyNamespacePolicy makes the namespace's ResourceQuota, LimitRange and
// NetworkPolicy (each named PolicyObjectName and labelled as ductbot's and
// this instance's)
// match p: it creates or updates the parts p sets and deletes the parts it
// leaves empty. An invalid p changes nothing. It does not create the
// namespace (EnsureNamespace does) and does not decide the policy: config
// does.
func (c *Client) ApplyNamespacePolicy(ctx context.Context, namespace string, p NamespacePolicy) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("namespace policy for %s: %w", namespace, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	meta := metav1.ObjectMeta{Name: PolicyObjectName, Namespace: namespace, Labels: c.stamp(nil)}
	var errs []error

	quotas := c.clientset.CoreV1().ResourceQuotas(namespace)
	if len(p.Quota) == 0 {
		errs = append(errs, deleteIfPresent("ResourceQuota", namespace, quotas.Delete(ctx, PolicyObjectName, metav1.DeleteOptions{})))
	} else {
		spec := corev1.ResourceQuotaSpec{Hard: resourceList(p.Quota)}
		cur, err := quotas.Get(ctx, PolicyObjectName, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = quotas.Create(ctx, &corev1.ResourceQuota{ObjectMeta: meta, Spec: spec}, metav1.CreateOptions{})
		case err == nil:
			cur.Spec, cur.Labels = spec, c.stampOnto(cur.Labels)
			_, err = quotas.Update(ctx, cur, metav1.UpdateOptions{})
		}
		errs = append(errs, wrapPolicy("ResourceQuota", namespace, err))
	}

	limits := c.clientset.CoreV1().LimitRanges(namespace)
	if len(p.DefaultRequests) == 0 && len(p.DefaultLimits) == 0 {
		errs = append(errs, deleteIfPresent("LimitRange", namespace, limits.Delete(ctx, PolicyObjectName, metav1.DeleteOptions{})))
	} else {
		spec := corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
			Type:           corev1.LimitTypeContainer,
			Default:        resourceList(p.DefaultLimits),
			DefaultRequest: resourceList(p.DefaultRequests),
		}}}
		cur, err := limits.Get(ctx, PolicyObjectName, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = limits.Create(ctx, &corev1.LimitRange{ObjectMeta: meta, Spec: spec}, metav1.CreateOptions{})
		case err == nil:
			cur.Spec, cur.Labels = spec, c.stampOnto(cur.Labels)
			_, err = limits.Update(ctx, cur, metav1.UpdateOptions{})
		}
		errs = append(errs, wrapPolicy("LimitRange", namespace, err))
	}

	netpols := c.clientset.NetworkingV1().NetworkPolicies(namespace)
	if !p.Isolate {
		errs = append(errs, deleteIfPresent("NetworkPolicy", namespace, netpols.Delete(ctx, PolicyObjectName, metav1.DeleteOptions{})))
	} else {
		spec := isolation()
		cur, err := netpols.Get(ctx, PolicyObjectName, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = netpols.Create(ctx, &networkingv1.NetworkPolicy{ObjectMeta: meta, Spec: spec}, metav1.CreateOptions{})
		case err == nil:
			cur.Spec, cur.Labels = spec, c.stampOnto(cur.Labels)
			_, err = netpols.Update(ctx, cur, metav1.UpdateOptions{})
		}
		errs = append(errs, wrapPolicy("NetworkPolicy", namespace, err))
	}
	return errors.Join(errs...)
}

// isolation admits ingress from the namespace's own pods and from
// namespaces labelled LabelIngress=true, and allows every egress.
func isolation() networkingv1.NetworkPolicySpec {
	return networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{},
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		Ingress: []networkingv1.NetworkPolicyIngressRule{{
			From: []networkingv1.NetworkPolicyPeer{
				{PodSelector: &metav1.LabelSelector{}},
				{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{LabelIngress: "true"}}},
			},
		}},
		Egress: []networkingv1.NetworkPolicyEgressRule{{}},
	}
}

func wrapPolicy(kind, namespace string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("applying %s %s/%s: %w", kind, namespace, PolicyObjectName, err)
}

func deleteIfPresent(kind, namespace string, err error) error {
	if err == nil || apierrors.IsNotFound(err) {
		return nil
	}
	return fmt.Errorf("removing %s %s/%s: %w", kind, namespace, PolicyObjectName, err)
}
