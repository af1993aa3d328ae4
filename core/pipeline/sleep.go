package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ductbot/ductbot/core/k8s"
	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/core/store"
)

// Sleep puts an environment to sleep (chat !sleep): every Deployment and
// StatefulSet in its namespace is scaled to 0, the release stays. The
// intent is recorded first (sleeping), so a restart finishes it.
func (s *Service) Sleep(ctx context.Context, target, by string) (string, error) {
	e := s.e
	env, err := s.findEnv(ctx, target)
	if err != nil {
		return "", err
	}
	switch env.Status {
	case run.EnvAsleep:
		return "", userErr("%s is already asleep; wake it with %swake %s", env.Name, e.cfg.Chat.Prefix, env.Name)
	case run.EnvReady, run.EnvBroken, run.EnvSleeping:
	default:
		return "", userErr("%s is %s; only a deployed environment can sleep", env.Name, env.Status)
	}
	runs, err := e.store.ListRuns(ctx, store.RunFilter{Env: env.Name, Unfinished: true})
	if err != nil {
		return "", fmt.Errorf("listing runs of %s: %w", env.Name, err)
	}
	for _, r := range runs {
		if r.State != run.StateReporting {
			return "", userErr("%s has run %d %s; it can sleep when that is done", env.Name, r.ID, r.State)
		}
	}
	if env.Status != run.EnvSleeping {
		if err := s.roomToSleep(ctx); err != nil {
			return "", err
		}
	}
	if err := e.SleepEnv(ctx, env.Name, "by "+by); err != nil {
		return "", err
	}
	if err := e.store.TouchEnv(ctx, env.Name, e.now().UTC()); err != nil {
		e.log.Warn("recording activity", "env", env.Name, "err", err)
	}
	return env.Name, nil
}

// roomToSleep refuses when kubernetes.max_sleeping environments are asleep.
func (s *Service) roomToSleep(ctx context.Context) error {
	max := s.e.cfg.Kubernetes.MaxSleeping
	if max <= 0 {
		return nil
	}
	n, err := s.e.countEnvs(ctx, run.EnvStatus.Dormant)
	if err != nil {
		return err
	}
	if n >= max {
		return userErr("%d environments are asleep already (kubernetes.max_sleeping is %d); %sdestroy one first", n, max, s.e.cfg.Chat.Prefix)
	}
	return nil
}

func (e *Engine) countEnvs(ctx context.Context, pred func(run.EnvStatus) bool) (int, error) {
	envs, err := e.store.ListEnvs(ctx, store.EnvFilter{Alive: true})
	if err != nil {
		return 0, fmt.Errorf("listing environments: %w", err)
	}
	n := 0
	for _, env := range envs {
		if pred(env.Status) {
			n++
		}
	}
	return n, nil
}

// Wake wakes an asleep environment (chat !wake): it restores the replicas
// and waits until the workloads are ready, and returns the environment's
// URL. Waking needs room under kubernetes.max_envs.
func (s *Service) Wake(ctx context.Context, target, by string) (name, url string, err error) {
	e := s.e
	env, err := s.findEnv(ctx, target)
	if err != nil {
		return "", "", err
	}
	if !env.Status.Dormant() && env.Status != run.EnvWaking {
		return "", "", userErr("%s is %s, not asleep", env.Name, env.Status)
	}
	if max := e.cfg.Kubernetes.MaxEnvs; max > 0 && env.Status != run.EnvWaking {
		n, err := e.countEnvs(ctx, run.EnvStatus.InCluster)
		if err != nil {
			return "", "", err
		}
		if !Admit(env.Status, n, max) {
			return "", "", userErr("the cluster is full (%d environments, kubernetes.max_envs is %d); try again when one goes", n, max)
		}
	}
	if err := e.store.TouchEnv(ctx, env.Name, e.now().UTC()); err != nil {
		e.log.Warn("recording activity", "env", env.Name, "err", err)
	}
	// The wake finishes even when the asker stops waiting (chat bounds its
	// calls), so that it is never left half way.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.Kubernetes.DeployTimeout.D()+time.Minute)
	defer cancel()
	if err := e.acquireEnv(ctx, env.Name); err != nil {
		return "", "", err
	}
	defer e.releaseEnv(env.Name)
	if err := e.wakeHeld(ctx, env.Name, "by "+by); err != nil {
		var df *k8s.DeployFailure
		if errors.As(err, &df) {
			return env.Name, env.URL, userErr("%s did not become ready: %s", env.Name, df.Error())
		}
		return env.Name, env.URL, err
	}
	return env.Name, env.URL, nil
}

// SleepEnv puts an environment to sleep, holding it so that no run
// overlaps. It records sleeping first, then scales, then records asleep;
// interrupted, it is finished by RepairSleep or the next call.
func (e *Engine) SleepEnv(ctx context.Context, name, reason string) error {
	if err := e.acquireEnv(ctx, name); err != nil {
		return err
	}
	defer e.releaseEnv(name)
	env, err := e.store.GetEnv(ctx, name)
	if err != nil {
		return fmt.Errorf("reading environment %s: %w", name, err)
	}
	switch env.Status {
	case run.EnvReady, run.EnvBroken, run.EnvSleeping, run.EnvAsleep:
	default:
		return userErr("%s is %s; only a deployed environment can sleep", name, env.Status)
	}
	if err := e.store.SetEnvStatus(ctx, name, run.EnvSleeping, e.now().UTC()); err != nil {
		return fmt.Errorf("marking %s sleeping: %w", name, err)
	}
	e.log.Info("putting to sleep", "env", name, "namespace", env.Namespace, "reason", reason)
	if err := e.cluster.Sleep(ctx, env.Namespace); err != nil {
		return fmt.Errorf("putting %s to sleep: %w", name, err)
	}
	if err := e.store.SetEnvStatus(ctx, name, run.EnvAsleep, e.now().UTC()); err != nil {
		return fmt.Errorf("marking %s asleep: %w", name, err)
	}
	return nil
}

// wakeHeld wakes an environment the caller holds. It records waking first,
// restores the replicas (clearing the annotations) and waits for ready,
// then records ready; a failure to become ready leaves it broken with the
// reason. An environment that is not asleep is left as it is.
func (e *Engine) wakeHeld(ctx context.Context, name, reason string) error {
	env, err := e.store.GetEnv(ctx, name)
	if err != nil {
		return fmt.Errorf("reading environment %s: %w", name, err)
	}
	if !env.Status.Dormant() && env.Status != run.EnvWaking {
		return nil
	}
	if err := e.store.SetEnvStatus(ctx, name, run.EnvWaking, e.now().UTC()); err != nil {
		return fmt.Errorf("marking %s waking: %w", name, err)
	}
	e.log.Info("waking", "env", name, "namespace", env.Namespace, "reason", reason)
	if err := e.cluster.Wake(ctx, env.Namespace, e.cfg.Kubernetes.DeployTimeout.D()); err != nil {
		if ctx.Err() == nil {
			if serr := e.store.SetEnvStatus(ctx, name, run.EnvBroken, e.now().UTC()); serr != nil {
				e.log.Warn("marking broken", "env", name, "err", serr)
			}
		}
		return fmt.Errorf("waking %s: %w", name, err)
	}
	if err := e.store.SetEnvStatus(ctx, name, run.EnvReady, e.now().UTC()); err != nil {
		return fmt.Errorf("marking %s ready: %w", name, err)
	}
	return nil
}

// RepairSleep finishes sleeps and wakes a crash interrupted: an environment
// left sleeping is put to sleep again (Sleep is idempotent), one left
// waking is woken. After it, each is all asleep or all awake.
func (e *Engine) RepairSleep(ctx context.Context) error {
	envs, err := e.store.ListEnvs(ctx, store.EnvFilter{Alive: true})
	if err != nil {
		return fmt.Errorf("listing environments: %w", err)
	}
	var errs []error
	for _, env := range envs {
		switch env.Status {
		case run.EnvSleeping:
			errs = append(errs, e.SleepEnv(ctx, env.Name, "finishing a sleep interrupted by a restart"))
		case run.EnvWaking:
			if err := e.acquireEnv(ctx, env.Name); err != nil {
				return err
			}
			errs = append(errs, e.wakeHeld(ctx, env.Name, "finishing a wake interrupted by a restart"))
			e.releaseEnv(env.Name)
		}
	}
	return errors.Join(errs...)
}

// DecideSleep is cleanup.sleep_after for one environment at now: it is put
// to sleep when it is deployed and awake (ready or broken), not protected,
// has no unfinished run (busy), and its last activity, the latest of its
// creation, its last status change (every run writes one) and its last
// chat command or patch set (ActiveAt), is at least after ago. after 0
// turns it off. It is pure; the reason is for the log.
func DecideSleep(now time.Time, env *run.Env, after time.Duration, protected, busy bool) (bool, string) {
	if after <= 0 || protected || busy {
		return false, ""
	}
	if env.Status != run.EnvReady && env.Status != run.EnvBroken {
		return false, ""
	}
	last := env.CreatedAt
	for _, t := range []time.Time{env.UpdatedAt, env.ActiveAt} {
		if t.After(last) {
			last = t
		}
	}
	if idle := now.Sub(last); idle >= after {
		return true, fmt.Sprintf("no run or command for %s (cleanup.sleep_after is %s)", idle.Round(time.Second), after)
	}
	return false, ""
}

// SleepIdle puts to sleep every environment DecideSleep picks, while
// kubernetes.max_sleeping allows. It returns the names it put to sleep.
func (e *Engine) SleepIdle(ctx context.Context) ([]string, error) {
	after := e.cfg.Cleanup.SleepAfter.D()
	if after <= 0 || !e.sleepMu.TryLock() {
		return nil, nil
	}
	defer e.sleepMu.Unlock()
	envs, err := e.store.ListEnvs(ctx, store.EnvFilter{Alive: true})
	if err != nil {
		return nil, fmt.Errorf("listing environments: %w", err)
	}
	asleep := 0
	for _, env := range envs {
		if env.Status.Dormant() {
			asleep++
		}
	}
	now := e.now().UTC()
	var slept []string
	var errs []error
	for _, env := range envs {
		if max := e.cfg.Kubernetes.MaxSleeping; max > 0 && asleep >= max {
			break
		}
		runs, err := e.store.ListRuns(ctx, store.RunFilter{Env: env.Name, Unfinished: true})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		busy := false
		for _, r := range runs {
			busy = busy || r.State != run.StateReporting
		}
		protected := env.Protected || slices.Contains(e.cfg.Cleanup.Protected, env.Name)
		ok, why := DecideSleep(now, env, after, protected, busy)
		if !ok {
			continue
		}
		if err := e.SleepEnv(ctx, env.Name, "cleanup.sleep_after: "+why); err != nil {
			errs = append(errs, err)
			continue
		}
		asleep++
		slept = append(slept, env.Name)
	}
	return slept, errors.Join(errs...)
}

// sleepCheckEvery is how often the engine looks for environments idle past
// cleanup.sleep_after.
var sleepCheckEvery = time.Minute
