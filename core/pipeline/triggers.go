package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ductbot/ductbot/config"
	"github.com/ductbot/ductbot/core/gerrit"
	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/core/store"
)

// HandleChange is the Gerrit watcher's handler for one change reported as
// updated: it observes what ductbot knows of the change, asks Decide what
// to do, carries that out and saves the change's cursor. It is idempotent
// (changes are delivered again). An error that wraps
// gerrit.ErrHoldWatermark means the store failed and the work may not be
// recorded; other errors are this change's own trouble (Gerrit, a group
// lookup) and the watcher retries the change alone.
func (e *Engine) HandleChange(ctx context.Context, ch gerrit.Change) error {
	proj, configured := e.projectFor(&ch)
	if !configured {
		return nil
	}
	cur, err := e.store.ChangeCursor(ctx, ch.Number)
	seen := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return holdWatermark(fmt.Errorf("reading what ductbot saw of change %d: %w", ch.Number, err))
	}
	obs := Observation{
		Change: &ch, Configured: true, Cursor: cur, Seen: seen, Self: e.self,
		Now: e.now(), Lookback: e.cfg.Gerrit.Lookback.D(), Prefix: e.cfg.Chat.Prefix,
	}
	if ch.Open() && !ch.Private && !ch.WorkInProgress {
		var trustedAuthors map[int]bool
		if obs.UploaderTrusted, trustedAuthors, err = e.changeTrust(ctx, proj.Trusted, &ch); err != nil {
			return err
		}
		obs.TrustedAuthor = func(a gerrit.Account) bool { return trustedAuthors[a.ID] }
	}
	intents, next := Decide(obs)
	for _, in := range intents {
		if err := e.carryOut(ctx, &ch, in); err != nil {
			return err // the cursor stays: the change is handled again
		}
	}
	if err := e.store.PutChangeCursor(ctx, next); err != nil {
		return holdWatermark(fmt.Errorf("saving what ductbot saw of change %d: %w", ch.Number, err))
	}
	if slices.ContainsFunc(intents, func(in Intent) bool { return in.Kind == IntentDeploy || in.Kind == IntentNotice }) {
		// A new patch set (or a vouch for one): the changes that name
		// this one in Depends-On footers run with it.
		e.rerunDependents(ctx, &ch)
	}
	return nil
}

// holdWatermark marks a store failure: the watcher must not move past it.
func holdWatermark(err error) error { return fmt.Errorf("%w: %w", gerrit.ErrHoldWatermark, err) }

// projectFor returns the change's project configuration, and whether
// ductbot is configured for its project and branch.
func (e *Engine) projectFor(ch *gerrit.Change) (config.Project, bool) {
	proj, ok := e.cfg.Project(ch.Project)
	if !ok || (len(proj.Branches) > 0 && !slices.Contains(proj.Branches, ch.Branch)) {
		return proj, false
	}
	return proj, true
}

// changeTrust resolves who is trusted for a change's current patch set:
// its uploader, and the authors of its "recheck" comments on it (by
// account ID), which the trust gate and Decide then weigh.
func (e *Engine) changeTrust(ctx context.Context, tr config.Trust, ch *gerrit.Change) (uploader bool, rechecks map[int]bool, err error) {
	if uploader, err = e.trust.trusted(ctx, tr, ch.Uploader); err != nil {
		return false, nil, fmt.Errorf("change %d: checking whether the uploader is trusted: %w", ch.Number, err)
	}
	if rechecks, err = e.recheckAuthorsTrust(ctx, tr, ch); err != nil {
		return false, nil, fmt.Errorf("change %d: %w", ch.Number, err)
	}
	return uploader, rechecks, nil
}

// recheckAuthorsTrust resolves the trust of the authors of the change's
// "recheck" comments on its current patch set, by account ID.
func (e *Engine) recheckAuthorsTrust(ctx context.Context, tr config.Trust, ch *gerrit.Change) (map[int]bool, error) {
	out := map[int]bool{}
	for _, m := range ch.Messages {
		if _, done := out[m.Author.ID]; done || m.PatchSet != ch.PatchSet || !IsRecheck(m.Text) {
			continue
		}
		ok, err := e.trust.trusted(ctx, tr, m.Author)
		if err != nil {
			return nil, fmt.Errorf("checking whether %s is trusted: %w", accountName(m.Author), err)
		}
		out[m.Author.ID] = ok
	}
	return out, nil
}

// carryOut does what one intent says.
func (e *Engine) carryOut(ctx context.Context, ch *gerrit.Change, in Intent) error {
	switch in.Kind {
	case IntentCancel:
		if err := e.CancelChange(ctx, ch.Number, in.Reason); err != nil {
			return holdWatermark(err)
		}
	case IntentNotice:
		return e.untrustedNotice(ctx, ch, in.Reason)
	case IntentTeardown:
		envs, err := e.store.ListEnvs(ctx, store.EnvFilter{Change: ch.Number, Alive: true})
		if err != nil {
			return holdWatermark(fmt.Errorf("listing environments of change %d: %w", ch.Number, err))
		}
		for _, env := range envs {
			if err := e.DestroyEnv(ctx, env.Name, in.Reason); err != nil {
				return fmt.Errorf("tearing down %s: %w", env.Name, err)
			}
		}
	case IntentDeploy:
		// A second guard beside the cursor: an upload run of this patch
		// set already queued (a crash between queueing and saving the
		// cursor) is not queued again.
		if in.Trigger == run.TriggerUpload {
			runs, err := e.store.ListRuns(ctx, store.RunFilter{Change: ch.Number, PatchSet: in.PatchSet})
			if err != nil {
				return holdWatermark(fmt.Errorf("listing runs of change %d: %w", ch.Number, err))
			}
			if slices.ContainsFunc(runs, func(r *run.Run) bool { return r.Trigger == run.TriggerUpload }) {
				return nil
			}
		}
		return e.deployPatchSet(ctx, ch, in.Trigger, in.By)
	}
	return nil
}

// deployPatchSet queues a run of the change's current patch set, which has
// passed the trust gate, with what its Depends-On footers name; when they
// cannot be followed it says why on the change, once, and queues nothing.
func (e *Engine) deployPatchSet(ctx context.Context, ch *gerrit.Change, trigger run.Trigger, by string) error {
	plan, err := e.depsFor(ctx, ch, false)
	if err != nil {
		return fmt.Errorf("change %d: following its Depends-On footers: %w", ch.Number, err)
	}
	if err := e.store.SetChangeDeps(ctx, ch.Number, plan.Reached); err != nil {
		return holdWatermark(err)
	}
	if len(plan.Problems) > 0 {
		return e.depsNotice(ctx, ch, plan)
	}
	e.requestMu.Lock()
	defer e.requestMu.Unlock()
	if _, err := e.queuePatchRun(ctx, ch, plan, trigger, by, ""); err != nil {
		return holdWatermark(err)
	}
	return nil
}

// queuePatchRun queues a run of a change's current patch set in the
// change's own environment, with the default matrix plus the patch set's
// component and its open dependencies' patch sets. The caller has passed
// the trust gate and holds requestMu.
func (e *Engine) queuePatchRun(ctx context.Context, ch *gerrit.Change, deps DepsPlan, trigger run.Trigger, by, replyTo string) (*run.Run, error) {
	proj, _ := e.cfg.Project(ch.Project)
	m := e.plan.Default()
	ref, err := e.plan.PatchRef(proj.Component, refData(ch))
	if err != nil {
		return nil, err
	}
	m[proj.Component] = ref
	for _, d := range deps.Open {
		if m[d.Component], err = e.plan.PatchRef(d.Component, refData(d.Change)); err != nil {
			return nil, err
		}
	}
	env := e.newEnv(run.PatchEnvName(ch.Number), run.EnvPatch, ch, m, "", 0)
	r := newRun(env, ch, m, trigger, by)
	r.Deps = deps.Deps
	if _, err := e.enqueue(ctx, r, env, replyTo); err != nil {
		return nil, err
	}
	return r, nil
}

// newRun is a run of a change's current patch set in env.
func newRun(env *run.Env, ch *gerrit.Change, m run.Matrix, trigger run.Trigger, by string) *run.Run {
	return &run.Run{
		Env: env.Name, Project: ch.Project, Change: ch.Number, PatchSet: ch.PatchSet, Revision: ch.CurrentRevision,
		Subject: ch.Subject, Owner: accountName(ch.Owner), Matrix: m, Trigger: trigger, RequestedBy: by,
	}
}

func refData(ch *gerrit.Change) RefData {
	return RefData{Change: ch.Number, PatchSet: ch.PatchSet, Revision: ch.CurrentRevision, Project: ch.Project, Branch: ch.Branch, Ref: ch.Ref}
}

// newEnv is the record of an environment about to be (re)deployed for a
// change and matrix. The store keeps an existing live record's protection
// and expiry (CreateOrReviveEnv); a new one starts waiting for capacity.
func (e *Engine) newEnv(name string, kind run.EnvKind, ch *gerrit.Change, m run.Matrix, by string, ttl time.Duration) *run.Env {
	now := e.now().UTC()
	names := run.NamesFor(e.cfg.Kubernetes.NamespacePrefix, name)
	env := &run.Env{
		Name: names.Env, Namespace: names.Namespace, Release: names.Env, Kind: kind, CreatedAt: now, RequestedBy: by,
		Project: ch.Project, Change: ch.Number, Subject: ch.Subject, Owner: accountName(ch.Owner), Matrix: m,
		Status: run.EnvWaiting, ActiveAt: now,
	}
	if url, err := e.plan.URL(EnvData{Env: names.Env, Namespace: names.Namespace, Release: names.Env, Change: ch.Number}); err == nil {
		env.URL = url
	}
	if ttl > 0 {
		env.ExpiresAt = now.Add(ttl)
	}
	return env
}

// untrustedNotice posts how a trusted person can start the run of an
// untrusted uploader's patch set; Decide asks for it once per patch set.
func (e *Engine) untrustedNotice(ctx context.Context, ch *gerrit.Change, reason string) error {
	e.log.Info("not deploying a patch set from an untrusted uploader", "change", ch.Number, "patchset", ch.PatchSet, "uploader", accountName(ch.Uploader))
	if e.cfg.Gerrit.DryRun {
		return nil
	}
	msg := "ductbot did not deploy this patch set: " + reason + "."
	err := e.gerrit.PostReview(ctx, ch.Project, ch.Number, ch.CurrentRevision, gerrit.Review{Message: msg, Tag: ReviewTag, Notify: gerrit.NotifyNone})
	if err != nil && !isFinalGerritError(err) {
		return fmt.Errorf("posting the untrusted-uploader notice on change %d: %w", ch.Number, err)
	}
	return nil
}

// trustCache answers "is this account trusted" from config, caching group
// memberships for a while.
type trustCache struct {
	gerrit Gerrit
	log    *slog.Logger
	ttl    time.Duration
	now    func() time.Time

	mu     sync.Mutex
	groups map[string]groupEntry
}

type groupEntry struct {
	members []gerrit.Account
	at      time.Time
}

func newTrustCache(g Gerrit, ttl time.Duration, now func() time.Time, log *slog.Logger) *trustCache {
	return &trustCache{gerrit: g, ttl: ttl, now: now, log: log, groups: map[string]groupEntry{}}
}

// trusted reports whether the account is in the trust list: by username,
// numeric ID, email, or membership of a group.
func (t *trustCache) trusted(ctx context.Context, tr config.Trust, a gerrit.Account) (bool, error) {
	if TrustedDirectly(tr, a) {
		return true, nil
	}
	for _, g := range tr.Groups {
		members, err := t.members(ctx, g)
		if errors.Is(err, gerrit.ErrNotFound) {
			// A group that does not exist (or the account cannot see)
			// trusts no one; it must not stop every other change.
			t.log.Warn("trusted group not found in Gerrit; check projects[].trusted.groups", "group", g)
			continue
		}
		if err != nil {
			return false, fmt.Errorf("reading members of group %q: %w", g, err)
		}
		for _, m := range members {
			if m.ID == a.ID && a.ID != 0 || m.Username != "" && m.Username == a.Username {
				return true, nil
			}
		}
	}
	return false, nil
}

// TrustedDirectly reports whether the account is listed by username, ID or email.
func TrustedDirectly(tr config.Trust, a gerrit.Account) bool {
	for _, acc := range tr.Accounts {
		if acc != "" && (acc == a.Username || acc == strconv.Itoa(a.ID)) {
			return true
		}
	}
	for _, em := range tr.Emails {
		if em != "" && strings.EqualFold(em, a.Email) {
			return true
		}
	}
	return false
}

func (t *trustCache) members(ctx context.Context, group string) ([]gerrit.Account, error) {
	t.mu.Lock()
	ent, ok := t.groups[group]
	t.mu.Unlock()
	if ok && t.now().Sub(ent.at) < t.ttl {
		return ent.members, nil
	}
	ms, err := t.gerrit.GroupMembers(ctx, group)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.groups[group] = groupEntry{members: ms, at: t.now()}
	t.mu.Unlock()
	return ms, nil
}
