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

func openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, path
}

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
	s, _ := openTemp(t)
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
}

func TestRunDefaults(t *testing.T) {
	s, _ := openTemp(t)
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
}

func TestRunNotFound(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	if _, err := s.GetRun(ctx, 42); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetRun(42) error = %v, want ErrNotFound", err)
	}
	if err := s.UpdateRun(ctx, &run.Run{ID: 42, Env: "e"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("UpdateRun(42) error = %v, want ErrNotFound", err)
	}
}

func TestListRuns(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	specs := []run.Run{
		{Env: "a", Project: "p1", Change: 1, PatchSet: 1, State: run.StateDone, Result: run.ResultPassed},
		{Env: "a", Project: "p1", Change: 1, PatchSet: 2, State: run.StateTesting},
		{Env: "b", Project: "p2", Change: 2, PatchSet: 1, State: run.StateQueued},
		{Env: "c", Project: "p1", Change: 3, PatchSet: 1, State: run.StateDone, Result: run.ResultError},
	}
	ids := make([]int64, len(specs))
	for i := range specs {
		r := specs[i]
		if err := s.CreateRun(ctx, &r); err != nil {
			t.Fatalf("CreateRun: %v", err)
		}
		ids[i] = r.ID
	}
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
			runs, err := s.ListRuns(ctx, tt.f)
			if err != nil {
				t.Fatalf("ListRuns: %v", err)
			}
			var got []int64
			for _, r := range runs {
				got = append(got, r.ID)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ListRuns(%+v) ids = %v, want %v", tt.f, got, tt.want)
			}
		})
	}
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
	s, _ := openTemp(t)
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
}

func TestEnvListAndDelete(t *testing.T) {
	s, _ := openTemp(t)
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
}

func TestTestLogs(t *testing.T) {
	s, _ := openTemp(t)
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
}

func TestMeta(t *testing.T) {
	s, _ := openTemp(t)
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
}

func TestPruneRuns(t *testing.T) {
	s, _ := openTemp(t)
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
}

func TestRunExistedEmpty(t *testing.T) {
	s, _ := openTemp(t)
	if existed, err := s.RunExisted(t.Context(), 1); err != nil || existed {
		t.Errorf("RunExisted(1) on an empty store = %v, %v; want false, nil", existed, err)
	}
}

func userVersion(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMigrateAndReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "state.db")
	// An existing empty file is a new, empty database.
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open empty file: %v", err)
	}
	var mode string
	if err := s.r.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
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
	if v := userVersion(t, path); v != SchemaVersion() || v < 1 {
		t.Errorf("user_version = %d, want %d", v, SchemaVersion())
	}

	s, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
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
}

func TestNewerSchema(t *testing.T) {
	ctx := t.Context()
	_, path := openTemp(t)
	newer := SchemaVersion() + 7
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", newer)); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := Open(ctx, path)
	if err == nil {
		s.Close()
		t.Fatal("Open of a newer schema succeeded")
	}
	if !errors.Is(err, ErrNewerSchema) {
		t.Errorf("error = %v, want ErrNewerSchema", err)
	}
	for _, want := range []string{path, fmt.Sprint(newer), fmt.Sprint(SchemaVersion())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// The file was not touched.
	if v := userVersion(t, path); v != newer {
		t.Errorf("user_version after failed Open = %d, want %d", v, newer)
	}
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
	s, _ := openTemp(t)
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
	s, _ := openTemp(b)
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
}

func BenchmarkListRuns50(b *testing.B) {
	s, _ := openTemp(b)
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
}
