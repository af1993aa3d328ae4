package k8s_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ductbot/ductbot/core/k8s"
	"github.com/ductbot/ductbot/core/k8s/diagnose"
	"github.com/ductbot/ductbot/core/k8s/localcluster"
)

var components = []string{"wiki", "orchestrator", "evaluator"}

// deployFailure runs Deploy and returns its *DeployFailure and how long
// it took, failing the test on success or another error.
func deployFailure(ctx context.Context, t *testing.T, kc *k8s.Client, rel k8s.Release) (*k8s.DeployFailure, time.Duration) {
	t.Helper()
	start := time.Now()
	err := kc.Deploy(ctx, rel)
	took := time.Since(start)
	var f *k8s.DeployFailure
	if !errors.As(err, &f) {
		t.Fatalf("Deploy = %v (after %s), want a *k8s.DeployFailure", err, took)
	}
	t.Logf("Deploy failed after %s: class %s, component %s (own %v), reason %q\nlogs:\n%s\nevents: %q", took.Round(100*time.Millisecond), f.Class, f.Component, f.Own, f.Reason, f.Logs, f.Events)
	return f, took
}

// TestDeployStopsOnCrashLoop: a component that crash-loops ends the deploy
// as soon as it has restarted kubernetes.crash_restarts times, not at the
// deploy timeout, with a diagnosis naming the component, CrashLoopBackOff,
// its log and its BackOff events; the release is recorded failed before
// Deploy returns and the next (fixed) deploy goes through.
func TestDeployStopsOnCrashLoop(t *testing.T) {
	kc, c, ch := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const ns, name = "ductbot-crash", "wf-crash"
	rel := k8s.Release{Name: name, Namespace: ns, Chart: ch, Timeout: 2 * time.Minute,
		Values:   simulate("broken", "orchestrator", localcluster.ModeCrash),
		Diagnose: diagnose.Policy{Components: components, PatchComponent: "orchestrator"}}
	defer kc.Teardown(context.Background(), ns, name, time.Minute)

	f, took := deployFailure(ctx, t, kc, rel)
	if took > time.Minute {
		t.Errorf("Deploy took %s, want it to stop once the crash loop shows (seconds), not at its 2m timeout", took)
	}
	if f.Class != k8s.FailureBroken || f.Component != "orchestrator" || !f.Own || f.Container != "orchestrator" {
		t.Errorf("failure = %+v, want broken, the patch's own orchestrator", f)
	}
	if !strings.Contains(f.Reason, "CrashLoopBackOff") || !strings.Contains(f.Reason, "restarted 2 times") {
		t.Errorf("reason %q, want CrashLoopBackOff after 2 restarts", f.Reason)
	}
	if !strings.Contains(f.Logs, "simulated crash") {
		t.Errorf("logs %q, want the container's last lines", f.Logs)
	}
	if len(f.Events) == 0 || !strings.Contains(strings.Join(f.Events, "\n"), "BackOff") {
		t.Errorf("events %q, want the BackOff warnings", f.Events)
	}
	if !strings.Contains(f.Image, ":broken") {
		t.Errorf("image %q, want the orchestrator's", f.Image)
	}
	if f.Retryable() {
		t.Error("a crash loop is retryable; it is the code's fault")
	}
	if got := statuses(releaseRecords(ctx, t, c, ns, name)); got != "failed" {
		t.Errorf("history when Deploy returned: %s, want revision 1 failed", got)
	}

	rel.Values = values("fixed", "pass", "e2e: ok")
	if err := kc.Deploy(ctx, rel); err != nil {
		t.Fatalf("the fixed deploy: %v", err)
	}
	// Helm marks the failed revision it upgraded from superseded.
	if got := statuses(releaseRecords(ctx, t, c, ns, name)); got != "superseded deployed" {
		t.Errorf("history after the fix: %s, want superseded deployed", got)
	}
}

// TestDeployNamesABrokenNeighbour: when another component than the
// patch's crash-loops, the failure says which, and that it is not the
// patch's own.
func TestDeployNamesABrokenNeighbour(t *testing.T) {
	kc, _, ch := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const ns, name = "ductbot-neighbour", "wf-neighbour"
	rel := k8s.Release{Name: name, Namespace: ns, Chart: ch, Timeout: 2 * time.Minute,
		Values:   simulate("fine", "evaluator", localcluster.ModeCrash),
		Diagnose: diagnose.Policy{Components: components, PatchComponent: "orchestrator"}}
	defer kc.Teardown(context.Background(), ns, name, time.Minute)
	f, _ := deployFailure(ctx, t, kc, rel)
	if f.Class != k8s.FailureBroken || f.Component != "evaluator" || f.Own {
		t.Errorf("failure = %+v, want broken evaluator, not the patch's own", f)
	}
}

// TestDeployNeverReady: a component running and never ready fails the
// deploy at ready_timeout.
func TestDeployNeverReady(t *testing.T) {
	kc, _, ch := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const ns, name = "ductbot-neverready", "wf-neverready"
	rel := k8s.Release{Name: name, Namespace: ns, Chart: ch, Timeout: 2 * time.Minute,
		Values:   simulate("slow", "orchestrator", localcluster.ModeNeverReady),
		Diagnose: diagnose.Policy{ReadyTimeout: 8 * time.Second, Components: components, PatchComponent: "orchestrator"}}
	defer kc.Teardown(context.Background(), ns, name, time.Minute)
	f, took := deployFailure(ctx, t, kc, rel)
	if f.Class != k8s.FailureBroken || f.Component != "orchestrator" || !strings.Contains(f.Reason, "not ready") {
		t.Errorf("failure = %+v, want broken orchestrator, not ready", f)
	}
	if !strings.Contains(f.Reason, "readiness probe failed") || !strings.Contains(strings.Join(f.Events, "\n"), "Unhealthy") {
		t.Errorf("reason %q, events %q; want the readiness probe's failure", f.Reason, f.Events)
	}
	if took < 8*time.Second || took > time.Minute {
		t.Errorf("Deploy took %s, want about the 8s ready_timeout", took)
	}
}

// TestDeployImageMissing: an image that cannot be pulled ends the deploy
// after image_wait as an image failure naming the image, not a broken
// patch and not worth an immediate retry.
func TestDeployImageMissing(t *testing.T) {
	kc, _, ch := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const ns, name = "ductbot-noimage", "wf-noimage"
	rel := k8s.Release{Name: name, Namespace: ns, Chart: ch, Timeout: 2 * time.Minute,
		Values:   simulate("not-pushed-yet", "orchestrator", localcluster.ModeImageMissing),
		Diagnose: diagnose.Policy{ImageWait: 6 * time.Second, Components: components, PatchComponent: "orchestrator"}}
	defer kc.Teardown(context.Background(), ns, name, time.Minute)
	f, took := deployFailure(ctx, t, kc, rel)
	if f.Class != k8s.FailureImage || f.Component != "orchestrator" || f.Retryable() {
		t.Errorf("failure = %+v, want an image failure of the orchestrator, not retryable", f)
	}
	if !strings.Contains(f.Reason, "function-orchestrator:not-pushed-yet") || !strings.Contains(f.Image, ":not-pushed-yet") {
		t.Errorf("reason %q, image %q; want the image and tag named", f.Reason, f.Image)
	}
	if took < 6*time.Second || took > time.Minute {
		t.Errorf("Deploy took %s, want about the 6s image_wait", took)
	}
}

// TestDeployQuotaRefusalIsInfrastructure: pods the namespace quota
// refuses are the cluster's problem: the deploy fails at its timeout as
// an infrastructure failure (retryable) that says why.
func TestDeployQuotaRefusalIsInfrastructure(t *testing.T) {
	kc, _, ch := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const ns, name = "ductbot-quota", "wf-quota"
	rel := k8s.Release{Name: name, Namespace: ns, Chart: ch, Timeout: 15 * time.Second, Values: values("q", "pass", "e2e: ok"),
		Policy:   k8s.NamespacePolicy{Quota: map[string]string{"pods": "1"}},
		Diagnose: diagnose.Policy{Components: components, PatchComponent: "orchestrator"}}
	defer kc.Teardown(context.Background(), ns, name, time.Minute)
	f, _ := deployFailure(ctx, t, kc, rel)
	if f.Class != k8s.FailureInfrastructure || !f.Retryable() || !errors.Is(f, context.DeadlineExceeded) && !strings.Contains(f.Error(), "deadline") {
		t.Errorf("failure = %+v (%v), want infrastructure at Helm's timeout", f, f)
	}
	if !strings.Contains(f.Reason, "exceeded quota") {
		t.Errorf("reason %q, want the quota's refusal", f.Reason)
	}
}
