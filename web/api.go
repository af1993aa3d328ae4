package web

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/internal/people"
)

// The JSON API's field names are lower_snake_case and stable; times are
// RFC 3339 in UTC, and a time that has not happened is left out. owner and
// requested_by are names or usernames, never e-mail addresses
// (people.DisplayName). A run's tests count the lines of its logs as
// bounded by report.max_log_bytes, the same lines its log_url serves.

// EnvJSON is an environment in the JSON API.
type EnvJSON struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace"`
	Release     string            `json:"release"`
	Kind        string            `json:"kind"`
	Project     string            `json:"project"`
	Change      int               `json:"change"`
	PatchSet    int               `json:"patch_set"`
	Revision    string            `json:"revision"`
	Subject     string            `json:"subject"`
	Owner       string            `json:"owner"`
	Matrix      map[string]string `json:"matrix"`
	URL         string            `json:"url"`
	Status      string            `json:"status"`
	Protected   bool              `json:"protected"`
	RequestedBy string            `json:"requested_by,omitempty"`
	CreatedAt   string            `json:"created_at,omitempty"`
	UpdatedAt   string            `json:"updated_at,omitempty"`
	ActiveAt    string            `json:"active_at,omitempty"`
	ExpiresAt   string            `json:"expires_at,omitempty"`
	GoneAt      string            `json:"gone_at,omitempty"`
	WebURL      string            `json:"web_url"`
	ChangeURL   string            `json:"change_url,omitempty"`
}

// RunJSON is a run in the JSON API.
type RunJSON struct {
	ID          int64             `json:"id"`
	Env         string            `json:"env"`
	Project     string            `json:"project"`
	Change      int               `json:"change"`
	PatchSet    int               `json:"patch_set"`
	Revision    string            `json:"revision"`
	Subject     string            `json:"subject"`
	Owner       string            `json:"owner"`
	Matrix      map[string]string `json:"matrix"`
	Trigger     string            `json:"trigger"`
	RequestedBy string            `json:"requested_by,omitempty"`
	TestOnly    bool              `json:"test_only"`
	State       string            `json:"state"`
	Result      string            `json:"result,omitempty"`
	Attempts    int               `json:"attempts"`
	Detail      string            `json:"detail,omitempty"`
	// Diagnosis is why the deploy failed, as the pods showed it.
	Diagnosis       *run.Diagnosis `json:"diagnosis,omitempty"`
	CreatedAt       string         `json:"created_at,omitempty"`
	StartedAt       string         `json:"started_at,omitempty"`
	DeployedAt      string         `json:"deployed_at,omitempty"`
	TestedAt        string         `json:"tested_at,omitempty"`
	FinishedAt      string         `json:"finished_at,omitempty"`
	DurationSeconds float64        `json:"duration_seconds"`
	WebURL          string         `json:"web_url"`
	LogURL          string         `json:"log_url"`
	EnvWebURL       string         `json:"env_web_url,omitempty"`
	ChangeURL       string         `json:"change_url,omitempty"`
	Tests           []TestJSON     `json:"tests"`
}

// TestJSON is one test pod of a run in the JSON API; its log is at the
// run's log_url.
type TestJSON struct {
	Pod   string `json:"pod"`
	Phase string `json:"phase"`
	Lines int    `json:"lines"`
}

func matrixJSON(m run.Matrix) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func (s *Server) envJSON(e *run.Env) EnvJSON {
	return EnvJSON{
		Name: e.Name, Namespace: e.Namespace, Release: e.Release, Kind: string(e.Kind),
		Project: e.Project, Change: e.Change, PatchSet: e.PatchSet, Revision: e.Revision,
		Subject: e.Subject, Owner: people.DisplayName(e.Owner), Matrix: matrixJSON(e.Matrix), URL: e.URL,
		Status: string(e.Status), Protected: e.Protected, RequestedBy: people.DisplayName(e.RequestedBy),
		CreatedAt: rfc3339(e.CreatedAt), UpdatedAt: rfc3339(e.UpdatedAt), ActiveAt: rfc3339(e.ActiveAt),
		ExpiresAt: rfc3339(e.ExpiresAt), GoneAt: rfc3339(e.GoneAt),
		WebURL: s.absolute(EnvPath(e.Name)), ChangeURL: s.changeURL(e.Project, e.Change, e.PatchSet),
	}
}

func (s *Server) runJSON(r *run.Run, logs []run.TestLog) RunJSON {
	v := RunJSON{
		ID: r.ID, Env: r.Env, Project: r.Project, Change: r.Change, PatchSet: r.PatchSet,
		Revision: r.Revision, Subject: r.Subject, Owner: people.DisplayName(r.Owner), Matrix: matrixJSON(r.Matrix),
		Trigger: string(r.Trigger), RequestedBy: people.DisplayName(r.RequestedBy), TestOnly: r.TestOnly,
		State: string(r.State), Result: string(r.Result), Attempts: r.Attempts, Detail: r.Detail, Diagnosis: r.Diagnosis,
		CreatedAt: rfc3339(r.CreatedAt), StartedAt: rfc3339(r.StartedAt), DeployedAt: rfc3339(r.DeployedAt),
		TestedAt: rfc3339(r.TestedAt), FinishedAt: rfc3339(r.FinishedAt),
		DurationSeconds: runDuration(s.now(), r).Seconds(),
		WebURL:          s.absolute(RunPath(r.ID)), LogURL: s.absolute(runLogPath(r.ID)),
		ChangeURL: s.changeURL(r.Project, r.Change, r.PatchSet),
		Tests:     make([]TestJSON, 0, len(logs)),
	}
	if r.Env != "" {
		v.EnvWebURL = s.absolute(EnvPath(r.Env))
	}
	for _, l := range logs {
		v.Tests = append(v.Tests, TestJSON{Pod: l.Pod, Phase: l.Phase, Lines: len(splitLines(l.Log))})
	}
	return v
}

// writeJSON answers with v as JSON.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		s.log.Error("encode JSON", "path", r.URL.Path, "err", err)
		http.Error(w, `{"error":"internal error"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// apiError is the body of every JSON error.
type apiError struct {
	Error string `json:"error"`
}

// apiEnvs lists environments: every one but gone, or those with ?status=;
// ?project= narrows it.
func (s *Server) apiEnvs(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := storeCtx(r)
	defer cancel()
	q := r.URL.Query()
	envs, err := s.listEnvs(ctx, q.Get("project"), q.Get("status"))
	if err != nil {
		s.log.Error("list envs", "err", err)
		s.writeJSON(w, r, http.StatusInternalServerError, apiError{"could not read the environments"})
		return
	}
	out := struct {
		Envs []EnvJSON `json:"envs"`
	}{Envs: make([]EnvJSON, 0, len(envs))}
	for _, e := range envs {
		out.Envs = append(out.Envs, s.envJSON(e))
	}
	s.writeJSON(w, r, http.StatusOK, out)
}

func (s *Server) apiRun(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := storeCtx(r)
	defer cancel()
	rn, ok := s.lookupRun(w, r, ctx, func(status int, heading, _ string) {
		s.writeJSON(w, r, status, apiError{heading})
	})
	if !ok {
		return
	}
	logs, err := s.testLogs(ctx, rn.ID)
	if err != nil {
		s.log.Error("read test logs", "run", rn.ID, "err", err)
		s.writeJSON(w, r, http.StatusInternalServerError, apiError{"could not read the test logs of run " + strconv.FormatInt(rn.ID, 10)})
		return
	}
	s.writeJSON(w, r, http.StatusOK, s.runJSON(rn, logs))
}
