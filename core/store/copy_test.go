package store

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/ductbot/ductbot/core/run"
)

// fill gives s some of everything: runs (the newest of them pruned, so
// that the last issued id is above the largest kept), test logs, reply
// targets, environments (live, protected, gone), change cursors and meta.
func fill(t *testing.T, s *Store) {
	t.Helper()
	ctx := t.Context()
	for i := range 5 {
		r := fullRun()
		r.Change, r.PatchSet, r.Env = 100+i, i+1, fmt.Sprint("change-", 100+i)
		r.Detail = fmt.Sprint("run ", i)
		if i == 2 {
			r.State, r.Result, r.FinishedAt, r.Reported, r.TestOnly = run.StateTesting, run.ResultNone, time.Time{}, false, false
		}
		if err := s.CreateRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		if err := s.PutTestLogs(ctx, r.ID, []run.TestLog{{Pod: "e2e", Phase: "Failed", Log: fmt.Sprint("log of ", r.ID)}, {Pod: "smoke", Phase: "Succeeded"}}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutReplyTarget(ctx, r.ID, fmt.Sprint("irc:#team/", r.ID)); err != nil {
			t.Fatal(err)
		}
	}
	pruned := &run.Run{Env: "gone", State: run.StateDone, Result: run.ResultPassed, FinishedAt: at(-999999)}
	if err := s.CreateRun(ctx, pruned); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PruneRuns(ctx, at(-1000)); err != nil || n != 1 {
		t.Fatalf("PruneRuns = %d, %v", n, err)
	}
	live, protected, gone := fullEnv(), fullEnv(), fullEnv()
	live.Name, live.Protected, live.GoneAt = "live", false, time.Time{}
	protected.Name = "protected"
	gone.Name, gone.Status = "gone", run.EnvGone
	for _, e := range []*run.Env{live, protected, gone} {
		if err := s.PutEnv(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []ChangeCursor{
		{Change: 100, FirstSeen: at(1), MessagesSeen: at(2), Triggered: 3, Noticed: 1},
		{Change: 101, FirstSeen: at(5)},
	} {
		if err := s.PutChangeCursor(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range map[string]string{"gerrit.watermark": "2026-03-04 05:06:07.000000000", "other": ""} {
		if err := s.SetMeta(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
}

// state is everything a store holds, read through its API.
type state struct {
	Runs    []*run.Run
	Logs    map[int64][]run.TestLog
	Targets map[int64]string
	Envs    []*run.Env
	Cursors []ChangeCursor
	Meta    map[string]string
}

func readState(t *testing.T, s *Store) state {
	t.Helper()
	ctx := t.Context()
	st := state{Logs: map[int64][]run.TestLog{}, Targets: map[int64]string{}, Meta: map[string]string{}}
	var err error
	if st.Runs, err = s.ListRuns(ctx, RunFilter{}); err != nil {
		t.Fatal(err)
	}
	for _, r := range st.Runs {
		if st.Logs[r.ID], err = s.TestLogs(ctx, r.ID); err != nil {
			t.Fatal(err)
		}
		if st.Targets[r.ID], err = s.ReplyTarget(ctx, r.ID); err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
	}
	if st.Envs, err = s.ListEnvs(ctx, EnvFilter{}); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []int{100, 101, 102} {
		c, err := s.ChangeCursor(ctx, ch)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		st.Cursors = append(st.Cursors, c)
	}
	for _, k := range []string{"gerrit.watermark", "other", "absent"} {
		if v, ok, err := s.GetMeta(ctx, k); err != nil {
			t.Fatal(err)
		} else if ok {
			st.Meta[k] = v
		}
	}
	return st
}

func TestCopy(t *testing.T) {
	for _, from := range drivers {
		for _, to := range drivers {
			t.Run(from.name+" to "+to.name, func(t *testing.T) {
				ctx := t.Context()
				src, _ := from.openTemp(t)
				fill(t, src)
				want := readState(t, src)
				lastSrc, err := src.lastRunID(ctx, src.r.txn)
				if err != nil {
					t.Fatal(err)
				}
				dst, _ := to.openTemp(t)

				c, err := Copy(ctx, dst, src)
				if err != nil {
					t.Fatalf("Copy: %v", err)
				}
				wantCopied := Copied{Runs: 5, TestLogs: 10, ReplyTargets: 5, Envs: 3, Meta: 2, ChangeCursors: 2, LastRunID: 6}
				if c != wantCopied || lastSrc != 6 {
					t.Errorf("Copy = %+v, want %+v (source's last id %d)", c, wantCopied, lastSrc)
				}
				if got := readState(t, dst); !reflect.DeepEqual(got, want) {
					t.Errorf("destination holds\n%+v\nwant\n%+v", got, want)
				}
				if existed, err := dst.RunExisted(ctx, 6); err != nil || !existed {
					t.Errorf("RunExisted(6) (pruned before the copy) = %v, %v; want true", existed, err)
				}
				r := &run.Run{Env: "after"}
				if err := dst.CreateRun(ctx, r); err != nil || r.ID != 7 {
					t.Errorf("the first run after the copy got id %d (%v), want 7", r.ID, err)
				}

				// Not into a store that holds something, which is left as it was.
				before := readState(t, dst)
				if _, err := Copy(ctx, dst, src); !errors.Is(err, ErrNotEmpty) {
					t.Errorf("second Copy: %v, want ErrNotEmpty", err)
				}
				if after := readState(t, dst); !reflect.DeepEqual(after, before) {
					t.Errorf("a refused Copy changed the destination")
				}
			})
		}
	}
}

// TestCopyAllOrNothing: a copy that fails half way leaves the destination
// empty.
func TestCopyAllOrNothing(t *testing.T) {
	eachDriver(t, func(t *testing.T, to driver) {
		src, _ := drivers[0].openTemp(t)
		fill(t, src)
		dst, _ := to.openTemp(t)
		// An environment whose matrix is not JSON fails the copy after the
		// runs and logs were written.
		if _, err := src.w.ExecContext(t.Context(), `UPDATE envs SET matrix = 'not json' WHERE name = 'live'`); err != nil {
			t.Fatal(err)
		}
		if _, err := Copy(t.Context(), dst, src); err == nil {
			t.Fatal("Copy of a bad environment succeeded")
		}
		if got := readState(t, dst); len(got.Runs)+len(got.Envs)+len(got.Cursors)+len(got.Meta) != 0 {
			t.Errorf("a failed Copy left %+v", got)
		}
		r := &run.Run{Env: "e"}
		if err := dst.CreateRun(t.Context(), r); err != nil || r.ID != 1 {
			t.Errorf("first run after a failed copy: id %d, %v; want 1", r.ID, err)
		}
	})
}
