package k8s

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
// driver) of ductbot's releases that are in a pending state. The engine
// passes its labels to Helm, which copies them onto the records.
const pendingSelector = "owner=helm,status in (pending-install,pending-upgrade,pending-rollback)," +
	LabelManagedBy + "=" + ManagedBy

// PendingReleases lists the pending revisions of every release ductbot
// manages, across all namespaces, with one request whatever the number of
// releases (it needs permission to list Secrets cluster-wide). It does not
// decide whether a release is stuck or still being worked on: the caller
// compares Since with how long an operation may take, and calls Repair.
// Sorted by namespace, then name.
func (c *Client) PendingReleases(ctx context.Context) ([]PendingRelease, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	list, err := c.clientset.CoreV1().Secrets(metav1.NamespaceAll).List(ctx, metav1.ListOptions{LabelSelector: pendingSelector})
	if err != nil {
		return nil, fmt.Errorf("%w: listing pending Helm releases: %v", ErrUnreachable, err)
	}
	out := make([]PendingRelease, 0, len(list.Items))
	for _, s := range list.Items {
		l := s.Labels
		rev, err := strconv.Atoi(l["version"])
		if err != nil {
			c.log.Warn("Helm release record without a usable version label", "namespace", s.Namespace, "secret", s.Name, "version", l["version"])
		}
		out = append(out, PendingRelease{
			Namespace: s.Namespace,
			Name:      l["name"],
			Status:    l["status"],
			Revision:  rev,
			Since:     pendingSince(l, s.CreationTimestamp.Time),
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Revision < out[j].Revision
	})
	return out, nil
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
