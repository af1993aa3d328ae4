package pipeline

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ductbot/ductbot/core/gerrit"
	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/core/store"
)

// UserError is an error whose message is meant for the person who asked:
// chat shows it as it is.
type UserError struct{ Msg string }

func (e *UserError) Error() string       { return e.Msg }
func (e *UserError) UserMessage() string { return e.Msg }

func userErr(format string, args ...any) error { return &UserError{Msg: fmt.Sprintf(format, args...)} }

// Sweeper runs a cleanup sweep on request.
type Sweeper interface {
	Sweep(ctx context.Context, by string) (run.SweepSummary, error)
}

// Service is what chat commands call: environments on request, retests,
// teardown, expiry and protection, sweeps. Every request that deploys code
// goes through Gate. Chat wording and addressing stay on the chat side; the
// reply target is carried as an opaque string.
type Service struct {
	e       *Engine
	sweeper Sweeper
}

// NewService serves chat requests with the engine's runs; sweeper may be
// nil when cleanup is not configured.
func NewService(e *Engine, sweeper Sweeper) *Service { return &Service{e: e, sweeper: sweeper} }

var changeRef = regexp.MustCompile(`^change:(\d+)(?:/(\d+))?$`)

// Components lists the configured component names.
func (s *Service) Components() []string {
	names := make([]string, 0, len(s.e.cfg.Components))
	for _, c := range s.e.cfg.Components {
		names = append(names, c.Name)
	}
	return names
}

// lookup reads a change from Gerrit; a change Gerrit does not know is a
// user error naming it.
func (s *Service) lookup(ctx context.Context, n int, what string) (*gerrit.Change, error) {
	chs, err := s.e.gerrit.Changes(ctx, []int{n})
	if err != nil {
		return nil, fmt.Errorf("looking up change %d: %w", n, err)
	}
	ch, ok := chs[n]
	if !ok {
		return nil, userErr("%schange %d was not found in Gerrit", what, n)
	}
	return ch, nil
}

// gate asks the trust gate about a change's code on a chat path, resolving
// the uploader's trust first.
func (s *Service) gate(ctx context.Context, path Path, ch *gerrit.Change, patchSet int, vouched, deployed bool) error {
	proj, configured := s.e.projectFor(ch)
	in := GateInput{Path: path, Change: ch, PatchSet: patchSet, Configured: configured, ChatVouch: vouched, Deployed: deployed, Prefix: s.e.cfg.Chat.Prefix}
	if configured && ch.Open() && !ch.Private {
		trusted, err := s.e.trust.trusted(ctx, proj.Trusted, ch.Uploader)
		if err != nil {
			return fmt.Errorf("checking whether change %d's uploader is trusted: %w", ch.Number, err)
		}
		in.UploaderTrusted = trusted
	}
	if r := Gate(in); r != nil {
		return r
	}
	return nil
}

// RequestEnv builds or updates an environment for a change with a custom
// mix of component versions, then tests it. The change and every change:N
// ref pass the trust gate first. The same change and matrix always name the
// same environment, so asking twice reuses it, and a request for an
// environment that is already being built joins that run.
func (s *Service) RequestEnv(ctx context.Context, req EnvRequest) (Ticket, error) {
	e := s.e
	ch, err := s.lookup(ctx, req.Change, "")
	if err != nil {
		return Ticket{}, err
	}
	if err := s.gate(ctx, PathEnv, ch, req.PatchSet, req.Vouched, false); err != nil {
		return Ticket{}, err
	}
	proj, _ := e.projectFor(ch)
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
	// What the change's Depends-On footers name comes with it, as in its
	// own environment, unless the request names that component.
	deps, err := e.depsFor(ctx, ch, req.Vouched)
	if err != nil {
		return Ticket{}, fmt.Errorf("change %d: following its Depends-On footers: %w", ch.Number, err)
	}
	if len(deps.Problems) > 0 {
		return Ticket{}, userErr("change %d: what its Depends-On footers name cannot be deployed: %s", ch.Number, strings.Join(deps.Problems, "; "))
	}
	var runDeps []run.Dep
	for _, d := range deps.Deps {
		if _, named := req.Overrides[d.Component]; !named {
			runDeps = append(runDeps, d)
		}
	}
	for _, d := range deps.Open {
		if m[d.Component], err = e.plan.PatchRef(d.Component, refData(d.Change)); err != nil {
			return Ticket{}, err
		}
	}
	patchDefault := m.Clone()
	for comp, ref := range req.Overrides {
		if _, ok := e.cfg.Component(comp); !ok {
			return Ticket{}, userErr("%q is not a component; components: %s", comp, strings.Join(s.Components(), ", "))
		}
		resolved, err := s.resolveRef(ctx, comp, ref, req.Vouched)
		if err != nil {
			return Ticket{}, err
		}
		m[comp] = resolved
	}

	kind, name, envTTL := run.EnvCustom, run.CustomEnvName(ch.Number, m), ttl
	if m.Equal(patchDefault) {
		kind, name, envTTL = run.EnvPatch, run.PatchEnvName(ch.Number), 0
	}
	name = run.NamesFor(e.cfg.Kubernetes.NamespacePrefix, name).Env

	// One request at a time from here: two identical requests at once must
	// build the environment once (the second joins the first's run).
	e.requestMu.Lock()
	defer e.requestMu.Unlock()

	runs, err := e.store.ListRuns(ctx, store.RunFilter{Env: name, Unfinished: true})
	if err != nil {
		return Ticket{}, fmt.Errorf("listing runs of %s: %w", name, err)
	}
	if len(runs) > 0 && runs[0].Revision == ch.CurrentRevision && runs[0].State != run.StateReporting {
		r := runs[0]
		env, err := e.store.GetEnv(ctx, name)
		if err != nil {
			return Ticket{}, fmt.Errorf("reading environment %s: %w", name, err)
		}
		if req.ReplyTo != "" {
			if err := e.store.PutReplyTarget(ctx, r.ID, req.ReplyTo); err != nil {
				e.log.Warn("saving where to reply", append(runAttrs(r), "err", err)...)
			}
		}
		return Ticket{Env: name, URL: env.URL, RunID: r.ID, Position: e.Position(r.ID), Reused: true}, nil
	}
	existing, err := e.store.GetEnv(ctx, name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Ticket{}, fmt.Errorf("reading environment %s: %w", name, err)
	}
	reused := existing != nil && existing.Status != run.EnvGone
	env := e.newEnv(name, kind, ch, m, req.By, envTTL)
	r := newRun(env, ch, m, run.TriggerChat, req.By)
	r.Deps = runDeps
	if _, err := e.enqueue(ctx, r, env, req.ReplyTo); err != nil {
		return Ticket{}, err
	}
	e.log.Info("environment requested from chat", "env", env.Name, "change", ch.Number, "by", req.By, "matrix", FormatMatrix(m))
	return Ticket{Env: env.Name, URL: env.URL, RunID: r.ID, Position: e.Position(r.ID), Reused: reused}, nil
}

// resolveRef turns change:N[/P] into that change's ref for comp, after the
// trust gate admits that change's code; other refs were checked by the chat
// parser and are used as they are.
func (s *Service) resolveRef(ctx context.Context, comp, ref string, vouched bool) (string, error) {
	mm := changeRef.FindStringSubmatch(ref)
	if mm == nil {
		return ref, nil
	}
	n, _ := strconv.Atoi(mm[1])
	what := comp + "=" + ref + ": "
	ch, err := s.lookup(ctx, n, what)
	if err != nil {
		return "", err
	}
	ps := 0
	if mm[2] != "" {
		ps, _ = strconv.Atoi(mm[2])
	}
	if err := s.gate(ctx, PathChangeRef, ch, ps, vouched, false); err != nil {
		return "", userErr("%s%s", what, err.Error())
	}
	if proj, _ := s.e.projectFor(ch); proj.Component != comp {
		return "", userErr("%schange %d is in %s, which builds %s, not %s", what, n, ch.Project, proj.Component, comp)
	}
	return s.e.plan.PatchRef(comp, refData(ch))
}

// Envs lists the live environments, oldest first.
func (s *Service) Envs(ctx context.Context) ([]*run.Env, error) {
	return s.e.store.ListEnvs(ctx, store.EnvFilter{Alive: true})
}

// findEnv resolves a chat target: an environment name, or a change number
// (its own environment).
func (s *Service) findEnv(ctx context.Context, target string) (*run.Env, error) {
	target = strings.TrimPrefix(strings.TrimSpace(target), "#")
	if n, err := strconv.Atoi(target); err == nil {
		target = run.NamesFor(s.e.cfg.Kubernetes.NamespacePrefix, run.PatchEnvName(n)).Env
	}
	env, err := s.e.store.GetEnv(ctx, target)
	if errors.Is(err, store.ErrNotFound) {
		return nil, userErr("no environment %q; %senvs lists them", target, s.e.cfg.Chat.Prefix)
	}
	if err != nil {
		return nil, fmt.Errorf("reading environment %s: %w", target, err)
	}
	return env, nil
}

// Status is an environment and its latest runs, newest first.
func (s *Service) Status(ctx context.Context, target string) (*run.Env, []*run.Run, error) {
	env, err := s.findEnv(ctx, target)
	if err != nil {
		return nil, nil, err
	}
	runs, err := s.e.store.ListRuns(ctx, store.RunFilter{Env: env.Name, Limit: 5})
	if err != nil {
		return nil, nil, fmt.Errorf("listing runs of %s: %w", env.Name, err)
	}
	return env, runs, nil
}

// Destroy tears an environment down now (chat !destroy).
func (s *Service) Destroy(ctx context.Context, target, by string) (string, error) {
	env, err := s.findEnv(ctx, target)
	if err != nil {
		return "", err
	}
	if env.Status == run.EnvGone {
		return "", userErr("%s is already gone", env.Name)
	}
	return env.Name, s.e.DestroyEnv(ctx, env.Name, "destroyed by "+by)
}

// Retest runs the tests of a live environment again, without redeploying:
// the patch set the environment runs, which passed the gate when it was
// deployed, and which is what a vote would go on (VoteTarget votes only if
// it is still current). A queued or running run of the environment is not
// superseded: its own tests come.
func (s *Service) Retest(ctx context.Context, target, by, replyTo string) (Ticket, error) {
	e := s.e
	env, err := s.findEnv(ctx, target)
	if err != nil {
		return Ticket{}, err
	}
	if env.Status != run.EnvReady && env.Status != run.EnvAsleep {
		return Ticket{}, userErr("%s is %s; only a deployed environment can be retested", env.Name, env.Status)
	}
	if env.Revision == "" {
		return Ticket{}, userErr("%s has not been deployed yet", env.Name)
	}
	ch, err := s.lookup(ctx, env.Change, "")
	if err != nil {
		return Ticket{}, err
	}
	if err := s.gate(ctx, PathRetest, ch, 0, false, true); err != nil {
		return Ticket{}, err
	}
	e.requestMu.Lock()
	defer e.requestMu.Unlock()
	pending, err := e.store.ListRuns(ctx, store.RunFilter{Env: env.Name, Unfinished: true})
	if err != nil {
		return Ticket{}, fmt.Errorf("listing runs of %s: %w", env.Name, err)
	}
	for _, p := range pending {
		if p.State != run.StateReporting {
			return Ticket{}, userErr("%s already has run %d %s (patch set %d); its tests will run", env.Name, p.ID, p.State, p.PatchSet)
		}
	}
	r := &run.Run{
		Env: env.Name, Project: env.Project, Change: env.Change, PatchSet: env.PatchSet, Revision: env.Revision,
		Subject: env.Subject, Owner: env.Owner, Matrix: env.Matrix, Trigger: run.TriggerChat, RequestedBy: by, TestOnly: true,
	}
	if err := e.store.TouchEnv(ctx, env.Name, e.now().UTC()); err != nil {
		return Ticket{}, fmt.Errorf("recording activity on %s: %w", env.Name, err)
	}
	if _, err := e.enqueue(ctx, r, env, replyTo); err != nil {
		return Ticket{}, err
	}
	return Ticket{Env: env.Name, URL: env.URL, RunID: r.ID, Position: e.Position(r.ID)}, nil
}

// Extend moves an environment's expiry d from now, within cleanup.ttl_max
// from its creation.
func (s *Service) Extend(ctx context.Context, name string, d time.Duration, by string) (time.Time, error) {
	e := s.e
	env, err := s.findEnv(ctx, name)
	if err != nil {
		return time.Time{}, err
	}
	if d <= 0 {
		return time.Time{}, userErr("the duration must be positive")
	}
	now := e.now().UTC()
	limit := env.CreatedAt.Add(e.cfg.Cleanup.TTLMax.D())
	exp := now.Add(d)
	if exp.After(limit) {
		return time.Time{}, userErr("%s can live until %s at most (cleanup.ttl_max is %s)", env.Name, limit.Format(time.RFC3339), e.cfg.Cleanup.TTLMax.D())
	}
	if err := e.store.SetEnvExpiry(ctx, env.Name, exp); err != nil {
		return time.Time{}, fmt.Errorf("extending %s: %w", env.Name, err)
	}
	if err := e.store.TouchEnv(ctx, env.Name, now); err != nil {
		return time.Time{}, fmt.Errorf("recording activity on %s: %w", env.Name, err)
	}
	e.log.Info("environment extended", "env", env.Name, "by", by, "expires", exp)
	return exp, nil
}

// Keep protects an environment from every automatic cleanup policy, or
// lifts the protection.
func (s *Service) Keep(ctx context.Context, name string, keep bool, by string) error {
	env, err := s.findEnv(ctx, name)
	if err != nil {
		return err
	}
	if err := s.e.store.SetEnvProtected(ctx, env.Name, keep); err != nil {
		return fmt.Errorf("protecting %s: %w", env.Name, err)
	}
	s.e.log.Info("environment protection changed", "env", env.Name, "protected", keep, "by", by)
	return nil
}

// Sweep runs a cleanup sweep now.
func (s *Service) Sweep(ctx context.Context, by string) (run.SweepSummary, error) {
	if s.sweeper == nil {
		return run.SweepSummary{}, userErr("cleanup is not configured")
	}
	return s.sweeper.Sweep(ctx, by)
}

// DestroyEnv removes an environment completely: it cancels its runs, waits
// for the one in progress to stop, marks the record tearing-down, uninstalls
// the release, deletes the namespace and waits for it to go, and marks the
// record gone. Interrupted half way, it is finished by the next call (the
// cleanup sweep calls it for records left tearing-down).
func (e *Engine) DestroyEnv(ctx context.Context, name, reason string) error {
	env, err := e.store.GetEnv(ctx, name)
	if err != nil {
		return fmt.Errorf("reading environment %s: %w", name, err)
	}
	if err := e.cancelRuns(ctx, store.RunFilter{Env: name, Unfinished: true}, reason); err != nil {
		return err
	}
	if err := e.acquireEnv(ctx, name); err != nil {
		return err
	}
	defer e.releaseEnv(name)
	if err := e.store.SetEnvStatus(ctx, name, run.EnvTearingDown, e.now().UTC()); err != nil {
		return fmt.Errorf("marking %s tearing down: %w", name, err)
	}
	e.log.Info("tearing down", "env", name, "namespace", env.Namespace, "reason", reason)
	if err := e.cluster.Teardown(ctx, env.Namespace, env.Release, e.cfg.Kubernetes.DeployTimeout.D()); err != nil {
		return fmt.Errorf("tearing down %s: %w", name, err)
	}
	if err := e.store.SetEnvStatus(ctx, name, run.EnvGone, e.now().UTC()); err != nil {
		return fmt.Errorf("marking %s gone: %w", name, err)
	}
	return nil
}

// RunURL is the link to a run's log page.
func (s *Service) RunURL(id int64) string { return s.e.RunURL(id) }

// DashboardURL is the dashboard's address.
func (s *Service) DashboardURL() string { return s.e.DashboardURL() }
