package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/core/store"
	"github.com/ductbot/ductbot/core/store/pgtest"
)

func TestMain(m *testing.M) {
	os.Exit(pgtest.RunTests(m))
}

// runState runs `ductbot state ARGS...` and returns its error.
func runState(ctx context.Context, args []string, out io.Writer) error {
	root := newRoot()
	root.SetArgs(append([]string{"state"}, args...))
	root.SetOut(out)
	root.SetErr(io.Discard)
	return root.ExecuteContext(ctx)
}

// TestStateMigrate: `ductbot state migrate --from sqlite:PATH --to
// postgres` copies an installation's state into an empty database, where
// a ductbot configured for it finds everything; a second copy is refused.
func TestStateMigrate(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "ductbot.db")
	old, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	done := &run.Run{Env: "change-100", Project: "p", Change: 100, PatchSet: 2, Trigger: run.TriggerUpload,
		State: run.StateDone, Result: run.ResultPassed, Reported: true, FinishedAt: time.Now()}
	testing1 := &run.Run{Env: "change-101", Project: "p", Change: 101, PatchSet: 1, Trigger: run.TriggerUpload, State: run.StateTesting}
	for _, r := range []*run.Run{done, testing1} {
		if err := old.CreateRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.PutTestLogs(ctx, done.ID, []run.TestLog{{Pod: "e2e", Phase: "Succeeded", Log: "ok"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := old.CreateOrReviveEnv(ctx, &run.Env{Name: "change-100", Status: run.EnvReady, Change: 100}); err != nil {
		t.Fatal(err)
	}
	if err := old.SetEnvProtected(ctx, "change-100", true); err != nil {
		t.Fatal(err)
	}
	if err := old.PutChangeCursor(ctx, store.ChangeCursor{Change: 100, FirstSeen: time.Unix(1700000000, 0).UTC(), Triggered: 2}); err != nil {
		t.Fatal(err)
	}
	if err := old.SetMeta(ctx, "gerrit.watermark", "2026-01-02 03:04:05.000000000"); err != nil {
		t.Fatal(err)
	}
	wantRuns, _ := old.ListRuns(ctx, store.RunFilter{})
	wantEnvs, _ := old.ListEnvs(ctx, store.EnvFilter{})
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	dsn := pgtest.NewDatabase(t)
	t.Setenv("DUCTBOT_TEST_STATE_DSN", dsn)
	var out bytes.Buffer
	args := []string{"migrate", "--from", "sqlite:" + path, "--to", "postgres", "--dsn-env", "DUCTBOT_TEST_STATE_DSN"}
	if err := runState(ctx, args, &out); err != nil {
		t.Fatalf("state migrate: %v", err)
	}
	if want := "copied 2 runs (1 test logs, 0 reply targets), 1 environments, 1 change cursors, 0 dependencies, 1 meta values; run ids continue after 2"; !strings.Contains(out.String(), want) {
		t.Errorf("output %q, want it to say %q", out.String(), want)
	}
	if strings.Contains(out.String(), "postgres@") {
		t.Errorf("output shows the DSN: %q", out.String())
	}

	s, err := store.OpenPostgres(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	gotRuns, _ := s.ListRuns(ctx, store.RunFilter{})
	gotEnvs, _ := s.ListEnvs(ctx, store.EnvFilter{})
	if !reflect.DeepEqual(gotRuns, wantRuns) || !reflect.DeepEqual(gotEnvs, wantEnvs) {
		t.Errorf("after the copy runs %+v envs %+v\nwant %+v %+v", gotRuns, gotEnvs, wantRuns, wantEnvs)
	}
	if logs, err := s.TestLogs(ctx, done.ID); err != nil || len(logs) != 1 || logs[0].Log != "ok" {
		t.Errorf("test logs = %+v, %v", logs, err)
	}
	if c, err := s.ChangeCursor(ctx, 100); err != nil || c.Triggered != 2 {
		t.Errorf("cursor = %+v, %v; want Triggered 2 (no second run for patch set 2)", c, err)
	}
	if v, ok, err := s.GetMeta(ctx, "gerrit.watermark"); err != nil || !ok || v != "2026-01-02 03:04:05.000000000" {
		t.Errorf("watermark = %q, %v, %v", v, ok, err)
	}
	unfinished, _ := s.ListRuns(ctx, store.RunFilter{Unfinished: true})
	if len(unfinished) != 1 || unfinished[0].ID != testing1.ID {
		t.Errorf("unfinished runs = %+v, want run %d to resume", unfinished, testing1.ID)
	}

	out.Reset()
	if err := runState(ctx, args, &out); !errors.Is(err, store.ErrNotEmpty) {
		t.Errorf("second migrate: %v, want ErrNotEmpty", err)
	}
}

func TestStateMigrateUsage(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.db")
	t.Setenv("DUCTBOT_TEST_STATE_DSN", "postgres://u:pw@127.0.0.1:1/x")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "usage:"},
		{[]string{"copy"}, `unknown command "copy"`},
		{[]string{"migrate", "--from", "sqlite:x.db"}, "say where from and where to"},
		{[]string{"migrate", "--from", "sqlite:a.db", "--to", "sqlite:b.db"}, "one of --from and --to is postgres"},
		{[]string{"migrate", "--from", "postgres", "--to", "postgres"}, "one of --from and --to is postgres"},
		{[]string{"migrate", "--from", "mysql:x", "--to", "postgres", "--dsn-env", "DUCTBOT_TEST_STATE_DSN"}, `"mysql:x": want sqlite:PATH or postgres`},
		{[]string{"migrate", "--from", "sqlite:" + missing, "--to", "postgres", "--dsn-env", "DUCTBOT_TEST_STATE_DSN"}, "no such file"},
		{[]string{"migrate", "--from", "postgres", "--to", "sqlite:" + missing}, "name the PostgreSQL URL's environment variable (--dsn-env)"},
		{[]string{"migrate", "--from", "postgres", "--to", "sqlite:" + missing, "--dsn-env", "DUCTBOT_NO_SUCH_VAR"}, "DUCTBOT_NO_SUCH_VAR is not set"},
		{[]string{"migrate", "--from", "postgres", "--to", "sqlite:x", "--bogus"}, "unknown flag: --bogus"},
	} {
		err := runState(t.Context(), tc.args, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("state %q: %v, want an error saying %q", tc.args, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "pw@") {
			t.Errorf("state %q: the error shows the DSN: %v", tc.args, err)
		}
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("a failed migrate made %s", missing)
	}
}
