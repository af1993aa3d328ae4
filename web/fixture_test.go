package web

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ductbot/ductbot/core/metrics"
	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/core/store"
)

// now is the fixed "now" of the tests.
var now = time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)

const (
	gerritURL = "https://gerrit.example.org"
	publicURL = "https://ductbot.example.org"
	xss       = `<script>alert(1)</script> Fix "quotes" & things`
	project   = "mediawiki/extensions/WikiLambda"
)

// testLog is a multi-line log with colours, a progress bar redrawn with
// carriage returns, and markup.
var testLog = strings.Join([]string{
	"Running e2e suite",
	"\x1b[32mPASS\x1b[0m wiki loads",
	"progress 10%\rprogress 100%",
	"<b>not bold</b> & done",
	"\x1b[31mFAIL\x1b[0m evaluator answers",
}, "\n") + "\n"

// fixture is a real store in t.TempDir() holding environments and runs.
type fixture struct {
	store   *store.Store
	metrics *metrics.Metrics
	server  *Server

	passed, testing, failed, pruned int64 // run ids
}

func newFixture(t *testing.T, ready func() error) *fixture {
	t.Helper()
	ctx := t.Context()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{store: st, metrics: metrics.New()}

	envs := []*run.Env{
		{
			Name: "change-12345", Namespace: "ductbot-change-12345", Release: "change-12345", Kind: run.EnvPatch,
			Project: project, Change: 12345, PatchSet: 3, Revision: "0123abcd", Subject: xss,
			Owner: "Jane <jane@example.org>", Matrix: run.Matrix{"wiki": "change:12345/3", "orchestrator": "main", "evaluator": "main"},
			URL: "https://change-12345.envs.example.org", Status: run.EnvReady, Protected: true,
			CreatedAt: now.Add(-3 * time.Hour), ActiveAt: now.Add(-time.Hour), ExpiresAt: now.Add(2 * time.Hour),
		},
		{
			Name: "custom-ab12", Namespace: "ductbot-custom-ab12", Release: "custom-ab12", Kind: run.EnvCustom,
			Project: "other/project", Change: 777, PatchSet: 1, Subject: "Other change", Owner: "Bob",
			Matrix: run.Matrix{"orchestrator": "abc"}, URL: "https://custom-ab12.envs.example.org",
			Status: run.EnvBroken, RequestedBy: "irc:bob", CreatedAt: now.Add(-2 * time.Hour),
		},
		{
			Name: "change-99", Kind: run.EnvPatch, Project: project, Change: 99, PatchSet: 9,
			Subject: "Merged long ago", Status: run.EnvGone, CreatedAt: now.Add(-48 * time.Hour), GoneAt: now.Add(-24 * time.Hour),
		},
	}
	for _, e := range envs {
		if err := st.PutEnv(ctx, e); err != nil {
			t.Fatalf("PutEnv: %v", err)
		}
	}

	create := func(r *run.Run) int64 {
		t.Helper()
		if err := st.CreateRun(ctx, r); err != nil {
			t.Fatalf("CreateRun: %v", err)
		}
		return r.ID
	}
	f.pruned = create(&run.Run{
		Env: "change-12345", Project: project, Change: 12345, PatchSet: 1, State: run.StateDone, Result: run.ResultPassed,
		CreatedAt: now.Add(-90 * 24 * time.Hour), FinishedAt: now.Add(-90*24*time.Hour + time.Minute),
	})
	if n, err := st.PruneRuns(ctx, now.Add(-30*24*time.Hour)); err != nil || n != 1 {
		t.Fatalf("PruneRuns = %d, %v; want 1", n, err)
	}
	start := now.Add(-2 * time.Hour)
	f.passed = create(&run.Run{
		Env: "change-12345", Project: project, Change: 12345, PatchSet: 3, Revision: "0123abcd", Subject: xss,
		Owner: "Jane <jane@example.org>", Matrix: run.Matrix{"wiki": "change:12345/3", "orchestrator": "main"},
		Trigger: run.TriggerUpload, State: run.StateDone, Result: run.ResultPassed, Attempts: 1, Reported: true,
		CreatedAt: start, StartedAt: start.Add(5 * time.Second), DeployedAt: start.Add(95 * time.Second),
		TestedAt: start.Add(155 * time.Second), FinishedAt: start.Add(157 * time.Second),
	})
	if err := st.PutTestLogs(ctx, f.passed, []run.TestLog{
		{Pod: "change-12345-e2e", Phase: "Succeeded", Log: testLog},
		{Pod: "change-12345-smoke", Phase: "Succeeded", Log: "smoke ok\n"},
	}); err != nil {
		t.Fatalf("PutTestLogs: %v", err)
	}
	f.failed = create(&run.Run{
		Env: "custom-ab12", Project: "other/project", Change: 777, PatchSet: 1, Subject: "Other change",
		Trigger: run.TriggerChat, RequestedBy: "irc:bob", State: run.StateDone, Result: run.ResultFailed,
		Detail: "test e2e failed: exit code 1", CreatedAt: now.Add(-time.Hour), FinishedAt: now.Add(-50 * time.Minute),
	})
	f.testing = create(&run.Run{
		Env: "change-12345", Project: project, Change: 12345, PatchSet: 4, Subject: "Newer patch set",
		Trigger: run.TriggerUpload, State: run.StateTesting,
		CreatedAt: now.Add(-10 * time.Minute), StartedAt: now.Add(-9 * time.Minute), DeployedAt: now.Add(-5 * time.Minute),
	})

	if ready == nil {
		ready = func() error { return nil }
	}
	f.server = New(Options{
		Store: st, Metrics: f.metrics, PublicURL: publicURL + "/", GerritURL: gerritURL,
		Ready: func(ctx context.Context) error { return ready() },
		Now:   func() time.Time { return now },
	})
	return f
}

func runHref(id int64) string { return fmt.Sprintf(`href="/runs/%d"`, id) }

// envRow is how an environment's row in the dashboard's table starts.
func envRow(name string) string { return fmt.Sprintf(`class="env-link" href="/envs/%s"`, name) }
