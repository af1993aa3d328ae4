package run

import (
	"fmt"
	"time"
)

// The run lifecycle, in one place. A run moves
//
//	queued → deploying → testing → reporting → done
//
// with these shortcuts: a retest goes from queued straight to testing; a
// deploy that fails goes from deploying to reporting (it has a result to
// report); a run superseded or canceled before it has a result goes to done
// from any state but reporting; and a run interrupted by a restart goes from
// deploying or testing back to queued, to be taken up again.
var allowed = map[State][]State{
	StateQueued:    {StateDeploying, StateTesting, StateDone},
	StateDeploying: {StateTesting, StateReporting, StateQueued, StateDone},
	StateTesting:   {StateReporting, StateQueued, StateDone},
	StateReporting: {StateDone},
	StateDone:      nil,
}

// CanMove reports whether a run in state from may move to state to.
func CanMove(from, to State) bool {
	for _, s := range allowed[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Move takes r to state to at now, setting the timestamp that state
// starts: StartedAt when it starts deploying (or testing, for a retest),
// DeployedAt when a deploy finished and testing starts, TestedAt when a
// result is reached, FinishedAt at done. A timestamp already set is kept,
// so a run resumed after a restart keeps its history. It refuses a move the
// lifecycle does not allow and leaves r unchanged.
func Move(r *Run, to State, now time.Time) error {
	if !CanMove(r.State, to) {
		return fmt.Errorf("run %d: %s → %s is not a step of the run lifecycle", r.ID, r.State, to)
	}
	now = now.UTC()
	setOnce := func(t *time.Time) {
		if t.IsZero() {
			*t = now
		}
	}
	switch to {
	case StateDeploying:
		setOnce(&r.StartedAt)
	case StateTesting:
		setOnce(&r.StartedAt)
		if r.State == StateDeploying {
			r.DeployedAt = now // the deploy just finished
		} else {
			setOnce(&r.DeployedAt) // a retest, or a resumed run: deployed before
		}
	case StateReporting:
		setOnce(&r.TestedAt)
	case StateDone:
		r.FinishedAt = now
	}
	r.State = to
	return nil
}

// End records a result and moves r on: to reporting when the result must
// be reported (passed, failed, error), to done when there is nothing to
// report (superseded, canceled: no review is posted for them, so Reported is
// set too).
func End(r *Run, result Result, detail string, now time.Time) error {
	to := StateReporting
	if !result.Reportable() {
		to = StateDone
	}
	if err := Move(r, to, now); err != nil {
		return err
	}
	r.Result, r.Detail = result, detail
	if to == StateDone {
		r.Reported = true
	}
	return nil
}

// Reportable reports whether a run that ended with this result gets a
// review and an announcement.
func (res Result) Reportable() bool {
	return res == ResultPassed || res == ResultFailed || res == ResultError
}

// Mark is one phase of a run's life and when it began; the zero Start means
// the run has not reached it.
type Mark struct {
	State State
	Start time.Time
}

// Marks lists the phases a run went through, from queued to done, with the
// time each began. Pages show them; Move sets them.
func Marks(r *Run) []Mark {
	return []Mark{
		{StateQueued, r.CreatedAt},
		{StateDeploying, r.StartedAt},
		{StateTesting, r.DeployedAt},
		{StateReporting, r.TestedAt},
		{StateDone, r.FinishedAt},
	}
}
