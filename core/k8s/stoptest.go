package k8s

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/kube"
	"helm.sh/helm/v3/pkg/release"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// errTestsStopped is what Helm's test action sees from a stopped run.
var errTestsStopped = errors.New("ductbot stopped the tests")

// stoppableKube is Helm's kube client for one operation (a test run, an
// install or an upgrade), with a stop: once stopped, a wait for a hook or
// for the release's resources returns at once and nothing more is
// created, so Helm's action, run without a context (or with one that
// never ends), takes its own failure path and ends within moments, and
// the release's lock is held until it has. A hook wait it abandons is a
// read-only watch; it ends when the hook's pods are deleted (or at Helm's
// timeout). The wait for resources is ductbot's own poll, which ends.
type stoppableKube struct {
	*kube.Client
	done chan struct{}
	once sync.Once

	mu      sync.Mutex
	why     error           // what stopped it, for Helm's error and the release's description
	aborted map[string]bool // hooks whose wait was abandoned
}

// stoppable installs a stoppableKube in cfg, whose KubeClient must be the
// *kube.Client Init made; otherwise it installs nothing and stopping only
// deletes the test pods.
func stoppable(cfg *action.Configuration) *stoppableKube {
	s := &stoppableKube{done: make(chan struct{}), aborted: map[string]bool{}}
	if kc, ok := cfg.KubeClient.(*kube.Client); ok {
		s.Client = kc
		cfg.KubeClient = s
	}
	return s
}

func (s *stoppableKube) stop() { s.stopWith(errTestsStopped) }

// stopWith stops with a reason, which waits that end return (wrapped);
// the first reason given sticks.
func (s *stoppableKube) stopWith(why error) {
	s.once.Do(func() {
		s.mu.Lock()
		s.why = why
		s.mu.Unlock()
		close(s.done)
	})
}

// reason is what stopped it, or nil.
func (s *stoppableKube) reason() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.why
}

func (s *stoppableKube) isStopped() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *stoppableKube) wasAborted(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.aborted[name]
}

// Create refuses once stopped: no further hook or resource is created.
func (s *stoppableKube) Create(resources kube.ResourceList) (*kube.Result, error) {
	if s.isStopped() {
		return nil, s.reason()
	}
	return s.Client.Create(resources)
}

// Update refuses once stopped.
func (s *stoppableKube) Update(original, target kube.ResourceList, force bool) (*kube.Result, error) {
	if s.isStopped() {
		return &kube.Result{}, s.reason()
	}
	return s.Client.Update(original, target, force)
}

// WatchUntilReady returns errTestsStopped as soon as the run is stopped.
func (s *stoppableKube) WatchUntilReady(resources kube.ResourceList, timeout time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- s.Client.WatchUntilReady(resources, timeout) }()
	select {
	case err := <-done:
		if !s.isStopped() {
			return err
		}
		// A deleted pod ends Helm's watch as if it had succeeded.
	case <-s.done:
	}
	s.mu.Lock()
	for _, info := range resources {
		s.aborted[info.Name] = true
	}
	why := s.why
	s.mu.Unlock()
	return why
}

// testHookNames are the names of the release's test hooks in its last
// revision, or nil when it cannot be read (then the test action fails too,
// and deletion matches test hooks by annotation alone).
func testHookNames(cfg *action.Configuration, name string) map[string]bool {
	rel, err := cfg.Releases.Last(name)
	if err != nil {
		return nil
	}
	names := map[string]bool{}
	for _, h := range rel.Hooks {
		if isTestHook(h) {
			names[h.Name] = true
		}
	}
	return names
}

// isTestHookAnnotation reports whether a helm.sh/hook annotation names the
// test event: "test", or "test-success" from old charts, among others.
func isTestHookAnnotation(v string) bool {
	for _, e := range strings.Split(v, ",") {
		switch strings.TrimSpace(e) {
		case string(release.HookTest), "test-success":
			return true
		}
	}
	return false
}

// deleteTestPods deletes, with no grace period, the namespace's test hook
// pods and Jobs (by annotation; only those named in hooks unless hooks is
// nil), or with unfinished only those still running. Failures are logged:
// the caller is already on its way out.
func (c *Client) deleteTestPods(namespace string, hooks map[string]bool, unfinished bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := c.log.With("namespace", namespace)
	zero := int64(0)
	background := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{GracePeriodSeconds: &zero, PropagationPolicy: &background}
	isTest := func(m metav1.ObjectMeta) bool {
		return isTestHookAnnotation(m.Annotations[release.HookAnnotation]) && (hooks == nil || hooks[m.Name])
	}
	deleted := func(kind, name string, err error) {
		switch {
		case err == nil:
			log.Info("stopped a test", "kind", kind, "name", name)
		case !apierrors.IsNotFound(err):
			log.Warn("could not delete a test", "kind", kind, "name", name, "err", err)
		}
	}

	pods := c.clientset.CoreV1().Pods(namespace)
	if list, err := pods.List(ctx, metav1.ListOptions{}); err != nil {
		log.Warn("could not list test pods to stop them", "err", err)
	} else {
		for _, p := range list.Items {
			done := p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
			if isTest(p.ObjectMeta) && !(unfinished && done) {
				deleted("Pod", p.Name, pods.Delete(ctx, p.Name, opts))
			}
		}
	}
	jobs := c.clientset.BatchV1().Jobs(namespace)
	if list, err := jobs.List(ctx, metav1.ListOptions{}); err != nil {
		log.Warn("could not list test jobs to stop them", "err", err)
	} else {
		for _, j := range list.Items {
			if isTest(j.ObjectMeta) && !(unfinished && jobFinished(&j)) {
				deleted("Job", j.Name, jobs.Delete(ctx, j.Name, opts))
			}
		}
	}
}

func jobFinished(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}
