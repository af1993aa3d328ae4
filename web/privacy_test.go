package web

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/ductbot/ductbot/core/run"
)

// Stored owners may carry e-mail addresses ("Name <email>", older records,
// or a bare address); no page and no API answer shows one.
func TestNoEmailAddressesInPublic(t *testing.T) {
	f := newFixture(t, nil)
	ctx := t.Context()
	bare := &run.Env{
		Name: "change-555", Kind: run.EnvPatch, Project: project, Change: 555, PatchSet: 1,
		Owner: "mallory@evil.example", RequestedBy: "carol@example.com", Status: run.EnvReady, CreatedAt: now,
	}
	if err := f.store.PutEnv(ctx, bare); err != nil {
		t.Fatal(err)
	}
	r := &run.Run{Env: "change-555", Project: project, Change: 555, PatchSet: 1, Owner: "mallory@evil.example",
		RequestedBy: "Carol <carol@example.com>", Trigger: run.TriggerChat, State: run.StateQueued, CreatedAt: now}
	if err := f.store.CreateRun(ctx, r); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want []string // the names shown instead
	}{
		{"/", []string{"Jane", "mallory", "carol"}},
		{EnvPath("change-12345"), []string{"Jane"}},
		{EnvPath("change-555"), []string{"mallory", "carol"}},
		{RunPath(f.passed), []string{"Jane"}},
		{RunPath(r.ID), []string{"mallory", "Carol"}},
		{"/api/v1/envs", []string{`"owner": "Jane"`, `"owner": "mallory"`, `"requested_by": "carol"`}},
		{fmt.Sprintf("/api/v1/runs/%d", f.passed), []string{`"owner": "Jane"`}},
		{fmt.Sprintf("/api/v1/runs/%d", r.ID), []string{`"owner": "mallory"`, `"requested_by": "Carol"`}},
	} {
		_, body := f.get(t, tc.path, http.StatusOK)
		wantNotContains(t, tc.path, body, "jane@", "mallory@", "carol@", "example.org&gt;", "evil.example", "example.com")
		wantContains(t, tc.path, body, tc.want...)
	}
}
