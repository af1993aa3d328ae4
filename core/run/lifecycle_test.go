package run

import (
	"testing"
	"time"
)

func TestMove(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		path []State
		ok   bool
	}{
		{"deploy, test, report, done", []State{StateDeploying, StateTesting, StateReporting, StateDone}, true},
		{"retest skips deploying", []State{StateTesting, StateReporting, StateDone}, true},
		{"deploy error goes to reporting", []State{StateDeploying, StateReporting, StateDone}, true},
		{"superseded while queued", []State{StateDone}, true},
		{"resumed after a restart", []State{StateDeploying, StateQueued, StateDeploying, StateTesting}, true},
		{"done is final", []State{StateDone, StateQueued}, false},
		{"a reported result cannot be superseded back", []State{StateDeploying, StateReporting, StateQueued}, false},
		{"no reporting straight from queued", []State{StateReporting}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &Run{ID: 1, State: StateQueued, CreatedAt: t0}
			var err error
			for i, s := range c.path {
				if err = Move(r, s, t0.Add(time.Duration(i+1)*time.Minute)); err != nil {
					break
				}
			}
			if (err == nil) != c.ok {
				t.Fatalf("err = %v, want ok=%v", err, c.ok)
			}
		})
	}
}

func TestMoveTimestamps(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	r := &Run{State: StateQueued, CreatedAt: t0}
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	for i, s := range []State{StateDeploying, StateTesting} {
		if err := Move(r, s, at(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := End(r, ResultPassed, "", at(3)); err != nil {
		t.Fatal(err)
	}
	if !r.StartedAt.Equal(at(1)) || !r.DeployedAt.Equal(at(2)) || !r.TestedAt.Equal(at(3)) || r.State != StateReporting || r.Reported {
		t.Errorf("after a passing run: %+v", r)
	}
	if err := Move(r, StateDone, at(4)); err != nil || !r.FinishedAt.Equal(at(4)) {
		t.Errorf("done: err %v, %+v", err, r)
	}
	marks := Marks(r)
	if len(marks) != 5 || marks[2].State != StateTesting || !marks[2].Start.Equal(at(2)) {
		t.Errorf("marks = %+v", marks)
	}

	s := &Run{State: StateTesting, StartedAt: at(1), DeployedAt: at(2)}
	if err := End(s, ResultSuperseded, "by run 9", at(5)); err != nil || s.State != StateDone || !s.Reported || s.Result != ResultSuperseded {
		t.Errorf("superseded: err %v, %+v", err, s)
	}
	q := &Run{State: StateDone}
	if err := End(q, ResultCanceled, "", at(6)); err == nil {
		t.Errorf("ending a finished run again succeeded")
	}
}
