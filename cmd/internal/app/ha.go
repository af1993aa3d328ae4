package app

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ductbot/ductbot/config"
	"github.com/ductbot/ductbot/core/k8s"
	"github.com/ductbot/ductbot/core/leader"
)

// serviceAccountNamespace is where a pod finds its own namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// newElector makes the leader elector ha asks for, on a Lease in the
// cluster ductbot deploys to; nil when ha is off. The timings are
// ha.lease_duration, ha.renew_deadline and ha.retry_period (base's where
// the configuration leaves one 0); base sets the identity and logger, and
// tests may give the Lease a client of its own.
func newElector(cfg *config.Config, cluster *k8s.Client, base leader.Options) (*leader.Elector, error) {
	if !cfg.HA.Enabled {
		return nil, nil
	}
	ns := cfg.HA.LeaseNamespace
	if ns == "" {
		ns = podNamespace()
	}
	if ns == "" {
		return nil, errors.New("ha.lease_namespace: not set, and ductbot does not run in a pod (no " +
			serviceAccountNamespace + ", no $POD_NAMESPACE): name the namespace of the Lease")
	}
	o := base
	if o.Client == nil {
		o.Client = cluster.Clientset()
	}
	o.Namespace, o.Name = ns, cfg.HA.LeaseName
	if d := cfg.HA.LeaseDuration.D(); d > 0 {
		o.LeaseDuration = d
	}
	if d := cfg.HA.RenewDeadline.D(); d > 0 {
		o.RenewDeadline = d
	}
	if d := cfg.HA.RetryPeriod.D(); d > 0 {
		o.RetryPeriod = d
	}
	o.Labels = map[string]string{k8s.LabelManagedBy: "ductbot", k8s.LabelInstance: cfg.Kubernetes.Instance}
	e, err := leader.New(o)
	if err != nil {
		return nil, fmt.Errorf("ha: %w", err)
	}
	return e, nil
}

// podNamespace is the namespace of the pod ductbot runs in, "" outside one.
func podNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	b, err := os.ReadFile(serviceAccountNamespace)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
