package cleanup_test

import (
	"testing"
	"time"

	"github.com/ductbot/ductbot/core/gerrit"
	"github.com/ductbot/ductbot/core/pipeline/cleanup"
	"github.com/ductbot/ductbot/core/run"
)

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func ago(d time.Duration) time.Time { return now.Add(-d) }

const day = 24 * time.Hour

func TestDecide(t *testing.T) {
	all := cleanup.DefaultPolicy()
	with := func(f func(*cleanup.Policy)) cleanup.Policy { p := all; f(&p); return p }
	patch := func(f func(*run.Env)) *run.Env {
		e := &run.Env{Name: "c123", Kind: run.EnvPatch, Change: 123, Status: run.EnvReady,
			CreatedAt: ago(20 * day), ActiveAt: ago(time.Hour)}
		if f != nil {
			f(e)
		}
		return e
	}
	custom := func(f func(*run.Env)) *run.Env {
		e := patch(f)
		e.Name, e.Kind = "c123-abcd", run.EnvCustom
		return e
	}
	open := cleanup.ChangeState{Known: true, Status: gerrit.StatusNew, Updated: ago(time.Hour)}
	merged := cleanup.ChangeState{Known: true, Status: gerrit.StatusMerged, Updated: ago(2 * time.Hour)}
	abandoned := cleanup.ChangeState{Known: true, Status: gerrit.StatusAbandoned, Updated: ago(2 * time.Hour)}
	unknown := cleanup.ChangeState{}

	tests := []struct {
		name   string
		env    *run.Env
		ch     cleanup.ChangeState
		p      cleanup.Policy
		remove bool
		skip   bool
		policy string
	}{
		{name: "open and active: kept", env: patch(nil), ch: open, p: all},
		{name: "merged: removed at once", env: patch(nil), ch: merged, p: all, remove: true, policy: "merged"},
		{name: "merged within the grace: kept", env: patch(nil), ch: merged,
			p: with(func(p *cleanup.Policy) { p.MergedGrace = 3 * time.Hour })},
		{name: "merged past the grace: removed", env: patch(nil), ch: merged,
			p: with(func(p *cleanup.Policy) { p.MergedGrace = time.Hour }), remove: true, policy: "merged"},
		{name: "merged, policy off: kept", env: patch(nil), ch: merged,
			p: with(func(p *cleanup.Policy) { p.Merged = false })},
		{name: "abandoned: removed", env: patch(nil), ch: abandoned, p: all, remove: true, policy: "abandoned"},
		{name: "abandoned, only merged policy on: kept", env: patch(nil), ch: abandoned,
			p: with(func(p *cleanup.Policy) { p.Abandoned = false })},
		{name: "custom env of a merged change: removed", env: custom(nil), ch: merged, p: all, remove: true, policy: "merged"},

		{name: "unknown change: skipped, never read as merged", env: patch(nil), ch: unknown, p: all, skip: true, policy: "merged/abandoned"},
		{name: "unknown, only abandoned on: skipped", env: patch(nil), ch: unknown,
			p: with(func(p *cleanup.Policy) { p.Merged = false }), skip: true, policy: "abandoned"},
		{name: "unknown, closed policies off, not idle: nothing needed", env: patch(nil), ch: unknown,
			p: with(func(p *cleanup.Policy) { p.Merged, p.Abandoned = false, false })},
		{name: "unknown, closed policies off, idle by the record: skipped", env: patch(func(e *run.Env) { e.ActiveAt = ago(15 * day) }), ch: unknown,
			p: with(func(p *cleanup.Policy) { p.Merged, p.Abandoned = false, false }), skip: true, policy: "idle"},
		{name: "unknown but TTL expired: removed without Gerrit", env: custom(func(e *run.Env) { e.ExpiresAt = ago(time.Minute) }), ch: unknown,
			p: all, remove: true, policy: "ttl"},

		{name: "TTL expired exactly now: removed", env: custom(func(e *run.Env) { e.ExpiresAt = now }), ch: open, p: all, remove: true, policy: "ttl"},
		{name: "TTL in the future: kept", env: custom(func(e *run.Env) { e.ExpiresAt = now.Add(time.Minute) }), ch: open, p: all},
		{name: "TTL expired, policy off: kept", env: custom(func(e *run.Env) { e.ExpiresAt = ago(day) }), ch: open,
			p: with(func(p *cleanup.Policy) { p.TTL = false })},
		{name: "no change, no TTL: kept", env: custom(func(e *run.Env) { e.Change = 0 }), ch: unknown, p: all},

		{name: "idle 15 days: removed", env: patch(func(e *run.Env) { e.ActiveAt = ago(15 * day) }),
			ch: cleanup.ChangeState{Known: true, Status: gerrit.StatusNew, Updated: ago(15 * day)}, p: all, remove: true, policy: "idle"},
		{name: "idle by the record but a comment in Gerrit yesterday: kept", env: patch(func(e *run.Env) { e.ActiveAt = ago(15 * day) }),
			ch: cleanup.ChangeState{Known: true, Status: gerrit.StatusNew, Updated: ago(day)}, p: all},
		{name: "idle 13 days: kept", env: patch(func(e *run.Env) { e.ActiveAt = ago(13 * day) }),
			ch: cleanup.ChangeState{Known: true, Status: gerrit.StatusNew, Updated: ago(13 * day)}, p: all},
		{name: "idle with IdleAfter 0 uses the 14-day default", env: patch(func(e *run.Env) { e.ActiveAt = ago(14 * day) }),
			ch: cleanup.ChangeState{Known: true, Status: gerrit.StatusNew, Updated: ago(20 * day)},
			p:  with(func(p *cleanup.Policy) { p.IdleAfter = 0 }), remove: true, policy: "idle"},
		{name: "no ActiveAt: idle since creation", env: patch(func(e *run.Env) { e.ActiveAt = time.Time{} }),
			ch: cleanup.ChangeState{Known: true, Status: gerrit.StatusNew, Updated: ago(20 * day)}, p: all, remove: true, policy: "idle"},
		{name: "idle custom env: kept (custom envs have TTLs)", env: custom(func(e *run.Env) { e.ActiveAt = ago(30 * day) }),
			ch: cleanup.ChangeState{Known: true, Status: gerrit.StatusNew, Updated: ago(30 * day)}, p: all},
		{name: "idle, policy off: kept", env: patch(func(e *run.Env) { e.ActiveAt = ago(30 * day) }),
			ch: cleanup.ChangeState{Known: true, Status: gerrit.StatusNew, Updated: ago(30 * day)},
			p:  with(func(p *cleanup.Policy) { p.Idle = false })},
		{name: "merged policy off, merged long ago and idle: removed as idle", env: patch(func(e *run.Env) { e.ActiveAt = ago(30 * day) }),
			ch: cleanup.ChangeState{Known: true, Status: gerrit.StatusMerged, Updated: ago(30 * day)},
			p:  with(func(p *cleanup.Policy) { p.Merged = false }), remove: true, policy: "idle"},

		{name: "protected flag beats merged", env: patch(func(e *run.Env) { e.Protected = true }), ch: merged, p: all},
		{name: "protected by config beats TTL", env: custom(func(e *run.Env) { e.ExpiresAt = ago(day) }), ch: open,
			p: with(func(p *cleanup.Policy) { p.Protected = []string{"c123-abcd"} })},
		{name: "protected and unknown: not even skipped", env: patch(func(e *run.Env) { e.Protected = true }), ch: unknown, p: all},
		{name: "tearing-down: finished, even when protected and Gerrit is down", env: patch(func(e *run.Env) {
			e.Status, e.Protected = run.EnvTearingDown, true
		}), ch: unknown, p: all, remove: true, policy: "resume"},
		{name: "tearing-down with every policy off: finished", env: patch(func(e *run.Env) { e.Status = run.EnvTearingDown }), ch: open,
			p: cleanup.Policy{}, remove: true, policy: "resume"},
		{name: "gone: nothing", env: patch(func(e *run.Env) { e.Status = run.EnvGone }), ch: merged, p: all},
		{name: "every policy off: kept", env: custom(func(e *run.Env) { e.ExpiresAt = ago(day) }), ch: merged, p: cleanup.Policy{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := cleanup.Decide(now, tt.env, tt.ch, tt.p)
			if d.Remove != tt.remove || d.Skip != tt.skip || (tt.remove || tt.skip) && d.Policy != tt.policy {
				t.Errorf("Decide = %+v, want remove=%v skip=%v policy=%q", d, tt.remove, tt.skip, tt.policy)
			}
			if d.Remove && d.Skip {
				t.Errorf("Decide = %+v: remove and skip at once", d)
			}
			if (d.Remove || d.Skip) && d.Reason == "" {
				t.Errorf("Decide = %+v: no reason given", d)
			}
		})
	}
}
