package k8s

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ductbot/ductbot/core/k8s/diagnose"
	"github.com/ductbot/ductbot/internal/text"
)

// FailureClass says what a failed deploy means for the run.
type FailureClass string

// The classes of DeployFailure.
const (
	// FailureBroken: the code deployed is broken: a container crash-loops,
	// or runs and never becomes ready. The run failed; retrying the same
	// code will not help.
	FailureBroken FailureClass = "broken"
	// FailureImage: an image could not be pulled within the wait allowed
	// for it (kubernetes.image_wait): most often CI has not pushed it yet.
	// Nothing is known about the patch; retrying at once will not help.
	FailureImage FailureClass = "image"
	// FailureInfrastructure: the cluster or Helm failed (pods not
	// schedulable, refused by a quota or an admission policy, the API
	// unreachable, Helm's own errors). Worth retrying.
	FailureInfrastructure FailureClass = "infrastructure"
)

// MaxDiagnosisLogLines is how many of the failing container's last log
// lines a DeployFailure carries, at most (and at most Options.MaxLogBytes).
const MaxDiagnosisLogLines = 50

// DeployFailure is a failed Deploy with a diagnosis: which component
// failed, why, its last log lines and warning events. Deploy returns it
// for every failure of the install or upgrade itself (wrapping Helm's
// error, if any); errors before Helm runs (the namespace, the policy) and
// a cancelled Deploy are plain errors.
type DeployFailure struct {
	Class FailureClass
	// Component is the configured component the failing pod belongs to
	// (or its workload's name); empty when nothing in the namespace
	// explains the failure.
	Component string
	// Own says it is Release.Diagnose.PatchComponent, the patch's own.
	Own       bool
	Pod       string
	Container string
	Image     string
	// Reason is one line: "CrashLoopBackOff: container orchestrator exited
	// with status 1 (Error), restarted 2 times", "not ready: readiness
	// probe failed: …", "image … not found or not pullable (…)".
	Reason string
	// Logs are the failing container's last log lines (at most
	// MaxDiagnosisLogLines and Options.MaxLogBytes). Untrusted text.
	Logs string
	// Events are the warning events about the failing pod, oldest first.
	// Untrusted text.
	Events []string
	// Others are other components failing at the same time, with why.
	Others []string
	// Err is Helm's error, or what stopped Helm's wait.
	Err error
}

func (f *DeployFailure) Error() string {
	var b strings.Builder
	switch {
	case f.Component != "" && f.Reason != "":
		fmt.Fprintf(&b, "%s: %s", f.Component, f.Reason)
	case f.Reason != "":
		b.WriteString(f.Reason)
	}
	if f.Err != nil {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(f.Err.Error())
	}
	if b.Len() == 0 {
		return "deploy failed (" + string(f.Class) + ")"
	}
	return b.String()
}

func (f *DeployFailure) Unwrap() error { return f.Err }

// Retryable says whether trying the same deploy again may help: only for
// infrastructure failures.
func (f *DeployFailure) Retryable() bool { return f.Class == FailureInfrastructure }

func failureClass(c diagnose.Class) FailureClass {
	switch c {
	case diagnose.Broken:
		return FailureBroken
	case diagnose.Image:
		return FailureImage
	default:
		return FailureInfrastructure
	}
}

// failure is the DeployFailure for a verdict, with the failing container's
// last log lines.
func (c *Client) failure(namespace string, v diagnose.Verdict, err error) *DeployFailure {
	f := &DeployFailure{
		Class: failureClass(v.Class), Component: v.Component, Own: v.Own,
		Pod: v.Pod, Container: v.Container, Image: v.Image,
		Reason: v.Reason, Events: v.Events, Others: v.Others, Err: err,
	}
	if v.Class != diagnose.Image {
		f.Logs = c.lastLogLines(namespace, v)
	}
	return f
}

// lastLogLines reads the last lines a verdict's container printed. For a
// container that crashed and runs again, its previous instance's log holds
// the crash; otherwise its current one does (a container waiting in
// CrashLoopBackOff serves its last instance's log).
func (c *Client) lastLogLines(namespace string, v diagnose.Verdict) string {
	if v.Pod == "" || v.Container == "" {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	tail, limit := int64(MaxDiagnosisLogLines), int64(c.opts.MaxLogBytes)
	get := func(previous bool) (string, error) {
		b, err := c.clientset.CoreV1().Pods(namespace).GetLogs(v.Pod, &corev1.PodLogOptions{
			Container: v.Container, TailLines: &tail, LimitBytes: &limit, Previous: previous,
		}).DoRaw(ctx)
		return string(b), err
	}
	previous := v.Running && v.Restarts > 0
	out, err := get(previous)
	if (err != nil || strings.TrimSpace(out) == "") && v.Restarts > 0 {
		if o, e := get(!previous); e == nil && strings.TrimSpace(o) != "" {
			out, err = o, nil
		}
	}
	if err != nil {
		return fmt.Sprintf("(log unavailable: %v)", err)
	}
	out = strings.TrimRight(text.LastLines(out, MaxDiagnosisLogLines), "\n")
	return text.HeadTail(out, c.opts.MaxLogBytes)
}

// snapshotNow reads the namespace's pods, ReplicaSets and events straight
// from the API server, for explaining a failure after Helm gave up.
func (c *Client) snapshotNow(namespace string, since time.Time) (diagnose.Snapshot, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	s := diagnose.Snapshot{Since: since}
	pods, err := c.clientset.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return s, err
	}
	s.Pods = pods.Items
	rss, err := c.clientset.AppsV1().ReplicaSets(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return s, err
	}
	s.ReplicaSets = rss.Items
	evs, err := c.clientset.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return s, err
	}
	s.Events = evs.Items
	return s, nil
}
