package store

import (
	"fmt"
	"testing"

	"github.com/ductbot/ductbot/core/run"
)

// BenchmarkListEnvs1000 is the dashboard's read: every environment, of
// 1,000, on each database.
func BenchmarkListEnvs1000(b *testing.B) {
	benchDrivers(b, func(b *testing.B, d driver) {
		s, _ := d.openTemp(b)
		for i := range 1000 {
			e := fullEnv()
			e.Name = fmt.Sprint("change-", i)
			if _, err := s.CreateOrReviveEnv(b.Context(), e); err != nil {
				b.Fatal(err)
			}
		}
		for b.Loop() {
			envs, err := s.ListEnvs(b.Context(), EnvFilter{Alive: true})
			if err != nil || len(envs) != 1000 {
				b.Fatalf("%d envs, %v", len(envs), err)
			}
		}
	})
}

// BenchmarkRunLifecycle is what the pipeline writes and reads for one run
// that deploys, tests and reports: the store operations per run.
func BenchmarkRunLifecycle(b *testing.B) {
	benchDrivers(b, func(b *testing.B, d driver) {
		s, _ := d.openTemp(b)
		ctx := b.Context()
		for b.Loop() {
			e := fullEnv()
			if _, err := s.CreateOrReviveEnv(ctx, e); err != nil {
				b.Fatal(err)
			}
			r := fullRun()
			r.State, r.Result, r.Reported = run.StateQueued, run.ResultNone, false
			if err := s.CreateRun(ctx, r); err != nil {
				b.Fatal(err)
			}
			for _, st := range []run.State{run.StateDeploying, run.StateTesting, run.StateReporting, run.StateDone} {
				r.State = st
				if err := s.UpdateRun(ctx, r); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.SetEnvStatus(ctx, e.Name, run.EnvDeploying, at(1)); err != nil {
				b.Fatal(err)
			}
			if err := s.SetEnvDeployed(ctx, e.Name, r.PatchSet, r.Revision, r.Matrix); err != nil {
				b.Fatal(err)
			}
			if err := s.SetEnvStatus(ctx, e.Name, run.EnvReady, at(2)); err != nil {
				b.Fatal(err)
			}
			if err := s.PutTestLogs(ctx, r.ID, []run.TestLog{{Pod: "e2e", Phase: "Succeeded", Log: "ok\n"}}); err != nil {
				b.Fatal(err)
			}
			if _, err := s.ListRuns(ctx, RunFilter{Change: r.Change, PatchSet: r.PatchSet}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(11, "store-ops/run")
	})
}
