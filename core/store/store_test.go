package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ductbot/ductbot/core/run"
)

// at returns a time with nanoseconds in a non-UTC zone, to prove that times
// come back as the same instant in UTC.
func at(sec int64) time.Time {
	return time.Unix(1_760_000_000+sec, 123_456_789).In(time.FixedZone("CEST", 2*3600))
}

func fullRun() *run.Run {
	return &run.Run{
		Env:         "change-12345",
		Project:     "mediawiki/extensions/WikiLambda",
		Change:      12345,
		PatchSet:    3,
		Revision:    "0123456789abcdef0123456789abcdef01234567",
		Subject:     `Fix <b>"quotes"</b> & 'things'`,
		Owner:       "Jane Doe <jane@example.org>",
		Matrix:      run.Matrix{"wiki": "change:12345/3", "orchestrator": "abc", "evaluator": "def"},
		Trigger:     run.TriggerRecheck,
		RequestedBy: "jane",
		TestOnly:    true,
		State:       run.StateDone,
		Result:      run.ResultFailed,
		Attempts:    2,
		Detail:      "test e2e failed\nline two",
		Reported:    true,
		CreatedAt:   at(0),
		StartedAt:   at(1),
		DeployedAt:  at(60),
		TestedAt:    at(120),
		FinishedAt:  at(121),
	}
}

// utcRun is r with every time converted the way the store returns them.
func utcRun(r run.Run) *run.Run {
	for _, p := range []*time.Time{&r.CreatedAt, &r.StartedAt, &r.DeployedAt, &r.TestedAt, &r.FinishedAt} {
		*p = utc(*p)
	}
	return &r
}

func TestRunRoundTrip(t *testing.T) {
	eachDriver(t, func(t *testing.T, d driver) {
		s, _ := d.openTemp(t)
		ctx := t.Context()

		in := fullRun()
		if err := s.CreateRun(ctx, in); err != nil {
			t.Fatalf("CreateRun: %v", err)
		}
		if in.ID <= 0 {
			t.Fatalf("CreateRun set ID = %d, want > 0", in.ID)
		}
		got, err := s.GetRun(ctx, in.ID)
		if err != nil {
			t.Fatalf("GetRun: %v", err)
		}
		if want := utcRun(*in); !reflect.DeepEqual(got, want) {
			t.Errorf("GetRun =\n%+v\nwant\n%+v", got, want)
		}
		if got.FinishedAt.Location() != time.UTC || !got.FinishedAt.Equal(in.FinishedAt) {
			t.Errorf("FinishedAt = %v, want %v in UTC", got.FinishedAt, in.FinishedAt)
		}

		// Every field changes on update.
		up := &run.Run{
			ID: in.ID, Env: "custom-1", Project: "p2", Change: 7, PatchSet: 1, Revision: "ff",
			Subject: "s2", Owner: "o2", Matrix: run.Matrix{"wiki": "main"}, Trigger: run.TriggerChat,
			RequestedBy: "bob", TestOnly: false, State: run.StateTesting, Result: run.ResultNone, Attempts: 5,
			Detail: "", Reported: false, CreatedAt: at(1000), StartedAt: at(1001),
		}
		if err := s.UpdateRun(ctx, up); err != nil {
			t.Fatalf("UpdateRun: %v", err)
		}
		got, err = s.GetRun(ctx, in.ID)
		if err != nil {
			t.Fatalf("GetRun after update: %v", err)
		}
		if want := utcRun(*up); !reflect.DeepEqual(got, want) {
			t.Errorf("after UpdateRun =\n%+v\nwant\n%+v", got, want)
		}
	})
}

func TestRunDefaults(t *testing.T) {
	eachDriver(t, func(t *testing.T, d driver) {
		s, _ := d.openTemp(t)
		ctx := t.Context()
		before := time.Now()

		r := &run.Run{Env: "e", State: run.StateQueued}
		if err := s.CreateRun(ctx, r); err != nil {
			t.Fatalf("CreateRun: %v", err)
		}
		if r.CreatedAt.Before(before.Add(-time.Second)) || r.CreatedAt.Location() != time.UTC {
			t.Errorf("CreatedAt = %v, want about now in UTC", r.CreatedAt)
		}
		got, err := s.GetRun(ctx, r.ID)
		if err != nil {
			t.Fatalf("GetRun: %v", err)
		}
		if !got.CreatedAt.Equal(r.CreatedAt) {
			t.Errorf("stored CreatedAt = %v, want %v", got.CreatedAt, r.CreatedAt)
		}
		for name, tm := range map[string]time.Time{"StartedAt": got.StartedAt, "DeployedAt": got.DeployedAt, "TestedAt": got.TestedAt, "FinishedAt": got.FinishedAt} {
			if !tm.IsZero() {
				t.Errorf("%s = %v, want zero", name, tm)
			}
		}
		if got.Matrix != nil {
			t.Errorf("Matrix = %v, want nil", got.Matrix)
		}

		// A zero CreatedAt on update keeps the stored one.
		got.CreatedAt = time.Time{}
		got.State = run.StateDeploying
		if err := s.UpdateRun(ctx, got); err != nil {
			t.Fatalf("UpdateRun: %v", err)
		}
		again, err := s.GetRun(ctx, r.ID)
		if err != nil {
			t.Fatalf("GetRun: %v", err)
		}
		if !again.CreatedAt.Equal(r.CreatedAt) || again.State != run.StateDeploying {
			t.Errorf("after update CreatedAt = %v, State = %q; want %v, %q", again.CreatedAt, again.State, r.CreatedAt, run.StateDeploying)
		}

		if err := s.CreateRun(ctx, &run.Run{ID: 99, Env: "e"}); err == nil {
			t.Error("CreateRun with an ID set succeeded, want an error")
		}
	})
}

func TestRunNotFound(t *testing.T) {
	eachDriver(t, func(t *testing.T, d driver) {
		s, _ := d.openTemp(t)
		ctx := t.Context()
		if _, err := s.GetRun(ctx, 42); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetRun(42) error = %v, want ErrNotFound", err)
		}
		if err := s.UpdateRun(ctx, &run.Run{ID: 42, Env: "e"}); !errors.Is(err, ErrNotFound) {
			t.Errorf("UpdateRun(42) error = %v, want ErrNotFound", err)
		}
	})
}

func TestListRuns(t *testing.T) {
	eachDriver(t, func(t *testing.T, d driver) {
		s, _ := d.openTemp(t)
		specs := []run.Run{
			{Env: "a", Project: "p1", Change: 1, PatchSet: 1, State: run.StateDone, Result: run.ResultPassed},
			{Env: "a", Project: "p1", Change: 1, PatchSet: 2, State: run.StateTesting},
			{Env: "b", Project: "p2", Change: 2, PatchSet: 1, State: run.StateQueued},
			{Env: "c", Project: "p1", Change: 3, PatchSet: 1, State: run.StateDone, Result: run.ResultError},
		}
		ids := createRuns(t, s, specs)
		tests := []struct {
			name string
			f    RunFilter
			want []int64
		}{
			{"all newest first", RunFilter{}, []int64{ids[3], ids[2], ids[1], ids[0]}},
			{"env", RunFilter{Env: "a"}, []int64{ids[1], ids[0]}},
			{"project", RunFilter{Project: "p1"}, []int64{ids[3], ids[1], ids[0]}},
			{"change", RunFilter{Change: 1}, []int64{ids[1], ids[0]}},
			{"patch set", RunFilter{Change: 1, PatchSet: 2}, []int64{ids[1]}},
			{"unfinished", RunFilter{Unfinished: true}, []int64{ids[2], ids[1]}},
			{"limit", RunFilter{Limit: 2}, []int64{ids[3], ids[2]}},
			{"project and unfinished", RunFilter{Project: "p1", Unfinished: true}, []int64{ids[1]}},
			{"nothing", RunFilter{Env: "zzz"}, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got := runIDs(t, s, tt.f)
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("ListRuns(%+v) ids = %v, want %v", tt.f, got, tt.want)
				}
			})
		}
	})
}

func fullEnv() *run.Env {
	return &run.Env{
		Name:        "change-12345",
		Namespace:   "ductbot-change-12345",
		Release:     "change-12345",
		Kind:        run.EnvCustom,
		Project:     "mediawiki/extensions/WikiLambda",
		Change:      12345,
		PatchSet:    4,
		Revision:    "abcdef",
		Subject:     "<script>alert(1)</script>",
		Owner:       "Jane",
		Matrix:      run.Matrix{"wiki": "change:12345/4", "orchestrator": "abc"},
		URL:         "https://change-12345.envs.example.org",
		Status:      run.EnvReady,
		Protected:   true,
		RequestedBy: "slack:U123",
		CreatedAt:   at(0),
		ActiveAt:    at(10),
		ExpiresAt:   at(86400),
		GoneAt:      at(90000),
	}
}

func TestEnvRoundTrip(t *testing.T) {
	eachDriver(t, func(t *testing.T, d driver) {
		s, _ := d.openTemp(t)
		ctx := t.Context()
		fixed := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
		s.now = func() time.Time { return fixed }

		in := fullEnv()
		if err := s.PutEnv(ctx, in); err != nil {
			t.Fatalf("PutEnv: %v", err)
		}
		if !in.UpdatedAt.Equal(fixed) {
			t.Errorf("PutEnv set UpdatedAt = %v, want %v", in.UpdatedAt, fixed)
		}
		got, err := s.GetEnv(ctx, in.Name)
		if err != nil {
			t.Fatalf("GetEnv: %v", err)
		}
		want := *in
		want.CreatedAt, want.ActiveAt, want.ExpiresAt, want.GoneAt = utc(in.CreatedAt), utc(in.ActiveAt), utc(in.ExpiresAt), utc(in.GoneAt)
		if !reflect.DeepEqual(got, &want) {
			t.Errorf("GetEnv =\n%+v\nwant\n%+v", got, &want)
		}

		// Upsert with a zero CreatedAt keeps the stored one and clears the rest.
		later := fixed.Add(time.Hour)
		s.now = func() time.Time { return later }
		up := &run.Env{Name: in.Name, Kind: run.EnvPatch, Status: run.EnvGone, PatchSet: 5}
		if err := s.PutEnv(ctx, up); err != nil {
			t.Fatalf("PutEnv upsert: %v", err)
		}
		if !up.CreatedAt.Equal(in.CreatedAt) {
			t.Errorf("upsert CreatedAt = %v, want the stored %v", up.CreatedAt, in.CreatedAt)
		}
		got, err = s.GetEnv(ctx, in.Name)
		if err != nil {
			t.Fatalf("GetEnv: %v", err)
		}
		want = run.Env{Name: in.Name, Kind: run.EnvPatch, Status: run.EnvGone, PatchSet: 5, CreatedAt: utc(in.CreatedAt), UpdatedAt: later}
		if !reflect.DeepEqual(got, &want) {
			t.Errorf("after upsert GetEnv =\n%+v\nwant\n%+v", got, &want)
		}

		if err := s.PutEnv(ctx, &run.Env{}); err == nil {
			t.Error("PutEnv with an empty name succeeded")
		}
	})
}

func TestEnvListAndDelete(t *testing.T) {
	eachDriver(t, func(t *testing.T, d driver) {
		s, _ := d.openTemp(t)
		ctx := t.Context()
		envs := []*run.Env{
			{Name: "c", Project: "p1", Change: 1, Kind: run.EnvPatch, Status: run.EnvReady, CreatedAt: at(30)},
			{Name: "a", Project: "p1", Change: 2, Kind: run.EnvCustom, RequestedBy: "bob", Status: run.EnvGone, CreatedAt: at(10)},
			{Name: "b", Project: "p2", Change: 1, Kind: run.EnvCustom, RequestedBy: "amy", Status: run.EnvBroken, CreatedAt: at(20)},
		}
		for _, e := range envs {
			if err := s.PutEnv(ctx, e); err != nil {
				t.Fatalf("PutEnv(%s): %v", e.Name, err)
			}
		}
		tests := []struct {
			f    EnvFilter
			want []string
		}{
			{EnvFilter{}, []string{"a", "b", "c"}},
			{EnvFilter{Project: "p1"}, []string{"a", "c"}},
			{EnvFilter{Change: 1}, []string{"b", "c"}},
			{EnvFilter{Kind: run.EnvCustom}, []string{"a", "b"}},
			{EnvFilter{RequestedBy: "amy"}, []string{"b"}},
			{EnvFilter{Alive: true}, []string{"b", "c"}},
			{EnvFilter{Project: "p1", Alive: true}, []string{"c"}},
			{EnvFilter{Project: "none"}, nil},
		}
		for _, tt := range tests {
			got, err := s.ListEnvs(ctx, tt.f)
			if err != nil {
				t.Fatalf("ListEnvs(%+v): %v", tt.f, err)
			}
			var names []string
			for _, e := range got {
				names = append(names, e.Name)
			}
			if !reflect.DeepEqual(names, tt.want) {
				t.Errorf("ListEnvs(%+v) = %v, want %v", tt.f, names, tt.want)
			}
		}

		if err := s.DeleteEnv(ctx, "a"); err != nil {
			t.Fatalf("DeleteEnv: %v", err)
		}
		if _, err := s.GetEnv(ctx, "a"); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetEnv after delete: %v, want ErrNotFound", err)
		}
		if err := s.DeleteEnv(ctx, "a"); !errors.Is(err, ErrNotFound) {
			t.Errorf("second DeleteEnv: %v, want ErrNotFound", err)
		}
	})
}

func TestTestLogs(t *testing.T) {
	eachDriver(t, func(t *testing.T, d driver) {
		s, _ := d.openTemp(t)
		ctx := t.Context()
		r := &run.Run{Env: "e"}
		if err := s.CreateRun(ctx, r); err != nil {
			t.Fatalf("CreateRun: %v", err)
		}
		if logs, err := s.TestLogs(ctx, r.ID); err != nil || len(logs) != 0 {
			t.Fatalf("TestLogs before put = %v, %v; want none", logs, err)
		}
		first := []run.TestLog{
			{Pod: "z-e2e", Phase: "Failed", Log: "line 1\nline 2\n\x1b[31mred\x1b[0m <b>"},
			{Pod: "a-smoke", Phase: "Succeeded", Log: ""},
		}
		if err := s.PutTestLogs(ctx, r.ID, first); err != nil {
			t.Fatalf("PutTestLogs: %v", err)
		}
		got, err := s.TestLogs(ctx, r.ID)
		if err != nil {
			t.Fatalf("TestLogs: %v", err)
		}
		want := []run.TestLog{
			{RunID: r.ID, Pod: "z-e2e", Phase: "Failed", Log: first[0].Log},
			{RunID: r.ID, Pod: "a-smoke", Phase: "Succeeded"},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("TestLogs = %+v, want %+v (put order)", got, want)
		}

		second := []run.TestLog{{Pod: "only", Phase: "Succeeded", Log: "ok"}}
		if err := s.PutTestLogs(ctx, r.ID, second); err != nil {
			t.Fatalf("PutTestLogs replace: %v", err)
		}
		got, err = s.TestLogs(ctx, r.ID)
		if err != nil {
			t.Fatalf("TestLogs: %v", err)
		}
		if want := []run.TestLog{{RunID: r.ID, Pod: "only", Phase: "Succeeded", Log: "ok"}}; !reflect.DeepEqual(got, want) {
			t.Errorf("after replace TestLogs = %+v, want %+v", got, want)
		}

		if err := s.PutTestLogs(ctx, r.ID+100, second); !errors.Is(err, ErrNotFound) {
			t.Errorf("PutTestLogs for a missing run: %v, want ErrNotFound", err)
		}
	})
}

func TestMeta(t *testing.T) {
	eachDriver(t, func(t *testing.T, d driver) {
		s, _ := d.openTemp(t)
		ctx := t.Context()
		if v, ok, err := s.GetMeta(ctx, "gerrit.watermark"); err != nil || ok || v != "" {
			t.Fatalf("GetMeta of unset key = %q, %v, %v; want \"\", false, nil", v, ok, err)
		}
		for _, v := range []string{"2026-01-01 00:00:00.000000000", ""} {
			if err := s.SetMeta(ctx, "gerrit.watermark", v); err != nil {
				t.Fatalf("SetMeta: %v", err)
			}
			got, ok, err := s.GetMeta(ctx, "gerrit.watermark")
			if err != nil || !ok || got != v {
				t.Errorf("GetMeta = %q, %v, %v; want %q, true, nil", got, ok, err, v)
			}
		}
	})
}

func TestPruneRuns(t *testing.T) {
	eachDriver(t, func(t *testing.T, d driver) {
		s, _ := d.openTemp(t)
		ctx := t.Context()
		cutoff := at(1000)
		mk := func(state run.State, finished time.Time) int64 {
			t.Helper()
			r := &run.Run{Env: "e", State: state, CreatedAt: at(0), FinishedAt: finished}
			if state == run.StateDone {
				r.Result = run.ResultPassed
			}
			if err := s.CreateRun(ctx, r); err != nil {
				t.Fatalf("CreateRun: %v", err)
			}
			if err := s.PutTestLogs(ctx, r.ID, []run.TestLog{{Pod: "p", Log: "x"}}); err != nil {
				t.Fatalf("PutTestLogs: %v", err)
			}
			return r.ID
		}
		oldDone := mk(run.StateDone, at(10))
		newDone := mk(run.StateDone, at(2000))
		oldStuck := mk(run.StateTesting, time.Time{})
		lastOld := mk(run.StateDone, at(999)) // the highest id is pruned too

		n, err := s.PruneRuns(ctx, cutoff)
		if err != nil {
			t.Fatalf("PruneRuns: %v", err)
		}
		if n != 2 {
			t.Errorf("PruneRuns = %d, want 2", n)
		}
		for id, wantKept := range map[int64]bool{oldDone: false, newDone: true, oldStuck: true, lastOld: false} {
			_, err := s.GetRun(ctx, id)
			if kept := err == nil; kept != wantKept {
				t.Errorf("run %d kept = %v (err %v), want %v", id, kept, err, wantKept)
			}
			existed, err := s.RunExisted(ctx, id)
			if err != nil || !existed {
				t.Errorf("RunExisted(%d) = %v, %v; want true", id, existed, err)
			}
		}
		var orphanLogs int
		if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM test_logs WHERE run_id IN (?, ?)`, oldDone, lastOld).Scan(&orphanLogs); err != nil {
			t.Fatal(err)
		}
		if orphanLogs != 0 {
			t.Errorf("%d test logs of pruned runs remain", orphanLogs)
		}
		for _, id := range []int64{0, -1, lastOld + 1} {
			if existed, err := s.RunExisted(ctx, id); err != nil || existed {
				t.Errorf("RunExisted(%d) = %v, %v; want false", id, existed, err)
			}
		}

		// Ids are never reused, even after the newest run was pruned.
		r := &run.Run{Env: "e"}
		if err := s.CreateRun(ctx, r); err != nil {
			t.Fatalf("CreateRun: %v", err)
		}
		if r.ID <= lastOld {
			t.Errorf("new run id %d, want > pruned id %d", r.ID, lastOld)
		}
	})
}

func TestRunExistedEmpty(t *testing.T) {
	eachDriver(t, func(t *testing.T, d driver) {
		s, _ := d.openTemp(t)
		if existed, err := s.RunExisted(t.Context(), 1); err != nil || existed {
			t.Errorf("RunExisted(1) on an empty store = %v, %v; want false, nil", existed, err)
		}
	})
}

func TestMigrateAndReopen(t *testing.T) {
	eachDriver(t, func(t *testing.T, d driver) {
		ctx := t.Context()
		where := d.fresh(t)
		if d.name == "sqlite" {
			// An existing empty file is a new, empty database.
			if err := os.WriteFile(where, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		s, err := d.open(t, where)
		if err != nil {
			t.Fatalf("Open empty database: %v", err)
		}
		if d.name == "sqlite" {
			var mode string
			if err := s.r.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
				t.Errorf("journal_mode = %q, %v; want wal", mode, err)
			}
		}
		if s.Driver() != d.name {
			t.Errorf("Driver() = %q, want %q", s.Driver(), d.name)
		}
		r := fullRun()
		if err := s.CreateRun(ctx, r); err != nil {
			t.Fatalf("CreateRun: %v", err)
		}
		if err := s.SetMeta(ctx, "k", "v"); err != nil {
			t.Fatalf("SetMeta: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if v := d.version(t, where); v != SchemaVersion() || v < 1 {
			t.Errorf("schema version = %d, want %d", v, SchemaVersion())
		}

		s = d.mustOpen(t, where)
		got, err := s.GetRun(ctx, r.ID)
		if err != nil {
			t.Fatalf("GetRun after reopen: %v", err)
		}
		if !reflect.DeepEqual(got, utcRun(*r)) {
			t.Errorf("after reopen GetRun = %+v, want %+v", got, utcRun(*r))
		}
		if v, ok, err := s.GetMeta(ctx, "k"); err != nil || !ok || v != "v" {
			t.Errorf("GetMeta after reopen = %q, %v, %v", v, ok, err)
		}
		if v := d.version(t, where); v != SchemaVersion() {
			t.Errorf("schema version after reopen = %d, want %d", v, SchemaVersion())
		}
	})
}

func TestNewerSchema(t *testing.T) {
	eachDriver(t, func(t *testing.T, d driver) {
		s, where := d.openTemp(t)
		newer := SchemaVersion() + 7
		if _, err := d.raw(t, where).Exec(d.setVersion(newer)); err != nil {
			t.Fatal(err)
		}

		s2, err := d.open(t, where)
		if err == nil {
			s2.Close()
			t.Fatal("Open of a newer schema succeeded")
		}
		if !errors.Is(err, ErrNewerSchema) {
			t.Errorf("error = %v, want ErrNewerSchema", err)
		}
		for _, want := range []string{s.String(), fmt.Sprint(newer), fmt.Sprint(SchemaVersion())} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
		// The database was not touched.
		if v := d.version(t, where); v != newer {
			t.Errorf("schema version after failed Open = %d, want %d", v, newer)
		}
	})
}

func TestCorrupt(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()

	garbage := filepath.Join(dir, "garbage.db")
	junk := []byte(strings.Repeat("this is not an SQLite file, just some text. ", 200))
	if err := os.WriteFile(garbage, junk, 0o600); err != nil {
		t.Fatal(err)
	}

	// A real store whose table pages are overwritten.
	damaged := filepath.Join(dir, "damaged.db")
	s, err := Open(ctx, damaged)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		r := fullRun()
		r.Detail = strings.Repeat(fmt.Sprint(i), 500)
		if err := s.CreateRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(damaged)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 3*4096 {
		t.Fatalf("damaged.db is only %d bytes", len(b))
	}
	for i := 4096; i < len(b); i++ {
		b[i] = byte(i * 7)
	}
	if err := os.WriteFile(damaged, b, 0o600); err != nil {
		t.Fatal(err)
	}

	for _, path := range []string{garbage, damaged} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			s, err := Open(ctx, path)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("error = %v, want ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestConcurrentWriters(t *testing.T) {
	eachDriver(t, func(t *testing.T, d driver) {
		s, _ := d.openTemp(t)
		ctx := t.Context()
		const workers, each = 8, 25
		var wg sync.WaitGroup
		errs := make(chan error, workers*each)
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					if err := concurrentStep(ctx, s, w, i); err != nil {
						errs <- fmt.Errorf("worker %d step %d: %w", w, i, err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		runs, err := s.ListRuns(ctx, RunFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) != workers*each {
			t.Errorf("%d runs stored, want %d", len(runs), workers*each)
		}
		for _, r := range runs {
			if r.State != run.StateDone || r.Result != run.ResultPassed {
				t.Errorf("run %d: state %q result %q, want done/passed", r.ID, r.State, r.Result)
			}
		}
		envs, err := s.ListEnvs(ctx, EnvFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(envs) != workers {
			t.Errorf("%d envs stored, want %d", len(envs), workers)
		}
	})
}

// concurrentStep is what a pipeline worker and a web reader do for one run.
func concurrentStep(ctx context.Context, s *Store, w, i int) error {
	env := fmt.Sprintf("env-%d", w)
	r := &run.Run{Env: env, Change: w, PatchSet: i, State: run.StateQueued, Matrix: run.Matrix{"wiki": fmt.Sprint(i)}}
	if err := s.CreateRun(ctx, r); err != nil {
		return err
	}
	if err := s.PutEnv(ctx, &run.Env{Name: env, Change: w, PatchSet: i, Status: run.EnvDeploying}); err != nil {
		return err
	}
	if err := s.PutTestLogs(ctx, r.ID, []run.TestLog{{Pod: "e2e", Log: strings.Repeat("x\n", 100)}}); err != nil {
		return err
	}
	r.State, r.Result, r.FinishedAt = run.StateDone, run.ResultPassed, time.Now()
	if err := s.UpdateRun(ctx, r); err != nil {
		return err
	}
	if err := s.SetMeta(ctx, "watermark", fmt.Sprint(w, i)); err != nil {
		return err
	}
	if _, err := s.ListRuns(ctx, RunFilter{Env: env, Limit: 10}); err != nil {
		return err
	}
	_, err := s.GetRun(ctx, r.ID)
	return err
}

func BenchmarkCreateAndFinishRun(b *testing.B) {
	benchDrivers(b, func(b *testing.B, d driver) {
		s, _ := d.openTemp(b)
		ctx := b.Context()
		for b.Loop() {
			r := fullRun()
			if err := s.CreateRun(ctx, r); err != nil {
				b.Fatal(err)
			}
			if err := s.UpdateRun(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkListRuns50(b *testing.B) {
	benchDrivers(b, func(b *testing.B, d driver) {
		s, _ := d.openTemp(b)
		ctx := b.Context()
		for range 500 {
			if err := s.CreateRun(ctx, fullRun()); err != nil {
				b.Fatal(err)
			}
		}
		for b.Loop() {
			if _, err := s.ListRuns(ctx, RunFilter{Project: "mediawiki/extensions/WikiLambda", Limit: 50}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestReplyTargets(t *testing.T) {
	eachDriver(t, func(t *testing.T, d driver) {
		s, _ := d.openTemp(t)
		ctx := t.Context()
		r := &run.Run{Env: "e", State: run.StateDone, Result: run.ResultPassed, FinishedAt: at(10)}
		if err := s.CreateRun(ctx, r); err != nil {
			t.Fatalf("CreateRun: %v", err)
		}
		if _, err := s.ReplyTarget(ctx, r.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("ReplyTarget before put: %v, want ErrNotFound", err)
		}
		for _, target := range []string{`{"net":"irc","to":"#team"}`, "slack:C1/1700000000.1"} {
			if err := s.PutReplyTarget(ctx, r.ID, target); err != nil {
				t.Fatalf("PutReplyTarget(%q): %v", target, err)
			}
			if got, err := s.ReplyTarget(ctx, r.ID); err != nil || got != target {
				t.Errorf("ReplyTarget = %q, %v; want %q (the latest put)", got, err, target)
			}
		}
		if err := s.DeleteReplyTarget(ctx, r.ID); err != nil {
			t.Fatalf("DeleteReplyTarget: %v", err)
		}
		if _, err := s.ReplyTarget(ctx, r.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("ReplyTarget after delete: %v, want ErrNotFound", err)
		}
		var rows int
		if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM reply_targets`).Scan(&rows); err != nil || rows != 0 {
			t.Errorf("%d reply target rows after delete (%v), want a real DELETE", rows, err)
		}
		if err := s.DeleteReplyTarget(ctx, r.ID); err != nil {
			t.Errorf("DeleteReplyTarget of an absent target: %v, want nil", err)
		}

		if err := s.PutReplyTarget(ctx, r.ID+100, "x"); !errors.Is(err, ErrNotFound) {
			t.Errorf("PutReplyTarget for a missing run: %v, want ErrNotFound", err)
		}
		if err := s.PutReplyTarget(ctx, r.ID, ""); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("PutReplyTarget with an empty target: %v, want an error other than ErrNotFound", err)
		}

		// Pruning the run takes its target along.
		if err := s.PutReplyTarget(ctx, r.ID, "x"); err != nil {
			t.Fatalf("PutReplyTarget: %v", err)
		}
		if n, err := s.PruneRuns(ctx, at(100)); err != nil || n != 1 {
			t.Fatalf("PruneRuns = %d, %v; want 1", n, err)
		}
		if _, err := s.ReplyTarget(ctx, r.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("ReplyTarget of a pruned run: %v, want ErrNotFound", err)
		}

		// Any other failure is not ErrNotFound.
		closed, _ := d.openTemp(t)
		closed.Close()
		if _, err := closed.ReplyTarget(ctx, 1); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("ReplyTarget on a closed store: %v, want an error other than ErrNotFound", err)
		}
	})
}

func TestChangeCursor(t *testing.T) {
	eachDriver(t, func(t *testing.T, d driver) {
		s, _ := d.openTemp(t)
		ctx := t.Context()
		if _, err := s.ChangeCursor(ctx, 12345); !errors.Is(err, ErrNotFound) {
			t.Errorf("ChangeCursor of an unseen change: %v, want ErrNotFound", err)
		}
		tests := []struct {
			name string
			in   ChangeCursor
		}{
			{"first", ChangeCursor{Change: 12345, FirstSeen: at(0), MessagesSeen: at(5), Triggered: 2, Noticed: 1}},
			{"replaced, even going back", ChangeCursor{Change: 12345, FirstSeen: at(1), MessagesSeen: at(3), Triggered: 1, Noticed: 0}},
			{"zero times", ChangeCursor{Change: 12345, Triggered: 7, Noticed: 7}},
			{"another change", ChangeCursor{Change: 7, FirstSeen: at(9)}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if err := s.PutChangeCursor(ctx, tt.in); err != nil {
					t.Fatalf("PutChangeCursor: %v", err)
				}
				got, err := s.ChangeCursor(ctx, tt.in.Change)
				if err != nil {
					t.Fatalf("ChangeCursor: %v", err)
				}
				want := tt.in
				want.FirstSeen, want.MessagesSeen = utc(want.FirstSeen), utc(want.MessagesSeen)
				if got != want {
					t.Errorf("ChangeCursor = %+v, want %+v", got, want)
				}
				if !got.FirstSeen.IsZero() && got.FirstSeen.Location() != time.UTC {
					t.Errorf("FirstSeen %v is not in UTC", got.FirstSeen)
				}
			})
		}
		if got, err := s.ChangeCursor(ctx, 12345); err != nil || got.Triggered != 7 {
			t.Errorf("change 12345 after another change's put = %+v, %v; want Triggered 7", got, err)
		}
		for _, bad := range []int{0, -1} {
			if err := s.PutChangeCursor(ctx, ChangeCursor{Change: bad}); err == nil {
				t.Errorf("PutChangeCursor(change %d) succeeded", bad)
			}
		}

		// Cursors are not run history: pruning every run keeps them.
		r := &run.Run{Env: "change-12345", Change: 12345, PatchSet: 7, Trigger: run.TriggerUpload,
			State: run.StateDone, Result: run.ResultPassed, FinishedAt: at(10)}
		if err := s.CreateRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		if n, err := s.PruneRuns(ctx, at(1000)); err != nil || n != 1 {
			t.Fatalf("PruneRuns = %d, %v; want 1", n, err)
		}
		if got, err := s.ChangeCursor(ctx, 12345); err != nil || got.Triggered != 7 || got.Noticed != 7 {
			t.Errorf("after PruneRuns ChangeCursor = %+v, %v; want Triggered 7, Noticed 7", got, err)
		}
	})
}

// schema1 makes a database at schema version 1, as the previous binary
// left it, runs setup on it, and says where it is.
func schema1(t *testing.T, d driver, setup func(db *sql.DB)) string {
	t.Helper()
	where := d.fresh(t)
	db := d.raw(t, where)
	if _, err := db.Exec(d.d.types.Replace(migrations[0].sql)); err != nil {
		t.Fatalf("schema 1: %v", err)
	}
	if _, err := db.Exec(d.setVersion(1)); err != nil {
		t.Fatal(err)
	}
	setup(db)
	return where
}

// addRun1 inserts a run into a schema 1 database.
func addRun1(t *testing.T, d driver, db *sql.DB, id int64, change, patchSet int, trigger run.Trigger) {
	t.Helper()
	d.exec(t, db, `INSERT INTO runs (id, env, project, change_number, patch_set, revision, subject, owner, matrix,
		trigger_kind, requested_by, test_only, state, result, attempts, detail, reported, created_at)
		VALUES (?, 'e', 'p', ?, ?, '', '', '', '{}', ?, '', FALSE, 'done', 'passed', 1, '', TRUE, 1)`,
		id, change, patchSet, string(trigger))
}

func TestMigrateSchema1MetaRows(t *testing.T) {
	eachDriver(t, func(t *testing.T, d driver) {
		ctx := t.Context()
		seen := time.Date(2026, 3, 4, 5, 6, 7, 891_234_567, time.UTC)
		where := schema1(t, d, func(db *sql.DB) {
			addRun1(t, d, db, 1, 100, 2, run.TriggerUpload)
			addRun1(t, d, db, 2, 100, 3, run.TriggerRecheck)
			addRun1(t, d, db, 3, 100, 5, run.TriggerChat) // chat runs are not "triggered"
			addRun1(t, d, db, 4, 200, 1, run.TriggerUpload)
			addRun1(t, d, db, 5, 300, 4, run.TriggerChat)
			for k, v := range map[string]string{
				"recheck-seen:100":       seen.In(time.FixedZone("X", 3600)).Format(time.RFC3339Nano),
				"recheck-seen:500":       "",
				"untrusted-notice:100/2": "2026-03-04T05:06:07Z",
				"untrusted-notice:100/4": "2026-03-04T05:06:07Z",
				"untrusted-notice:400/1": "2026-03-04T05:06:07Z",
				"reply-to:1":             "irc:#team",
				"reply-to:2":             "",           // "deleted" the old way
				"reply-to:99":            "slack:gone", // its run was pruned
				"gerrit.watermark":       "2026-03-04 05:06:07.000000000",
				"Reply-To:3":             "not ours: keys are case-sensitive",
			} {
				d.exec(t, db, `INSERT INTO meta (key, value) VALUES (?, ?)`, k, v)
			}
		})

		before := time.Now().UTC()
		s, err := d.open(t, where)
		if err != nil {
			t.Fatalf("Open of a schema 1 database: %v", err)
		}
		after := time.Now().UTC()
		defer s.Close()
		if v := d.version(t, where); v != SchemaVersion() {
			t.Errorf("schema version = %d, want SchemaVersion() %d", v, SchemaVersion())
		}

		now := func(c ChangeCursor) bool { return !c.FirstSeen.Before(before) && !c.FirstSeen.After(after) }
		tests := []struct {
			change    int
			want      ChangeCursor // FirstSeen checked by firstSeen when zero here
			firstSeen func(ChangeCursor) bool
		}{
			{100, ChangeCursor{Change: 100, FirstSeen: seen, MessagesSeen: seen, Triggered: 3, Noticed: 4}, nil},
			{200, ChangeCursor{Change: 200, Triggered: 1}, now},
			{400, ChangeCursor{Change: 400, Noticed: 1}, now},
			{500, ChangeCursor{Change: 500}, now},
		}
		for _, tt := range tests {
			got, err := s.ChangeCursor(ctx, tt.change)
			if err != nil {
				t.Errorf("ChangeCursor(%d): %v", tt.change, err)
				continue
			}
			if tt.firstSeen != nil {
				if !tt.firstSeen(got) {
					t.Errorf("change %d FirstSeen = %v, want the migration time (%v..%v)", tt.change, got.FirstSeen, before, after)
				}
				got.FirstSeen = time.Time{}
			}
			if got != tt.want {
				t.Errorf("ChangeCursor(%d) = %+v, want %+v", tt.change, got, tt.want)
			}
		}
		if _, err := s.ChangeCursor(ctx, 300); !errors.Is(err, ErrNotFound) {
			t.Errorf("change 300 (chat runs only) has a cursor: %v", err)
		}

		if got, err := s.ReplyTarget(ctx, 1); err != nil || got != "irc:#team" {
			t.Errorf("ReplyTarget(1) = %q, %v; want irc:#team", got, err)
		}
		for _, id := range []int64{2, 99} {
			if _, err := s.ReplyTarget(ctx, id); !errors.Is(err, ErrNotFound) {
				t.Errorf("ReplyTarget(%d): %v, want ErrNotFound", id, err)
			}
		}

		var keys []string
		rows, err := s.r.QueryContext(ctx, `SELECT key FROM meta ORDER BY key`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				t.Fatal(err)
			}
			keys = append(keys, k)
		}
		if want := []string{"Reply-To:3", "gerrit.watermark"}; !reflect.DeepEqual(keys, want) {
			t.Errorf("meta keys after migration = %q, want %q", keys, want)
		}
	})
}

func TestMigrateSchema1BadMetaRow(t *testing.T) {
	eachDriver(t, func(t *testing.T, d driver) {
		for _, key := range []string{"recheck-seen:abc", "untrusted-notice:100", "untrusted-notice:100/x", "reply-to:-3", "recheck-seen:0"} {
			t.Run(key, func(t *testing.T) {
				where := schema1(t, d, func(db *sql.DB) {
					d.exec(t, db, `INSERT INTO meta (key, value) VALUES (?, 'v'), ('recheck-seen:7', '2026-01-01T00:00:00Z')`, key)
				})
				s, err := d.open(t, where)
				if err == nil {
					s.Close()
					t.Fatal("Open succeeded")
				}
				if !strings.Contains(err.Error(), key) || errors.Is(err, ErrNotFound) {
					t.Errorf("error %q does not name the row %q", err, key)
				}
				if v := d.version(t, where); v != 1 {
					t.Errorf("schema version after a failed migration = %d, want 1", v)
				}
			})
		}
		t.Run("bad time", func(t *testing.T) {
			where := schema1(t, d, func(db *sql.DB) {
				d.exec(t, db, `INSERT INTO meta (key, value) VALUES ('recheck-seen:7', 'yesterday')`)
			})
			s, err := d.open(t, where)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), "yesterday") {
				t.Errorf("error %q does not name the value", err)
			}
		})
	})
}

// liveEnv is an environment as a run's copy of it might hold it.
func liveEnv() *run.Env {
	e := fullEnv()
	e.Protected, e.GoneAt = false, time.Time{}
	return e
}

// wantEnv is e as GetEnv returns it.
func wantEnv(e run.Env) *run.Env {
	for _, p := range []*time.Time{&e.CreatedAt, &e.UpdatedAt, &e.ActiveAt, &e.ExpiresAt, &e.GoneAt} {
		*p = utc(*p)
	}
	return &e
}

func TestEnvColumnWriters(t *testing.T) {
	eachDriver(t, func(t *testing.T, d driver) {
		ctx := t.Context()
		fixed := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
		newMatrix := run.Matrix{"wiki": "change:12345/9", "evaluator": "fff"}
		tests := []struct {
			name  string
			start func(*run.Env)
			write func(*Store, string) error
			want  func(*run.Env) // what changes
		}{
			{"protect", nil,
				func(s *Store, n string) error { return s.SetEnvProtected(ctx, n, true) },
				func(e *run.Env) { e.Protected = true }},
			{"unprotect", func(e *run.Env) { e.Protected = true },
				func(s *Store, n string) error { return s.SetEnvProtected(ctx, n, false) },
				func(e *run.Env) { e.Protected = false }},
			{"expiry", nil,
				func(s *Store, n string) error { return s.SetEnvExpiry(ctx, n, at(999)) },
				func(e *run.Env) { e.ExpiresAt = at(999) }},
			{"no expiry", nil,
				func(s *Store, n string) error { return s.SetEnvExpiry(ctx, n, time.Time{}) },
				func(e *run.Env) { e.ExpiresAt = time.Time{} }},
			{"touch", nil,
				func(s *Store, n string) error { return s.TouchEnv(ctx, n, at(500)) },
				func(e *run.Env) { e.ActiveAt = at(500) }},
			{"status", nil,
				func(s *Store, n string) error { return s.SetEnvStatus(ctx, n, run.EnvBroken, at(77)) },
				func(e *run.Env) { e.Status, e.UpdatedAt = run.EnvBroken, at(77) }},
			{"status gone", nil,
				func(s *Store, n string) error { return s.SetEnvStatus(ctx, n, run.EnvGone, at(78)) },
				func(e *run.Env) { e.Status, e.UpdatedAt, e.GoneAt = run.EnvGone, at(78), at(78) }},
			{"status back from gone", func(e *run.Env) { e.Status, e.GoneAt = run.EnvGone, at(50) },
				func(s *Store, n string) error { return s.SetEnvStatus(ctx, n, run.EnvDeploying, at(79)) },
				func(e *run.Env) { e.Status, e.UpdatedAt, e.GoneAt = run.EnvDeploying, at(79), time.Time{} }},
			{"deployed", nil,
				func(s *Store, n string) error { return s.SetEnvDeployed(ctx, n, 9, "999", newMatrix) },
				func(e *run.Env) { e.PatchSet, e.Revision, e.Matrix = 9, "999", newMatrix }},
			{"deployed empty matrix", nil,
				func(s *Store, n string) error { return s.SetEnvDeployed(ctx, n, 9, "999", nil) },
				func(e *run.Env) { e.PatchSet, e.Revision, e.Matrix = 9, "999", nil }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s, _ := d.openTemp(t)
				s.now = func() time.Time { return fixed }
				start := liveEnv()
				if tt.start != nil {
					tt.start(start)
				}
				if err := s.PutEnv(ctx, start); err != nil {
					t.Fatalf("PutEnv: %v", err)
				}
				s.now = func() time.Time { return fixed.Add(time.Hour) } // a writer that used now would show
				if err := tt.write(s, start.Name); err != nil {
					t.Fatalf("write: %v", err)
				}
				got, err := s.GetEnv(ctx, start.Name)
				if err != nil {
					t.Fatalf("GetEnv: %v", err)
				}
				want := *start
				tt.want(&want)
				if !reflect.DeepEqual(got, wantEnv(want)) {
					t.Errorf("after write GetEnv =\n%+v\nwant\n%+v", got, wantEnv(want))
				}
				if err := tt.write(s, "no-such-env"); !errors.Is(err, ErrNotFound) {
					t.Errorf("write to a missing env: %v, want ErrNotFound", err)
				}
			})
		}
	})
}

// TestEnvStaleCopy is the defect the column writers fix: a !keep or
// !extend from chat while a run goes on must survive the run's saves from
// the copy it read before.
func TestEnvStaleCopy(t *testing.T) {
	eachDriver(t, func(t *testing.T, d driver) {
		s, _ := d.openTemp(t)
		ctx := t.Context()
		if _, err := s.CreateOrReviveEnv(ctx, liveEnv()); err != nil {
			t.Fatalf("CreateOrReviveEnv: %v", err)
		}
		stale, err := s.GetEnv(ctx, "change-12345") // the run's copy
		if err != nil {
			t.Fatal(err)
		}

		// Chat: !keep and !extend.
		extended := at(7 * 86400)
		if err := s.SetEnvProtected(ctx, stale.Name, true); err != nil {
			t.Fatalf("SetEnvProtected: %v", err)
		}
		if err := s.SetEnvExpiry(ctx, stale.Name, extended); err != nil {
			t.Fatalf("SetEnvExpiry: %v", err)
		}

		// The run goes on with what its copy says.
		if err := s.SetEnvStatus(ctx, stale.Name, run.EnvDeploying, at(100)); err != nil {
			t.Fatalf("SetEnvStatus: %v", err)
		}
		if err := s.SetEnvDeployed(ctx, stale.Name, stale.PatchSet, stale.Revision, stale.Matrix); err != nil {
			t.Fatalf("SetEnvDeployed: %v", err)
		}
		if err := s.TouchEnv(ctx, stale.Name, at(101)); err != nil {
			t.Fatalf("TouchEnv: %v", err)
		}
		if err := s.SetEnvStatus(ctx, stale.Name, run.EnvReady, at(200)); err != nil {
			t.Fatalf("SetEnvStatus: %v", err)
		}
		again := *stale
		again.ExpiresAt = time.Time{} // a new patch set's request carries no TTL
		again.ActiveAt = at(300)
		if _, err := s.CreateOrReviveEnv(ctx, &again); err != nil {
			t.Fatalf("CreateOrReviveEnv: %v", err)
		}

		got, err := s.GetEnv(ctx, stale.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Protected || !got.ExpiresAt.Equal(extended) {
			t.Errorf("after the run's writes Protected = %v, ExpiresAt = %v; want true, %v", got.Protected, got.ExpiresAt, utc(extended))
		}
		if got.Status != run.EnvReady || !got.ActiveAt.Equal(at(300)) {
			t.Errorf("the run's own writes lost: Status %q, ActiveAt %v", got.Status, got.ActiveAt)
		}
	})
}

func TestCreateOrReviveEnv(t *testing.T) {
	eachDriver(t, func(t *testing.T, d driver) {
		ctx := t.Context()
		fixed := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
		later := fixed.Add(time.Hour)
		request := func() *run.Env {
			return &run.Env{
				Name: "change-12345", Namespace: "ns-new", Release: "rel-new", Kind: run.EnvPatch,
				Project: "p-new", Change: 54321, PatchSet: 6, Revision: "new", Subject: "s-new", Owner: "o-new",
				Matrix: run.Matrix{"wiki": "new"}, URL: "https://new", Status: run.EnvWaiting, Protected: true,
				RequestedBy: "irc:amy", CreatedAt: at(5000), ActiveAt: at(5001), ExpiresAt: at(6000), GoneAt: at(1),
			}
		}
		// fresh is what a new or revived record holds.
		fresh := func(e *run.Env) *run.Env {
			w := *e
			w.Protected, w.GoneAt, w.UpdatedAt = false, time.Time{}, later
			return wantEnv(w)
		}
		tests := []struct {
			name        string
			stored      *run.Env // nil: none
			req         func(*run.Env)
			wantCreated bool
			want        func(stored, req *run.Env) *run.Env
		}{
			{name: "new", req: func(*run.Env) {}, wantCreated: true,
				want: func(_, req *run.Env) *run.Env { return fresh(req) }},
			{name: "new, zero CreatedAt is now", req: func(r *run.Env) { r.CreatedAt = time.Time{} }, wantCreated: true,
				want: func(_, req *run.Env) *run.Env { w := fresh(req); w.CreatedAt = later; return w }},
			{name: "live: identity updated, the rest kept", stored: liveEnv(), req: func(*run.Env) {},
				want: func(st, req *run.Env) *run.Env {
					w := *st
					w.Kind, w.Project, w.Change, w.Subject, w.Owner = req.Kind, req.Project, req.Change, req.Subject, req.Owner
					w.Matrix, w.URL, w.RequestedBy, w.ActiveAt, w.ExpiresAt = req.Matrix, req.URL, req.RequestedBy, req.ActiveAt, req.ExpiresAt
					return wantEnv(w)
				}},
			{name: "live and protected: zero expiry, empty requester and activity keep the stored ones",
				stored: func() *run.Env { e := liveEnv(); e.Protected = true; return e }(),
				req:    func(r *run.Env) { r.ExpiresAt, r.RequestedBy, r.ActiveAt = time.Time{}, "", time.Time{} },
				want: func(st, req *run.Env) *run.Env {
					w := *st
					w.Kind, w.Project, w.Change, w.Subject, w.Owner = req.Kind, req.Project, req.Change, req.Subject, req.Owner
					w.Matrix, w.URL = req.Matrix, req.URL
					return wantEnv(w)
				}},
			{name: "gone: replaced whole", wantCreated: true,
				stored: func() *run.Env { e := fullEnv(); e.Status = run.EnvGone; return e }(), req: func(*run.Env) {},
				want: func(_, req *run.Env) *run.Env { return fresh(req) }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s, _ := d.openTemp(t)
				s.now = func() time.Time { return fixed }
				if tt.stored != nil {
					if err := s.PutEnv(ctx, tt.stored); err != nil {
						t.Fatalf("PutEnv: %v", err)
					}
				}
				s.now = func() time.Time { return later }
				req := request()
				tt.req(req)
				asked := *req
				created, err := s.CreateOrReviveEnv(ctx, req)
				if err != nil {
					t.Fatalf("CreateOrReviveEnv: %v", err)
				}
				if created != tt.wantCreated {
					t.Errorf("created = %v, want %v", created, tt.wantCreated)
				}
				if !reflect.DeepEqual(*req, asked) {
					t.Errorf("CreateOrReviveEnv changed its argument")
				}
				got, err := s.GetEnv(ctx, req.Name)
				if err != nil {
					t.Fatalf("GetEnv: %v", err)
				}
				if want := tt.want(tt.stored, req); !reflect.DeepEqual(got, want) {
					t.Errorf("GetEnv =\n%+v\nwant\n%+v", got, want)
				}
			})
		}
		s, _ := d.openTemp(t)
		if _, err := s.CreateOrReviveEnv(ctx, &run.Env{}); err == nil {
			t.Error("CreateOrReviveEnv with an empty name succeeded")
		}
	})
}

func TestTestLogsBounded(t *testing.T) {
	eachDriver(t, func(t *testing.T, d driver) {
		big := func(n int) string { return "HEAD" + strings.Repeat("m", n-8) + "TAIL" }
		tests := []struct {
			name    string
			limit   int // 0: leave the default
			logs    []string
			wantLen []int // exact lengths stored; -1: cut to at most the share and at least share-8
			share   int
		}{
			{name: "default 1 MiB keeps a 1 MiB log", logs: []string{big(1 << 20)}, wantLen: []int{1 << 20}},
			{name: "default 1 MiB cuts a bigger one", logs: []string{big(1<<20 + 1)}, wantLen: []int{-1}, share: 1 << 20},
			{name: "within the limit", limit: 10000, logs: []string{big(3000), big(3000), big(3000)}, wantLen: []int{3000, 3000, 3000}},
			{name: "even shares", limit: 9000, logs: []string{big(5000), big(5000), big(5000)}, wantLen: []int{-1, -1, -1}, share: 3000},
			{name: "short logs leave room to long ones", limit: 9000, logs: []string{big(100), big(20000), "", big(20000)},
				wantLen: []int{100, -1, 0, -1}, share: 4450},
			{name: "no limit", limit: -1, logs: []string{big(3 << 20)}, wantLen: []int{3 << 20}},
			{name: "more pods than bytes", limit: 2, logs: []string{"abc", "def", "ghi"}, wantLen: []int{0, 1, 1}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s, _ := d.openTemp(t)
				ctx := t.Context()
				if tt.limit != 0 {
					s.SetMaxLogBytes(tt.limit)
				}
				r := &run.Run{Env: "e"}
				if err := s.CreateRun(ctx, r); err != nil {
					t.Fatal(err)
				}
				var in []run.TestLog
				for i, l := range tt.logs {
					in = append(in, run.TestLog{Pod: fmt.Sprint("pod-", i), Phase: "Failed", Log: l})
				}
				if err := s.PutTestLogs(ctx, r.ID, in); err != nil {
					t.Fatalf("PutTestLogs: %v", err)
				}
				for i, l := range tt.logs {
					if in[i].Log != l {
						t.Fatalf("PutTestLogs changed the caller's log %d", i)
					}
				}
				got, err := s.TestLogs(ctx, r.ID)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(tt.logs) {
					t.Fatalf("%d logs stored, want %d", len(got), len(tt.logs))
				}
				total := 0
				for i, l := range got {
					total += len(l.Log)
					if l.Pod != in[i].Pod {
						t.Errorf("log %d is pod %q, want %q (order kept)", i, l.Pod, in[i].Pod)
					}
					switch want := tt.wantLen[i]; {
					case want >= 0 && len(l.Log) != want:
						t.Errorf("log %d: %d bytes, want %d", i, len(l.Log), want)
					case want >= 0 && want == len(tt.logs[i]) && l.Log != tt.logs[i]:
						t.Errorf("log %d within its share was changed", i)
					case want < 0:
						if len(l.Log) > tt.share || len(l.Log) < tt.share-8 {
							t.Errorf("log %d: %d bytes, want about its share %d", i, len(l.Log), tt.share)
						}
						if !strings.HasPrefix(l.Log, "HEAD") || !strings.HasSuffix(l.Log, "TAIL") || !strings.Contains(l.Log, "bytes cut by ductbot") {
							t.Errorf("log %d lost its head, its tail or the cut marker", i)
						}
					}
				}
				limit := tt.limit
				if limit == 0 {
					limit = DefaultMaxLogBytes
				}
				if limit > 0 && total > limit {
					t.Errorf("%d bytes stored, want at most %d", total, limit)
				}
			})
		}
	})
}

func TestTestLogsValidUTF8(t *testing.T) {
	eachDriver(t, func(t *testing.T, d driver) {
		s, _ := d.openTemp(t)
		ctx := t.Context()
		r := &run.Run{Env: "e"}
		if err := s.CreateRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		if err := s.PutTestLogs(ctx, r.ID, []run.TestLog{{Pod: "p", Log: "ok \xff\xfe done"}}); err != nil {
			t.Fatal(err)
		}
		got, err := s.TestLogs(ctx, r.ID)
		if err != nil || len(got) != 1 || got[0].Log != "ok \uFFFD done" {
			t.Errorf("TestLogs = %+v, %v; want the invalid bytes replaced", got, err)
		}
	})
}

// createRuns stores a copy of each run and returns their ids, in order.
func createRuns(t *testing.T, s *Store, specs []run.Run) []int64 {
	t.Helper()
	ids := make([]int64, len(specs))
	for i := range specs {
		r := specs[i]
		if err := s.CreateRun(t.Context(), &r); err != nil {
			t.Fatalf("CreateRun: %v", err)
		}
		ids[i] = r.ID
	}
	return ids
}

// runIDs lists the runs f selects and returns their ids, in order.
func runIDs(t *testing.T, s *Store, f RunFilter) []int64 {
	t.Helper()
	runs, err := s.ListRuns(t.Context(), f)
	if err != nil {
		t.Fatalf("ListRuns: %v", err)
	}
	var got []int64
	for _, r := range runs {
		got = append(got, r.ID)
	}
	return got
}
