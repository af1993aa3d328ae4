package pipeline_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ductbot/ductbot/core/gerrit"
	"github.com/ductbot/ductbot/core/pipeline"
	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/core/store"
)

func changeID(n int) string { return fmt.Sprintf("I%040x", n) }

// put makes patch set ps of change n current in project, uploaded by up,
// with the footers given, and hands it to the engine as the watcher would.
func (r *rig) put(n, ps int, project string, up gerrit.Account, footers ...string) *gerrit.Change {
	r.t.Helper()
	msg := fmt.Sprintf("Change %d\n\n", n)
	for _, f := range footers {
		msg += f + "\n"
	}
	ch := &gerrit.Change{
		Project: project, Branch: "main", Number: n, ChangeID: changeID(n), Status: gerrit.StatusNew, Subject: fmt.Sprintf("Change %d", n),
		PatchSet: ps, CurrentRevision: fmt.Sprintf("rev%d-%d", n, ps), Uploader: up, Owner: up,
		CommitMessage: msg + "Change-Id: " + changeID(n) + "\n",
	}
	if old, err := r.gerrit.Change(context.Background(), "", n); err == nil {
		ch.Messages = old.Messages
	}
	r.gerrit.put(ch)
	r.handle(n)
	return ch
}

// handle hands change n, as the fake Gerrit has it now, to the engine.
func (r *rig) handle(n int) {
	r.t.Helper()
	ch, err := r.gerrit.Change(context.Background(), "", n)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.engine.HandleChange(context.Background(), *ch); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) reviewsOn(n int) []review {
	r.gerrit.mu.Lock()
	defer r.gerrit.mu.Unlock()
	var out []review
	for _, rv := range r.gerrit.reviews {
		if rv.change == n {
			out = append(out, rv)
		}
	}
	return out
}

// B (orchestrator) names A (wiki) in a Depends-On footer: B's environment
// runs A's patch set for wiki, its vote lists A, and each new patch set of
// A reruns B, superseding B's unfinished run so that only the newest
// combination is voted.
func TestDependsOnRunsTheDependencyAndRerunsOnItsNewPatchSet(t *testing.T) {
	r := newRig(t, 0, "")
	r.start()
	r.put(10, 1, "wiki", alice)
	r.put(20, 1, "svc/orchestrator", alice, "Depends-On: "+changeID(10))

	runs := r.runs(store.RunFilter{Change: 20})
	if len(runs) != 1 {
		t.Fatalf("B's runs = %d, want 1", len(runs))
	}
	b1 := runs[0]
	if b1.Matrix["wiki"] != "rev10-1" || b1.Matrix["orchestrator"] != "rev20-1" {
		t.Errorf("B's matrix = %v, want wiki at A's revision rev10-1 and orchestrator at rev20-1", b1.Matrix)
	}
	if got := pipelineFormatDeps(b1.Deps); got != "change 10 patch set 1 (wiki)" {
		t.Errorf("B's deps = %q", got)
	}
	r.waitFor("B's first run", func() bool { return r.finished(b1.ID) })
	r.waitFor("B's vote", func() bool { return len(r.reviewsOn(20)) == 1 })
	if msg := r.reviewsOn(20)[0].Message; !strings.Contains(msg, "Depends-On: change 10 patch set 1 (wiki)\n") {
		t.Errorf("B's vote does not list A:\n%s", msg)
	}

	// A gets patch sets 2 and 3 while B's rerun for 2 is still deploying.
	release := r.cluster.holdDeploys(run.PatchEnvName(20))
	defer release()
	r.put(10, 2, "wiki", alice)
	var b2 *run.Run
	r.waitFor("B's rerun for A's patch set 2", func() bool {
		runs := r.runs(store.RunFilter{Change: 20})
		if len(runs) < 2 {
			return false
		}
		b2 = runs[0]
		return b2.State == run.StateDeploying
	})
	if b2.Trigger != run.TriggerDependency || b2.RequestedBy != "change 10 patch set 2" || b2.PatchSet != 1 || b2.Matrix["wiki"] != "rev10-2" {
		t.Errorf("B's rerun = trigger %q by %q, patch set %d, matrix %v; want a dependency rerun of patch set 1 with wiki at rev10-2", b2.Trigger, b2.RequestedBy, b2.PatchSet, b2.Matrix)
	}
	r.put(10, 3, "wiki", alice)
	release()
	runs = r.runs(store.RunFilter{Change: 20})
	if len(runs) != 3 {
		t.Fatalf("B's runs = %d, want 3", len(runs))
	}
	b3 := runs[0]
	r.waitFor("B's run for A's patch set 3", func() bool { return r.finished(b3.ID) })
	if got, _ := r.store.GetRun(context.Background(), b2.ID); got.Result != run.ResultSuperseded {
		t.Errorf("B's rerun for A's patch set 2 ended %q, want superseded", got.Result)
	}
	r.waitFor("B's second vote", func() bool { return len(r.reviewsOn(20)) == 2 })
	time.Sleep(100 * time.Millisecond)
	votes := r.reviewsOn(20)
	if len(votes) != 2 || !strings.Contains(votes[1].Message, "Depends-On: change 10 patch set 3 (wiki)") {
		t.Errorf("B's reviews = %d, want 2, the second listing A's patch set 3: %+v", len(votes), votes)
	}

	// A's redelivered change reruns nothing.
	r.handle(10)
	if n := len(r.runs(store.RunFilter{Change: 20})); n != 3 {
		t.Errorf("after A was delivered again: B's runs = %d, want still 3", n)
	}
}

// An abandoned dependency: one comment on the dependent, and no run.
func TestDependsOnAbandonedDependency(t *testing.T) {
	r := newRig(t, 0, "")
	r.start()
	a := r.put(10, 1, "wiki", alice)
	a.Status = gerrit.StatusAbandoned
	r.gerrit.put(a)
	r.put(20, 1, "svc/orchestrator", alice, "Depends-On: "+changeID(10))
	r.handle(20) // delivered again
	if runs := r.runs(store.RunFilter{Change: 20}); len(runs) != 0 {
		t.Errorf("B's runs = %d, want none", len(runs))
	}
	got := r.reviewsOn(20)
	if len(got) != 1 || len(got[0].Labels) != 0 || !strings.Contains(got[0].Message, "change 10 (named in change 20's Depends-On: "+changeID(10)+") is abandoned") {
		t.Fatalf("B's reviews = %+v, want one comment without a vote naming the abandoned change 10", got)
	}
}

// An untrusted dependency is not deployed and the dependent is told how
// to vouch; a trusted "recheck" on the dependency then runs the dependent.
func TestDependsOnUntrustedDependency(t *testing.T) {
	r := newRig(t, 0, "")
	r.start()
	r.put(10, 1, "wiki", mallory)
	r.put(20, 1, "svc/orchestrator", alice, "Depends-On: "+changeID(10))
	if runs := r.runs(store.RunFilter{Change: 20}); len(runs) != 0 {
		t.Fatalf("B's runs = %d, want none while A is not vouched for", len(runs))
	}
	got := r.reviewsOn(20)
	if len(got) != 1 || !strings.Contains(got[0].Message, `was uploaded by someone not on the trusted list; it deploys once a trusted reviewer comments "recheck" on change 10 patch set 1`) {
		t.Fatalf("B's reviews = %+v, want one comment saying how to vouch for change 10", got)
	}

	a, _ := r.gerrit.Change(context.Background(), "", 10)
	a.Messages = append(a.Messages, gerrit.Message{ID: "m1", Author: alice, PatchSet: 1, Date: time.Now().UTC(), Text: "Patch Set 1:\n\nrecheck"})
	r.gerrit.put(a)
	r.handle(10)
	r.waitFor("B runs with A vouched for", func() bool { return len(r.runs(store.RunFilter{Change: 20})) == 1 })
	b := r.runs(store.RunFilter{Change: 20})[0]
	if b.Matrix["wiki"] != "rev10-1" || b.Trigger != run.TriggerDependency {
		t.Errorf("B's run = matrix %v trigger %q, want wiki at rev10-1 by a dependency rerun", b.Matrix, b.Trigger)
	}
}

var pipelineFormatDeps = run.FormatDeps

// !env of a change brings what its Depends-On footers name, as its own
// environment does; a component named in the request wins; an untrusted
// dependency needs an asker who may vouch.
func TestDependsOnThroughEnvRequest(t *testing.T) {
	r := newRig(t, 0, "")
	r.build()
	ctx := context.Background()
	r.put(10, 1, "wiki", mallory)
	r.put(20, 1, "svc/orchestrator", alice, "Depends-On: "+changeID(10))

	_, err := r.service.RequestEnv(ctx, pipeline.EnvRequest{Change: 20, By: "irc:bob"})
	if err == nil || !strings.Contains(err.Error(), "change 20: what its Depends-On footers name cannot be deployed: change 10 (named in change 20's") {
		t.Fatalf("!env 20 by someone who may not vouch: %v, want a refusal naming change 10", err)
	}
	tk, err := r.service.RequestEnv(ctx, pipeline.EnvRequest{Change: 20, By: "irc:vera", Vouched: true})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := r.store.GetRun(ctx, tk.RunID)
	if tk.Env != run.PatchEnvName(20) || got.Matrix["wiki"] != "rev10-1" || pipelineFormatDeps(got.Deps) != "change 10 patch set 1 (wiki)" {
		t.Errorf("!env 20 vouched = env %s, matrix %v, deps %+v; want B's own environment with wiki at rev10-1", tk.Env, got.Matrix, got.Deps)
	}
	tk, err = r.service.RequestEnv(ctx, pipeline.EnvRequest{Change: 20, By: "irc:vera", Vouched: true, Overrides: run.Matrix{"wiki": "wiki-stable"}})
	if err != nil {
		t.Fatal(err)
	}
	got, _ = r.store.GetRun(ctx, tk.RunID)
	if tk.Env == run.PatchEnvName(20) || got.Matrix["wiki"] != "wiki-stable" || len(got.Deps) != 0 {
		t.Errorf("!env 20 wiki=wiki-stable = env %s, matrix %v, deps %+v; want a custom environment with the named wiki and no dependency", tk.Env, got.Matrix, got.Deps)
	}
}

// What cannot be followed is said once per patch set: a rerun for a
// dependency's new patch set that finds the same problem says nothing new.
func TestDependsOnProblemSaidOnce(t *testing.T) {
	r := newRig(t, 0, "")
	r.start()
	r.put(10, 1, "wiki", alice)
	r.put(30, 1, "docs", alice) // a project ductbot does not deploy
	r.put(20, 1, "svc/orchestrator", alice, "Depends-On: "+changeID(10), "Depends-On: http://gerrit.invalid/c/docs/+/30")
	if got := r.reviewsOn(20); len(got) != 1 || !strings.Contains(got[0].Message, "change 30 (named in change 20's Depends-On: http://gerrit.invalid/c/docs/+/30) is in docs") {
		t.Fatalf("B's reviews = %+v, want one comment naming change 30", got)
	}
	r.put(10, 2, "wiki", alice) // reruns B, which meets the same problem
	if got := r.reviewsOn(20); len(got) != 1 {
		t.Errorf("B's reviews after A's patch set 2 = %d, want still 1: %+v", len(got), got)
	}
	if runs := r.runs(store.RunFilter{Change: 20}); len(runs) != 0 {
		t.Errorf("B's runs = %d, want none", len(runs))
	}
}
