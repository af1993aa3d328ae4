package pipeline_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ductbot/ductbot/core/run"
)

// BenchmarkCrashLoopVerdict is the time from the upload of a patch set
// whose component crash-loops to its Verified -1 (the review posted),
// with the default crash_restarts (2): the local cluster's simulated
// container exits a second after each start and backs off three seconds.
// Before the classification the deploy waited for its whole timeout on
// every attempt and ended an error without a vote: with the default
// deploy_timeout (10m) and retries (2), about 30 minutes. The goal is
// under 2 minutes.
//
//   - verdict-s/op: upload → -1 posted (median);
//   - deploy-s: the run's deploy start → its end (median), the part the
//     classification shortened;
//   - before-s: what the same run took before: (retries+1) ×
//     deploy_timeout plus the backoffs, from the defaults (not measured).
func BenchmarkCrashLoopVerdict(b *testing.B) {
	h := newHarness(quiet(b), "")
	simulateBySubject(h)
	h.start()
	var verdict, deploy []float64
	i := 0
	for b.Loop() {
		i++
		offPhase(b, i, h.cfg.Gerrit.PollInterval.D())
		t0 := time.Now()
		n := h.upload(0, "alice", fmt.Sprintf("Benchmark change %d CRASHLOOP", i))
		h.waitFor(3*time.Minute, fmt.Sprintf("change %d's vote", n), func() bool { return len(h.votes(n)) > 0 })
		verdict = append(verdict, time.Since(t0).Seconds())
		b.StopTimer()
		if v := h.votes(n)[0]; v.Labels["Verified"] != -1 {
			b.Fatalf("vote %+v, want -1", v.Labels)
		}
		r := h.finished(n, 1, time.Minute)
		if r.Result != run.ResultFailed {
			b.Fatalf("run %s (%s), want failed", r.Result, r.Detail)
		}
		deploy = append(deploy, r.FinishedAt.Sub(r.StartedAt).Seconds())
		h.teardownRun(r)
		b.StartTimer()
	}
	before := 3*10*time.Minute + 10*time.Second + 20*time.Second
	b.ReportMetric(median(verdict), "verdict-s/op")
	b.ReportMetric(median(deploy), "deploy-s")
	b.ReportMetric(before.Seconds(), "before-s")
	b.Logf("crash-looping patch, upload → -1: [%s] s, median %.1f s, slowest %.1f s (goal < 120 s; before: %s without a vote)",
		seconds(verdict), median(verdict), slices.Max(verdict), before)
}
