package store

import (
	"slices"
	"testing"

	"github.com/ductbot/ductbot/core/run"
)

func TestChangeDeps(t *testing.T) {
	eachDriver(t, func(t *testing.T, d driver) {
		s, _ := d.openTemp(t)
		ctx := t.Context()
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(s.SetChangeDeps(ctx, 20, []int{10, 11}))
		must(s.SetChangeDeps(ctx, 30, []int{10, 10}))
		got, err := s.Dependents(ctx, 10)
		must(err)
		if !slices.Equal(got, []int{20, 30}) {
			t.Errorf("dependents of 10 = %v, want [20 30]", got)
		}
		// Replacing a change's dependencies forgets the old ones.
		must(s.SetChangeDeps(ctx, 20, []int{12}))
		if got, _ := s.Dependents(ctx, 10); !slices.Equal(got, []int{30}) {
			t.Errorf("after 20 dropped 10: dependents of 10 = %v, want [30]", got)
		}
		if got, _ := s.Dependents(ctx, 11); len(got) != 0 {
			t.Errorf("dependents of 11 = %v, want none", got)
		}
		must(s.SetChangeDeps(ctx, 30, nil))
		if got, _ := s.Dependents(ctx, 10); len(got) != 0 {
			t.Errorf("after 30 dropped its deps: dependents of 10 = %v, want none", got)
		}

		// A run keeps the dependencies it deployed.
		r := &run.Run{Env: "change-20", Project: "orch", Change: 20, PatchSet: 1, Revision: "abc",
			Matrix: run.Matrix{"orchestrator": "x", "wiki": "y"}, Trigger: run.TriggerDependency, State: run.StateQueued,
			Deps: []run.Dep{{Change: 10, Project: "wiki", Component: "wiki", PatchSet: 2, Revision: "def"}, {Change: 9, Project: "eval", Component: "evaluator", Merged: true}}}
		must(s.CreateRun(ctx, r))
		back, err := s.GetRun(ctx, r.ID)
		must(err)
		if !slices.Equal(back.Deps, r.Deps) || back.Trigger != run.TriggerDependency {
			t.Errorf("run back = deps %+v trigger %q, want %+v", back.Deps, back.Trigger, r.Deps)
		}
		r.Deps = nil
		must(s.UpdateRun(ctx, r))
		if back, _ := s.GetRun(ctx, r.ID); len(back.Deps) != 0 {
			t.Errorf("deps after update to none = %+v", back.Deps)
		}
	})
}
