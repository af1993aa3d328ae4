package pipeline_test

import (
	"strings"
	"testing"

	"github.com/ductbot/ductbot/core/pipeline"
	"github.com/ductbot/ductbot/core/run"
)

// ReviewFor of runs whose deploy failed: a broken component is -1 with the
// diagnosis; a missing image and the infrastructure get no vote; the
// diagnosis is bounded and stripped of control characters.
func TestReviewForDeployFailures(t *testing.T) {
	crash := &run.Diagnosis{
		Class: run.DiagnosisBroken, Component: "orchestrator", Own: true, Pod: "wf-orchestrator-5d8f-x", Container: "orchestrator",
		Image:  "registry/function-orchestrator:abc123",
		Reason: "CrashLoopBackOff: container orchestrator exited with status 1 (Error), restarted 2 times",
		Logs:   "orchestrator: starting\norchestrator: \x1b[31msimulated crash\x1b[0m: exiting with status 1",
		Events: []string{"BackOff: Back-off restarting failed container (×2)"},
	}
	neighbour := *crash
	neighbour.Component, neighbour.Own = "evaluator", false
	image := &run.Diagnosis{Class: run.DiagnosisImage, Component: "orchestrator", Own: true, Image: "registry/function-orchestrator:not-pushed",
		Reason: "image registry/function-orchestrator:not-pushed not found or not pullable (ErrImagePull for 10m0s)",
		Events: []string{"Failed: Error: ErrImagePull"}}
	quota := &run.Diagnosis{Class: run.DiagnosisInfrastructure, Component: "wiki", Reason: "pods refused by the cluster: exceeded quota: ductbot"}
	huge := *crash
	var logs strings.Builder
	for i := range 5000 {
		logs.WriteString("orchestrator: a chatty line " + strings.Repeat("x", i%50) + "\n")
	}
	logs.WriteString("orchestrator: THE LAST LINE")
	huge.Logs = logs.String()

	for _, tc := range []struct {
		name    string
		r       run.Run
		vote    int
		want    []string
		notWant []string
		maxLen  int
	}{
		{
			name: "own component crash-loops: -1 with the diagnosis",
			r:    run.Run{PatchSet: 3, Result: run.ResultFailed, Diagnosis: crash, Detail: "deploy failed: orchestrator is broken: CrashLoopBackOff"},
			vote: -1,
			want: []string{"patch set 3 FAILED to deploy: orchestrator (this change's component) is broken", "tests did not run",
				"Why: CrashLoopBackOff: container orchestrator exited with status 1 (Error), restarted 2 times",
				"Image: registry/function-orchestrator:abc123", "Pod: wf-orchestrator-5d8f-x, container orchestrator",
				"Last log lines:\n    orchestrator: starting\n    orchestrator: [31msimulated crash[0m: exiting with status 1\n",
				"Warning events:\n    BackOff: Back-off restarting failed container (×2)\n", "Test logs: http://run/1"},
			notWant: []string{"\x1b", "INFRASTRUCTURE"},
		},
		{
			name:    "a neighbour crash-loops: still -1, and it says whose component",
			r:       run.Run{PatchSet: 1, Result: run.ResultFailed, Diagnosis: &neighbour},
			vote:    -1,
			want:    []string{"evaluator is broken, which is not this change's component", "Component: evaluator (not this change's component)"},
			notWant: []string{"(this change's component) is broken"},
		},
		{
			name:    "image missing: no vote, names the image",
			r:       run.Run{PatchSet: 2, Result: run.ResultError, Diagnosis: image, Detail: "deploy failed: orchestrator: image …"},
			vote:    0,
			want:    []string{"ERROR on patch set 2: the image registry/function-orchestrator:not-pushed could not be pulled", "CI has not pushed it yet", "says nothing about the patch", "recheck"},
			notWant: []string{"FAILED"},
		},
		{
			name: "quota refused: infrastructure error, no vote, with why and Helm's detail",
			r:    run.Run{PatchSet: 1, Result: run.ResultError, Diagnosis: quota, Detail: "deploy failed after 2 attempts: helm install: context deadline exceeded"},
			vote: 0,
			want: []string{"INFRASTRUCTURE ERROR on patch set 1", "context deadline exceeded", "Why: pods refused by the cluster: exceeded quota"},
		},
		{
			name:   "a long log is cut to its last lines",
			r:      run.Run{PatchSet: 1, Result: run.ResultFailed, Diagnosis: &huge},
			vote:   -1,
			want:   []string{"THE LAST LINE", "earlier lines on the run page"},
			maxLen: 8000,
		},
		{
			name: "a failed test is unchanged",
			r:    run.Run{PatchSet: 1, Result: run.ResultFailed, Detail: "test e2e failed"},
			vote: -1,
			want: []string{"the end-to-end tests FAILED on patch set 1", "test e2e failed"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.r.ID, tc.r.Matrix = 1, run.Matrix{"orchestrator": "abc123"}
			rev := pipeline.ReviewFor(&tc.r, nil, "http://run/1", "Verified", false, "NONE", "OWNER")
			if got := rev.Labels["Verified"]; got != tc.vote || (tc.vote == 0 && rev.Labels != nil) {
				t.Errorf("labels = %v, want Verified %d", rev.Labels, tc.vote)
			}
			for _, w := range tc.want {
				if !strings.Contains(rev.Message, w) {
					t.Errorf("message lacks %q:\n%s", w, rev.Message)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(rev.Message, w) {
					t.Errorf("message has %q:\n%s", w, rev.Message)
				}
			}
			if tc.maxLen > 0 && len(rev.Message) > tc.maxLen {
				t.Errorf("message is %d bytes, want at most %d", len(rev.Message), tc.maxLen)
			}
		})
	}
}
