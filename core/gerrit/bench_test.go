package gerrit_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ductbot/ductbot/core/gerrit"
	"github.com/ductbot/ductbot/core/gerrit/gerrittest"
)

// busyServer returns a test Gerrit holding n open changes whose updates are
// spread one minute apart, ending at the clock's current time, as on a
// server with a long-lived backlog.
func busyServer(b *testing.B, n int, clk *clock) *gerrittest.Server {
	b.Helper()
	o := gerrittest.Options{Username: botUser, Password: botPass}
	if clk != nil {
		o.Now = clk.Now
	}
	s := gerrittest.NewWithOptions(o)
	b.Cleanup(s.Close)
	for i := range n {
		s.CreateChange("wiki", "main", fmt.Sprintf("change %d", i), "alice")
		if clk != nil {
			clk.Advance(time.Minute)
		}
	}
	return s
}

func benchClient(b *testing.B, s *gerrittest.Server) *gerrit.Client {
	b.Helper()
	c, err := gerrit.New(gerrit.Options{URL: s.URL(), Username: botUser, Password: botPass, Backoff: time.Millisecond, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkIdlePoll measures what one poll cycle costs Gerrit when nothing
// changed, with 10,000 open changes on the server.
func BenchmarkIdlePoll(b *testing.B) {
	clk := newClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s := busyServer(b, 10000, clk)
	p := gerrit.NewPoller(benchClient(b, s), gerrit.PollOptions{Projects: []gerrit.ProjectFilter{{Name: "wiki"}}, Now: clk.Now, Logger: quietLogger()})
	ctx := context.Background()
	if _, err := p.Poll(ctx); err != nil { // the first poll catches up
		b.Fatal(err)
	}
	s.ResetRequests()
	polls, changes := 0, 0
	for b.Loop() {
		got, err := p.Poll(ctx)
		if err != nil {
			b.Fatal(err)
		}
		polls++
		changes += len(got)
	}
	b.ReportMetric(float64(s.Requests())/float64(polls), "requests/op")
	b.ReportMetric(float64(changes)/float64(polls), "changes/op")
}

// BenchmarkUploadToSeen measures the time from a patch set upload to a
// running poller (1ms interval) handing it over, with 1,000 open changes
// updated over the last days. Gerrit's clock jumps past the poll overlap
// before each upload, as on a server where uploads are minutes apart;
// without that, every change uploaded in the benchmark's last two minutes
// would be delivered again on every poll.
func BenchmarkUploadToSeen(b *testing.B) {
	clk := newClock(time.Now().Add(-1000 * time.Minute))
	s := busyServer(b, 1000, clk)
	clk.FollowRealTime()
	p := gerrit.NewPoller(benchClient(b, s), gerrit.PollOptions{
		Projects: []gerrit.ProjectFilter{{Name: "wiki"}}, Interval: time.Millisecond, Logger: quietLogger(),
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := make(chan gerrit.Change, 1024)
	done := make(chan error, 1)
	go func() {
		done <- p.Run(ctx, func(ctx context.Context, c gerrit.Change) error {
			select {
			case seen <- c:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	s.ResetRequests()
	uploads := 0
	for b.Loop() {
		target := uploads%1000 + 1 // spread uploads so no change grows huge
		uploads++
		clk.Advance(gerrit.DefaultOverlap + time.Second)
		ps, _ := s.UploadPatchSet(target, "alice", "")
		for c := range seen {
			if c.Number == target && c.PatchSet == ps {
				break
			}
		}
	}
	b.ReportMetric(float64(s.Requests())/float64(uploads), "requests/op")
	cancel()
	<-done
}
