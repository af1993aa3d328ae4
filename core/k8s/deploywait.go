package k8s

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"helm.sh/helm/v3/pkg/kube"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
)

// waitPoll is how often the wait for a release's resources checks them
// (Helm's own wait polls every 2 s).
const waitPoll = 2 * time.Second

// Wait is Helm's wait for the release's resources to be ready, with a
// stop: ductbot's own poll with Helm's ready checker, which returns as
// soon as the operation is stopped (the caller gave up, or the pods
// showed that waiting is pointless). Helm then takes its failure path
// (the revision is recorded failed) and returns; nothing of the wait goes
// on in the background.
func (s *stoppableKube) Wait(resources kube.ResourceList, timeout time.Duration) error {
	return s.wait(resources, timeout, false)
}

// WaitWithJobs is Wait that also waits for Jobs to complete.
func (s *stoppableKube) WaitWithJobs(resources kube.ResourceList, timeout time.Duration) error {
	return s.wait(resources, timeout, true)
}

func (s *stoppableKube) wait(resources kube.ResourceList, timeout time.Duration, jobs bool) error {
	if s.Client == nil {
		return fmt.Errorf("no kube client to wait with")
	}
	cs, err := s.Client.Factory.KubernetesClientSet()
	if err != nil {
		return err
	}
	log := s.Client.Log
	if log == nil {
		log = func(string, ...any) {}
	}
	opts := []kube.ReadyCheckerOption{kube.PausedAsReady(true)}
	if jobs {
		opts = append(opts, kube.CheckJobs(true))
	}
	checker := kube.NewReadyChecker(cs, log, opts...)

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	log("beginning wait for %d resources with timeout of %v", len(resources), timeout)
	start := time.Now()
	errs := make([]int, len(resources))
	err = wait.PollUntilContextCancel(ctx, waitPoll, true, func(ctx context.Context) (bool, error) {
		for i, v := range resources {
			ready, err := checker.IsReady(ctx, v)
			if retryable(err) && ctx.Err() == nil {
				// As Helm does: up to 30 transient errors in a row per resource.
				if errs[i]++; errs[i] > 30 {
					return false, err
				}
				return false, nil
			}
			errs[i] = 0
			if !ready {
				return false, err
			}
		}
		return true, nil
	})
	if s.isStopped() {
		return fmt.Errorf("ductbot stopped waiting after %v: %w", time.Since(start).Round(time.Second), s.reason())
	}
	if err != nil {
		log("wait for resources failed after %v: %v", time.Since(start).Round(time.Second), err)
		return err
	}
	log("wait for resources succeeded within %v", time.Since(start).Round(time.Second))
	return nil
}

// retryable is Helm's test for an error worth polling through: anything
// but an API error, or an API error with a server-side or throttling code.
func retryable(err error) bool {
	if err == nil {
		return false
	}
	se, ok := err.(*apierrors.StatusError)
	if !ok {
		return true
	}
	code := se.Status().Code
	return code == 0 || code == http.StatusTooManyRequests || (code >= 500 && code != http.StatusNotImplemented)
}
