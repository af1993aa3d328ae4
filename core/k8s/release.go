package k8s

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Release is what to deploy: one chart with its values into one namespace.
type Release struct {
	Name      string // DNS-1123, at most 53 characters
	Namespace string
	Chart     *chart.Chart
	Values    map[string]any
	// Labels go on the namespace and on Helm's release record.
	Labels map[string]string
	// Annotations go on the namespace.
	Annotations map[string]string
	// Timeout bounds the install or upgrade including the wait for readiness.
	Timeout time.Duration
	// Policy is applied to the namespace before the chart goes in.
	Policy NamespacePolicy
}

// Deploy installs the release, or upgrades it in place when it exists, and
// waits until its resources are ready. It creates the namespace (with the
// labels) when missing and first repairs a release left pending by an
// interrupted operation. It does not decide names, values or retries: the
// caller does. On failure the error carries the last lines of Helm's log.
func (c *Client) Deploy(ctx context.Context, rel Release) error {
	if rel.Chart == nil {
		return errors.New("deploy: no chart")
	}
	if err := c.EnsureNamespace(ctx, rel.Namespace, rel.Labels, rel.Annotations); err != nil {
		return err
	}
	if err := c.ApplyNamespacePolicy(ctx, rel.Namespace, rel.Policy); err != nil {
		return err
	}
	return c.withRelease(ctx, rel.Namespace, rel.Name, func() error {
		if _, err := c.recoverPending(rel.Namespace, rel.Name, rel.Timeout); err != nil {
			return err
		}
		cfg, hl, err := c.actionConfig(rel.Namespace)
		if err != nil {
			return err
		}
		_, err = action.NewHistory(cfg).Run(rel.Name)
		switch {
		case errors.Is(err, driver.ErrReleaseNotFound):
			in := action.NewInstall(cfg)
			in.ReleaseName, in.Namespace = rel.Name, rel.Namespace
			in.Wait, in.Timeout = true, rel.Timeout
			in.Labels = rel.Labels
			_, err = in.RunWithContext(ctx, rel.Chart, rel.Values)
			if err != nil {
				return fmt.Errorf("helm install %s in %s: %w\n%s", rel.Name, rel.Namespace, err, hl.tail(10))
			}
		case err != nil:
			return fmt.Errorf("reading the history of release %s in %s: %w", rel.Name, rel.Namespace, err)
		default:
			up := action.NewUpgrade(cfg)
			up.Namespace = rel.Namespace
			up.Wait, up.Timeout = true, rel.Timeout
			up.Labels = rel.Labels
			up.MaxHistory = 10
			_, err = up.RunWithContext(ctx, rel.Name, rel.Chart, rel.Values)
			if err != nil {
				return fmt.Errorf("helm upgrade %s in %s: %w\n%s", rel.Name, rel.Namespace, err, hl.tail(10))
			}
		}
		return nil
	})
}

// Repair recovers a release stuck in pending-install, pending-upgrade or
// pending-rollback (an operation was interrupted): the first revision is
// uninstalled, a later one rolled back to the last deployed revision.
// It reports whether anything was repaired. Callers decide when a pending
// release is stuck rather than in progress; Deploy repairs before it starts.
func (c *Client) Repair(ctx context.Context, namespace, name string, timeout time.Duration) (bool, error) {
	var repaired bool
	err := c.withRelease(ctx, namespace, name, func() error {
		var err error
		repaired, err = c.recoverPending(namespace, name, timeout)
		return err
	})
	return repaired, err
}

func (c *Client) recoverPending(namespace, name string, timeout time.Duration) (bool, error) {
	cfg, hl, err := c.actionConfig(namespace)
	if err != nil {
		return false, err
	}
	last, err := cfg.Releases.Last(name)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading release %s in %s: %w", name, namespace, err)
	}
	if !last.Info.Status.IsPending() {
		return false, nil
	}
	c.log.Warn("repairing a release left pending", "namespace", namespace, "release", name,
		"status", last.Info.Status, "revision", last.Version)
	if last.Version == 1 {
		un := action.NewUninstall(cfg)
		un.Wait, un.Timeout = true, timeout
		if _, err := un.Run(name); err != nil {
			return false, fmt.Errorf("uninstalling release %s in %s stuck in %s: %w\n%s", name, namespace, last.Info.Status, err, hl.tail(10))
		}
		return true, nil
	}
	rb := action.NewRollback(cfg)
	rb.Wait, rb.Timeout = true, timeout
	rb.Version = lastDeployed(cfg, name)
	if err := rb.Run(name); err != nil {
		return false, fmt.Errorf("rolling back release %s in %s stuck in %s: %w\n%s", name, namespace, last.Info.Status, err, hl.tail(10))
	}
	return true, nil
}

// lastDeployed is the newest revision that reached "deployed" or
// "superseded", or 0 (Helm's "previous revision") when there is none.
func lastDeployed(cfg *action.Configuration, name string) int {
	hist, err := cfg.Releases.History(name)
	if err != nil {
		return 0
	}
	sort.Slice(hist, func(i, j int) bool { return hist[i].Version > hist[j].Version })
	for _, r := range hist {
		if r.Info.Status == release.StatusDeployed || r.Info.Status == release.StatusSuperseded {
			return r.Version
		}
	}
	return 0
}

// ReleaseInfo is the state of a release as Helm records it.
type ReleaseInfo struct {
	Status   release.Status
	Revision int
	Updated  time.Time
}

// Status reads the last revision of a release; ErrReleaseNotFound when none.
func (c *Client) Status(ctx context.Context, namespace, name string) (ReleaseInfo, error) {
	if err := ctx.Err(); err != nil {
		return ReleaseInfo{}, err
	}
	cfg, _, err := c.actionConfig(namespace)
	if err != nil {
		return ReleaseInfo{}, err
	}
	last, err := cfg.Releases.Last(name)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return ReleaseInfo{}, fmt.Errorf("%w: %s in %s", ErrReleaseNotFound, name, namespace)
	}
	if err != nil {
		return ReleaseInfo{}, fmt.Errorf("reading release %s in %s: %w", name, namespace, err)
	}
	return ReleaseInfo{Status: last.Info.Status, Revision: last.Version, Updated: last.Info.LastDeployed.Time}, nil
}

// PodLog is the log of one test pod.
type PodLog struct {
	Pod   string
	Phase string // Succeeded, Failed, or Unknown when Helm did not record it
	Log   string
}

// TestResult is the outcome of a release's tests.
type TestResult struct {
	Passed bool
	Pods   []PodLog
	// Detail says which test failed and why, when one did.
	Detail string
}

// Test runs the release's `helm test` hooks and collects every test pod's
// log: through Helm's hook-output capture for pods whose chart asks for it
// (helm.sh/hook-output-log-policy; such pods may be deleted on success), and
// through the SDK's test-log collection for pods that are still there.
//
// A test that ran and failed is a result (Passed false, no error). An error
// means the tests could not be run or judged: the release is missing, the
// cluster is unreachable, or a test pod did not finish within timeout.
func (c *Client) Test(ctx context.Context, namespace, name string, timeout time.Duration) (*TestResult, error) {
	var res *TestResult
	err := c.withRelease(ctx, namespace, name, func() error {
		var err error
		res, err = c.test(namespace, name, timeout)
		return err
	})
	return res, err
}

func (c *Client) test(namespace, name string, timeout time.Duration) (*TestResult, error) {
	cfg, hl, err := c.actionConfig(namespace)
	if err != nil {
		return nil, err
	}
	captured := &capture{logs: map[string]*bytes.Buffer{}}
	cfg.SetHookOutputFunc(captured.writer)
	rt := action.NewReleaseTesting(cfg)
	rt.Namespace, rt.Timeout = namespace, timeout
	rel, runErr := rt.Run(name)
	if rel == nil {
		if errors.Is(runErr, driver.ErrReleaseNotFound) {
			return nil, fmt.Errorf("%w: %s in %s", ErrReleaseNotFound, name, namespace)
		}
		return nil, fmt.Errorf("helm test %s in %s: %w\n%s", name, namespace, runErr, hl.tail(10))
	}

	res := &TestResult{Passed: runErr == nil}
	var failed []string
	for _, h := range rel.Hooks {
		if !isTestHook(h) {
			continue
		}
		pl := PodLog{Pod: h.Name, Phase: string(h.LastRun.Phase)}
		if pl.Phase == "" {
			pl.Phase = "Unknown"
		}
		if h.LastRun.Phase == release.HookPhaseFailed {
			failed = append(failed, h.Name)
		}
		if log, ok := captured.get(h.Name); ok {
			pl.Log = log
		} else if h.Kind == "Pod" {
			one := *rel
			one.Hooks = []*release.Hook{h}
			var buf bytes.Buffer
			if err := rt.GetPodLogs(&buf, &one); err != nil {
				pl.Log = fmt.Sprintf("(log unavailable: %v)", err)
			} else {
				pl.Log = strings.TrimPrefix(buf.String(), "POD LOGS: "+h.Name+"\n")
			}
		}
		res.Pods = append(res.Pods, pl)
	}
	if runErr != nil {
		// The API server refused a test pod (a quota, an admission policy):
		// no test ran, so this says nothing about the patch.
		var refused apierrors.APIStatus
		if errors.As(runErr, &refused) {
			return res, fmt.Errorf("helm test %s in %s: a test could not start: %w", name, namespace, runErr)
		}
		if len(failed) == 0 {
			// Nothing failed: the tests did not finish (timeout) or could not start.
			return res, fmt.Errorf("helm test %s in %s: %w\n%s", name, namespace, runErr, hl.tail(10))
		}
		res.Detail = fmt.Sprintf("test %s failed: %v", strings.Join(failed, ", "), runErr)
	}
	return res, nil
}

func isTestHook(h *release.Hook) bool {
	for _, e := range h.Events {
		if e == release.HookTest {
			return true
		}
	}
	return false
}

// capture collects hook output by pod, as Helm hands it over.
type capture struct {
	mu   sync.Mutex
	logs map[string]*bytes.Buffer
}

func (c *capture) writer(_, pod, _ string) io.Writer {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.logs[pod]
	if !ok {
		b = &bytes.Buffer{}
		c.logs[pod] = b
	}
	return lockedWriter{&c.mu, b}
}

func (c *capture) get(pod string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Helm asks for the writer before it reads the log; a read that then
	// failed leaves it empty, and the caller should try another way.
	b, ok := c.logs[pod]
	if !ok || b.Len() == 0 {
		return "", false
	}
	return b.String(), true
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Teardown removes an environment completely: it uninstalls the release
// (a missing release is fine), deletes the namespace, and waits until the
// namespace is gone, because hook pods and anything created outside Helm
// survive an uninstall. Calling it again after an interruption finishes the job.
func (c *Client) Teardown(ctx context.Context, namespace, name string, timeout time.Duration) error {
	err := c.withRelease(ctx, namespace, name, func() error {
		if _, err := c.clientset.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return nil
		}
		cfg, hl, err := c.actionConfig(namespace)
		if err != nil {
			return err
		}
		un := action.NewUninstall(cfg)
		un.IgnoreNotFound, un.Wait, un.Timeout = true, false, timeout
		if _, err := un.Run(name); err != nil && !errors.Is(err, driver.ErrReleaseNotFound) {
			c.log.Warn("helm uninstall failed; deleting the namespace anyway", "namespace", namespace, "release", name, "err", err, "helm", hl.tail(3))
		}
		return nil
	})
	if err != nil {
		return err
	}
	return c.DeleteNamespace(ctx, namespace, timeout)
}

// DeleteNamespace deletes a namespace and waits until it is gone.
func (c *Client) DeleteNamespace(ctx context.Context, namespace string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ns := c.clientset.CoreV1().Namespaces()
	policy := metav1.DeletePropagationForeground
	if err := ns.Delete(ctx, namespace, metav1.DeleteOptions{PropagationPolicy: &policy}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting namespace %s: %w", namespace, err)
	}
	for {
		_, err := ns.Get(ctx, namespace, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("namespace %s still terminating after %s: %w", namespace, timeout, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// EnsureNamespace creates the namespace with the labels and annotations, or
// adds them to an existing one.
func (c *Client) EnsureNamespace(ctx context.Context, name string, labels, annotations map[string]string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	nss := c.clientset.CoreV1().Namespaces()
	ns, err := nss.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		ns = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations}}
		if _, err := nss.Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating namespace %s: %w", name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: reading namespace %s: %v", ErrUnreachable, name, err)
	}
	if ns.DeletionTimestamp != nil {
		return fmt.Errorf("namespace %s is still being deleted; try again when it is gone", name)
	}
	if subset(labels, ns.Labels) && subset(annotations, ns.Annotations) {
		return nil
	}
	if ns.Labels == nil {
		ns.Labels = map[string]string{}
	}
	if ns.Annotations == nil {
		ns.Annotations = map[string]string{}
	}
	for k, v := range labels {
		ns.Labels[k] = v
	}
	for k, v := range annotations {
		ns.Annotations[k] = v
	}
	if _, err := nss.Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("labelling namespace %s: %w", name, err)
	}
	return nil
}

func subset(a, b map[string]string) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Namespace is one namespace ductbot manages.
type Namespace struct {
	Name        string
	Labels      map[string]string
	Annotations map[string]string
	Created     time.Time
	Terminating bool
}

// Namespaces lists every namespace labelled as managed by ductbot, in one
// request, whatever their number.
func (c *Client) Namespaces(ctx context.Context) ([]Namespace, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	list, err := c.clientset.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: LabelManagedBy + "=" + ManagedBy})
	if err != nil {
		return nil, fmt.Errorf("%w: listing namespaces: %v", ErrUnreachable, err)
	}
	out := make([]Namespace, 0, len(list.Items))
	for _, ns := range list.Items {
		out = append(out, Namespace{
			Name: ns.Name, Labels: ns.Labels, Annotations: ns.Annotations,
			Created: ns.CreationTimestamp.Time, Terminating: ns.DeletionTimestamp != nil,
		})
	}
	return out, nil
}
