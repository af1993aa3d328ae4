package pipeline_test

// Benchmarks of the whole loop on the local control plane (kwok pods: a
// deploy with --wait takes about 2 s, the example chart's test pod runs for
// the 1s the harness configures). They print medians and ratios; nothing
// is asserted. Run them with `make bench`, or:
//
//	go test -run '^$' -bench . -benchtime 3x ./core/pipeline/
//
// Requests per idle poll with 10,000 open changes are measured by
// BenchmarkIdlePoll in core/gerrit.

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ductbot/ductbot/core/k8s/localcluster"
	"github.com/ductbot/ductbot/core/run"
)

// quietTB keeps the engine's and poller's log lines out of the benchmark
// output (a benchmark's Log is always printed) and prints the last of them
// only if the benchmark fails.
type quietTB struct {
	testing.TB
	mu    *sync.Mutex
	lines *[]string
}

func quiet(b *testing.B) quietTB {
	q := quietTB{TB: b, mu: &sync.Mutex{}, lines: new([]string)}
	b.Cleanup(func() {
		if b.Failed() {
			q.mu.Lock()
			defer q.mu.Unlock()
			fmt.Fprintf(os.Stderr, "last log lines:\n%s\n", strings.Join(*q.lines, "\n"))
		}
	})
	return q
}

func (q quietTB) Log(args ...any) { q.keep(fmt.Sprint(args...)) }

func (q quietTB) Logf(format string, args ...any) { q.keep(fmt.Sprintf(format, args...)) }

func (q quietTB) keep(line string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if *q.lines = append(*q.lines, line); len(*q.lines) > 200 {
		*q.lines = (*q.lines)[100:]
	}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func seconds(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(parts, " ")
}

// offPhase sleeps, outside the timed part, for a part of the poll interval
// that differs from one iteration to the next (the golden-ratio sequence
// covers the interval evenly even for a few iterations). Without it the
// uploads lock into phase with the poller, because deploys, simulated
// tests and teardowns take nearly constant times: a run of the benchmark
// then measures one point of the poll cycle (always ~0 s or always ~1 s)
// instead of what an upload at a random moment waits.
func offPhase(b *testing.B, i int, interval time.Duration) {
	f := math.Mod(float64(i)*0.6180339887498949, 1)
	b.StopTimer()
	time.Sleep(time.Duration(f * float64(interval)))
	b.StartTimer()
}

// finishedRun waits until the only run of change n is done and reported.
func (h *harness) finishedRun(n int) *run.Run {
	var r *run.Run
	h.waitFor(2*time.Minute, fmt.Sprintf("change %d's run to finish", n), func() bool {
		runs := h.runs(n)
		if len(runs) == 1 && runs[0].Finished() {
			r = runs[0]
		}
		return r != nil
	})
	if r.Result != run.ResultPassed {
		h.t.Fatalf("change %d: run %s: %s, want passed", n, r.Result, r.Detail)
	}
	return r
}

// teardownRun removes the environment of a finished run.
func (h *harness) teardownRun(r *run.Run) {
	env, err := h.store.GetEnv(context.Background(), r.Env)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.kube.Teardown(context.Background(), env.Namespace, env.Release, 2*time.Minute); err != nil {
		h.t.Fatalf("tearing down %s: %v", env.Namespace, err)
	}
}

// helmCLI runs the helm CLI (the SDK's version) against the harness's cluster.
type helmCLI struct {
	bin, chart string
	env        []string
}

func newHelmCLI(b *testing.B, h *harness) *helmCLI {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bins, err := localcluster.Install(ctx, localcluster.InstallOptions{})
	if err != nil {
		b.Fatalf("the helm CLI (run `make cluster-bins`): %v", err)
	}
	home := b.TempDir() // keep helm's config and caches out of the user's home
	return &helmCLI{bin: bins.Helm, chart: h.cfg.Chart.Ref, env: append(os.Environ(),
		"KUBECONFIG="+h.cluster.Kubeconfig,
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)}
}

func (c *helmCLI) run(args ...string) error {
	cmd := exec.Command(c.bin, args...)
	cmd.Env = c.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return nil
}

// deployAndTest is what the old CI glue did: upgrade --install --wait, then
// test, with the values ductbot would set for the same environment.
func (c *helmCLI) deployAndTest(ns, rel, orchestratorRef string) error {
	set := []string{
		"wiki.image.tag=wiki-stable",
		"orchestrator.image.tag=" + orchestratorRef,
		"evaluator.image.tag=eval-stable",
		"e2e.simulate.outcome=pass",
		"e2e.simulate.duration=1s",
		"e2e.simulate.log=e2e of " + rel + ": 4 passing",
		"ingress.host=" + rel + ".envs.test",
	}
	args := []string{"upgrade", "--install", "--wait", "--timeout", "2m", "--create-namespace", "-n", ns, rel, c.chart}
	for _, s := range set {
		args = append(args, "--set-string", s)
	}
	if err := c.run(args...); err != nil {
		return err
	}
	return c.run("test", "-n", ns, rel, "--timeout", "1m")
}

// BenchmarkOrchestrationOverhead compares, interleaved on the same cluster
// and chart, ductbot's whole path (a Gerrit upload picked up by the poller,
// queued, deployed and tested by the engine with the Helm SDK) with the helm
// CLI doing `upgrade --install --wait` then `test` in a fresh namespace.
//
//   - ductbot-s/op: upload → the run's TestedAt (includes waiting for the
//     next poll, up to the 1s poll interval);
//   - helm-s/op: the two CLI commands;
//   - overhead-ratio: median of the per-iteration ratios ductbot/helm;
//   - deploytest-ratio: the same with ductbot's StartedAt → TestedAt only
//     (deploy and test through the SDK, without Gerrit and the queue);
//   - vote-s/op: upload → FinishedAt (the vote posted).
//
// Each iteration uses new namespaces, torn down outside the timed part; the
// order of the two alternates between iterations, and each upload happens
// at a different point of the poll cycle (see offPhase).
func BenchmarkOrchestrationOverhead(b *testing.B) {
	h := newHarness(quiet(b), "")
	h.start()
	helm := newHelmCLI(b, h)
	var ductbotS, helmS, ratios, deployTestRatios, voteS []float64

	i := 0
	for b.Loop() {
		i++
		var d, dt, vote, hs float64
		ductbot := func() {
			offPhase(b, i, h.cfg.Gerrit.PollInterval.D())
			t0 := time.Now()
			n := h.upload(0, "alice", fmt.Sprintf("Benchmark change %d", i))
			r := h.finishedRun(n)
			d, dt, vote = r.TestedAt.Sub(t0).Seconds(), r.TestedAt.Sub(r.StartedAt).Seconds(), r.FinishedAt.Sub(t0).Seconds()
			b.StopTimer()
			h.teardownRun(r)
			b.StartTimer()
		}
		cli := func() {
			ns := fmt.Sprintf("%shelm-%d", h.cfg.Kubernetes.NamespacePrefix, i)
			rel := fmt.Sprintf("helm-%d", i)
			t0 := time.Now()
			if err := helm.deployAndTest(ns, rel, fmt.Sprintf("%040x", i)); err != nil {
				b.Fatal(err)
			}
			hs = time.Since(t0).Seconds()
			b.StopTimer()
			if err := h.kube.Teardown(context.Background(), ns, rel, 2*time.Minute); err != nil {
				b.Fatalf("tearing down %s: %v", ns, err)
			}
			b.StartTimer()
		}
		if i%2 == 1 {
			ductbot()
			cli()
		} else {
			cli()
			ductbot()
		}
		ductbotS, helmS, voteS = append(ductbotS, d), append(helmS, hs), append(voteS, vote)
		ratios, deployTestRatios = append(ratios, d/hs), append(deployTestRatios, dt/hs)
	}
	b.ReportMetric(median(ductbotS), "ductbot-s/op")
	b.ReportMetric(median(helmS), "helm-s/op")
	b.ReportMetric(median(ratios), "overhead-ratio")
	b.ReportMetric(median(deployTestRatios), "deploytest-ratio")
	b.ReportMetric(median(voteS), "vote-s/op")
	b.Logf("upload→tested (engine path, %d runs): ductbot [%s] s, helm CLI upgrade+test [%s] s; median ratio %.2f (deploy+test only %.2f)",
		len(ductbotS), seconds(ductbotS), seconds(helmS), median(ratios), median(deployTestRatios))
}

// BenchmarkUploadToDeployStart is the time from a Gerrit upload to the
// engine starting its deploy (the run's StartedAt), with the poller and the
// engine running. It is bounded below by the time to the next poll: the
// harness polls every second, so expect about half of that plus the cost of
// a poll and of queuing the run. Uploads are spread over the poll cycle
// (see offPhase); the fastest sample is close to the cost without waiting. Each run is then left to finish and its
// environment torn down, outside the timed part.
func BenchmarkUploadToDeployStart(b *testing.B) {
	h := newHarness(quiet(b), "")
	h.start()
	var lat []float64
	i := 0
	for b.Loop() {
		i++
		offPhase(b, i, h.cfg.Gerrit.PollInterval.D())
		t0 := time.Now()
		n := h.upload(0, "alice", fmt.Sprintf("Benchmark change %d", i))
		var started time.Time
		h.waitFor(time.Minute, fmt.Sprintf("change %d's deploy to start", n), func() bool {
			if runs := h.runs(n); len(runs) == 1 && !runs[0].StartedAt.IsZero() {
				started = runs[0].StartedAt
			}
			return !started.IsZero()
		})
		lat = append(lat, started.Sub(t0).Seconds())
		b.StopTimer()
		h.teardownRun(h.finishedRun(n))
		b.StartTimer()
	}
	poll := h.cfg.Gerrit.PollInterval.D()
	b.ReportMetric(median(lat), "upload-to-deploy-s")
	b.ReportMetric(slices.Min(lat), "fastest-s")
	b.ReportMetric(poll.Seconds(), "poll-interval-s")
	b.Logf("upload→deploy start (%d uploads spread over the poll cycle): [%s] s, median %.2f s, fastest %.2f s; poll interval %s",
		len(lat), seconds(lat), median(lat), slices.Min(lat), poll)
}

// BenchmarkSupersedeDuringLongTest is the time from a new patch set's
// upload to its deploy starting while the previous patch set's 60 s test
// suite runs in the same environment: the superseded suite must be stopped
// (its test pods deleted) before the release is free. Without stopping it
// the new deploy waits for the rest of the suite. The goal is under 5 s,
// most of it the wait for the next poll (1 s here).
func BenchmarkSupersedeDuringLongTest(b *testing.B) {
	h := newHarness(quiet(b), "")
	h.start()
	var lat []float64
	i := 0
	for b.Loop() {
		i++
		b.StopTimer()
		n := h.upload(0, "alice", fmt.Sprintf("Benchmark change %d LONG", i))
		h.waitTesting(n, 2*time.Minute)
		time.Sleep(2 * time.Second) // into the suite
		offPhase(b, i, h.cfg.Gerrit.PollInterval.D())
		b.StartTimer()
		t0 := time.Now()
		h.upload(n, "alice", fmt.Sprintf("Benchmark change %d, patch set 2", i))
		var started time.Time
		h.waitFor(time.Minute, "patch set 2's deploy to start", func() bool {
			for _, r := range h.runs(n) {
				if r.PatchSet == 2 && !r.StartedAt.IsZero() {
					started = r.StartedAt
				}
			}
			return !started.IsZero()
		})
		lat = append(lat, started.Sub(t0).Seconds())
		b.StopTimer()
		var done *run.Run
		h.waitFor(2*time.Minute, "patch set 2's run to finish", func() bool {
			for _, r := range h.runs(n) {
				if r.PatchSet == 2 && r.Finished() {
					done = r
				}
			}
			return done != nil
		})
		h.teardownRun(done)
		b.StartTimer()
	}
	b.ReportMetric(median(lat), "upload-to-deploy-s")
	b.ReportMetric(slices.Max(lat), "slowest-s")
	b.Logf("new patch set during a 60 s suite → its deploy start: [%s] s, median %.2f s (goal < 5 s)", seconds(lat), median(lat))
}
