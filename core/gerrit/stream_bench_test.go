package gerrit_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ductbot/ductbot/core/gerrit"
	"github.com/ductbot/ductbot/core/gerrit/gerrittest"
)

// benchStream runs a stream from s to p until stop is called (or the
// benchmark ends).
func benchStream(b *testing.B, s *gerrittest.Server, p *gerrit.Poller) (stop func()) {
	b.Helper()
	if s.SSHAddr() == "" {
		if _, err := s.StartSSH(gerrittest.SSHOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	files, err := s.WriteSSHClientFiles(b.TempDir(), botUser)
	if err != nil {
		b.Fatal(err)
	}
	st, err := gerrit.NewStream(p, gerrit.StreamOptions{
		Address: s.SSHAddr(), Username: botUser, PrivateKeyFile: files.PrivateKeyFile, KnownHostsFile: files.KnownHostsFile,
		Settle: 50 * time.Millisecond, Logger: quietLogger(),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { st.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	b.Cleanup(stop)
	return stop
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p)
	return sorted[i]
}

// BenchmarkStreamUploadToHandler measures the time from a patch set upload
// to the poller handing the change to its handler, when only the stream
// can explain it: the poll interval is 10 minutes. The test server holds
// 1,000 open changes. Each op is 50 uploads; p50 and p99 are over all
// uploads of the run (the goal: p50 under 0.3s, p99 under 1s).
func BenchmarkStreamUploadToHandler(b *testing.B) {
	const perOp = 50
	s := busyServer(b, 1000, nil)
	cycles := make(chan string, 16)
	p := gerrit.NewPoller(benchClient(b, s), gerrit.PollOptions{
		Projects: []gerrit.ProjectFilter{{Name: "wiki"}}, Interval: 10 * time.Minute, Logger: quietLogger(),
		OnCycle: func(reason string, _ time.Duration, _ error) { cycles <- reason },
	})
	seen := make(chan gerrit.Change, 1024)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		p.Run(ctx, func(ctx context.Context, c gerrit.Change) error {
			select {
			case seen <- c:
			default: // the catch-up at start: nobody listens yet
			}
			return nil
		})
		close(done)
	}()
	defer func() { cancel(); <-done }()
	benchStream(b, s, p)
	for r := range cycles { // the first poll, then the reconcile after connecting
		if r == "connected" {
			break
		}
	}
	for len(seen) > 0 {
		<-seen
	}
	s.ResetRequests()
	var lat []time.Duration
	uploads := 0
	for b.Loop() {
		for range perOp {
			target := uploads%1000 + 1
			uploads++
			start := time.Now()
			ps, _ := s.UploadPatchSet(target, "alice", "")
			timeout := time.After(10 * time.Second)
		wait:
			for {
				select {
				case c := <-seen:
					if c.Number == target && c.PatchSet == ps {
						lat = append(lat, time.Since(start))
						break wait
					}
				case <-timeout:
					b.Fatalf("upload %d (change %d) not handed over within 10s", uploads, target)
				}
			}
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(s.Requests())/float64(uploads), "rest-req/upload")
}

// BenchmarkIdleRESTRequestsPerHour counts the REST requests an idle
// ductbot makes in one hour, 1,000 open changes on the server: with the
// stream (poll_interval 5m, its default then: the reconcile) and, for
// comparison, polling alone at the 30s default. The hour is simulated: the
// poller's clock and waits jump ahead once the stream is connected and its
// reconcile done; the stream and its keepalives run for real. Each op is
// one simulated hour with a new poller.
func BenchmarkIdleRESTRequestsPerHour(b *testing.B) {
	// The changes were updated a minute apart, the last ten minutes ago,
	// as on a server where nothing is happening right now.
	clk := newClock(time.Now().Add(-1010 * time.Minute))
	s := busyServer(b, 1000, clk)
	clk.FollowRealTime()
	if _, err := s.StartSSH(gerrittest.SSHOptions{}); err != nil {
		b.Fatal(err)
	}
	for _, mode := range []struct {
		name     string
		interval time.Duration
		stream   bool
	}{
		{"stream-poll-5m", 5 * time.Minute, true},
		{"poll-30s", 30 * time.Second, false},
	} {
		b.Run(mode.name, func(b *testing.B) {
			var total int64
			for b.Loop() {
				total += idleHour(b, s, mode.interval, mode.stream)
			}
			b.ReportMetric(float64(total)/float64(b.N), "rest-req/hour")
		})
	}
}

// idleHour runs a poller (and a stream) on s for one simulated idle hour
// and returns the REST requests made in it.
func idleHour(b *testing.B, s *gerrittest.Server, interval time.Duration, stream bool) int64 {
	clk := newClock(time.Now())
	clk.FollowRealTime() // until the hour starts, then it jumps
	ready := make(chan struct{})
	gate := make(chan struct{})
	var readyOnce sync.Once
	p := gerrit.NewPoller(benchClient(b, s), gerrit.PollOptions{
		Projects: []gerrit.ProjectFilter{{Name: "wiki"}}, Interval: interval, Now: clk.Now, Logger: quietLogger(),
		ReconcileGap: 10 * time.Millisecond,
		OnCycle: func(reason string, _ time.Duration, _ error) {
			if !stream || reason == "connected" {
				readyOnce.Do(func() { close(ready) })
			}
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var end time.Time
	gerrit.SetPollerClock(p, clk.Now, func(sctx context.Context, d time.Duration) error {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-gate:
		case <-t.C:
			return nil
		case <-sctx.Done():
			return sctx.Err()
		}
		clk.Advance(d)
		if !clk.Now().Before(end) {
			cancel()
		}
		return sctx.Err()
	})
	done := make(chan struct{})
	go func() { p.Run(ctx, func(context.Context, gerrit.Change) error { return nil }); close(done) }()
	if stream {
		defer benchStream(b, s, p)()
	}
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		b.Fatal("the poller did not get ready")
	}
	s.ResetRequests()
	end = clk.Now().Add(time.Hour)
	close(gate)
	<-done
	if got := clk.Now().Sub(end); got < 0 || got > interval {
		b.Fatalf("simulated %s past the hour", got)
	}
	return s.Requests()
}
