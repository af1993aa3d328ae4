package app

import (
	"context"
	"fmt"

	"github.com/robfig/cron/v3"

	"github.com/ductbot/ductbot/bot/adapters"
	"github.com/ductbot/ductbot/config"
	"github.com/ductbot/ductbot/core/pipeline/cleanup"
)

// sweepSchedule is the cleanup sweep and the cron that runs it.
type sweepSchedule struct {
	sweeper *cleanup.Sweeper
	spec    string
	app     *App
	cron    *cron.Cron
}

// newSweepSchedule builds the sweep from cleanup.*, tearing environments
// down through the engine; start schedules it. Chat's !sweep runs the same
// sweeper through pipeline.Service.
func newSweepSchedule(a *App, announcer *adapters.Announcer) (*sweepSchedule, error) {
	cc := a.cfg.Cleanup
	var channels []string
	for _, p := range a.cfg.Projects {
		channels = append(channels, p.Channels...)
	}
	s := cleanup.New(cleanup.Options{
		Store: a.store, Gerrit: a.gerrit, Cluster: a.cluster, Destroyer: a.engine, Announcer: announcer,
		Channels: dedupe(channels), Metrics: a.metrics, Logger: a.log,
		Policy: cleanup.Policy{
			Merged: config.On(cc.Merged), Abandoned: config.On(cc.Abandoned), MergedGrace: cc.MergedGrace.D(),
			TTL: config.On(cc.TTL), Idle: config.On(cc.Idle), IdleAfter: cc.IdleAfter.D(),
			Orphans: config.On(cc.Orphans), OrphanGrace: cc.OrphanGrace.D(),
			StuckAfter: a.cfg.Kubernetes.DeployTimeout.D(), LogsRetention: cc.LogsRetention.D(),
			Protected: cc.Protected, DryRun: cc.DryRun, TeardownTimeout: a.cfg.Kubernetes.DeployTimeout.D(),
		},
	})
	return &sweepSchedule{sweeper: s, spec: cc.Schedule, app: a}, nil
}

func (s *sweepSchedule) start() {
	c, err := cleanup.Schedule(s.spec, s.sweeper, s.app.log)
	if err != nil {
		// Validated with the configuration; reaching this is a bug.
		s.app.log.Error("cleanup schedule not started", "err", err)
		return
	}
	s.cron = c
}

func (s *sweepSchedule) stop() {
	if s.cron != nil {
		<-s.cron.Stop().Done()
	}
}

// runOnce runs one sweep now (ductbot sweep).
func (s *sweepSchedule) runOnce(ctx context.Context) error {
	sum, err := s.sweeper.Sweep(ctx, "command line")
	for _, r := range sum.Removed {
		fmt.Printf("removed  %-40s %-9s %s\n", r.Env, r.Policy, r.Reason)
	}
	for _, r := range sum.Skipped {
		fmt.Printf("skipped  %-40s %-9s %s\n", r.Env, r.Policy, r.Reason)
	}
	for _, r := range sum.Repaired {
		fmt.Printf("repaired %s\n", r)
	}
	if sum.DryRun {
		fmt.Println("(dry run: nothing was changed)")
	}
	return err
}

func dedupe(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
