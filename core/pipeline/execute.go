package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ductbot/ductbot/core/k8s"
	"github.com/ductbot/ductbot/core/k8s/diagnose"
	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/internal/text"
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
	case r.TestOnly || !r.DeployedAt.IsZero():
		return PhaseTest
	default:
		return PhaseDeploy
	}
}

// execute takes one run from wherever it is to done. The caller holds the
// run's environment.
func (e *Engine) execute(ctx context.Context, id int64) {
	bg := context.WithoutCancel(ctx)
	r, err := e.store.GetRun(bg, id)
	if err != nil {
		e.log.Error("reading a run to start it; it stays queued in the store until the next start", "run", id, "err", err)
		return
	}
	env, err := e.store.GetEnv(bg, r.Env)
	if err != nil {
		e.log.Error("run without its environment record", append(runAttrs(r), "err", err)...)
		e.end(r, nil, run.ResultError, "environment record unreadable: "+err.Error())
		e.report(bg, r, nil)
		return
	}
	for {
		if cause := context.Cause(ctx); ctx.Err() != nil {
			e.interrupted(r, env, cause)
			return
		}
		switch NextPhase(r) {
		case PhaseDone:
			return
		case PhaseDeploy:
			e.deploy(ctx, r, env)
		case PhaseTest:
			e.test(ctx, r, env)
		case PhaseReport:
			e.report(bg, r, env)
			return
		}
	}
}

// interrupted records why a running run stopped: superseded or canceled runs
// end (without a report); at shutdown the run stays as it is, to resume.
func (e *Engine) interrupted(r *run.Run, env *run.Env, cause error) {
	switch {
	case errors.Is(cause, errSuperseded):
		e.end(r, env, run.ResultSuperseded, cause.Error())
	case errors.Is(cause, errCanceled):
		e.end(r, env, run.ResultCanceled, cause.Error())
	default:
		e.log.Info("run left to resume after restart", append(runAttrs(r), "state", r.State)...)
	}
}

func (e *Engine) deploy(ctx context.Context, r *run.Run, env *run.Env) {
	log := e.log.With(runAttrs(r)...)
	if err := run.Move(r, run.StateDeploying, e.now()); err != nil {
		e.end(r, env, run.ResultError, err.Error())
		return
	}
	e.saveRun(r)
	e.setEnvStatus(env, run.EnvDeploying)
	if !e.notLeading("recording what the environment runs", runAttrs(r)) {
		if err := e.store.SetEnvDeployed(context.WithoutCancel(ctx), env.Name, r.PatchSet, r.Revision, r.Matrix); err != nil {
			log.Error("recording what the environment runs", "err", err)
		}
	}
	values, err := e.plan.Values(r.Matrix, EnvData{
		Env: env.Name, Namespace: env.Namespace, Release: env.Release, Change: r.Change, URL: env.URL, Subject: r.Subject,
	})
	if err != nil {
		e.end(r, env, run.ResultError, "building chart values: "+err.Error())
		return
	}
	rel := k8s.Release{
		Name: env.Release, Namespace: env.Namespace, Chart: e.chart, Values: values,
		Labels: envLabels(env, r), Annotations: map[string]string{k8s.AnnotationProject: r.Project},
		Timeout: e.cfg.Kubernetes.DeployTimeout.D(), Policy: e.cfg.Kubernetes.NamespacePolicy(),
		Diagnose: e.diagnosePolicy(r),
	}
	backoff := e.cfg.Kubernetes.RetryBackoff.D()
	for {
		r.Attempts++
		log.Info("deploying", "namespace", env.Namespace, "attempt", r.Attempts, "matrix", FormatMatrix(r.Matrix))
		start := e.now()
		err = e.cluster.Deploy(ctx, rel)
		if err == nil {
			r.Diagnosis = nil // an earlier attempt's
			e.metrics.DeployDuration.WithLabelValues(e.metrics.Project(r.Project)).Observe(e.now().Sub(start).Seconds())
			break
		}
		if ctx.Err() != nil {
			return // execute records why
		}
		log.Warn("deploy failed", "attempt", r.Attempts, "err", err)
		// What the pods showed decides: broken code fails the run (-1) and
		// a missing image is an error, neither retried; anything else is
		// the infrastructure's, retried.
		var failure *k8s.DeployFailure
		if errors.As(err, &failure) {
			r.Diagnosis = e.diagnosis(failure)
			if !failure.Retryable() {
				result := run.ResultError
				if failure.Class == k8s.FailureBroken {
					result = run.ResultFailed
				}
				e.end(r, env, result, deployFailureDetail(failure))
				return
			}
		}
		if r.Attempts > e.cfg.Kubernetes.Retries {
			e.end(r, env, run.ResultError, "deploy failed after "+fmt.Sprint(r.Attempts)+" attempts: "+text.LastLines(err.Error(), 12))
			return
		}
		e.saveRun(r)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff *= 2
	}
	if err := run.Move(r, run.StateTesting, e.now()); err != nil {
		e.end(r, env, run.ResultError, err.Error())
		return
	}
	e.saveRun(r)
	e.setEnvStatus(env, run.EnvReady)
	e.notifyDeployed(r, env)
}

// diagnosePolicy is what makes a deploy of r stop early: the
// configuration's limits, the components' names and the patch's own.
func (e *Engine) diagnosePolicy(r *run.Run) diagnose.Policy {
	k := e.cfg.Kubernetes
	p := diagnose.Policy{CrashRestarts: k.CrashRestarts, ReadyTimeout: k.ReadyTimeout.D(), ImageWait: k.ImageWait.D()}
	for _, c := range e.cfg.Components {
		p.Components = append(p.Components, c.Name)
	}
	if proj, ok := e.cfg.Project(r.Project); ok {
		p.PatchComponent = proj.Component
	}
	return p
}

// diagnosis is a deploy failure as the run keeps it, its log within
// report.max_log_bytes.
func (e *Engine) diagnosis(f *k8s.DeployFailure) *run.Diagnosis {
	class := run.DiagnosisInfrastructure
	switch f.Class {
	case k8s.FailureBroken:
		class = run.DiagnosisBroken
	case k8s.FailureImage:
		class = run.DiagnosisImage
	}
	if f.Component == "" && f.Reason == "" {
		return nil // nothing in the namespace explained it: Helm's error says what there is
	}
	return &run.Diagnosis{
		Class: class, Component: f.Component, Own: f.Own, Pod: f.Pod, Container: f.Container, Image: f.Image,
		Reason: f.Reason, Logs: text.HeadTail(f.Logs, e.cfg.Report.MaxLogBytes), Events: f.Events, Others: f.Others,
	}
}

// deployFailureDetail is a run's detail for a deploy that failed for good.
func deployFailureDetail(f *k8s.DeployFailure) string {
	switch f.Class {
	case k8s.FailureBroken:
		return fmt.Sprintf("deploy failed: %s is broken: %s", f.Component, f.Reason)
	case k8s.FailureImage:
		return fmt.Sprintf("deploy failed: %s: %s", f.Component, f.Reason)
	default:
		return "deploy failed: " + text.LastLines(f.Error(), 12)
	}
}

func (e *Engine) test(ctx context.Context, r *run.Run, env *run.Env) {
	log := e.log.With(runAttrs(r)...)
	if r.State != run.StateTesting {
		if err := run.Move(r, run.StateTesting, e.now()); err != nil {
			e.end(r, env, run.ResultError, err.Error())
			return
		}
		e.saveRun(r)
	}
	log.Info("running tests", "namespace", env.Namespace)
	start := e.now()
	res, err := e.cluster.Test(ctx, env.Namespace, env.Release, e.cfg.Kubernetes.TestTimeout.D())
	if ctx.Err() != nil {
		return // execute records why; the cluster stopped the test pods
	}
	e.metrics.TestDuration.WithLabelValues(e.metrics.Project(r.Project)).Observe(e.now().Sub(start).Seconds())
	if res != nil && len(res.Pods) > 0 && !e.notLeading("saving test logs", runAttrs(r)) {
		if perr := e.store.PutTestLogs(context.WithoutCancel(ctx), r.ID, testLogs(r.ID, res.Pods)); perr != nil {
			log.Error("saving test logs", "err", perr)
		}
	}
	switch {
	case err != nil:
		e.end(r, env, run.ResultError, "tests could not run: "+text.LastLines(err.Error(), 12))
	case res.Passed:
		e.end(r, env, run.ResultPassed, "")
	default:
		e.end(r, env, run.ResultFailed, res.Detail)
	}
}

// testLogs turns test pods' logs into the run's records. The store keeps
// them within report.max_log_bytes (cmd sets its limit from the config).
func testLogs(runID int64, pods []k8s.PodLog) []run.TestLog {
	logs := make([]run.TestLog, 0, len(pods))
	for _, p := range pods {
		logs = append(logs, run.TestLog{RunID: runID, Pod: p.Pod, Phase: p.Phase, Log: p.Log})
	}
	return logs
}

// end records a result: runs that ran move on to reporting; superseded and
// canceled ones are done, with nothing to report. An environment whose
// deploy did not finish is broken.
func (e *Engine) end(r *run.Run, env *run.Env, result run.Result, detail string) {
	if err := run.End(r, result, detail, e.now()); err != nil {
		e.log.Error("ending a run", append(runAttrs(r), "err", err)...)
		return
	}
	if !result.Reportable() {
		e.countRun(r, result)
		e.forgetReply(context.Background(), r.ID)
	}
	e.saveRun(r)
	if env != nil && env.Status == run.EnvDeploying {
		e.setEnvStatus(env, run.EnvBroken)
	}
	e.log.Info("run result", append(runAttrs(r), "result", result, "detail", firstLine(detail))...)
}

// saveRun persists the run. The run is this goroutine's alone, so writing
// it whole is safe; a store that keeps failing is logged and the run goes
// on in memory (the next save, or a restart's resume, catches up).
//
// A replica that no longer leads (ha) writes nothing: see notLeading.
func (e *Engine) saveRun(r *run.Run) {
	var err error
	for attempt := range 3 {
		if e.notLeading("saving the run", runAttrs(r)) {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = e.store.UpdateRun(ctx, r)
		cancel()
		if err == nil {
			return
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
	e.log.Error("saving run", append(runAttrs(r), "err", err)...)
}

// setEnvStatus writes the environment's status, and only that: other
// fields (protection, expiry) have their own writers.
func (e *Engine) setEnvStatus(env *run.Env, status run.EnvStatus) {
	if e.notLeading("saving environment status", []any{"env", env.Name, "status", status}) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.store.SetEnvStatus(ctx, env.Name, status, e.now().UTC()); err != nil {
		e.log.Error("saving environment status", "env", env.Name, "status", status, "err", err)
		return
	}
	env.Status = status
}

// notLeading reports whether this replica, with ha, is not (or may no
// longer be) the leader, and logs that it holds back what. A leader that
// lost the lease while a run's step went on (paused past the lease, cut off
// from the API server) must not write that run's progress over what the
// new leader, which resumed the run from the store, writes: like the
// review, each write of a run's state, its environment's status and its
// test logs is checked right before it is made. Without ha, always false.
func (e *Engine) notLeading(what string, attrs []any) bool {
	if e.leading == nil || e.leading() {
		return false
	}
	e.log.Warn("not "+what+": this replica is not the leader (any more); the leader resumes the run from the store", attrs...)
	return true
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
