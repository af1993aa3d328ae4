package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/ductbot/ductbot/core/k8s/diagnose"
)

// AnnotationReplicas is set on each Deployment and StatefulSet of a sleeping
// environment: the replicas it had before Sleep scaled it to 0. Wake
// restores them and removes it.
const AnnotationReplicas = "ductbot.dev/replicas"

// scalable is one Deployment or StatefulSet, as far as sleep cares.
type scalable struct {
	kind, name  string
	replicas    int32 // spec.replicas (1 when unset, as the API defaults it)
	annotations map[string]string
	ready       int32
	generation  int64
	observed    int64
}

func (c *Client) scalables(ctx context.Context, namespace string) ([]scalable, error) {
	ns, err := c.checkNamespace(ctx, namespace)
	if err != nil {
		return nil, err
	}
	if ns == nil {
		return nil, fmt.Errorf("namespace %s does not exist", namespace)
	}
	var out []scalable
	deps, err := c.clientset.AppsV1().Deployments(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("%w: listing deployments in %s: %v", ErrUnreachable, namespace, err)
	}
	for _, d := range deps.Items {
		out = append(out, scalable{kind: "Deployment", name: d.Name, replicas: replicasOf(d.Spec.Replicas),
			annotations: d.Annotations, ready: d.Status.ReadyReplicas, generation: d.Generation, observed: d.Status.ObservedGeneration})
	}
	sets, err := c.clientset.AppsV1().StatefulSets(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("%w: listing statefulsets in %s: %v", ErrUnreachable, namespace, err)
	}
	for _, s := range sets.Items {
		out = append(out, scalable{kind: "StatefulSet", name: s.Name, replicas: replicasOf(s.Spec.Replicas),
			annotations: s.Annotations, ready: s.Status.ReadyReplicas, generation: s.Generation, observed: s.Status.ObservedGeneration})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].kind+"/"+out[i].name < out[j].kind+"/"+out[j].name })
	return out, nil
}

func replicasOf(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

// patch applies one merge patch to a Deployment or StatefulSet: replicas
// and the annotation change together, so that a crash leaves each object
// either untouched or done.
func (c *Client) patchScalable(ctx context.Context, namespace string, s scalable, replicas int32, annotation *string) error {
	body, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]any{AnnotationReplicas: annotation}},
		"spec":     map[string]any{"replicas": replicas},
	})
	if err != nil {
		return err
	}
	switch s.kind {
	case "Deployment":
		_, err = c.clientset.AppsV1().Deployments(namespace).Patch(ctx, s.name, types.MergePatchType, body, metav1.PatchOptions{})
	default:
		_, err = c.clientset.AppsV1().StatefulSets(namespace).Patch(ctx, s.name, types.MergePatchType, body, metav1.PatchOptions{})
	}
	if err != nil {
		return fmt.Errorf("scaling %s %s/%s to %d: %w", s.kind, namespace, s.name, replicas, err)
	}
	return nil
}

// Sleep scales every Deployment and StatefulSet in the namespace to 0 and
// remembers each one's replicas in AnnotationReplicas on the object. The
// Helm release is not touched. It is idempotent: objects already asleep
// (annotated) keep their remembered replicas, so a Sleep interrupted half way
// is finished by calling it again.
func (c *Client) Sleep(ctx context.Context, namespace string) error {
	objs, err := c.scalables(ctx, namespace)
	if err != nil {
		return err
	}
	for _, s := range objs {
		if _, ok := s.annotations[AnnotationReplicas]; ok && s.replicas == 0 {
			continue // asleep already
		}
		// Awake, or annotated but scaled up again since (a deploy): remember
		// what it runs now.
		v := strconv.Itoa(int(s.replicas))
		if err := c.patchScalable(ctx, namespace, s, 0, &v); err != nil {
			return err
		}
	}
	return nil
}

// Wake restores the replicas Sleep remembered, removes the annotations, and
// waits up to timeout until every Deployment and StatefulSet in the
// namespace is ready. It is idempotent: objects without the annotation are
// left as they are.
func (c *Client) Wake(ctx context.Context, namespace string, timeout time.Duration) error {
	objs, err := c.scalables(ctx, namespace)
	if err != nil {
		return err
	}
	for _, s := range objs {
		v, ok := s.annotations[AnnotationReplicas]
		if !ok {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			n = 1
		}
		if err := c.patchScalable(ctx, namespace, s, int32(n), nil); err != nil {
			return err
		}
	}
	start := time.Now()
	var notReady []string
	err = wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		objs, err := c.scalables(ctx, namespace)
		if err != nil {
			return false, err
		}
		notReady = notReady[:0]
		for _, s := range objs {
			if s.observed < s.generation || s.ready < s.replicas {
				notReady = append(notReady, fmt.Sprintf("%s %s (%d/%d ready)", s.kind, s.name, s.ready, s.replicas))
			}
		}
		return len(notReady) == 0, nil
	})
	if err != nil {
		if len(notReady) > 0 {
			err = fmt.Errorf("waking %s: not ready after %s: %s", namespace, timeout, strings.Join(notReady, ", "))
		} else {
			err = fmt.Errorf("waking %s: %w", namespace, err)
		}
		// Explain it as a failed deploy is explained: which component,
		// why, its events and last log lines.
		snap, serr := c.snapshotNow(namespace, start)
		if serr != nil {
			return err
		}
		return c.failure(namespace, diagnose.Explain(snap, diagnose.Policy{}, time.Now()), err)
	}
	return nil
}

// Asleep reports whether any Deployment or StatefulSet in the namespace
// carries AnnotationReplicas (is asleep, or was left half way).
func (c *Client) Asleep(ctx context.Context, namespace string) (bool, error) {
	objs, err := c.scalables(ctx, namespace)
	if err != nil {
		return false, err
	}
	for _, s := range objs {
		if _, ok := s.annotations[AnnotationReplicas]; ok {
			return true, nil
		}
	}
	return false, nil
}
