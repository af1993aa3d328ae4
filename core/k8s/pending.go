package k8s

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/metadata"
)

// PendingRelease is a Helm release revision recorded as still in progress
// (pending-install, pending-upgrade or pending-rollback).
type PendingRelease struct {
	Namespace string
	Name      string // the release name
	Status    string // pending-install, pending-upgrade or pending-rollback
	Revision  int
	// Since is when Helm last wrote the revision: its modifiedAt label,
	// else its createdAt label, else the Secret's creation time.
	Since time.Time
}

// pendingSelector selects the release records (Secrets, Helm's storage
// driver) of ductbot's releases that are in a pending state. Deploy passes
// its labels (LabelManagedBy, LabelInstance and the caller's) to Helm, which
// copies them onto the records; PendingReleases then keeps this instance's.
const pendingSelector = "owner=helm,status in (pending-install,pending-upgrade,pending-rollback)," +
	LabelManagedBy + "=" + ManagedBy

// PendingReleases lists the pending revisions of every release this ductbot
// instance manages, across all namespaces: records labelled
// LabelManagedBy=ManagedBy whose LabelInstance is this client's instance or,
// for DefaultInstance only, absent (see Namespaces); another instance's
// releases are never listed. Only a release's latest revision counts:
// Helm's rollback leaves the interrupted revision marked pending under the
// newer one, and such a leftover is not reported. It reads only the
// records' metadata, with one request when nothing is pending and two when
// something is (the second reads the revisions of just those releases),
// whatever the number of releases; it needs permission to list Secrets
// cluster-wide. It does not decide whether a release is stuck or still
// being worked on: the caller compares Since with how long an operation may
// take, and calls Repair. Sorted by namespace, then name.
func (c *Client) PendingReleases(ctx context.Context) ([]PendingRelease, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	mc, err := metadata.NewForConfig(c.rest)
	if err != nil {
		return nil, fmt.Errorf("building a metadata client: %w", err)
	}
	secrets := mc.Resource(corev1.SchemeGroupVersion.WithResource("secrets")).Namespace(metav1.NamespaceAll)
	list, err := secrets.List(ctx, metav1.ListOptions{LabelSelector: pendingSelector})
	if err != nil {
		return nil, fmt.Errorf("%w: listing pending Helm releases: %v", ErrUnreachable, err)
	}

	type key struct{ namespace, name string }
	pending := make(map[key]PendingRelease, len(list.Items))
	names := map[string]bool{}
	for _, s := range list.Items {
		l := s.Labels
		if !c.owns(l) {
			continue
		}
		rev, err := strconv.Atoi(l["version"])
		if err != nil {
			c.log.Warn("Helm release record without a usable version label", "namespace", s.Namespace, "secret", s.Name, "version", l["version"])
		}
		k := key{s.Namespace, l["name"]}
		if p, ok := pending[k]; ok && p.Revision > rev {
			continue
		}
		pending[k] = PendingRelease{Namespace: s.Namespace, Name: l["name"], Status: l["status"], Revision: rev,
			Since: pendingSince(l, s.CreationTimestamp.Time)}
		names[l["name"]] = true
	}
	if len(pending) == 0 {
		return nil, nil
	}

	// Drop pending revisions that a newer revision of the same release has
	// superseded.
	sel := "owner=helm," + LabelManagedBy + "=" + ManagedBy + ",name in (" + strings.Join(sortedKeys(names), ",") + ")"
	all, err := secrets.List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("%w: listing the revisions of pending Helm releases: %v", ErrUnreachable, err)
	}
	for _, s := range all.Items {
		if !c.owns(s.Labels) {
			continue
		}
		k := key{s.Namespace, s.Labels["name"]}
		p, ok := pending[k]
		if !ok {
			continue
		}
		if rev, err := strconv.Atoi(s.Labels["version"]); err == nil && rev > p.Revision {
			delete(pending, k)
		}
	}

	out := make([]PendingRelease, 0, len(pending))
	for _, p := range pending {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// pendingSince reads Helm's modifiedAt or createdAt label (Unix seconds),
// falling back to the Secret's creation time.
func pendingSince(labels map[string]string, created time.Time) time.Time {
	for _, key := range []string{"modifiedAt", "createdAt"} {
		if v, ok := labels[key]; ok {
			if sec, err := strconv.ParseInt(v, 10, 64); err == nil && sec > 0 {
				return time.Unix(sec, 0).UTC()
			}
		}
	}
	return created.UTC()
}
