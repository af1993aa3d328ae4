package k8s

import (
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

	"github.com/ductbot/ductbot/core/k8s/diagnose"
	"github.com/ductbot/ductbot/internal/text"
)

// Release is what to deploy: one chart with its values into one namespace.
type Release struct {
	Name      string // DNS-1123, at most 53 characters
	Namespace string
	Chart     *chart.Chart
	Values    map[string]any
	// Labels go on the namespace and on Helm's release record, with the
	// client's LabelManagedBy and LabelInstance, which they cannot override.
	Labels map[string]string
	// Annotations go on the namespace.
	Annotations map[string]string
	// Timeout bounds the install or upgrade including the wait for readiness.
	Timeout time.Duration
	// Policy is applied to the namespace before the chart goes in.
	Policy NamespacePolicy
	// Diagnose says when Deploy gives up waiting because the pods show
	// that the code is broken or an image is missing, and names the
	// components (see diagnose.Policy; zero fields are its defaults).
	Diagnose diagnose.Policy
}

// deployStopGrace bounds how long a cancelled Deploy waits for Helm to
// take its failure path before returning anyway (the release's lock then
// stays held until Helm is done). Stopping takes moments unless the API
// server does not answer.
const deployStopGrace = 30 * time.Second

// errStopped is what stops Helm's wait when Deploy's context ends.
type errStopped struct{ cause error }

func (e errStopped) Error() string { return "the deploy was cancelled: " + e.cause.Error() }
func (e errStopped) Unwrap() error { return e.cause }

// errVerdict is what stops Helm's wait when the pods show a verdict.
type errVerdict struct{ v diagnose.Verdict }

func (e errVerdict) Error() string { return e.v.Component + ": " + e.v.Reason }

// Deploy installs the release, or upgrades it in place when it exists, and
// waits until its resources are ready. It creates the namespace (with the
// labels) when missing and first repairs a release left pending by an
// interrupted operation. It does not decide names, values or retries: the
// caller does. A namespace of another instance is refused with
// ErrForeignInstance.
//
// While Helm waits, Deploy watches the namespace's pods and events and
// stops waiting as soon as they show that the deploy cannot succeed (a
// crash loop, a container never ready, an image that does not come; see
// Release.Diagnose and package diagnose). Every failure of the install or
// upgrade itself is a *DeployFailure saying which component failed and
// why, with its last log lines and warning events, and whether it is
// the code (FailureBroken), an image (FailureImage) or the cluster
// (FailureInfrastructure, which wraps Helm's error).
//
// Stopping is safe: Helm runs without a context of its own, and its wait
// is ductbot's, which ends when told; Helm then records the revision as
// failed and returns, and only then does Deploy return and free the
// release for the next operation. When ctx ends, Deploy stops Helm the
// same way and returns an error wrapping ctx's, after Helm has finished
// (or after deployStopGrace, the lock staying held until it has).
func (c *Client) Deploy(ctx context.Context, rel Release) error {
	if rel.Chart == nil {
		return errors.New("deploy: no chart")
	}
	labels := c.stamp(rel.Labels)
	if err := c.EnsureNamespace(ctx, rel.Namespace, labels, rel.Annotations); err != nil {
		return err
	}
	if err := c.ApplyNamespacePolicy(ctx, rel.Namespace, rel.Policy); err != nil {
		return err
	}
	return c.withReleaseGrace(ctx, rel.Namespace, rel.Name, deployStopGrace, func() error {
		return c.deploy(ctx, rel, labels)
	})
}

func (c *Client) deploy(ctx context.Context, rel Release, labels map[string]string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("deploy of %s in %s not started: %w", rel.Name, rel.Namespace, err)
	}
	if _, err := c.recoverPending(rel.Namespace, rel.Name, rel.Timeout); err != nil {
		return err
	}
	cfg, hl, err := c.actionConfig(rel.Namespace)
	if err != nil {
		return err
	}
	_, err = action.NewHistory(cfg).Run(rel.Name)
	install := errors.Is(err, driver.ErrReleaseNotFound)
	if err != nil && !install {
		return fmt.Errorf("reading the history of release %s in %s: %w", rel.Name, rel.Namespace, err)
	}

	hk := stoppable(cfg)
	started := time.Now()
	watch := c.watchDeploy(rel.Namespace, rel.Diagnose, started.Add(-time.Second), func(v diagnose.Verdict) {
		c.log.Info("the pods show the deploy cannot succeed; stopping Helm's wait", "namespace", rel.Namespace,
			"release", rel.Name, "component", v.Component, "class", v.Class, "reason", v.Reason)
		hk.stopWith(errVerdict{v})
	})
	defer watch.close()
	finished := make(chan struct{})
	var stopper sync.WaitGroup
	stopper.Go(func() {
		select {
		case <-finished:
		case <-ctx.Done():
			hk.stopWith(errStopped{context.Cause(ctx)})
		}
	})

	// Helm gets no context that ends: cancelling RunWithContext's returns
	// at once while Helm's goroutine goes on and later rewrites the
	// release. Stopping hk ends Helm's wait instead, and Helm's own
	// failure path runs before Run returns.
	op := "upgrade"
	if install {
		op = "install"
		in := action.NewInstall(cfg)
		in.ReleaseName, in.Namespace = rel.Name, rel.Namespace
		in.Wait, in.Timeout = true, rel.Timeout
		in.Labels = labels
		_, err = in.RunWithContext(context.Background(), rel.Chart, rel.Values)
	} else {
		up := action.NewUpgrade(cfg)
		up.Namespace = rel.Namespace
		up.Wait, up.Timeout = true, rel.Timeout
		up.Labels = labels
		up.MaxHistory = 10
		_, err = up.RunWithContext(context.Background(), rel.Name, rel.Chart, rel.Values)
	}
	close(finished)
	stopper.Wait()
	watch.close()
	if err == nil {
		return nil
	}
	if v, ok := watch.decided(); ok {
		return c.failure(rel.Namespace, v, fmt.Errorf("helm %s %s in %s stopped: %w", op, rel.Name, rel.Namespace, err))
	}
	if ctx.Err() != nil && hk.isStopped() {
		return fmt.Errorf("helm %s %s in %s stopped: %w", op, rel.Name, rel.Namespace, context.Cause(ctx))
	}
	helmErr := fmt.Errorf("helm %s %s in %s: %w\n%s", op, rel.Name, rel.Namespace, err, hl.tail(10))
	snap, serr := c.snapshotNow(rel.Namespace, started.Add(-time.Second))
	if serr != nil {
		c.log.Warn("could not read the namespace to explain a failed deploy", "namespace", rel.Namespace, "err", serr)
		return &DeployFailure{Class: FailureInfrastructure, Err: helmErr}
	}
	v := diagnose.Explain(snap, rel.Diagnose, time.Now())
	if !v.Decided() {
		return &DeployFailure{Class: FailureInfrastructure, Err: helmErr}
	}
	return c.failure(rel.Namespace, v, helmErr)
}

// Repair recovers a release stuck in pending-install, pending-upgrade or
// pending-rollback (an operation was interrupted): the first revision is
// uninstalled, a later one rolled back to the last deployed revision.
// It reports whether anything was repaired. Callers decide when a pending
// release is stuck rather than in progress; Deploy repairs before it starts.
// A release in another instance's namespace is refused (ErrForeignInstance).
func (c *Client) Repair(ctx context.Context, namespace, name string, timeout time.Duration) (bool, error) {
	var repaired bool
	err := c.withRelease(ctx, namespace, name, func() error {
		if _, err := c.checkNamespace(ctx, namespace); err != nil {
			return err
		}
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
// through the SDK's test-log collection for pods that are still there. Each
// pod's log is kept within Options.MaxLogBytes, in memory too: its head and
// tail, with a line saying how much of the middle was cut.
//
// A test that ran and failed is a result (Passed false, no error). An error
// means the tests could not be run or judged: the release is missing, the
// cluster is unreachable, or the tests did not finish within timeout (then
// the error wraps context.DeadlineExceeded and the result holds the logs
// there are).
//
// Helm's test action takes no context, so Test stops it itself. When ctx
// ends before the tests do (a newer patch set supersedes this one), it
// deletes the release's test pods and test Jobs (found by their helm.sh/hook
// annotation, "test" or the old "test-success") with no grace period, makes
// Helm's wait for them return and refuses Helm any further test hook. The
// release's lock stays held until Helm's run has returned, which then takes
// moments instead of the rest of the suite, so the next operation on the
// release starts within seconds and never overlaps the tests. timeout bounds
// the whole suite the same way (Helm's own timeout is per hook), except that
// logs are collected first and only unfinished test pods are deleted.
// timeout <= 0 means no bound.
func (c *Client) Test(ctx context.Context, namespace, name string, timeout time.Duration) (*TestResult, error) {
	var res *TestResult
	err := c.withRelease(ctx, namespace, name, func() error {
		var err error
		res, err = c.test(ctx, namespace, name, timeout)
		return err
	})
	return res, err
}

// helmTestSlack is added to the timeout Helm gets for each test hook, so
// that Test's bound on the whole suite always ends it first, through the
// stop path, which cleans up after it.
const helmTestSlack = time.Minute

func (c *Client) test(ctx context.Context, namespace, name string, timeout time.Duration) (*TestResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("helm test %s in %s not started: %w", name, namespace, err)
	}
	cfg, hl, err := c.actionConfig(namespace)
	if err != nil {
		return nil, err
	}
	hooks := testHookNames(cfg, name)
	hk := stoppable(cfg)
	runCtx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		runCtx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()

	// Stop the tests when runCtx ends first. When the caller gave up, delete
	// the test pods at once: nobody wants their logs, and a pod that Helm
	// would delete on failure (hook-failed) would otherwise get its full
	// grace period while the lock is held.
	finished := make(chan struct{})
	var stopper sync.WaitGroup
	stopper.Go(func() {
		select {
		case <-finished:
		case <-runCtx.Done():
			hk.stop()
			if ctx.Err() != nil {
				c.deleteTestPods(namespace, hooks, false)
			}
		}
	})

	captured := &capture{max: c.opts.MaxLogBytes, logs: map[string]*boundedLog{}}
	cfg.SetHookOutputFunc(captured.writer)
	rt := action.NewReleaseTesting(cfg)
	rt.Namespace, rt.Timeout = namespace, timeout
	if timeout > 0 {
		rt.Timeout = timeout + helmTestSlack
	}
	rel, runErr := rt.Run(name)
	close(finished)
	stopper.Wait() // no deletion may outlive the lock: it could hit the next run's pods
	stopped := hk.isStopped()
	if stopped && ctx.Err() != nil {
		// Again, for a pod Helm was creating when the stop came.
		c.deleteTestPods(namespace, hooks, false)
		return nil, fmt.Errorf("helm test %s in %s stopped: %w", name, namespace, ctx.Err())
	}
	if rel == nil {
		if errors.Is(runErr, driver.ErrReleaseNotFound) {
			return nil, fmt.Errorf("%w: %s in %s", ErrReleaseNotFound, name, namespace)
		}
		return nil, fmt.Errorf("helm test %s in %s: %w\n%s", name, namespace, runErr, hl.tail(10))
	}

	res := &TestResult{Passed: runErr == nil && !stopped}
	var failed []string
	for _, h := range rel.Hooks {
		if !isTestHook(h) {
			continue
		}
		pl := PodLog{Pod: h.Name, Phase: string(h.LastRun.Phase)}
		switch {
		case hk.wasAborted(h.Name):
			pl.Phase = "Unknown" // Helm says Failed: it stopped waiting, the test did not fail
		case pl.Phase == "":
			pl.Phase = "Unknown"
		case h.LastRun.Phase == release.HookPhaseFailed:
			failed = append(failed, h.Name)
		}
		if log, ok := captured.get(h.Name); ok {
			pl.Log = log
		} else if h.Kind == "Pod" {
			one := *rel
			one.Hooks = []*release.Hook{h}
			buf := newBoundedLog(c.opts.MaxLogBytes)
			if err := rt.GetPodLogs(buf, &one); err != nil {
				pl.Log = fmt.Sprintf("(log unavailable: %v)", err)
			} else {
				pl.Log = strings.TrimPrefix(buf.String(), "POD LOGS: "+h.Name+"\n")
			}
		}
		pl.Log = text.HeadTail(pl.Log, c.opts.MaxLogBytes)
		res.Pods = append(res.Pods, pl)
	}
	if stopped || runErr != nil {
		// Helm leaves a test it stopped waiting for running (on its own
		// timeout too); it must not go on beside the next deploy.
		c.deleteTestPods(namespace, hooks, true)
	}
	if stopped {
		return res, fmt.Errorf("helm test %s in %s: the tests did not finish within %s: %w", name, namespace, timeout, context.DeadlineExceeded)
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

// capture collects hook output by pod, as Helm hands it over, keeping
// each pod's within max bytes.
type capture struct {
	mu   sync.Mutex
	max  int
	logs map[string]*boundedLog
}

func (c *capture) writer(_, pod, _ string) io.Writer {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.logs[pod]
	if !ok {
		b = newBoundedLog(c.max)
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
// It refuses, changing nothing, a namespace of another ductbot instance
// (ErrForeignInstance, naming both instances).
func (c *Client) Teardown(ctx context.Context, namespace, name string, timeout time.Duration) error {
	err := c.withRelease(ctx, namespace, name, func() error {
		ns, err := c.checkNamespace(ctx, namespace)
		if err != nil || ns == nil {
			return err
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

// DeleteNamespace deletes a namespace and waits until it is gone. It
// refuses a namespace of another ductbot instance (ErrForeignInstance,
// naming both instances); the delete is conditional on the namespace being
// the one checked, so a relabel in between cannot slip through.
func (c *Client) DeleteNamespace(ctx context.Context, namespace string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ns := c.clientset.CoreV1().Namespaces()
	policy := metav1.DeletePropagationForeground
	for attempt := 1; ; attempt++ {
		cur, err := c.checkNamespace(ctx, namespace)
		if err != nil {
			return err
		}
		if cur == nil {
			return nil
		}
		if cur.DeletionTimestamp != nil {
			break // already being deleted: wait for it
		}
		err = ns.Delete(ctx, namespace, metav1.DeleteOptions{PropagationPolicy: &policy,
			Preconditions: &metav1.Preconditions{UID: &cur.UID, ResourceVersion: &cur.ResourceVersion}})
		if err == nil || apierrors.IsNotFound(err) {
			break
		}
		if !apierrors.IsConflict(err) || attempt == 5 {
			return fmt.Errorf("deleting namespace %s: %w", namespace, err)
		}
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
// adds them to an existing one. LabelManagedBy and LabelInstance are always
// set to this client's, whatever labels says. It refuses (ErrForeignInstance)
// a namespace of another ductbot instance, including, for any instance but
// DefaultInstance, one labelled as ductbot's before LabelInstance existed.
func (c *Client) EnsureNamespace(ctx context.Context, name string, labels, annotations map[string]string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	labels = c.stamp(labels)
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
	if err := c.foreign("namespace", name, ns.Labels); err != nil {
		return err
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

// Namespaces lists every namespace of this ductbot instance, in one request,
// whatever their number: it lists those labelled LabelManagedBy=ManagedBy
// and keeps those whose LabelInstance is this client's instance or, for
// DefaultInstance only, absent (namespaces made before the label existed).
// Another instance's namespaces are never listed.
func (c *Client) Namespaces(ctx context.Context) ([]Namespace, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	list, err := c.clientset.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: LabelManagedBy + "=" + ManagedBy})
	if err != nil {
		return nil, fmt.Errorf("%w: listing namespaces: %v", ErrUnreachable, err)
	}
	out := make([]Namespace, 0, len(list.Items))
	for _, ns := range list.Items {
		if !c.owns(ns.Labels) {
			continue
		}
		out = append(out, Namespace{
			Name: ns.Name, Labels: ns.Labels, Annotations: ns.Annotations,
			Created: ns.CreationTimestamp.Time, Terminating: ns.DeletionTimestamp != nil,
		})
	}
	return out, nil
}
