package cleanup

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/ductbot/ductbot/config"

	"github.com/robfig/cron/v3"
)

// DefaultSchedule is the cleanup schedule when config names none.
const DefaultSchedule = "@every 10m"

// Schedule starts a cron that runs s.Sweep(ctx, "cron") on spec, and
// returns it; Stop it to end (Stop's context is done when a running sweep
// has finished). A sweep still running when the next is due is not started
// twice, and a panic in one is logged, not fatal. A bad spec is an error
// (see config.ValidateSchedule). Errors of a sweep are logged.
func Schedule(spec string, s *Sweeper, logger *slog.Logger) (*cron.Cron, error) {
	if err := config.ValidateSchedule(spec); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	l := cronLogger{logger.With("component", "cleanup-cron")}
	c := cron.New(cron.WithLogger(l), cron.WithChain(cron.Recover(l), cron.SkipIfStillRunning(l)))
	_, err := c.AddFunc(spec, func() {
		if _, err := s.Sweep(context.Background(), "cron"); err != nil {
			l.log.Error("scheduled cleanup sweep incomplete", "err", err)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("scheduling cleanup %q: %w", spec, err)
	}
	c.Start()
	return c, nil
}

// cronLogger adapts slog to cron.Logger. Cron's routine messages (wake,
// run, skip) are debug-level.
type cronLogger struct{ log *slog.Logger }

func (c cronLogger) Info(msg string, keysAndValues ...any) { c.log.Debug(msg, keysAndValues...) }

func (c cronLogger) Error(err error, msg string, keysAndValues ...any) {
	c.log.Error(msg, append(keysAndValues, "err", err)...)
}
