package diagnose_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ductbot/ductbot/core/k8s/diagnose"
)

var (
	t0  = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	yes = true
)

// pod is a pod of a component's Deployment (ReplicaSet rs), created at
// created, with one container in the given state.
type podSpec struct {
	name, component, rs string
	created             time.Time
	phase               corev1.PodPhase
	cs                  corev1.ContainerStatus
	scheduled           *corev1.PodCondition
	deleting            bool
	hook                string
}

func pod(p podSpec) corev1.Pod {
	if p.phase == "" {
		p.phase = corev1.PodRunning
	}
	if p.cs.Name == "" {
		p.cs.Name = p.component
	}
	out := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: p.name, Namespace: "ns", UID: types.UID("uid-" + p.name),
			Labels:            map[string]string{"app.kubernetes.io/component": p.component, "app.kubernetes.io/name": "wikifunctions"},
			CreationTimestamp: metav1.NewTime(p.created),
		},
		Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: p.cs.Name, Image: "registry.example/" + p.component + ":abc123"}}},
		Status: corev1.PodStatus{Phase: p.phase, ContainerStatuses: []corev1.ContainerStatus{p.cs}},
	}
	if p.rs != "" {
		out.OwnerReferences = []metav1.OwnerReference{{Kind: "ReplicaSet", Name: p.rs, UID: types.UID("uid-" + p.rs), Controller: &yes}}
	}
	if p.scheduled != nil {
		out.Status.Conditions = append(out.Status.Conditions, *p.scheduled)
	}
	if p.deleting {
		now := metav1.NewTime(p.created)
		out.DeletionTimestamp = &now
	}
	if p.hook != "" {
		out.Annotations = map[string]string{"helm.sh/hook": p.hook}
	}
	return out
}

func rs(name, deployment string, revision string) appsv1.ReplicaSet {
	return appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{
		Name: name, UID: types.UID("uid-" + name),
		Annotations:     map[string]string{"deployment.kubernetes.io/revision": revision},
		OwnerReferences: []metav1.OwnerReference{{Kind: "Deployment", Name: deployment, UID: types.UID("uid-" + deployment), Controller: &yes}},
	}, Spec: appsv1.ReplicaSetSpec{Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{
		Labels: map[string]string{"app.kubernetes.io/component": strings.TrimPrefix(deployment, "r-")},
	}}}}
}

func crashLooping(restarts int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{
		RestartCount: restarts,
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
			Reason: "CrashLoopBackOff", Message: "back-off 10s restarting failed container"}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}},
	}
}

func running(since time.Time, ready bool, restarts int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{Ready: ready, RestartCount: restarts,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(since)}}}
}

func waiting(reason, msg string) corev1.ContainerStatus {
	return corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}}
}

func event(kind, name, reason, msg string, at time.Time, count int32) corev1.Event {
	return corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: name + "." + reason, CreationTimestamp: metav1.NewTime(at)},
		InvolvedObject: corev1.ObjectReference{Kind: kind, Name: name, UID: types.UID("uid-" + name)},
		Type:           corev1.EventTypeWarning, Reason: reason, Message: msg,
		FirstTimestamp: metav1.NewTime(at), LastTimestamp: metav1.NewTime(at), Count: count,
	}
}

var policy = diagnose.Policy{
	Components:     []string{"wiki", "orchestrator", "evaluator"},
	PatchComponent: "orchestrator",
}

func TestClassify(t *testing.T) {
	now := t0.Add(time.Minute)
	orchRS := rs("r-orchestrator-5d8f", "r-orchestrator", "1")
	tests := []struct {
		name   string
		snap   diagnose.Snapshot
		policy diagnose.Policy
		now    time.Time
		final  bool // Explain instead of Classify
		want   diagnose.Verdict
		reason []string // substrings of the reason
		events []string // substrings, one per event, in order
		others []string
	}{
		{
			name: "all ready: nothing",
			snap: diagnose.Snapshot{Pods: []corev1.Pod{
				pod(podSpec{name: "o", component: "orchestrator", created: t0, cs: running(t0, true, 0)}),
				pod(podSpec{name: "w", component: "wiki", created: t0, cs: running(t0, true, 0)}),
			}},
			want: diagnose.Verdict{},
		},
		{
			name: "crash loop at the restart threshold: broken, own component",
			snap: diagnose.Snapshot{Since: t0,
				Pods:        []corev1.Pod{pod(podSpec{name: "r-orchestrator-5d8f-x", component: "orchestrator", rs: orchRS.Name, created: t0, cs: crashLooping(2)})},
				ReplicaSets: []appsv1.ReplicaSet{orchRS},
				Events: []corev1.Event{
					event("Pod", "r-orchestrator-5d8f-x", "BackOff", "Back-off restarting failed container", t0.Add(20*time.Second), 2),
					event("Pod", "someone-else", "BackOff", "not this pod", t0.Add(20*time.Second), 1),
				}},
			want:   diagnose.Verdict{Class: diagnose.Broken, Component: "orchestrator", Own: true, Pod: "r-orchestrator-5d8f-x", Container: "orchestrator", Image: "registry.example/orchestrator:abc123", Restarts: 2},
			reason: []string{"CrashLoopBackOff", "exited with status 1 (Error)", "restarted 2 times"},
			events: []string{"BackOff: Back-off restarting failed container (×2)"},
		},
		{
			name: "one restart is not yet a crash loop",
			snap: diagnose.Snapshot{Pods: []corev1.Pod{pod(podSpec{name: "o", component: "orchestrator", created: t0, cs: crashLooping(1)})}},
			want: diagnose.Verdict{},
		},
		{
			name: "restarted twice but running again: wait for the next exit",
			snap: diagnose.Snapshot{Pods: []corev1.Pod{pod(podSpec{name: "o", component: "orchestrator", created: t0, cs: running(now.Add(-time.Second), false, 2)})}},
			want: diagnose.Verdict{},
		},
		{
			name:   "crash_restarts 5: two restarts are tolerated",
			policy: diagnose.Policy{CrashRestarts: 5, Components: policy.Components, PatchComponent: "orchestrator"},
			snap:   diagnose.Snapshot{Pods: []corev1.Pod{pod(podSpec{name: "o", component: "orchestrator", created: t0, cs: crashLooping(2)})}},
			want:   diagnose.Verdict{},
		},
		{
			name: "a neighbour crash-loops: broken, not own",
			snap: diagnose.Snapshot{Pods: []corev1.Pod{
				pod(podSpec{name: "o", component: "orchestrator", created: t0, cs: running(t0, true, 0)}),
				pod(podSpec{name: "e", component: "evaluator", created: t0, cs: crashLooping(3)}),
			}},
			want:   diagnose.Verdict{Class: diagnose.Broken, Component: "evaluator", Pod: "e", Container: "evaluator", Image: "registry.example/evaluator:abc123", Restarts: 3},
			reason: []string{"restarted 3 times"},
		},
		{
			name: "own and neighbour both broken: own first, neighbour in Others",
			snap: diagnose.Snapshot{Pods: []corev1.Pod{
				pod(podSpec{name: "e", component: "evaluator", created: t0, cs: crashLooping(3)}),
				pod(podSpec{name: "o", component: "orchestrator", created: t0, cs: crashLooping(2)}),
			}},
			want:   diagnose.Verdict{Class: diagnose.Broken, Component: "orchestrator", Own: true, Pod: "o", Container: "orchestrator", Image: "registry.example/orchestrator:abc123", Restarts: 2},
			others: []string{"evaluator: CrashLoopBackOff"},
		},
		{
			name: "OOMKilled",
			snap: diagnose.Snapshot{Pods: []corev1.Pod{pod(podSpec{name: "o", component: "orchestrator", created: t0, cs: corev1.ContainerStatus{
				RestartCount: 2, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}},
			}})}},
			want:   diagnose.Verdict{Class: diagnose.Broken, Component: "orchestrator", Own: true, Pod: "o", Container: "orchestrator", Image: "registry.example/orchestrator:abc123", Restarts: 2},
			reason: []string{"too much memory", "OOMKilled"},
		},
		{
			name: "pods of a replaced ReplicaSet are history",
			snap: diagnose.Snapshot{
				Pods: []corev1.Pod{
					pod(podSpec{name: "old", component: "orchestrator", rs: "r-orchestrator-old", created: t0, cs: crashLooping(9)}),
					pod(podSpec{name: "new", component: "orchestrator", rs: "r-orchestrator-new", created: now, cs: running(now, false, 0)}),
				},
				ReplicaSets: []appsv1.ReplicaSet{rs("r-orchestrator-old", "r-orchestrator", "1"), rs("r-orchestrator-new", "r-orchestrator", "2")},
			},
			want: diagnose.Verdict{},
		},
		{
			name: "a pod from before the deploy is not judged while waiting (its replacement may be coming)",
			snap: diagnose.Snapshot{
				Pods:   []corev1.Pod{pod(podSpec{name: "old", component: "orchestrator", rs: orchRS.Name, created: t0, cs: crashLooping(9)})},
				Before: map[types.UID]bool{"uid-old": true}, ReplicaSets: []appsv1.ReplicaSet{orchRS},
			},
			want: diagnose.Verdict{},
		},
		{
			name:  "a pod from before the deploy is explained after Helm gave up",
			final: true,
			snap: diagnose.Snapshot{
				Pods:   []corev1.Pod{pod(podSpec{name: "old", component: "orchestrator", rs: orchRS.Name, created: t0, cs: crashLooping(9)})},
				Before: map[types.UID]bool{"uid-old": true}, ReplicaSets: []appsv1.ReplicaSet{orchRS},
			},
			want: diagnose.Verdict{Class: diagnose.Broken, Component: "orchestrator", Own: true, Pod: "old", Container: "orchestrator", Image: "registry.example/orchestrator:abc123", Restarts: 9},
		},
		{
			name: "terminating pods and test hooks are not judged",
			snap: diagnose.Snapshot{Pods: []corev1.Pod{
				pod(podSpec{name: "going", component: "orchestrator", created: t0, cs: crashLooping(9), deleting: true}),
				pod(podSpec{name: "e2e", component: "e2e", created: t0, cs: crashLooping(9), hook: "test"}),
			}},
			want: diagnose.Verdict{},
		},
		{
			name: "running, not ready past ready_timeout: broken, with the probe's failure",
			snap: diagnose.Snapshot{Since: t0,
				Pods:   []corev1.Pod{pod(podSpec{name: "o", component: "orchestrator", created: t0, cs: running(t0, false, 0)})},
				Events: []corev1.Event{event("Pod", "o", "Unhealthy", "Readiness probe failed: dial tcp 10.0.1.5:6254: connect: connection refused", t0.Add(3*time.Minute), 17)}},
			now:    t0.Add(3*time.Minute + time.Second),
			want:   diagnose.Verdict{Class: diagnose.Broken, Component: "orchestrator", Own: true, Pod: "o", Container: "orchestrator", Image: "registry.example/orchestrator:abc123", Running: true},
			reason: []string{"not ready: readiness probe failed: dial tcp", "running for 3m0s"},
			events: []string{"Unhealthy: Readiness probe failed: dial tcp 10.0.1.5:6254: connect: connection refused (×17)"},
		},
		{
			name: "not ready before ready_timeout: wait",
			snap: diagnose.Snapshot{Pods: []corev1.Pod{pod(podSpec{name: "o", component: "orchestrator", created: t0, cs: running(t0, false, 0)})}},
			now:  t0.Add(2 * time.Minute),
			want: diagnose.Verdict{},
		},
		{
			name:   "short ready_timeout",
			policy: diagnose.Policy{ReadyTimeout: 10 * time.Second, Components: policy.Components},
			snap:   diagnose.Snapshot{Pods: []corev1.Pod{pod(podSpec{name: "o", component: "orchestrator", created: t0, cs: running(t0, false, 0)})}},
			now:    t0.Add(11 * time.Second),
			want:   diagnose.Verdict{Class: diagnose.Broken, Component: "orchestrator", Pod: "o", Container: "orchestrator", Image: "registry.example/orchestrator:abc123", Running: true},
			reason: []string{"not ready: running for 11s without passing its readiness probe"},
		},
		{
			name: "image missing before image_wait: wait",
			snap: diagnose.Snapshot{Pods: []corev1.Pod{pod(podSpec{name: "o", component: "orchestrator", created: t0, phase: corev1.PodPending,
				cs: waiting("ImagePullBackOff", `Back-off pulling image "registry.example/orchestrator:abc123"`)})}},
			now:  t0.Add(9 * time.Minute),
			want: diagnose.Verdict{},
		},
		{
			name: "image missing past image_wait: image, naming image and tag",
			snap: diagnose.Snapshot{Pods: []corev1.Pod{pod(podSpec{name: "o", component: "orchestrator", created: t0, phase: corev1.PodPending,
				cs: waiting("ErrImagePull", `rpc error: code = NotFound desc = failed to pull and unpack image "registry.example/orchestrator:abc123": not found`)})}},
			now:    t0.Add(10 * time.Minute),
			want:   diagnose.Verdict{Class: diagnose.Image, Component: "orchestrator", Own: true, Pod: "o", Container: "orchestrator", Image: "registry.example/orchestrator:abc123"},
			reason: []string{"image registry.example/orchestrator:abc123 not found", "ErrImagePull for 10m0s"},
		},
		{
			name: "unschedulable: nothing while waiting (Helm's timeout decides)",
			snap: diagnose.Snapshot{Pods: []corev1.Pod{pod(podSpec{name: "o", component: "orchestrator", created: t0, phase: corev1.PodPending,
				scheduled: &corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/1 nodes are available: 1 Insufficient cpu."}})}},
			now:  t0.Add(time.Hour),
			want: diagnose.Verdict{},
		},
		{
			name:  "unschedulable, explained after Helm gave up: infrastructure",
			final: true,
			snap: diagnose.Snapshot{Pods: []corev1.Pod{pod(podSpec{name: "o", component: "orchestrator", created: t0, phase: corev1.PodPending,
				scheduled: &corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/1 nodes are available: 1 Insufficient cpu."}})}},
			want:   diagnose.Verdict{Class: diagnose.Infrastructure, Component: "orchestrator", Own: true, Pod: "o"},
			reason: []string{"could not be scheduled: 0/1 nodes are available: 1 Insufficient cpu."},
		},
		{
			name:  "quota refused the pods, explained: infrastructure with the ReplicaSet's events",
			final: true,
			snap: diagnose.Snapshot{Since: t0,
				ReplicaSets: []appsv1.ReplicaSet{orchRS},
				Events: []corev1.Event{
					event("ReplicaSet", orchRS.Name, "FailedCreate", `Error creating: pods "r-orchestrator-5d8f-x" is forbidden: exceeded quota: ductbot, requested: pods=1, used: pods=3, limited: pods=3`, t0.Add(time.Second), 5),
					event("ReplicaSet", orchRS.Name, "FailedCreate", "an old refusal", t0.Add(-time.Hour), 1),
				}},
			want:   diagnose.Verdict{Class: diagnose.Infrastructure, Component: "orchestrator", Own: true},
			reason: []string{"pods refused by the cluster", "exceeded quota"},
			events: []string{"FailedCreate: Error creating"},
		},
		{
			name:  "a refusal while waiting decides nothing",
			snap:  diagnose.Snapshot{Since: t0, ReplicaSets: []appsv1.ReplicaSet{orchRS}, Events: []corev1.Event{event("ReplicaSet", orchRS.Name, "FailedCreate", "forbidden: exceeded quota", t0.Add(time.Second), 5)}},
			want:  diagnose.Verdict{},
			final: false,
		},
		{
			name:  "explained: a crash loop below the threshold is broken once the deploy failed",
			final: true,
			snap:  diagnose.Snapshot{Pods: []corev1.Pod{pod(podSpec{name: "o", component: "orchestrator", created: t0, cs: crashLooping(1)})}},
			want:  diagnose.Verdict{Class: diagnose.Broken, Component: "orchestrator", Own: true, Pod: "o", Container: "orchestrator", Image: "registry.example/orchestrator:abc123", Restarts: 1},
		},
		{
			name:  "explained: an image still missing is an image error before image_wait",
			final: true,
			snap: diagnose.Snapshot{Pods: []corev1.Pod{pod(podSpec{name: "o", component: "orchestrator", created: t0, phase: corev1.PodPending,
				cs: waiting("ImagePullBackOff", "Back-off pulling image")})}},
			want:   diagnose.Verdict{Class: diagnose.Image, Component: "orchestrator", Own: true, Pod: "o", Container: "orchestrator", Image: "registry.example/orchestrator:abc123"},
			reason: []string{"registry.example/orchestrator:abc123"},
		},
		{
			name:   "explained: not ready within the deploy, ready_timeout not reached: infrastructure",
			final:  true,
			snap:   diagnose.Snapshot{Pods: []corev1.Pod{pod(podSpec{name: "o", component: "orchestrator", created: t0, cs: running(t0, false, 0)})}},
			want:   diagnose.Verdict{Class: diagnose.Infrastructure, Component: "orchestrator", Own: true, Pod: "o", Container: "orchestrator", Image: "registry.example/orchestrator:abc123", Running: true},
			reason: []string{"not ready", "kubernetes.ready_timeout 3m0s not reached"},
		},
		{
			name:  "explained: all ready, nothing to say",
			final: true,
			snap:  diagnose.Snapshot{Pods: []corev1.Pod{pod(podSpec{name: "o", component: "orchestrator", created: t0, cs: running(t0, true, 0)})}},
			want:  diagnose.Verdict{},
		},
		{
			name: "a pod of no configured component is named by its workload",
			snap: diagnose.Snapshot{Pods: []corev1.Pod{func() corev1.Pod {
				p := pod(podSpec{name: "r-redis-7c9-abcde", component: "", rs: "r-redis-7c9", created: t0, cs: crashLooping(4)})
				p.Labels = map[string]string{"app": "cache"}
				p.Spec.Containers[0].Name, p.Status.ContainerStatuses[0].Name = "redis", "redis"
				return p
			}()}},
			want: diagnose.Verdict{Class: diagnose.Broken, Component: "r-redis", Pod: "r-redis-7c9-abcde", Container: "redis", Image: "registry.example/:abc123", Restarts: 4},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.policy
			if p.Components == nil {
				p = policy
			}
			now := tc.now
			if now.IsZero() {
				now = t0.Add(time.Minute)
			}
			var got diagnose.Verdict
			if tc.final {
				got = diagnose.Explain(tc.snap, p, now)
			} else {
				got = diagnose.Classify(tc.snap, p, now)
			}
			reason, events, others := got.Reason, got.Events, got.Others
			got.Reason, got.Events, got.Others = "", nil, nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("verdict = %+v\nwant      %+v", got, tc.want)
			}
			if got.Decided() && reason == "" {
				t.Errorf("a decided verdict without a reason")
			}
			for _, s := range tc.reason {
				if !strings.Contains(reason, s) {
					t.Errorf("reason %q lacks %q", reason, s)
				}
			}
			if len(tc.events) > 0 && len(events) != len(tc.events) {
				t.Errorf("events = %q, want %d like %q", events, len(tc.events), tc.events)
			}
			for i, s := range tc.events {
				if i < len(events) && !strings.Contains(events[i], s) {
					t.Errorf("event %d = %q, want it to contain %q", i, events[i], s)
				}
			}
			if len(others) != len(tc.others) {
				t.Errorf("others = %q, want %q", others, tc.others)
			}
			for i, s := range tc.others {
				if i < len(others) && !strings.HasPrefix(others[i], s) {
					t.Errorf("others[%d] = %q, want prefix %q", i, others[i], s)
				}
			}
		})
	}
}

// Events are bounded to the newest MaxEvents, oldest first.
func TestEventsAreBounded(t *testing.T) {
	snap := diagnose.Snapshot{Since: t0, Pods: []corev1.Pod{pod(podSpec{name: "o", component: "orchestrator", created: t0, cs: crashLooping(5)})}}
	for i := range 25 {
		snap.Events = append(snap.Events, event("Pod", "o", "BackOff", "back-off "+time.Duration(i).String(), t0.Add(time.Duration(i)*time.Second), 1))
		snap.Events[i].Name += time.Duration(i).String()
	}
	v := diagnose.Classify(snap, policy, t0.Add(time.Minute))
	if len(v.Events) != diagnose.MaxEvents || !strings.HasSuffix(v.Events[len(v.Events)-1], "back-off 24ns") || !strings.HasSuffix(v.Events[0], "back-off 15ns") {
		t.Errorf("events = %q, want the newest %d, oldest first", v.Events, diagnose.MaxEvents)
	}
}
