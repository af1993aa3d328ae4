package leader_test

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ductbot/ductbot/core/run"
)

// TestProcessFailover: two ductbot processes share one PostgreSQL database
// and one Lease. The leader is killed with SIGKILL mid-deploy, mid-test
// and right after it posted the vote; each time the follower leads within
// the lease duration + 5 s of the kill, finishes the run, and exactly one
// review is posted per patch set; no run is left unfinished, no Helm
// release pending, no namespace orphaned. The killed replica is started
// again and follows, to be the next scenario's follower.
func TestProcessFailover(t *testing.T) {
	f := newFleet(t)
	lead, follow := f.leaderAndFollower("replica-a", "replica-b")

	type scenario struct {
		name, subject string
		// until returns when the leader is to be killed, run being the
		// change's run, or kills it itself and returns when; after
		// checks, right after the kill, that it struck where it should.
		until func(t *testing.T, change int, r *run.Run) (killed time.Time)
		after func(t *testing.T, r *run.Run)
	}
	scenarios := []scenario{{
		name: "mid-deploy", subject: "Add Z801 echo function",
		until: func(t *testing.T, _ int, r *run.Run) time.Time {
			f.waitState(t, r.ID, run.StateDeploying, 3*time.Minute)
			// Until Helm has recorded the release as pending-install: the
			// kill leaves it pending, for the new leader to repair.
			deadline := time.Now().Add(time.Minute)
			for time.Now().Before(deadline) {
				if pend, err := f.kube.PendingReleases(context.Background()); err == nil && len(pend) > 0 {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			return time.Time{}
		},
		after: func(t *testing.T, r *run.Run) {
			if r.State != run.StateDeploying {
				t.Fatalf("the kill struck in %s, not mid-deploy", r.State)
			}
			pend, err := f.kube.PendingReleases(context.Background())
			t.Logf("the kill left the run deploying and %d pending Helm releases (%v)", len(pend), err)
		},
	}, {
		name: "mid-test", subject: "Cache evaluator results SLOW",
		until: func(t *testing.T, _ int, r *run.Run) time.Time {
			f.waitState(t, r.ID, run.StateTesting, 3*time.Minute)
			time.Sleep(3 * time.Second) // 20 s of tests
			return time.Time{}
		},
		after: func(t *testing.T, r *run.Run) {
			if r.State != run.StateTesting {
				t.Fatalf("the kill struck in %s, not mid-test", r.State)
			}
		},
	}, {
		name: "after-vote", subject: "Speed up Z802",
		until: func(t *testing.T, change int, _ *run.Run) time.Time {
			// The Gerrit proxy kills the leader once Gerrit took its
			// review, before the leader hears back.
			victim := lead
			var killed atomic.Pointer[time.Time]
			hook := func() {
				now := time.Now()
				if killed.CompareAndSwap(nil, &now) {
					_ = victim.cmd.Process.Signal(syscall.SIGKILL)
				}
			}
			f.onReview.Store(&hook)
			defer f.onReview.Store(nil)
			select {
			case <-victim.exited:
			case <-time.After(4 * time.Minute):
				t.Fatal("the leader was not killed by its review within 4m")
			}
			if len(f.reviewsOf(change)) != 1 || killed.Load() == nil {
				t.Fatalf("the leader exited (%v) without its review of change %d killing it: %+v", victim.err, change, f.reviewsOf(change))
			}
			return *killed.Load()
		},
		after: func(t *testing.T, r *run.Run) {
			if r.State != run.StateReporting || r.Reported {
				t.Fatalf("the kill struck in %s (reported %v), not between the review and its record", r.State, r.Reported)
			}
		},
	}}

	took := map[string]time.Duration{}
	for _, sc := range scenarios {
		ok := t.Run(sc.name, func(t *testing.T) {
			change := f.g.CreateChange(project, "master", sc.subject, "alice")
			r := f.runOf(t, change)
			killed := sc.until(t, change, r)
			if killed.IsZero() {
				killed = lead.kill9(t)
			}
			sc.after(t, f.getRun(t, r.ID))

			took[sc.name] = f.takeover(t, follow, killed)
			t.Logf("%s: %s led %s after %s was killed (lease duration %s)", sc.name, follow.name, took[sc.name].Round(time.Millisecond), lead.name, f.leaseDuration(t))

			f.waitState(t, r.ID, run.StateDone, 5*time.Minute)
			time.Sleep(3 * time.Second) // time for a late, second review
			got := f.getRun(t, r.ID)
			if got.Result != run.ResultPassed || !got.Reported {
				t.Errorf("run %d = %s %s reported %v, want passed and reported", got.ID, got.State, got.Result, got.Reported)
			}
			rvs := f.reviewsOf(change)
			if len(rvs) != 1 || rvs[0].Labels["Verified"] != 1 || rvs[0].PatchSet != 1 {
				t.Errorf("reviews of change %d: %+v; want one, Verified +1 on patch set 1", change, rvs)
			}
			f.checkClean(t)
		})
		if !ok {
			break
		}
		if lead.running() {
			continue // the scenario was not run (-run)
		}
		// The killed replica comes back, as the follower.
		lead, follow = follow, f.follower(lead.name)
	}
	t.Logf("takeover times (kill -9 to the new leader's first action; lease duration %s): %v", f.leaseDuration(t), took)
}

// TestProcessSplitBrain: the leader process is paused (SIGSTOP) while it
// tests a patch set, past the lease duration. The follower takes over,
// resumes the run and votes. Then the old leader resumes (SIGCONT): it
// notices it lost the lease, stops and exits, without posting a review
// and without writing over the run the new leader finished: the run's row
// and its test logs stay as the new leader left them.
func TestProcessSplitBrain(t *testing.T) {
	f := newFleet(t)
	a, b := f.leaderAndFollower("replica-a", "replica-b")

	change := f.g.CreateChange(project, "master", "Cache evaluator results SLOW", "alice")
	r := f.runOf(t, change)
	f.waitState(t, r.ID, run.StateTesting, 3*time.Minute)
	time.Sleep(3 * time.Second) // a is 3 s into 20 s of tests

	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	took := f.takeover(t, b, paused)
	t.Logf("b led %s after a was paused (lease duration %s)", took.Round(time.Millisecond), f.leaseDuration(t))

	f.waitState(t, r.ID, run.StateDone, 5*time.Minute)
	before := f.getRun(t, r.ID)
	logsBefore, err := f.st.TestLogs(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rvs := f.reviewsOf(change); len(rvs) != 1 {
		t.Fatalf("reviews before a resumes: %+v, want b's", rvs)
	}

	resumeLost(t, a)
	for _, l := range strings.Split(a.log(), "\n") {
		if strings.Contains(l, "not the leader") {
			t.Logf("a held back: %s", l)
		}
	}
	time.Sleep(3 * time.Second)

	if rvs := f.reviewsOf(change); len(rvs) != 1 {
		t.Errorf("reviews of change %d: %+v; want exactly 1", change, rvs)
	}
	after := f.getRun(t, r.ID)
	if !reflect.DeepEqual(before, after) {
		t.Errorf("a, resumed, wrote over the run b finished:\nb left %+v\nnow    %+v", before, after)
	}
	logsAfter, err := f.st.TestLogs(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(logsBefore, logsAfter) {
		t.Errorf("a, resumed, wrote over the run's test logs:\nb left %+v\nnow    %+v", logsBefore, logsAfter)
	}
	if !b.running() || f.holder(t) != b.identity() {
		t.Errorf("b stopped leading when a resumed (running %v, holder %q)", b.running(), f.holder(t))
	}
	f.checkClean(t)
}

// BenchmarkProcessFailover measures the time from the leader process's
// kill -9 to the follower's first action as the leader (its log line), with
// the processes' lease duration (ha.lease_duration 5 s; the default is
// 15 s, and the time scales with it; reported as s-lease), b.N times on one pair of replicas: the killed one comes
// back as the follower. It reports the median and the worst.
func BenchmarkProcessFailover(b *testing.B) {
	f := newFleet(b)
	lead, follow := f.leaderAndFollower("replica-a", "replica-b")
	var took []time.Duration
	for b.Loop() {
		time.Sleep(time.Second) // the follower has seen a renewal or two
		killed := lead.kill9(b)
		took = append(took, f.takeover(b, follow, killed))
		b.StopTimer()
		lead, follow = follow, f.follower(lead.name)
		b.StartTimer()
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Milliseconds()), "ms-median-to-first-action")
	b.ReportMetric(float64(took[len(took)-1].Milliseconds()), "ms-max-to-first-action")
	b.ReportMetric(f.leaseDuration(b).Seconds(), "s-lease")
	b.Logf("%d failovers, kill -9 to the new leader's first action: %v", len(took), took)
}

// TestProcessSplitBrainLateTests: the leader process is paused (SIGSTOP)
// near the end of a patch set's tests, which end while it is paused; it
// resumes right after the follower took over, before the new leader has
// tested and voted. The old leader learns its tests passed before it
// learns it lost the lease, and there is no review on the change yet for
// it to find: its guard alone keeps it from voting. It stops and exits;
// the new leader tests again and posts the one review.
func TestProcessSplitBrainLateTests(t *testing.T) {
	f := newFleet(t)
	a, b := f.leaderAndFollower("replica-a", "replica-b")

	change := f.g.CreateChange(project, "master", "Cache evaluator results SLOW", "alice")
	r := f.runOf(t, change)
	began := a.waitLog(t, "msg=\"running tests\"", time.Time{}, 3*time.Minute)
	time.Sleep(time.Until(began.Add(17 * time.Second))) // 3 s of 20 s left

	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	took := f.takeover(t, b, paused)
	t.Logf("b led %s after a was paused (lease duration %s)", took.Round(time.Millisecond), f.leaseDuration(t))
	if rvs := f.reviewsOf(change); len(rvs) != 0 {
		t.Fatalf("reviews before a resumes: %+v, want none", rvs)
	}

	resumed := resumeLost(t, a)
	if held := a.logged("not posting the review: this replica is not the leader", resumed); held.IsZero() {
		t.Log("a did not get as far as its review before it exited")
	} else {
		t.Logf("a held its review back %s after it resumed", held.Sub(resumed).Round(time.Millisecond))
	}

	f.waitState(t, r.ID, run.StateDone, 5*time.Minute)
	time.Sleep(3 * time.Second)
	rvs := f.reviewsOf(change)
	if len(rvs) != 1 || rvs[0].Labels["Verified"] != 1 {
		t.Errorf("reviews of change %d: %+v; want exactly 1, b's Verified +1", change, rvs)
	}
	if got := f.getRun(t, r.ID); got.Result != run.ResultPassed || !got.Reported {
		t.Errorf("run %d = %s %s reported %v, want passed and reported", got.ID, got.State, got.Result, got.Reported)
	}
	f.checkClean(t)
}

// resumeLost resumes the paused old leader a and checks that it exits
// within a minute, saying it lost the lease, without posting a review. It
// returns when a was resumed.
func resumeLost(t *testing.T, a *proc) time.Time {
	t.Helper()
	resumed := time.Now()
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.exited:
		t.Logf("a exited %s after it resumed: %v", time.Since(resumed).Round(time.Millisecond), a.err)
	case <-time.After(time.Minute):
		t.Fatal("a did not exit within 1m of resuming")
	}
	if a.logged(logLost, resumed).IsZero() {
		t.Errorf("a's log does not say it lost the lease and stopped (%q)", logLost)
	}
	if !a.logged("review posted", resumed).IsZero() {
		t.Error("a posted a review after it resumed")
	}
	return resumed
}
