package store

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ductbot/ductbot/core/run"
)

// A run's diagnosis is stored with it and read back whole; untrusted log
// text comes back valid UTF-8 without NULs; a run without one reads nil.
func TestRunDiagnosisRoundTrip(t *testing.T) {
	eachDriver(t, func(t *testing.T, d driver) {
		s, _ := d.openTemp(t)
		ctx := t.Context()
		r := &run.Run{Env: "change-1", Project: "p", Change: 1, PatchSet: 1, State: run.StateQueued, Trigger: run.TriggerUpload}
		if err := s.CreateRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetRun(ctx, r.ID)
		if err != nil || got.Diagnosis != nil {
			t.Fatalf("new run's diagnosis = %+v, %v; want nil", got.Diagnosis, err)
		}
		r.Diagnosis = &run.Diagnosis{
			Class: run.DiagnosisBroken, Component: "orchestrator", Own: true, Pod: "wf-orchestrator-5d8f-x", Container: "orchestrator",
			Image: "registry/orchestrator:abc", Reason: "CrashLoopBackOff: container orchestrator exited with status 1 (Error), restarted 2 times",
			Logs:   "orchestrator: starting\x00\xff\norchestrator: simulated crash",
			Events: []string{"BackOff: Back-off restarting failed container (×2)"},
			Others: []string{"evaluator: not ready"},
		}
		r.Result, r.State, r.FinishedAt = run.ResultFailed, run.StateReporting, time.Now()
		if err := s.UpdateRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		got, err = s.GetRun(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := *r.Diagnosis
		want.Logs = "orchestrator: starting\uFFFD\uFFFD\norchestrator: simulated crash"
		if got.Diagnosis == nil || !reflect.DeepEqual(*got.Diagnosis, want) {
			t.Errorf("diagnosis read back = %+v\nwant %+v", got.Diagnosis, want)
		}
		runs, err := s.ListRuns(ctx, RunFilter{Change: 1})
		if err != nil || len(runs) != 1 || runs[0].Diagnosis == nil || runs[0].Diagnosis.Component != "orchestrator" {
			t.Errorf("ListRuns = %+v, %v; want the run with its diagnosis", runs, err)
		}
		r.Diagnosis = nil
		if err := s.UpdateRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		if got, _ = s.GetRun(ctx, r.ID); got.Diagnosis != nil {
			t.Errorf("diagnosis after clearing it = %+v, want nil", got.Diagnosis)
		}
	})
}

// A database at schema 2 (before diagnoses) gets the column; its runs
// read back without a diagnosis.
func TestMigrateSchema2AddsDiagnosis(t *testing.T) {
	eachDriver(t, func(t *testing.T, d driver) {
		where := d.fresh(t)
		db := d.raw(t, where)
		for _, m := range migrations[:2] {
			d.exec(t, db, d.d.types.Replace(m.sql))
		}
		d.exec(t, db, d.setVersion(2))
		d.exec(t, db, `INSERT INTO runs (env, project, change_number, patch_set, revision, subject, owner, matrix,
			trigger_kind, requested_by, test_only, state, result, attempts, detail, reported, created_at)
			VALUES ('change-7', 'p', 7, 1, 'abc', 'Old run', 'o', '{}', 'upload', '', false, 'done', 'error', 3, 'deploy failed', true, 1)`)
		s := d.mustOpen(t, where)
		if v := d.version(t, where); v != SchemaVersion() || v < 3 {
			t.Errorf("schema version = %d, want %d", v, SchemaVersion())
		}
		runs, err := s.ListRuns(t.Context(), RunFilter{Change: 7})
		if err != nil || len(runs) != 1 || runs[0].Diagnosis != nil || !strings.Contains(runs[0].Detail, "deploy failed") {
			t.Fatalf("old run after migration = %+v, %v; want it without a diagnosis", runs, err)
		}
	})
}
