package pipeline

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/core/store"
)

// UserError is an error whose message is meant for the person who asked:
// chat shows it as it is.
type UserError struct{ Msg string }

func (e *UserError) Error() string       { return e.Msg }
func (e *UserError) UserMessage() string { return e.Msg }

func userErr(format string, args ...any) error { return &UserError{Msg: fmt.Sprintf(format, args...)} }

var changeRef = regexp.MustCompile(`^change:(\d+)(?:/(\d+))?$`)

// Components lists the configured component names.
func (e *Engine) Components() []string {
	names := make([]string, 0, len(e.cfg.Components))
	for _, c := range e.cfg.Components {
		names = append(names, c.Name)
	}
	return names
}

// RequestEnv builds or updates an environment for a change with a custom
// mix of component versions, then tests it. The same change and matrix
// always name the same environment, so asking twice reuses it, and a request
// for an environment that is already being built joins that run.
func (e *Engine) RequestEnv(ctx context.Context, req EnvRequest) (Ticket, error) {
	chs, err := e.gerrit.Changes(ctx, []int{req.Change})
	if err != nil {
		return Ticket{}, fmt.Errorf("looking up change %d: %w", req.Change, err)
	}
	ch, ok := chs[req.Change]
	if !ok {
		return Ticket{}, userErr("change %d was not found in Gerrit", req.Change)
	}
	proj, ok := e.cfg.Project(ch.Project)
	if !ok {
		return Ticket{}, userErr("change %d belongs to %s, which ductbot is not configured for", req.Change, ch.Project)
	}
	if !ch.Open() {
		return Ticket{}, userErr("change %d is %s", req.Change, strings.ToLower(ch.Status))
	}
	if req.PatchSet != 0 && req.PatchSet != ch.PatchSet {
		return Ticket{}, userErr("change %d is at patch set %d; only the current patch set can be deployed", req.Change, ch.PatchSet)
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = e.cfg.Cleanup.TTLDefault.D()
	}
	if max := e.cfg.Cleanup.TTLMax.D(); ttl > max {
		return Ticket{}, userErr("ttl=%s is longer than the maximum of %s", ttl, max)
	}

	m := e.plan.Default()
	ref, err := e.plan.PatchRef(proj.Component, refData(ch))
	if err != nil {
		return Ticket{}, err
	}
	m[proj.Component] = ref
	for comp, ref := range req.Overrides {
		if _, ok := e.cfg.Component(comp); !ok {
			return Ticket{}, userErr("%q is not a component; components: %s", comp, strings.Join(e.Components(), ", "))
		}
		resolved, err := e.resolveRef(ctx, comp, ref)
		if err != nil {
			return Ticket{}, err
		}
		m[comp] = resolved
	}

	patchDefault := e.plan.Default()
	patchDefault[proj.Component] = ref
	kind, name := run.EnvCustom, CustomEnvName(ch.Number, m)
	if m.Equal(patchDefault) {
		kind, name = run.EnvPatch, PatchEnvName(ch.Number)
	}
	name = NamesFor(e.cfg.Kubernetes.NamespacePrefix, name).Env

	// One request at a time from here: two identical requests at once must
	// build the environment once (the second joins the first's run).
	e.requestMu.Lock()
	defer e.requestMu.Unlock()

	// The same matrix already being built: join that run.
	if runs, err := e.store.ListRuns(ctx, store.RunFilter{Env: name, Unfinished: true}); err == nil && len(runs) > 0 {
		r := runs[0]
		env, _ := e.store.GetEnv(ctx, name)
		t := Ticket{Env: name, RunID: r.ID, Position: e.Position(r.ID), Reused: true}
		if env != nil {
			t.URL = env.URL
		}
		e.rememberReply(ctx, r.ID, req.ReplyTo)
		return t, nil
	}

	existing, _ := e.store.GetEnv(ctx, name)
	reused := existing != nil && existing.Status != run.EnvGone
	if !reused {
		if err := e.checkCapacity(ctx); err != nil {
			return Ticket{}, err
		}
	}
	var envTTL time.Duration
	if kind == run.EnvCustom {
		envTTL = ttl
	}
	env, err := e.envRecord(ctx, name, kind, ch, m, req.By, envTTL)
	if err != nil {
		return Ticket{}, err
	}
	r := &run.Run{
		Env: env.Name, Project: ch.Project, Change: ch.Number, PatchSet: ch.PatchSet, Revision: ch.CurrentRevision,
		Subject: ch.Subject, Owner: ch.Owner.String(), Matrix: m, Trigger: run.TriggerChat, RequestedBy: req.By,
	}
	pos, err := e.enqueue(ctx, r, env, req.ReplyTo)
	if err != nil {
		return Ticket{}, err
	}
	e.log.Info("environment requested from chat", "env", env.Name, "change", ch.Number, "by", req.By, "matrix", FormatMatrix(m))
	return Ticket{Env: env.Name, URL: env.URL, RunID: r.ID, Position: e.Position(r.ID), Reused: reused && pos > 0}, nil
}

// checkCapacity refuses a new environment at kubernetes.max_envs, naming the
// oldest ones so that people can decide what to destroy.
func (e *Engine) checkCapacity(ctx context.Context) error {
	max := e.cfg.Kubernetes.MaxEnvs
	if max == 0 {
		return nil
	}
	live, err := e.store.ListEnvs(ctx, store.EnvFilter{Alive: true})
	if err != nil {
		return err
	}
	if len(live) < max {
		return nil
	}
	sort.Slice(live, func(i, j int) bool { return live[i].CreatedAt.Before(live[j].CreatedAt) })
	var oldest []string
	for _, env := range live[:min(3, len(live))] {
		oldest = append(oldest, fmt.Sprintf("%s (%s old)", env.Name, e.now().Sub(env.CreatedAt).Round(time.Minute)))
	}
	return userErr("all %d environments are in use; the oldest are %s. Free one with %sdestroy <env>.",
		max, strings.Join(oldest, ", "), e.cfg.Chat.Prefix)
}

// resolveRef turns change:N[/P] into that change's ref for comp; other refs
// were checked by the chat parser and are used as they are.
func (e *Engine) resolveRef(ctx context.Context, comp, ref string) (string, error) {
	mm := changeRef.FindStringSubmatch(ref)
	if mm == nil {
		return ref, nil
	}
	n, _ := strconv.Atoi(mm[1])
	chs, err := e.gerrit.Changes(ctx, []int{n})
	if err != nil {
		return "", fmt.Errorf("looking up change %d: %w", n, err)
	}
	ch, ok := chs[n]
	if !ok {
		return "", userErr("%s=%s: change %d was not found", comp, ref, n)
	}
	if mm[2] != "" {
		if ps, _ := strconv.Atoi(mm[2]); ps != ch.PatchSet {
			return "", userErr("%s=%s: change %d is at patch set %d; only the current patch set can be used", comp, ref, n, ch.PatchSet)
		}
	}
	return e.plan.PatchRef(comp, refData(ch))
}

// Envs lists the live environments, oldest first.
func (e *Engine) Envs(ctx context.Context) ([]*run.Env, error) {
	return e.store.ListEnvs(ctx, store.EnvFilter{Alive: true})
}

// findEnv resolves a chat target: an environment name, or a change number
// (its own environment).
func (e *Engine) findEnv(ctx context.Context, target string) (*run.Env, error) {
	target = strings.TrimPrefix(strings.TrimSpace(target), "#")
	if n, err := strconv.Atoi(target); err == nil {
		target = PatchEnvName(n)
	}
	env, err := e.store.GetEnv(ctx, target)
	if errors.Is(err, store.ErrNotFound) {
		return nil, userErr("no environment %q; %senvs lists them", target, e.cfg.Chat.Prefix)
	}
	return env, err
}

// Status is an environment and its latest runs, newest first.
func (e *Engine) Status(ctx context.Context, target string) (*run.Env, []*run.Run, error) {
	env, err := e.findEnv(ctx, target)
	if err != nil {
		return nil, nil, err
	}
	runs, err := e.store.ListRuns(ctx, store.RunFilter{Env: env.Name, Limit: 5})
	return env, runs, err
}

// Destroy tears an environment down now (chat !destroy).
func (e *Engine) Destroy(ctx context.Context, target, by string) (string, error) {
	env, err := e.findEnv(ctx, target)
	if err != nil {
		return "", err
	}
	if env.Status == run.EnvGone {
		return "", userErr("%s is already gone", env.Name)
	}
	return env.Name, e.DestroyEnv(ctx, env.Name, "destroyed by "+by)
}

// DestroyEnv removes an environment completely: it cancels its runs, waits
// for the one in progress to stop, marks the record tearing-down, uninstalls
// the release, deletes the namespace and waits for it to go, and marks the
// record gone. Interrupted half way, it is finished by the next call (the
// cleanup sweep calls it for records left tearing-down).
func (e *Engine) DestroyEnv(ctx context.Context, name, reason string) error {
	env, err := e.store.GetEnv(ctx, name)
	if err != nil {
		return err
	}
	e.cancelRuns(ctx, store.RunFilter{Env: name, Unfinished: true}, reason)
	if err := e.acquireEnv(ctx, name); err != nil {
		return err
	}
	defer e.releaseEnv(name)
	env.Status = run.EnvTearingDown
	if err := e.store.PutEnv(ctx, env); err != nil {
		return err
	}
	e.log.Info("tearing down", "env", name, "namespace", env.Namespace, "reason", reason)
	if err := e.cluster.Teardown(ctx, env.Namespace, env.Release, e.cfg.Kubernetes.DeployTimeout.D()); err != nil {
		return fmt.Errorf("tearing down %s: %w", name, err)
	}
	env.Status, env.GoneAt = run.EnvGone, e.now().UTC()
	return e.store.PutEnv(ctx, env)
}

// acquireEnv waits until no run or teardown holds the environment, then
// holds it.
func (e *Engine) acquireEnv(ctx context.Context, name string) error {
	for {
		e.mu.Lock()
		if !e.busy[name] {
			e.busy[name] = true
			e.mu.Unlock()
			return nil
		}
		e.mu.Unlock()
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s's run to stop: %w", name, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (e *Engine) releaseEnv(name string) {
	e.mu.Lock()
	delete(e.busy, name)
	e.mu.Unlock()
	e.poke()
}

// Retest runs the tests of a live environment again, without redeploying.
func (e *Engine) Retest(ctx context.Context, target, by string, reply string) (Ticket, error) {
	env, err := e.findEnv(ctx, target)
	if err != nil {
		return Ticket{}, err
	}
	if env.Status != run.EnvReady {
		return Ticket{}, userErr("%s is %s; only a deployed environment can be retested", env.Name, env.Status)
	}
	last, err := e.store.ListRuns(ctx, store.RunFilter{Env: env.Name, Limit: 1})
	if err != nil || len(last) == 0 {
		return Ticket{}, userErr("%s has no run to repeat", env.Name)
	}
	prev := last[0]
	r := &run.Run{
		Env: env.Name, Project: prev.Project, Change: prev.Change, PatchSet: prev.PatchSet, Revision: prev.Revision,
		Subject: prev.Subject, Owner: prev.Owner, Matrix: env.Matrix, Trigger: run.TriggerChat, RequestedBy: by, TestOnly: true,
	}
	env.ActiveAt = e.now().UTC()
	if _, err := e.enqueue(ctx, r, env, reply); err != nil {
		return Ticket{}, err
	}
	return Ticket{Env: env.Name, URL: env.URL, RunID: r.ID, Position: e.Position(r.ID)}, nil
}

// Extend moves an environment's expiry d from now, within cleanup.ttl_max
// from its creation.
func (e *Engine) Extend(ctx context.Context, name string, d time.Duration, by string) (time.Time, error) {
	env, err := e.findEnv(ctx, name)
	if err != nil {
		return time.Time{}, err
	}
	if d <= 0 {
		return time.Time{}, userErr("the duration must be positive")
	}
	limit := env.CreatedAt.Add(e.cfg.Cleanup.TTLMax.D())
	exp := e.now().UTC().Add(d)
	if exp.After(limit) {
		return time.Time{}, userErr("%s can live until %s at most (cleanup.ttl_max is %s)", env.Name, limit.Format(time.RFC3339), e.cfg.Cleanup.TTLMax.D())
	}
	env.ExpiresAt, env.ActiveAt = exp, e.now().UTC()
	if err := e.store.PutEnv(ctx, env); err != nil {
		return time.Time{}, err
	}
	e.log.Info("environment extended", "env", env.Name, "by", by, "expires", exp)
	return exp, nil
}

// Keep protects an environment from every automatic cleanup policy, or
// lifts the protection.
func (e *Engine) Keep(ctx context.Context, name string, keep bool, by string) error {
	env, err := e.findEnv(ctx, name)
	if err != nil {
		return err
	}
	env.Protected = keep
	e.log.Info("environment protection changed", "env", env.Name, "protected", keep, "by", by)
	return e.store.PutEnv(ctx, env)
}

// Sweep runs a cleanup sweep now.
func (e *Engine) Sweep(ctx context.Context, by string) (run.SweepSummary, error) {
	if e.sweeper == nil {
		return run.SweepSummary{}, userErr("cleanup is not configured")
	}
	return e.sweeper.Sweep(ctx, by)
}

// SetSweeper attaches the cleanup sweep after construction (it needs the
// engine as its Destroyer).
func (e *Engine) SetSweeper(s interface {
	Sweep(ctx context.Context, by string) (run.SweepSummary, error)
}) {
	e.sweeper = s
}
