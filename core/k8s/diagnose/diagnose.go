// Package diagnose tells, from what an environment's pods and events show
// while Helm waits for them, whether the code deployed is broken (a
// container crash-loops, or runs and never becomes ready), an image cannot
// be pulled, or the cluster is in the way (pods unschedulable, refused by a
// quota or an admission policy). It is a pure function of snapshots of the
// namespace's pods, ReplicaSets and events and of the time; core/k8s takes
// the snapshots and acts on the verdicts.
package diagnose

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Defaults of the Policy fields left zero.
const (
	DefaultCrashRestarts = 2
	DefaultReadyTimeout  = 3 * time.Minute
	DefaultImageWait     = 10 * time.Minute
)

// MaxEvents bounds the warning events a Verdict carries (the newest).
const MaxEvents = 10

// ComponentLabels are the pod labels that can name a component, in the
// order they are tried: the first whose value is a configured component's
// name names it.
var ComponentLabels = []string{"app.kubernetes.io/component", "app.kubernetes.io/name", "app", "component"}

// Policy is what counts as broken, and the components' names.
type Policy struct {
	// CrashRestarts: a container that is down (exited, or waiting in
	// CrashLoopBackOff) after restarting this many times is crashing.
	// Zero means DefaultCrashRestarts.
	CrashRestarts int
	// ReadyTimeout: a container running this long without being ready
	// never will be. Zero means DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// ImageWait: how long an image that cannot be pulled may take to
	// appear (CI may not have pushed it yet). Zero means DefaultImageWait.
	ImageWait time.Duration
	// Components are the configured component names; a pod's component is
	// the first of ComponentLabels whose value is one of them.
	Components []string
	// PatchComponent is the component the change under test builds, if
	// any: a failure elsewhere is reported as a neighbour's.
	PatchComponent string
}

func (p Policy) crashRestarts() int32 {
	if p.CrashRestarts <= 0 {
		return DefaultCrashRestarts
	}
	return int32(p.CrashRestarts)
}

func (p Policy) readyTimeout() time.Duration {
	if p.ReadyTimeout <= 0 {
		return DefaultReadyTimeout
	}
	return p.ReadyTimeout
}

func (p Policy) imageWait() time.Duration {
	if p.ImageWait <= 0 {
		return DefaultImageWait
	}
	return p.ImageWait
}

// Snapshot is what the namespace holds at one moment.
type Snapshot struct {
	Pods        []corev1.Pod
	ReplicaSets []appsv1.ReplicaSet
	Events      []corev1.Event
	// Since is when the deploy started: older refusals (FailedCreate
	// events of ReplicaSets) are history.
	Since time.Time
	// Before are the pods that were there before the deploy started.
	// Classify does not judge them: the deploy may be about to replace
	// them (their Deployment's new ReplicaSet may not exist yet). Explain,
	// after Helm gave up, does.
	Before map[types.UID]bool
}

// Class is what a verdict means for the run.
type Class string

// The classes of a verdict.
const (
	// None: nothing wrong seen (yet).
	None Class = ""
	// Broken: the code deployed is broken (it crash-loops, or never gets
	// ready): the run failed, and retrying will not help.
	Broken Class = "broken"
	// Image: an image could not be pulled within the policy's ImageWait:
	// most often CI has not pushed it yet. An error, not the patch's fault.
	Image Class = "image"
	// Infrastructure: the cluster is in the way (unschedulable, refused by
	// a quota or an admission policy). An error, worth retrying.
	Infrastructure Class = "infrastructure"
)

// Verdict is what is wrong, and where.
type Verdict struct {
	Class Class
	// Component is the configured component the failing pod belongs to,
	// or its workload's name when it matches none.
	Component string
	// Own says Component is the patch's own (Policy.PatchComponent).
	Own       bool
	Pod       string
	Container string
	Image     string
	// Reason is one line, e.g. "CrashLoopBackOff: exited with status 1
	// (Error), restarted 2 times".
	Reason string
	// Restarts is the container's restart count.
	Restarts int32
	// Running says the container runs now (its previous instance's log
	// holds the crash).
	Running bool
	// Events are the warning events about the failing pod (or its
	// ReplicaSet), oldest first, at most MaxEvents: "Reason: message".
	Events []string
	// Others names other components that were failing too.
	Others []string
}

// Decided reports whether the verdict ends the wait.
func (v Verdict) Decided() bool { return v.Class != None }

// Classify is the verdict while Helm waits: Broken as soon as a container
// has crashed Policy.CrashRestarts times and is down again, or has run
// Policy.ReadyTimeout without being ready; Image once a container's image
// could not be pulled for Policy.ImageWait since its pod was created; None
// otherwise (infrastructure trouble is left to Helm's own timeout, which
// Explain then explains). When several components are broken, the patch's
// own comes first, then the order of Policy.Components.
func Classify(s Snapshot, p Policy, now time.Time) Verdict {
	return classify(s, p, now, false)
}

// Explain is the best account of why Helm's wait failed, given the last
// snapshot: what Classify would say, or else a crash-looping container
// (Broken, whatever its restart count), an image that cannot be pulled
// (Image, however long it was tried), pods that cannot be scheduled or
// that the API server refused (Infrastructure), or containers still not
// ready (Infrastructure, saying for how long); None when nothing is seen.
func Explain(s Snapshot, p Policy, now time.Time) Verdict {
	return classify(s, p, now, true)
}

// finding is one pod's problem, before ordering.
type finding struct {
	v    Verdict
	rank int // lower is a better explanation
	pod  *corev1.Pod
	rs   *appsv1.ReplicaSet
}

func classify(s Snapshot, p Policy, now time.Time, final bool) Verdict {
	var found []finding
	for i := range s.Pods {
		pod := &s.Pods[i]
		if !current(pod, s.ReplicaSets) || (!final && s.Before[pod.UID]) {
			continue
		}
		if f, ok := examine(pod, s, p, now, final); ok {
			found = append(found, f)
		}
	}
	if final {
		found = append(found, refusals(s, p)...)
	}
	if len(found) == 0 {
		return Verdict{}
	}
	order := map[string]int{}
	for i, c := range p.Components {
		order[c] = i + 1
	}
	sort.SliceStable(found, func(i, j int) bool {
		a, b := found[i], found[j]
		if a.rank != b.rank {
			return a.rank < b.rank
		}
		if a.v.Own != b.v.Own {
			return a.v.Own
		}
		oa, ob := order[a.v.Component], order[b.v.Component]
		if oa == 0 {
			oa = len(order) + 1
		}
		if ob == 0 {
			ob = len(order) + 1
		}
		if oa != ob {
			return oa < ob
		}
		return a.v.Pod < b.v.Pod
	})
	v := found[0].v
	v.Events = warnings(s, found[0].pod, found[0].rs)
	seen := map[string]bool{v.Component: true}
	for _, f := range found[1:] {
		if f.v.Class == None || seen[f.v.Component] {
			continue
		}
		seen[f.v.Component] = true
		v.Others = append(v.Others, f.v.Component+": "+f.v.Reason)
	}
	return v
}

// Ranks of findings: a decided verdict while waiting explains best.
const (
	rankBroken = iota
	rankImage
	rankRefused
	rankUnschedulable
	rankNotReady
	rankWaiting
)

// examine finds what is wrong with one pod, if anything.
func examine(pod *corev1.Pod, s Snapshot, p Policy, now time.Time, final bool) (finding, bool) {
	base := Verdict{Component: componentOf(pod, p.Components), Pod: pod.Name}
	base.Own = p.PatchComponent != "" && base.Component == p.PatchComponent
	mk := func(class Class, rank int, cs *corev1.ContainerStatus, reason string) (finding, bool) {
		v := base
		v.Class, v.Reason = class, reason
		if cs != nil {
			v.Container, v.Image, v.Restarts = cs.Name, imageOf(pod, cs), cs.RestartCount
			v.Running = cs.State.Running != nil
		}
		return finding{v: v, rank: rank, pod: pod}, true
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return finding{}, false
	}
	statuses := append(append([]corev1.ContainerStatus(nil), pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...)

	// A container that keeps exiting.
	for i := range statuses {
		cs := &statuses[i]
		if cs.RestartCount == 0 {
			continue
		}
		down := cs.State.Running == nil
		// After Helm gave up, any crash counts: the deploy failed anyway.
		crashed := waitingFor(cs, "CrashLoopBackOff") || cs.LastTerminationState.Terminated != nil
		if (down && cs.RestartCount >= p.crashRestarts()) || (final && crashed) {
			return mk(Broken, rankBroken, cs, crashReason(cs))
		}
	}
	// An image that cannot be pulled.
	for i := range statuses {
		cs := &statuses[i]
		if !waitingFor(cs, "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull") {
			continue
		}
		tried := now.Sub(pod.CreationTimestamp.Time)
		if tried >= p.imageWait() || final {
			return mk(Image, rankImage, cs, imageReason(pod, cs, tried))
		}
	}
	// A container that runs and is never ready.
	for i := range statuses {
		cs := &statuses[i]
		if cs.State.Running == nil || cs.Ready || isInit(pod, cs.Name) {
			continue
		}
		up := now.Sub(cs.State.Running.StartedAt.Time)
		why := notReadyReason(pod, s.Events, up)
		if up >= p.readyTimeout() {
			return mk(Broken, rankBroken, cs, why)
		}
		if final {
			return mk(Infrastructure, rankNotReady, cs, fmt.Sprintf("%s (kubernetes.ready_timeout %s not reached before the deploy timed out)", why, p.readyTimeout()))
		}
	}
	if !final {
		return finding{}, false
	}
	// What keeps a pod from running, after Helm gave up on it.
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return mk(Infrastructure, rankUnschedulable, nil, "could not be scheduled: "+oneLine(orDefault(c.Message, c.Reason)))
		}
	}
	for i := range statuses {
		cs := &statuses[i]
		if cs.State.Waiting != nil && cs.State.Waiting.Reason != "" {
			w := cs.State.Waiting
			reason := w.Reason
			if w.Message != "" {
				reason += ": " + oneLine(w.Message)
			}
			return mk(Infrastructure, rankWaiting, cs, "container "+cs.Name+" did not start: "+reason)
		}
	}
	if pod.Status.Phase == corev1.PodPending {
		return mk(Infrastructure, rankWaiting, nil, "still Pending")
	}
	return finding{}, false
}

// refusals are ReplicaSets whose pods the API server refused (a quota, an
// admission policy) since the deploy started.
func refusals(s Snapshot, p Policy) []finding {
	var out []finding
	for i := range s.ReplicaSets {
		rs := &s.ReplicaSets[i]
		if !currentRS(rs, s.ReplicaSets) {
			continue
		}
		var last *corev1.Event
		for j := range s.Events {
			e := &s.Events[j]
			if e.Type != corev1.EventTypeWarning || e.Reason != "FailedCreate" || !about(e, "ReplicaSet", rs.Name, string(rs.UID)) || eventTime(e).Before(s.Since) {
				continue
			}
			if last == nil || !eventTime(e).Before(eventTime(last)) {
				last = e
			}
		}
		if last == nil {
			continue
		}
		comp := componentOfLabels(rs.Spec.Template.Labels, p.Components)
		if comp == "" {
			comp = workload(rs.Name, rs.OwnerReferences)
		}
		v := Verdict{Class: Infrastructure, Component: comp, Own: p.PatchComponent != "" && comp == p.PatchComponent,
			Reason: "pods refused by the cluster: " + oneLine(last.Message)}
		out = append(out, finding{v: v, rank: rankRefused, rs: rs})
	}
	return out
}

// current reports whether a pod belongs to what the deploy is waiting
// for: not being deleted, not a test hook, and, when a ReplicaSet owns
// it, of its Deployment's newest ReplicaSet (older ones' pods are going).
func current(pod *corev1.Pod, rss []appsv1.ReplicaSet) bool {
	if pod.DeletionTimestamp != nil || isTestHook(pod.Annotations["helm.sh/hook"]) {
		return false
	}
	for _, o := range pod.OwnerReferences {
		if o.Kind != "ReplicaSet" {
			continue
		}
		for i := range rss {
			if string(rss[i].UID) == string(o.UID) {
				return currentRS(&rss[i], rss)
			}
		}
	}
	return true // no owner, or an owner not seen yet: judge it
}

// currentRS reports whether rs is the newest ReplicaSet of its Deployment
// (by the deployment.kubernetes.io/revision annotation), or has none.
func currentRS(rs *appsv1.ReplicaSet, all []appsv1.ReplicaSet) bool {
	if rs.DeletionTimestamp != nil {
		return false
	}
	owner := controller(rs.OwnerReferences)
	if owner == "" {
		return true
	}
	mine := revision(rs)
	for i := range all {
		o := &all[i]
		if o.UID != rs.UID && controller(o.OwnerReferences) == owner && revision(o) > mine {
			return false
		}
	}
	return true
}

func controller(refs []metav1.OwnerReference) string {
	for _, r := range refs {
		if r.Controller != nil && *r.Controller {
			return string(r.UID)
		}
	}
	return ""
}

func revision(rs *appsv1.ReplicaSet) int {
	n, _ := strconv.Atoi(rs.Annotations["deployment.kubernetes.io/revision"])
	return n
}

func isTestHook(v string) bool {
	for _, e := range strings.Split(v, ",") {
		if e = strings.TrimSpace(e); e == "test" || e == "test-success" {
			return true
		}
	}
	return false
}

func isInit(pod *corev1.Pod, name string) bool {
	for _, c := range pod.Spec.InitContainers {
		if c.Name == name {
			return true
		}
	}
	return false
}

func waitingFor(cs *corev1.ContainerStatus, reasons ...string) bool {
	if cs.State.Waiting == nil {
		return false
	}
	for _, r := range reasons {
		if cs.State.Waiting.Reason == r {
			return true
		}
	}
	return false
}

// componentOf names the pod's component: the first of ComponentLabels
// whose value is a configured component, else its workload's name.
func componentOf(pod *corev1.Pod, components []string) string {
	if c := componentOfLabels(pod.Labels, components); c != "" {
		return c
	}
	return workload(pod.Name, pod.OwnerReferences)
}

func componentOfLabels(labels map[string]string, components []string) string {
	for _, l := range ComponentLabels {
		v, ok := labels[l]
		if !ok {
			continue
		}
		for _, c := range components {
			if v == c {
				return c
			}
		}
	}
	if v := labels[ComponentLabels[0]]; v != "" {
		return v
	}
	return ""
}

// workload is the name of what made an object: a ReplicaSet's pod's
// Deployment (the ReplicaSet's name without its hash), another owner's
// name, or the object's own name.
func workload(name string, refs []metav1.OwnerReference) string {
	for _, r := range refs {
		if r.Controller == nil || !*r.Controller {
			continue
		}
		if r.Kind == "ReplicaSet" {
			if i := strings.LastIndexByte(r.Name, '-'); i > 0 {
				return r.Name[:i]
			}
		}
		return r.Name
	}
	return name
}

func imageOf(pod *corev1.Pod, cs *corev1.ContainerStatus) string {
	for _, c := range append(append([]corev1.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...) {
		if c.Name == cs.Name {
			return c.Image
		}
	}
	return cs.Image
}

func crashReason(cs *corev1.ContainerStatus) string {
	state := "crash-looping"
	if cs.State.Waiting != nil && cs.State.Waiting.Reason != "" {
		state = cs.State.Waiting.Reason
	}
	t := cs.State.Terminated
	if t == nil {
		t = cs.LastTerminationState.Terminated
	}
	how := ""
	if t != nil {
		switch {
		case t.Reason == "OOMKilled":
			how = fmt.Sprintf("killed for using too much memory (OOMKilled, exit status %d)", t.ExitCode)
		case t.Signal != 0:
			how = fmt.Sprintf("killed by signal %d", t.Signal)
		case t.Reason != "":
			how = fmt.Sprintf("exited with status %d (%s)", t.ExitCode, t.Reason)
		default:
			how = fmt.Sprintf("exited with status %d", t.ExitCode)
		}
		if t.Message != "" {
			how += ": " + oneLine(t.Message)
		}
		how += ", "
	}
	times := "times"
	if cs.RestartCount == 1 {
		times = "time"
	}
	return fmt.Sprintf("%s: container %s %srestarted %d %s", state, cs.Name, how, cs.RestartCount, times)
}

func imageReason(pod *corev1.Pod, cs *corev1.ContainerStatus, tried time.Duration) string {
	w := cs.State.Waiting
	msg := ""
	if w.Message != "" {
		msg = ": " + oneLine(w.Message)
	}
	return fmt.Sprintf("image %s not found or not pullable (%s for %s)%s", imageOf(pod, cs), w.Reason, round(tried), msg)
}

// notReadyReason says why a container that has run for up is not ready:
// the pod's last readiness probe failure, if an event says, and for how long.
func notReadyReason(pod *corev1.Pod, events []corev1.Event, up time.Duration) string {
	var last *corev1.Event
	for i := range events {
		e := &events[i]
		if e.Type == corev1.EventTypeWarning && e.Reason == "Unhealthy" && about(e, "Pod", pod.Name, string(pod.UID)) &&
			strings.Contains(strings.ToLower(e.Message), "readiness") {
			if last == nil || !eventTime(e).Before(eventTime(last)) {
				last = e
			}
		}
	}
	if last != nil {
		msg := oneLine(last.Message)
		if msg != "" {
			msg = strings.ToLower(msg[:1]) + msg[1:]
		}
		return fmt.Sprintf("not ready: %s (running for %s, never ready)", msg, round(up))
	}
	return fmt.Sprintf("not ready: running for %s without passing its readiness probe", round(up))
}

// warnings are the warning events about the pod, or about the ReplicaSet
// since the deploy started, oldest first, at most MaxEvents (the newest).
func warnings(s Snapshot, pod *corev1.Pod, rs *appsv1.ReplicaSet) []string {
	var evs []*corev1.Event
	for i := range s.Events {
		e := &s.Events[i]
		if e.Type != corev1.EventTypeWarning {
			continue
		}
		// A pod's events are all about this deploy's pod (by its UID); a
		// ReplicaSet may be older than the deploy, and its old events history.
		if (pod != nil && about(e, "Pod", pod.Name, string(pod.UID))) ||
			(rs != nil && about(e, "ReplicaSet", rs.Name, string(rs.UID)) && !eventTime(e).Before(s.Since)) {
			evs = append(evs, e)
		}
	}
	sort.SliceStable(evs, func(i, j int) bool { return eventTime(evs[i]).Before(eventTime(evs[j])) })
	if len(evs) > MaxEvents {
		evs = evs[len(evs)-MaxEvents:]
	}
	out := make([]string, 0, len(evs))
	for _, e := range evs {
		line := e.Reason + ": " + oneLine(e.Message)
		if n := e.Count; n > 1 {
			line += fmt.Sprintf(" (×%d)", n)
		} else if e.Series != nil && e.Series.Count > 1 {
			line += fmt.Sprintf(" (×%d)", e.Series.Count)
		}
		out = append(out, line)
	}
	return out
}

func about(e *corev1.Event, kind, name, uid string) bool {
	o := e.InvolvedObject
	if o.Kind != kind {
		return false
	}
	if o.UID != "" && uid != "" {
		return string(o.UID) == uid
	}
	return o.Name == name
}

// eventTime is when an event last happened.
func eventTime(e *corev1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.FirstTimestamp.IsZero():
		return e.FirstTimestamp.Time
	default:
		return e.CreationTimestamp.Time
	}
}

func round(d time.Duration) time.Duration {
	if d < time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(10 * time.Second)
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 300 {
		s = string(r[:300]) + "…"
	}
	return s
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
