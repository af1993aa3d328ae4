package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ductbot/ductbot/core/gerrit"
	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/core/store"
)

// depsFor fetches every change the root's Depends-On footers reach (a
// breadth-first walk, one query per round for the Change-Ids and one for
// the URLs), resolves whom to trust, and asks ResolveDeps. Change-Ids are
// looked up only in the configured projects. chatVouch says a chat user
// who may vouch asked for the root (!env).
func (e *Engine) depsFor(ctx context.Context, root *gerrit.Change, chatVouch bool) (DepsPlan, error) {
	in := DepsInput{
		Root: root, ChatVouch: chatVouch, ByChangeID: map[string][]*gerrit.Change{}, ByNumber: map[int]*gerrit.Change{},
		GerritURL: e.cfg.Gerrit.URL,
		ComponentOf: func(c *gerrit.Change) (string, bool) {
			p, ok := e.projectFor(c)
			return p.Component, ok
		},
	}
	askedIDs, askedNums := map[string]bool{}, map[int]bool{}
	followed := map[int]bool{root.Number: true}
	var found []*gerrit.Change
	frontier := []*gerrit.Change{root}
	for len(frontier) > 0 && len(followed) <= MaxDeps+1 {
		var ids []string
		var nums []int
		for _, c := range frontier {
			footers, _ := ParseDependsOn(c.CommitMessage, in.GerritURL)
			for _, f := range footers {
				switch {
				case f.ChangeID != "" && !askedIDs[f.ChangeID]:
					askedIDs[f.ChangeID] = true
					ids = append(ids, f.ChangeID)
				case f.Number != 0 && !askedNums[f.Number]:
					askedNums[f.Number] = true
					nums = append(nums, f.Number)
				}
			}
		}
		frontier = nil
		var round []gerrit.Change
		for _, q := range []gerrit.Query{
			{Scopes: e.projectNames(), ChangeIDs: ids, Messages: true},
			{Numbers: nums, Messages: true},
		} {
			if len(q.ChangeIDs)+len(q.Numbers) == 0 {
				continue
			}
			got, err := e.gerrit.Query(ctx, q)
			if err != nil {
				return DepsPlan{}, err
			}
			round = append(round, got...)
		}
		for i := range round {
			c := &round[i]
			if slices.Contains(ids, c.ChangeID) {
				in.ByChangeID[c.ChangeID] = append(in.ByChangeID[c.ChangeID], c)
			}
			if slices.Contains(nums, c.Number) {
				in.ByNumber[c.Number] = c
			}
			if !followed[c.Number] && c.Open() {
				followed[c.Number] = true
				found = append(found, c)
				frontier = append(frontier, c)
			}
		}
	}
	// Trust, resolved before deciding, as for the change itself.
	uploader, vouched := map[int]bool{}, map[int]bool{}
	for _, c := range found {
		proj, ok := e.projectFor(c)
		if !ok || c.Private {
			continue
		}
		up, rechecks, err := e.changeTrust(ctx, proj.Trusted, c)
		if err != nil {
			return DepsPlan{}, err
		}
		uploader[c.Number] = up
		for _, ok := range rechecks {
			vouched[c.Number] = vouched[c.Number] || ok
		}
	}
	in.UploaderTrusted = func(c *gerrit.Change) bool { return uploader[c.Number] }
	in.RecheckVouched = func(c *gerrit.Change) bool { return vouched[c.Number] }
	return ResolveDeps(in), nil
}

// projectNames scopes a query to the configured projects, on any branch.
func (e *Engine) projectNames() []gerrit.ProjectFilter {
	out := make([]gerrit.ProjectFilter, len(e.cfg.Projects))
	for i, p := range e.cfg.Projects {
		out[i] = gerrit.ProjectFilter{Name: p.Name}
	}
	return out
}

// depsNotice tells the change why its patch set was not deployed: what its
// Depends-On footers name that cannot be deployed. It says it once per
// patch set: a message of ductbot's own with the same text on that patch
// set means it was said.
func (e *Engine) depsNotice(ctx context.Context, ch *gerrit.Change, plan DepsPlan) error {
	var b strings.Builder
	fmt.Fprintf(&b, "ductbot did not deploy patch set %d: what its Depends-On footers name cannot be deployed with it.\n", ch.PatchSet)
	for _, p := range plan.Problems {
		fmt.Fprintf(&b, "\n- %s", p)
	}
	msg := b.String()
	e.log.Info("not deploying: Depends-On cannot be followed", "change", ch.Number, "patchset", ch.PatchSet, "problems", strings.Join(plan.Problems, "; "))
	if e.cfg.Gerrit.DryRun || saidAlready(ch, e.self, msg) {
		return nil
	}
	err := e.gerrit.PostReview(ctx, ch.Project, ch.Number, ch.CurrentRevision, gerrit.Review{Message: msg, Tag: ReviewTag, Notify: gerrit.NotifyOwner})
	if err != nil && !isFinalGerritError(err) {
		return fmt.Errorf("posting why change %d's Depends-On cannot be followed: %w", ch.Number, err)
	}
	return nil
}

// saidAlready reports whether ductbot's own account posted text on the
// change's current patch set (Gerrit prefixes "Patch Set N:" to it).
func saidAlready(ch *gerrit.Change, self *gerrit.Account, text string) bool {
	return postedBySelf(ch.Messages, self, func(m gerrit.Message) bool {
		return m.PatchSet == ch.PatchSet && strings.Contains(m.Text, strings.TrimSpace(text))
	})
}

// rerunDependents queues a new run of each open change whose Depends-On
// footers reach ch, now that ch has a new patch set (or a vouch): the
// dependent's environment is redeployed with ch's current patch set, and
// its older unfinished run is superseded, so only the newest combination
// is voted. Only a dependent whose current patch set passed the trust gate
// when it was triggered (by upload or recheck) reruns.
//
// It is best effort: a dependent that cannot be rerun now is logged; its
// next patch set, or a "recheck", runs it with what its footers name then.
func (e *Engine) rerunDependents(ctx context.Context, ch *gerrit.Change) {
	nums, err := e.store.Dependents(ctx, ch.Number)
	if err != nil {
		e.log.Error("listing the changes that depend on a change", "change", ch.Number, "err", err)
		return
	}
	nums = slices.DeleteFunc(nums, func(n int) bool { return n == ch.Number })
	if len(nums) == 0 {
		return
	}
	deps, err := e.gerrit.Query(ctx, gerrit.Query{Numbers: nums, Messages: true})
	if err != nil {
		e.log.Warn("reading the changes that depend on a change; they are not rerun", "change", ch.Number, "dependents", nums, "err", err)
		return
	}
	by := fmt.Sprintf("change %d patch set %d", ch.Number, ch.PatchSet)
	for i := range deps {
		d := &deps[i]
		if _, configured := e.projectFor(d); !configured || !slices.Contains(nums, d.Number) {
			continue
		}
		cur, err := e.store.ChangeCursor(ctx, d.Number)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			e.log.Error("reading a dependent's cursor", "change", d.Number, "err", err)
			continue
		}
		if e.hasRunWith(ctx, d, ch) {
			continue // its newest run has this patch set of ch already
		}
		gate := GateInput{Path: PathRerun, Change: d, Configured: true, Deployed: cur.Triggered == d.PatchSet, Prefix: e.cfg.Chat.Prefix}
		if r := Gate(gate); r != nil {
			e.log.Info("not rerunning a dependent", "change", d.Number, "dependency", ch.Number, "why", r.Reason)
			continue
		}
		e.log.Info("rerunning a dependent for its dependency's new patch set", "change", d.Number, "patchset", d.PatchSet, "dependency", by)
		if err := e.deployPatchSet(ctx, d, run.TriggerDependency, by); err != nil {
			e.log.Warn("rerunning a dependent", "change", d.Number, "dependency", by, "err", err)
		}
	}
}

// hasRunWith reports whether the newest run of the dependent's own
// environment is of its current patch set and deploys dep's current
// revision: then a rerun would deploy the same thing again.
func (e *Engine) hasRunWith(ctx context.Context, dependent, dep *gerrit.Change) bool {
	runs, err := e.store.ListRuns(ctx, store.RunFilter{Env: run.PatchEnvName(dependent.Number), Limit: 1})
	if err != nil || len(runs) == 0 {
		return false
	}
	r := runs[0]
	return r.PatchSet == dependent.PatchSet && r.Result != run.ResultCanceled &&
		slices.ContainsFunc(r.Deps, func(d run.Dep) bool { return d.Change == dep.Number && d.Revision == dep.CurrentRevision })
}
