package commands

import (
	"strings"
	"testing"

	"github.com/ductbot/ductbot/core/run"
)

// A result whose deploy failed says in chat which component, why, its
// last log lines and warning events; briefly, one line each.
func TestFormatAnnouncementDiagnosis(t *testing.T) {
	var logs strings.Builder
	for i := range 30 {
		logs.WriteString("orchestrator: line " + strings.Repeat("x", i) + "\n")
	}
	logs.WriteString("orchestrator: simulated crash: exiting with status 1\n")
	crash := &run.Diagnosis{Class: run.DiagnosisBroken, Component: "orchestrator", Own: true,
		Reason: "CrashLoopBackOff: container orchestrator exited with status 1 (Error), restarted 2 times",
		Logs:   logs.String(), Events: []string{"Unhealthy: old", "BackOff: a", "BackOff: b", "BackOff: Back-off restarting failed container (×2)"}}
	image := &run.Diagnosis{Class: run.DiagnosisImage, Component: "evaluator", Reason: "image reg/evaluator:nope not found or not pullable"}

	for _, tc := range []struct {
		name    string
		r       run.Run
		want    []string
		notWant []string
	}{
		{"crash", run.Run{Change: 1, PatchSet: 2, State: run.StateDone, Result: run.ResultFailed, Diagnosis: crash},
			[]string{"broken: orchestrator (this change's component): CrashLoopBackOff: container orchestrator exited with status 1 (Error), restarted 2 times",
				"log: orchestrator: simulated crash: exiting with status 1", "event: BackOff: Back-off restarting failed container (×2)"},
			[]string{"Unhealthy: old", "line xxxxxxxxxxxxxxxxxxxxxxxxx\n"}},
		{"image", run.Run{Change: 1, PatchSet: 2, State: run.StateDone, Result: run.ResultError, Diagnosis: image, Detail: "deploy failed: evaluator: image …"},
			[]string{"image missing: evaluator (not this change's component): image reg/evaluator:nope not found"},
			[]string{"detail:"}},
		{"no diagnosis", run.Run{Change: 1, PatchSet: 2, State: run.StateDone, Result: run.ResultFailed, Detail: "test e2e failed"},
			nil, []string{"broken:", "log:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := FormatAnnouncement(run.Announcement{Run: tc.r})
			text := strings.Join(m.Lines, "\n") + "\n"
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("lines lack %q:\n%s", w, text)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(text, w) {
					t.Errorf("lines have %q:\n%s", w, text)
				}
			}
			if n := strings.Count(text, "log: "); n > chatLogLines {
				t.Errorf("%d log lines, want at most %d", n, chatLogLines)
			}
		})
	}
}
