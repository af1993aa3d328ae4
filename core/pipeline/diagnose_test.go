package pipeline_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ductbot/ductbot/config"
	"github.com/ductbot/ductbot/core/run"
)

// simulateBySubject makes the example chart's components misbehave as the
// commit subject says, through chart.env_values as the demo does:
// CRASHLOOP crash-loops the patch's orchestrator, NEVERREADY keeps it
// unready, NOIMAGE makes its image unpullable, NEIGHBOURCRASH crash-loops
// the default evaluator.
func simulateBySubject(h *harness) {
	h.cfg.Chart.EnvValues["orchestrator.simulate.mode"] = `{{if contains .Subject "CRASHLOOP"}}crash{{else if contains .Subject "NEVERREADY"}}never-ready{{else if contains .Subject "NOIMAGE"}}image-missing{{end}}`
	h.cfg.Chart.EnvValues["evaluator.simulate.mode"] = `{{if contains .Subject "NEIGHBOURCRASH"}}crash{{end}}`
}

// finished waits for change n's run of patch set ps to be done.
func (h *harness) finished(n, ps int, timeout time.Duration) *run.Run {
	h.t.Helper()
	var r *run.Run
	h.waitFor(timeout, "the run to finish", func() bool {
		for _, x := range h.runs(n) {
			if x.PatchSet == ps && x.Finished() {
				r = x
			}
		}
		return r != nil
	})
	return r
}

func wantIn(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s lacks %q:\n%s", what, sub, s)
		}
	}
}

// A patch whose own component crash-loops gets -1 within minutes with
// the default crash_restarts, ready_timeout and image_wait (and the
// harness's 2m deploy timeout), not an error after every retry; the vote
// names the component, CrashLoopBackOff and has the log's "simulated
// crash"; the run page and the chat say so too. The next patch set, fixed,
// deploys over the failed release and gets +1.
func TestCrashLoopGetsMinusOneWithDiagnosis(t *testing.T) {
	h := newHarness(t, "")
	simulateBySubject(h)
	h.start()
	start := time.Now()
	n := h.upload(0, "alice", "Break the orchestrator's startup CRASHLOOP")
	h.waitFor(3*time.Minute, "a Verified vote", func() bool { return len(h.votes(n)) > 0 })
	took := time.Since(start)
	t.Logf("upload → vote: %s", took.Round(100*time.Millisecond))

	v := h.votes(n)[0]
	if v.Labels["Verified"] != -1 || v.Notify != "OWNER" {
		t.Errorf("vote = %+v, want Verified -1 notifying the owner", v)
	}
	wantIn(t, "vote message", v.Message, "FAILED to deploy", "orchestrator (this change's component) is broken",
		"CrashLoopBackOff", "simulated crash", "Warning events:", "BackOff")
	r := h.finished(n, 1, time.Minute)
	if r.Result != run.ResultFailed || r.Attempts != 1 || r.Diagnosis == nil || r.Diagnosis.Component != "orchestrator" || !r.Diagnosis.Own {
		t.Errorf("run = %+v (diagnosis %+v), want failed after one attempt, diagnosing the orchestrator", r, r.Diagnosis)
	}

	m := runLink.FindStringSubmatch(v.Message)
	if m == nil {
		t.Fatalf("no run link in:\n%s", v.Message)
	}
	resp, err := http.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantIn(t, "run page", string(body), "Diagnosis", "orchestrator is broken", "CrashLoopBackOff", "simulated crash")

	h.waitFor(10*time.Second, "the announcement", func() bool { return len(h.ann.all()) > 0 })
	a := h.ann.all()[0]
	if a.Run.Diagnosis == nil || a.Run.Diagnosis.Component != "orchestrator" {
		t.Errorf("announcement = %+v, want the diagnosis with it", a.Run)
	}

	// The fix deploys over the failed release.
	h.upload(n, "alice", "Fix the orchestrator's startup")
	h.waitFor(2*time.Minute, "a vote on patch set 2", func() bool {
		for _, v := range h.votes(n) {
			if v.PatchSet == 2 {
				return true
			}
		}
		return false
	})
	if r := h.finished(n, 2, time.Minute); r.Result != run.ResultPassed {
		t.Errorf("fixed patch set: %s (%s), want passed", r.Result, r.Detail)
	}
}

// A neighbour that crash-loops fails the run too, and the vote says that
// it is not the patch's own component.
func TestBrokenNeighbourIsNamed(t *testing.T) {
	h := newHarness(t, "")
	simulateBySubject(h)
	h.start()
	n := h.upload(0, "alice", "Use the new evaluator API NEIGHBOURCRASH")
	h.waitFor(3*time.Minute, "a Verified vote", func() bool { return len(h.votes(n)) > 0 })
	v := h.votes(n)[0]
	if v.Labels["Verified"] != -1 {
		t.Errorf("vote = %+v, want -1", v.Labels)
	}
	wantIn(t, "vote message", v.Message, "evaluator is broken, which is not this change's component", "Component: evaluator (not this change's component)")
}

// A component that runs and never becomes ready gets -1 at ready_timeout.
func TestNeverReadyGetsMinusOne(t *testing.T) {
	h := newHarness(t, "")
	simulateBySubject(h)
	h.cfg.Kubernetes.ReadyTimeout = config.Duration(10 * time.Second)
	h.start()
	n := h.upload(0, "alice", "Wait for a dependency forever NEVERREADY")
	h.waitFor(2*time.Minute, "a Verified vote", func() bool { return len(h.votes(n)) > 0 })
	v := h.votes(n)[0]
	if v.Labels["Verified"] != -1 {
		t.Errorf("vote = %+v, want -1", v.Labels)
	}
	wantIn(t, "vote message", v.Message, "orchestrator (this change's component) is broken", "not ready", "readiness probe failed")
	if r := h.finished(n, 1, time.Minute); r.Result != run.ResultFailed || r.Attempts != 1 {
		t.Errorf("run: %s after %d attempts, want failed after 1", r.Result, r.Attempts)
	}
}

// An image that cannot be pulled within image_wait is an error that names
// the image and tag, without a vote, and is not retried.
func TestMissingImageIsAnErrorNamingIt(t *testing.T) {
	h := newHarness(t, "")
	simulateBySubject(h)
	h.cfg.Kubernetes.ImageWait = config.Duration(8 * time.Second)
	h.start()
	n := h.upload(0, "alice", "A build CI has not pushed NOIMAGE")
	h.waitFor(2*time.Minute, "the review", func() bool { return len(h.reviews(n)) > 0 })
	r := h.finished(n, 1, time.Minute)
	rv := h.reviews(n)[0]
	if len(h.votes(n)) != 0 || len(rv.Labels) != 0 {
		t.Errorf("votes = %+v, want none for a missing image", h.votes(n))
	}
	wantIn(t, "review message", rv.Message, "ERROR on patch set 1", "function-orchestrator:"+r.Matrix["orchestrator"], "could not be pulled", "CI has not pushed it yet")
	if r.Result != run.ResultError || r.Attempts != 1 || r.Diagnosis == nil || r.Diagnosis.Class != run.DiagnosisImage {
		t.Errorf("run: %s after %d attempts (%+v), want an image error after 1", r.Result, r.Attempts, r.Diagnosis)
	}
}

// Pods the namespace quota refuses are the infrastructure's problem: the
// run is retried as before and ends an error without a vote, saying why.
func TestQuotaRefusalIsAnErrorWithoutVote(t *testing.T) {
	h := newHarness(t, "")
	h.cfg.Kubernetes.Quota = map[string]string{"pods": "1"}
	h.cfg.Kubernetes.DeployTimeout = config.Duration(15 * time.Second)
	h.start()
	n := h.upload(0, "alice", "An innocent change")
	h.waitFor(2*time.Minute, "the review", func() bool { return len(h.reviews(n)) > 0 })
	r := h.finished(n, 1, time.Minute)
	if len(h.votes(n)) != 0 {
		t.Errorf("votes = %+v, want none for a quota refusal", h.votes(n))
	}
	wantIn(t, "review message", h.reviews(n)[0].Message, "INFRASTRUCTURE ERROR", "says nothing about the patch", "exceeded quota")
	if r.Result != run.ResultError || r.Attempts != 2 {
		t.Errorf("run: %s after %d attempts, want an error after 2 (retries: 1)", r.Result, r.Attempts)
	}
}
