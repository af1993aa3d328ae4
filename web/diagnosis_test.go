package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/ductbot/ductbot/core/run"
)

// A run whose deploy failed shows a Diagnosis section above the test
// logs: the component and whether it is the change's own, why, the image,
// the last log lines (escaped, without terminal escapes) and the warning
// events. The JSON API has it too. Other runs have none.
func TestRunPageDiagnosis(t *testing.T) {
	f := newFixture(t, nil)
	r := &run.Run{Env: "change-12345", Project: project, Change: 12345, PatchSet: 5, Subject: "Crash the orchestrator",
		Trigger: run.TriggerUpload, State: run.StateDone, Result: run.ResultFailed,
		Detail: "deploy failed: orchestrator is broken: CrashLoopBackOff",
		Diagnosis: &run.Diagnosis{
			Class: run.DiagnosisBroken, Component: "orchestrator", Own: true, Pod: "wf-orchestrator-5d8f-x", Container: "orchestrator",
			Image:  "registry/function-orchestrator:abc123",
			Reason: "CrashLoopBackOff: container orchestrator exited with status 1 (Error), restarted 2 times",
			Logs:   "orchestrator: starting\norchestrator: \x1b[31m<b>simulated crash</b>\x1b[0m",
			Events: []string{"BackOff: Back-off restarting failed <container> (×2)"},
			Others: []string{"evaluator: not ready"},
		}}
	if err := f.store.CreateRun(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	_, body := f.get(t, RunPath(r.ID), http.StatusOK)
	wantContains(t, "run page", body,
		`<h2 id="diagnosis">Diagnosis</h2>`, "orchestrator is broken", "(this change's component)",
		"CrashLoopBackOff: container orchestrator exited with status 1 (Error), restarted 2 times",
		"registry/function-orchestrator:abc123", "wf-orchestrator-5d8f-x", "evaluator: not ready",
		`id="D2"`, "orchestrator: &lt;b&gt;simulated crash&lt;/b&gt;",
		"BackOff: Back-off restarting failed &lt;container&gt; (×2)",
	)
	wantNotContains(t, "run page", body, "\x1b", "<b>simulated")
	if d, l := strings.Index(body, `id="diagnosis"`), strings.Index(body, "<h2>Test logs</h2>"); d < 0 || l < 0 || d > l {
		t.Errorf("the Diagnosis section (at %d) is not above the test logs (at %d)", d, l)
	}

	_, body = f.get(t, "/api/v1/runs/"+fmt.Sprint(r.ID), http.StatusOK)
	var got RunJSON
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if got.Diagnosis == nil || got.Diagnosis.Component != "orchestrator" || !strings.Contains(got.Diagnosis.Logs, "simulated crash") {
		t.Errorf("API diagnosis = %+v", got.Diagnosis)
	}

	_, body = f.get(t, RunPath(f.passed), http.StatusOK)
	wantNotContains(t, "passed run", body, `id="diagnosis"`)
}
