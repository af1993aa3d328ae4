package k8s

import (
	"context"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// InstanceOf is the ductbot instance that owns an object with these labels:
// the value of LabelInstance when present; DefaultInstance for an object
// labelled as ductbot's (LabelManagedBy) without it, as ductbots older than
// the label made them; "" for an object that is not ductbot's.
func InstanceOf(labels map[string]string) string {
	if v, ok := labels[LabelInstance]; ok {
		return v
	}
	if labels[LabelManagedBy] == ManagedBy {
		return DefaultInstance
	}
	return ""
}

// owns reports whether the object is this instance's. This is how every
// listing is scoped: it lists what is labelled LabelManagedBy=ManagedBy and
// keeps only what InstanceOf gives this instance, so objects without
// LabelInstance belong to DefaultInstance and to no other instance.
func (c *Client) owns(labels map[string]string) bool {
	return labels[LabelManagedBy] == ManagedBy && InstanceOf(labels) == c.opts.Instance
}

// foreign is ErrForeignInstance, naming both instances, when the object is
// another instance's; nil for this instance's objects and for objects that
// are no ductbot's.
func (c *Client) foreign(kind, name string, labels map[string]string) error {
	if owner := InstanceOf(labels); owner != "" && owner != c.opts.Instance {
		return fmt.Errorf("%s %s %w: it is ductbot instance %q's, and this is instance %q", kind, name, ErrForeignInstance, owner, c.opts.Instance)
	}
	return nil
}

// stamp returns a copy of labels with ductbot's ownership labels, which the
// caller's cannot override: LabelManagedBy=ManagedBy and
// LabelInstance=<instance>.
func (c *Client) stamp(labels map[string]string) map[string]string {
	out := make(map[string]string, len(labels)+2)
	maps.Copy(out, labels)
	out[LabelManagedBy] = ManagedBy
	out[LabelInstance] = c.opts.Instance
	return out
}

// stampOnto sets ductbot's ownership labels (see stamp) on labels, keeping
// the others.
func (c *Client) stampOnto(labels map[string]string) map[string]string {
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelManagedBy] = ManagedBy
	labels[LabelInstance] = c.opts.Instance
	return labels
}

// checkNamespace reads the namespace and refuses it when it is another
// instance's. A missing namespace is (nil, nil).
func (c *Client) checkNamespace(ctx context.Context, namespace string) (*corev1.Namespace, error) {
	ns, err := c.clientset.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: reading namespace %s: %v", ErrUnreachable, namespace, err)
	}
	if err := c.foreign("namespace", namespace, ns.Labels); err != nil {
		return nil, err
	}
	return ns, nil
}
