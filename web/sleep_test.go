package web

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ductbot/ductbot/core/run"
)

// TestAsleepShowsHowToWake: an environment that sleeps (issue 14) shows as
// asleep on the dashboard and its page, with how to wake it; an awake one
// has no such hint; the status filter offers asleep.
func TestAsleepShowsHowToWake(t *testing.T) {
	f := newFixture(t, nil)
	now := time.Now().UTC()
	env := &run.Env{Name: "change-4242", Namespace: "ductbot-change-4242", Release: "change-4242", Kind: run.EnvPatch,
		Project: project, Change: 4242, PatchSet: 1, Subject: "Sleepy", URL: "https://change-4242.envs.example.org",
		Status: run.EnvAsleep, CreatedAt: now.Add(-time.Hour)}
	if err := f.store.PutEnv(t.Context(), env); err != nil {
		t.Fatal(err)
	}
	_, body := f.get(t, "/", http.StatusOK)
	if !strings.Contains(body, "s-asleep") || !strings.Contains(body, "wake it with !wake change-4242") {
		t.Errorf("dashboard does not show change-4242 asleep with how to wake it:\n%s", body)
	}
	if strings.Count(body, "wake it with") != 1 {
		t.Errorf("dashboard shows %d wake hints, want 1 (only the asleep environment)", strings.Count(body, "wake it with"))
	}
	if !strings.Contains(body, `<option value="asleep"`) {
		t.Errorf("the status filter does not offer asleep")
	}
	_, body = f.get(t, EnvPath("change-4242"), http.StatusOK)
	if !strings.Contains(body, "wake it with !wake change-4242") {
		t.Errorf("environment page does not say how to wake it:\n%s", body)
	}
	_, body = f.get(t, "/?status=asleep", http.StatusOK)
	if !strings.Contains(body, "wake it with !wake change-4242") {
		t.Errorf("filter status=asleep does not list the asleep environment")
	}
}
