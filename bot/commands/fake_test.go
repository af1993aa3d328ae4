package commands

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/ductbot/ductbot/core/pipeline"
	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/core/store"
)

// fakeBackend records calls and serves a fixed set of environments.
type fakeBackend struct {
	mu       sync.Mutex
	envs     []*run.Env
	runs     map[string][]*run.Run
	requests []pipeline.EnvRequest
	destroys []string
	keeps    map[string]bool
	err      error // returned by every mutating call when set
}

func newFake(n int) *fakeBackend {
	f := &fakeBackend{runs: map[string][]*run.Run{}, keeps: map[string]bool{}}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		name := fmt.Sprintf("e-%d", 10000+i)
		f.envs = append(f.envs, &run.Env{
			Name: name, Kind: run.EnvPatch, Change: 10000 + i, PatchSet: 1, Status: run.EnvReady,
			URL: "https://" + name + ".example", CreatedAt: base.Add(time.Duration(i) * time.Minute),
			ExpiresAt: base.Add(48 * time.Hour), Matrix: run.Matrix{"orchestrator": "v1"},
		})
		f.runs[name] = []*run.Run{{ID: int64(i + 1), Env: name, Change: 10000 + i, PatchSet: 1, State: run.StateDone, Result: run.ResultPassed, CreatedAt: base}}
	}
	return f
}

func (f *fakeBackend) find(target string) *run.Env {
	for _, e := range f.envs {
		if e.Name == target || strconv.Itoa(e.Change) == target {
			return e
		}
	}
	return nil
}

func (f *fakeBackend) RequestEnv(_ context.Context, req pipeline.EnvRequest) (pipeline.Ticket, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return pipeline.Ticket{}, f.err
	}
	f.requests = append(f.requests, req)
	name := fmt.Sprintf("e-%d-x", req.Change)
	f.envs = append(f.envs, &run.Env{Name: name, Kind: run.EnvCustom, Change: req.Change, RequestedBy: req.By, Status: run.EnvDeploying})
	return pipeline.Ticket{Env: name, URL: "https://" + name + ".example", RunID: 77, Position: 2}, nil
}

func (f *fakeBackend) Envs(context.Context) ([]*run.Env, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.envs, nil
}

func (f *fakeBackend) Status(_ context.Context, target string) (*run.Env, []*run.Run, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.find(target)
	if e == nil {
		return nil, nil, fmt.Errorf("env %q: %w", target, store.ErrNotFound)
	}
	return e, f.runs[e.Name], nil
}

func (f *fakeBackend) Destroy(_ context.Context, target, _ string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", f.err
	}
	e := f.find(target)
	if e == nil {
		return "", fmt.Errorf("env %q: %w", target, store.ErrNotFound)
	}
	f.destroys = append(f.destroys, e.Name)
	return e.Name, nil
}

func (f *fakeBackend) Retest(_ context.Context, target, _ string, _ string) (pipeline.Ticket, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.find(target)
	if e == nil {
		return pipeline.Ticket{}, fmt.Errorf("env %q: %w", target, store.ErrNotFound)
	}
	return pipeline.Ticket{Env: e.Name, RunID: 99}, nil
}

func (f *fakeBackend) Extend(_ context.Context, env string, d time.Duration, _ string) (time.Time, error) {
	if f.find(env) == nil {
		return time.Time{}, fmt.Errorf("env %q: %w", env, store.ErrNotFound)
	}
	return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(d), nil
}

func (f *fakeBackend) Keep(_ context.Context, env string, keep bool, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.find(env) == nil {
		return fmt.Errorf("env %q: %w", env, store.ErrNotFound)
	}
	f.keeps[env] = keep
	return nil
}

func (f *fakeBackend) Sleep(_ context.Context, env, _ string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", f.err
	}
	e := f.find(env)
	if e == nil {
		return "", fmt.Errorf("env %q: %w", env, store.ErrNotFound)
	}
	e.Status = run.EnvAsleep
	return e.Name, nil
}

func (f *fakeBackend) Wake(_ context.Context, env, _ string) (string, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", "", f.err
	}
	e := f.find(env)
	if e == nil {
		return "", "", fmt.Errorf("env %q: %w", env, store.ErrNotFound)
	}
	e.Status = run.EnvReady
	return e.Name, e.URL, nil
}

func (f *fakeBackend) Sweep(context.Context, string) (run.SweepSummary, error) {
	return run.SweepSummary{Removed: []run.SweepAction{{Env: "e-1", Policy: "ttl"}}}, nil
}

func (f *fakeBackend) RunURL(id int64) string {
	return "https://ductbot.example/runs/" + strconv.FormatInt(id, 10)
}
func (f *fakeBackend) DashboardURL() string { return "https://ductbot.example/" }
func (f *fakeBackend) Components() []string { return []string{"wiki", "orchestrator", "evaluator"} }
