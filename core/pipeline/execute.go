package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ductbot/ductbot/internal/text"

	"github.com/ductbot/ductbot/core/k8s"
	"github.com/ductbot/ductbot/core/run"
)

// Phase is what a run's next step is, decided from its stored state.
type Phase int

// The phases of a run.
const (
	PhaseDeploy Phase = iota // not deployed yet (or must be redeployed after a restart)
	PhaseTest                // deployed; tests to run
	PhaseReport              // has a result; the review to post
	PhaseDone                // nothing left
)

// NextPhase picks a run's next step from what is stored: a pure function, so
// that resuming after a crash does exactly what an uninterrupted run would.
func NextPhase(r *run.Run) Phase {
	switch {
	case r.State == run.StateDone:
		return PhaseDone
	case r.Result != run.ResultNone:
		return PhaseReport
	case r.TestOnly || r.State == run.StateTesting && !r.DeployedAt.IsZero():
		return PhaseTest
	default:
		return PhaseDeploy
	}
}

// execute takes one run from wherever it is to done.
func (e *Engine) execute(ctx context.Context, r *run.Run) {
	log := e.log.With(runAttrs(r)...)
	env, err := e.store.GetEnv(context.WithoutCancel(ctx), r.Env)
	if err != nil {
		log.Error("run without its environment record", "err", err)
		e.finish(r, nil, run.ResultError, "environment record missing: "+err.Error())
		return
	}
	names := Names{Env: env.Release, Namespace: env.Namespace}
	for {
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
			e.interrupted(r, env, cause)
			return
		}
		switch NextPhase(r) {
		case PhaseDone:
			return
		case PhaseDeploy:
			e.deploy(ctx, r, env, names)
		case PhaseTest:
			e.test(ctx, r, env, names)
		case PhaseReport:
			e.report(context.WithoutCancel(ctx), r, env)
			return
		}
	}
}

// interrupted records why a running run stopped: superseded or canceled runs
// end (without a report); at shutdown the run stays as it is, to resume.
func (e *Engine) interrupted(r *run.Run, env *run.Env, cause error) {
	switch {
	case errors.Is(cause, errSuperseded):
		e.finish(r, env, run.ResultSuperseded, cause.Error())
	case errors.Is(cause, errCanceled):
		e.finish(r, env, run.ResultCanceled, cause.Error())
	default:
		e.log.Info("run left to resume after restart", append(runAttrs(r), "state", r.State)...)
	}
}

func (e *Engine) deploy(ctx context.Context, r *run.Run, env *run.Env, names Names) {
	log := e.log.With(runAttrs(r)...)
	r.State, r.StartedAt = run.StateDeploying, e.now().UTC()
	env.Status, env.PatchSet, env.Revision, env.Matrix = run.EnvDeploying, r.PatchSet, r.Revision, r.Matrix
	e.save(r, env)
	values, err := e.plan.Values(r.Matrix, EnvData{
		Env: env.Name, Namespace: names.Namespace, Release: names.Env, Change: r.Change, URL: env.URL, Subject: r.Subject,
	})
	if err != nil {
		e.finish(r, env, run.ResultError, "building chart values: "+err.Error())
		return
	}
	rel := k8s.Release{
		Name: names.Env, Namespace: names.Namespace, Chart: e.chart, Values: values,
		Labels: envLabels(env, r), Annotations: map[string]string{k8s.AnnotationProject: r.Project},
		Timeout: e.cfg.Kubernetes.DeployTimeout.D(), Policy: e.cfg.Kubernetes.NamespacePolicy(),
	}
	backoff := e.cfg.Kubernetes.RetryBackoff.D()
	for {
		r.Attempts++
		log.Info("deploying", "namespace", names.Namespace, "attempt", r.Attempts, "matrix", FormatMatrix(r.Matrix))
		start := e.now()
		err = e.cluster.Deploy(ctx, rel)
		if err == nil {
			e.metrics.DeployDuration.Observe(e.now().Sub(start).Seconds())
			break
		}
		if ctx.Err() != nil {
			return // execute records why
		}
		log.Warn("deploy failed", "attempt", r.Attempts, "err", err)
		if r.Attempts > e.cfg.Kubernetes.Retries {
			env.Status = run.EnvBroken
			e.finish(r, env, run.ResultError, "deploy failed after "+fmt.Sprint(r.Attempts)+" attempts: "+text.LastLines(err.Error(), 12))
			return
		}
		e.save(r, env)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff *= 2
	}
	r.State, r.DeployedAt = run.StateTesting, e.now().UTC()
	env.Status = run.EnvReady
	e.save(r, env)
	e.notifyDeployed(r, env)
}

func (e *Engine) test(ctx context.Context, r *run.Run, env *run.Env, names Names) {
	log := e.log.With(runAttrs(r)...)
	r.State = run.StateTesting
	if r.StartedAt.IsZero() {
		r.StartedAt = e.now().UTC()
	}
	e.save(r, env)
	log.Info("running tests", "namespace", names.Namespace)
	start := e.now()
	res, err := e.cluster.Test(ctx, names.Namespace, names.Env, e.cfg.Kubernetes.TestTimeout.D())
	if ctx.Err() != nil {
		return
	}
	e.metrics.TestDuration.Observe(e.now().Sub(start).Seconds())
	r.TestedAt = e.now().UTC()
	if res != nil && len(res.Pods) > 0 {
		logs := make([]run.TestLog, 0, len(res.Pods))
		for _, p := range res.Pods {
			logs = append(logs, run.TestLog{RunID: r.ID, Pod: p.Pod, Phase: p.Phase, Log: p.Log})
		}
		if perr := e.store.PutTestLogs(context.WithoutCancel(ctx), r.ID, logs); perr != nil {
			log.Error("saving test logs", "err", perr)
		}
	}
	switch {
	case err != nil:
		e.finish(r, env, run.ResultError, "tests could not run: "+text.LastLines(err.Error(), 12))
	case res.Passed:
		e.finish(r, env, run.ResultPassed, "")
	default:
		e.finish(r, env, run.ResultFailed, res.Detail)
	}
}

// finish records a result. Runs that ran move on to reporting; superseded
// and canceled ones are done, with nothing to report.
func (e *Engine) finish(r *run.Run, env *run.Env, result run.Result, detail string) {
	r.Result, r.Detail = result, detail
	if result == run.ResultSuperseded || result == run.ResultCanceled {
		r.State, r.FinishedAt, r.Reported = run.StateDone, e.now().UTC(), true
		e.metrics.RunsTotal.WithLabelValues(string(result)).Inc()
		if env != nil && env.Status == run.EnvDeploying {
			env.Status = run.EnvBroken
		}
	} else {
		r.State = run.StateReporting
	}
	e.save(r, env)
	e.log.Info("run result", append(runAttrs(r), "result", result, "detail", firstLine(detail))...)
}

// save persists the run and environment; a failing store is logged, and the
// run goes on in memory (the next save may succeed).
func (e *Engine) save(r *run.Run, env *run.Env) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.store.UpdateRun(ctx, r); err != nil {
		e.log.Error("saving run", append(runAttrs(r), "err", err)...)
	}
	if env != nil {
		if err := e.store.PutEnv(ctx, env); err != nil {
			e.log.Error("saving environment", "env", env.Name, "err", err)
		}
	}
}

func envLabels(env *run.Env, r *run.Run) map[string]string {
	return map[string]string{
		k8s.LabelManagedBy: k8s.ManagedBy,
		k8s.LabelEnv:       env.Name,
		k8s.LabelChange:    fmt.Sprint(r.Change),
		k8s.LabelPatchSet:  fmt.Sprint(r.PatchSet),
		k8s.LabelProject:   labelValue(r.Project),
		k8s.LabelKind:      string(env.Kind),
	}
}

// labelValue makes s a valid label value: at most 63 characters of
// [A-Za-z0-9._-], starting and ending alphanumeric.
func labelValue(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '.'
		}
	}
	out := strings.Trim(string(b), "._-")
	if len(out) > 63 {
		out = strings.Trim(out[:63], "._-")
	}
	return out
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
