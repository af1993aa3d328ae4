package pipeline

import (
	"strings"
	"testing"
	"time"

	"github.com/ductbot/ductbot/core/gerrit"
	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/core/store"
)

var (
	t0       = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	trusted  = gerrit.Account{ID: 10, Name: "Tina Trusted", Username: "tina", Email: "tina@example.org"}
	stranger = gerrit.Account{ID: 66, Name: "Mallory", Username: "mallory", Email: "m@evil.example"}
	botSelf  = gerrit.Account{ID: 1, Username: "ductbot"}
)

// change is an open change at patch set ps uploaded by up.
func change(ps int, up gerrit.Account, msgs ...gerrit.Message) *gerrit.Change {
	return &gerrit.Change{
		Project: "wiki", Branch: "main", Number: 123, Status: gerrit.StatusNew, PatchSet: ps,
		CurrentRevision: "rev" + string(rune('0'+ps)), Uploader: up, Owner: up, Messages: msgs,
	}
}

func recheck(by gerrit.Account, ps int, at time.Time) gerrit.Message {
	return gerrit.Message{Author: by, PatchSet: ps, Date: at, Text: "Patch Set " + string(rune('0'+ps)) + ":\n\nrecheck"}
}

func TestGate(t *testing.T) {
	open := change(2, stranger)
	wip := change(2, trusted)
	wip.WorkInProgress = true
	private := change(2, trusted)
	private.Private = true
	merged := change(2, trusted)
	merged.Status = gerrit.StatusMerged
	cases := []struct {
		name  string
		in    GateInput
		allow bool
		want  string // in the refusal
	}{
		{"upload, trusted uploader", GateInput{Path: PathUpload, Change: change(2, trusted), Configured: true, UploaderTrusted: true}, true, ""},
		{"upload, untrusted uploader", GateInput{Path: PathUpload, Change: open, Configured: true}, false, "not on the trusted list"},
		{"upload, untrusted, a chat vouch does not count on uploads", GateInput{Path: PathUpload, Change: open, Configured: true, ChatVouch: true}, false, "recheck"},
		{"recheck vouches for the untrusted patch set", GateInput{Path: PathRecheck, Change: open, Configured: true, RecheckVouch: true}, true, ""},
		{"recheck without a trusted author", GateInput{Path: PathRecheck, Change: open, Configured: true}, false, "change 123 patch set 2"},
		{"!env of an untrusted change, asker may not vouch", GateInput{Path: PathEnv, Change: open, Configured: true}, false, "chat.permissions.vouch"},
		{"!env of an untrusted change, asker vouches", GateInput{Path: PathEnv, Change: open, Configured: true, ChatVouch: true}, true, ""},
		{"!env of a trusted change, anyone", GateInput{Path: PathEnv, Change: change(2, trusted), Configured: true, UploaderTrusted: true}, true, ""},
		{"change:N ref of an untrusted change", GateInput{Path: PathChangeRef, Change: open, Configured: true}, false, "not on the trusted list"},
		{"change:N ref, asker vouches", GateInput{Path: PathChangeRef, Change: open, Configured: true, ChatVouch: true}, true, ""},
		{"retest of what is deployed", GateInput{Path: PathRetest, Change: open, Configured: true, Deployed: true}, true, ""},
		{"retest of what is not deployed", GateInput{Path: PathRetest, Change: open, Configured: true}, false, "not on the trusted list"},
		{"project not configured", GateInput{Path: PathEnv, Change: change(2, trusted), UploaderTrusted: true, ChatVouch: true}, false, "not configured"},
		{"closed change", GateInput{Path: PathEnv, Change: merged, Configured: true, UploaderTrusted: true, ChatVouch: true}, false, "merged"},
		{"private change", GateInput{Path: PathEnv, Change: private, Configured: true, UploaderTrusted: true, ChatVouch: true}, false, "private"},
		{"WIP on upload", GateInput{Path: PathUpload, Change: wip, Configured: true, UploaderTrusted: true}, false, "work in progress"},
		{"WIP on recheck", GateInput{Path: PathRecheck, Change: wip, Configured: true, UploaderTrusted: true, RecheckVouch: true}, false, "work in progress"},
		{"WIP as a change:N ref", GateInput{Path: PathChangeRef, Change: wip, Configured: true, UploaderTrusted: true}, false, "work in progress"},
		{"WIP asked for by name", GateInput{Path: PathEnv, Change: wip, Configured: true, UploaderTrusted: true}, true, ""},
		{"an older patch set", GateInput{Path: PathEnv, Change: change(3, trusted), PatchSet: 2, Configured: true, UploaderTrusted: true}, false, "only the current patch set"},
		{"no change", GateInput{Path: PathEnv}, false, "no such change"},
		{"Depends-On, trusted uploader", GateInput{Path: PathDependsOn, Change: change(2, trusted), Configured: true, UploaderTrusted: true}, true, ""},
		{"Depends-On, untrusted uploader", GateInput{Path: PathDependsOn, Change: open, Configured: true}, false, "not on the trusted list"},
		{"Depends-On, untrusted but a trusted recheck on it", GateInput{Path: PathDependsOn, Change: open, Configured: true, RecheckVouch: true}, true, ""},
		{"Depends-On of a change asked for with !env by someone who vouches", GateInput{Path: PathDependsOn, Change: open, Configured: true, ChatVouch: true}, true, ""},
		{"Depends-On names a WIP change", GateInput{Path: PathDependsOn, Change: wip, Configured: true, UploaderTrusted: true}, true, ""},
		{"rerun of a patch set that was triggered", GateInput{Path: PathRerun, Change: open, Configured: true, Deployed: true}, true, ""},
		{"rerun of a patch set never triggered", GateInput{Path: PathRerun, Change: open, Configured: true}, false, "not on the trusted list"},
		{"rerun of a WIP change", GateInput{Path: PathRerun, Change: wip, Configured: true, Deployed: true}, false, "work in progress"},
		{"Depends-On, private", GateInput{Path: PathDependsOn, Change: private, Configured: true, UploaderTrusted: true}, false, "private"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Gate(c.in)
			if (got == nil) != c.allow {
				t.Fatalf("Gate = %v, want allow=%v", got, c.allow)
			}
			if got != nil && !strings.Contains(got.Reason, c.want) {
				t.Errorf("refusal %q does not mention %q", got.Reason, c.want)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	isTrusted := func(a gerrit.Account) bool { return a.ID == trusted.ID }
	seen := store.ChangeCursor{Change: 123, FirstSeen: t0.Add(-time.Hour), MessagesSeen: t0.Add(-30 * time.Minute), Triggered: 1}
	type want struct {
		kind    IntentKind
		ps      int
		trigger run.Trigger
	}
	cases := []struct {
		name       string
		ch         *gerrit.Change
		cursor     store.ChangeCursor
		isSeen     bool
		upTrusted  bool
		configured bool
		want       []want
		wantCursor func(store.ChangeCursor) bool
	}{
		{name: "trusted upload deploys", ch: change(2, trusted), cursor: seen, isSeen: true, upTrusted: true, configured: true,
			want: []want{{IntentDeploy, 2, run.TriggerUpload}}, wantCursor: func(c store.ChangeCursor) bool { return c.Triggered == 2 }},
		{name: "a re-delivered upload deploys once", ch: change(2, trusted), cursor: func() store.ChangeCursor { c := seen; c.Triggered = 2; return c }(), isSeen: true, upTrusted: true, configured: true},
		{name: "untrusted upload gets one notice", ch: change(2, stranger), cursor: seen, isSeen: true, configured: true,
			want: []want{{IntentNotice, 2, ""}}, wantCursor: func(c store.ChangeCursor) bool { return c.Noticed == 2 && c.Triggered == 1 }},
		{name: "the notice is not repeated", ch: change(2, stranger), cursor: func() store.ChangeCursor { c := seen; c.Noticed = 2; return c }(), isSeen: true, configured: true},
		{name: "trusted recheck on the current patch set deploys it", ch: change(2, stranger, recheck(trusted, 2, t0.Add(-time.Minute))), cursor: seen, isSeen: true, configured: true,
			want: []want{{IntentDeploy, 2, run.TriggerRecheck}}},
		{name: "recheck on an older patch set deploys nothing (defect 1)", ch: change(2, stranger, recheck(trusted, 1, t0.Add(-time.Minute))), cursor: func() store.ChangeCursor { c := seen; c.Noticed = 2; return c }(), isSeen: true, configured: true},
		{name: "recheck by an untrusted account", ch: change(2, stranger, recheck(stranger, 2, t0.Add(-time.Minute))), cursor: func() store.ChangeCursor { c := seen; c.Noticed = 2; return c }(), isSeen: true, configured: true},
		{name: "recheck already looked at", ch: change(2, stranger, recheck(trusted, 2, t0.Add(-40*time.Minute))), cursor: func() store.ChangeCursor { c := seen; c.Noticed = 2; return c }(), isSeen: true, configured: true},
		{name: "first sight: an old recheck triggers nothing (defect 1)", ch: change(2, stranger, recheck(trusted, 2, t0.Add(-10*time.Minute))), isSeen: false, configured: true,
			want: []want{{IntentNotice, 2, ""}},
			wantCursor: func(c store.ChangeCursor) bool {
				return c.FirstSeen.Equal(t0) && c.MessagesSeen.Equal(t0.Add(-10*time.Minute))
			}},
		{name: "a recheck older than the look-back triggers nothing", ch: change(2, stranger, recheck(trusted, 2, t0.Add(-3*time.Hour))), cursor: store.ChangeCursor{Change: 123, FirstSeen: t0.Add(-24 * time.Hour), Noticed: 2}, isSeen: true, configured: true},
		{name: "recheck of a trusted patch set reruns it", ch: change(2, trusted, recheck(trusted, 2, t0.Add(-time.Minute))), cursor: func() store.ChangeCursor { c := seen; c.Triggered = 2; return c }(), isSeen: true, upTrusted: true, configured: true,
			want: []want{{IntentDeploy, 2, run.TriggerRecheck}}},
		{name: "upload and recheck at once deploy once", ch: change(2, trusted, recheck(trusted, 2, t0.Add(-time.Minute))), cursor: seen, isSeen: true, upTrusted: true, configured: true,
			want: []want{{IntentDeploy, 2, run.TriggerUpload}}},
		{name: "ductbot's own recheck-looking comment", ch: change(2, stranger, gerrit.Message{Author: botSelf, PatchSet: 2, Date: t0, Text: "recheck"}), cursor: func() store.ChangeCursor { c := seen; c.Noticed = 2; return c }(), isSeen: true, configured: true},
		{name: "an autogenerated comment", ch: change(2, stranger, gerrit.Message{Author: trusted, PatchSet: 2, Date: t0, Text: "recheck", Tag: "autogenerated:ci"}), cursor: func() store.ChangeCursor { c := seen; c.Noticed = 2; return c }(), isSeen: true, configured: true},
		{name: "merged change cancels", ch: func() *gerrit.Change { c := change(2, trusted); c.Status = gerrit.StatusMerged; return c }(), cursor: seen, isSeen: true, upTrusted: true, configured: true,
			want: []want{{IntentCancel, 0, ""}}},
		{name: "private change cancels, tears down and never deploys", ch: func() *gerrit.Change { c := change(2, trusted); c.Private = true; return c }(), cursor: seen, isSeen: true, upTrusted: true, configured: true,
			want: []want{{IntentCancel, 0, ""}, {IntentTeardown, 0, ""}}},
		{name: "WIP does not deploy on upload", ch: func() *gerrit.Change { c := change(2, trusted); c.WorkInProgress = true; return c }(), cursor: seen, isSeen: true, upTrusted: true, configured: true},
		{name: "not configured: nothing", ch: change(2, trusted), cursor: seen, isSeen: true, upTrusted: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, cur := Decide(Observation{
				Change: c.ch, Configured: c.configured, Cursor: c.cursor, Seen: c.isSeen,
				UploaderTrusted: c.upTrusted, TrustedAuthor: isTrusted, Self: &botSelf, Now: t0, Lookback: time.Hour,
			})
			if len(got) != len(c.want) {
				t.Fatalf("intents = %+v, want %+v", got, c.want)
			}
			for i, w := range c.want {
				if got[i].Kind != w.kind || got[i].PatchSet != w.ps || got[i].Trigger != w.trigger {
					t.Errorf("intent %d = %+v, want %+v", i, got[i], w)
				}
			}
			if cur.Change != 123 {
				t.Errorf("cursor change = %d", cur.Change)
			}
			if c.wantCursor != nil && !c.wantCursor(cur) {
				t.Errorf("cursor = %+v", cur)
			}
			// Deciding again with the new cursor is a no-op: re-delivered
			// changes (the poller's overlap) start nothing twice.
			if again, _ := Decide(Observation{
				Change: c.ch, Configured: c.configured, Cursor: cur, Seen: true,
				UploaderTrusted: c.upTrusted, TrustedAuthor: isTrusted, Self: &botSelf, Now: t0.Add(time.Second), Lookback: time.Hour,
			}); len(again) > 0 && again[0].Kind != IntentCancel && again[0].Kind != IntentTeardown {
				t.Errorf("deciding again = %+v, want nothing", again)
			}
		})
	}
}

func TestIsRecheck(t *testing.T) {
	for text, want := range map[string]bool{
		"recheck": true, "Patch Set 3:\n\nrecheck": true, "Patch Set 3: Code-Review+1\n\n  RECHECK ": true,
		"recheck please": false, "Patch Set 3:\n\nlooks good": false, "": false,
	} {
		if got := IsRecheck(text); got != want {
			t.Errorf("IsRecheck(%q) = %v, want %v", text, got, want)
		}
	}
}

func TestVoteTarget(t *testing.T) {
	const url = "https://ductbot.example/runs/7"
	tested := &run.Run{ID: 7, Change: 123, PatchSet: 2, Revision: "rev2"}
	patchEnv := &run.Env{Kind: run.EnvPatch}
	ours := gerrit.Message{Author: botSelf, Tag: ReviewTag, Text: "ductbot: PASSED\n\nTest logs: " + url + "\n"}
	spoof := gerrit.Message{Author: stranger, Tag: ReviewTag, Text: "ductbot: PASSED\n\nTest logs: " + url + "\n"}
	newer := change(3, trusted)
	closed := change(2, trusted)
	closed.Status = gerrit.StatusAbandoned
	cases := []struct {
		name string
		r    *run.Run
		env  *run.Env
		ch   *gerrit.Change
		self *gerrit.Account
		post bool
	}{
		{"the tested revision, current", tested, patchEnv, change(2, trusted), &botSelf, true},
		{"a newer patch set was uploaded", tested, patchEnv, newer, &botSelf, false},
		{"retest of the deployed patch set 2 while 3 is queued (defect 4)", &run.Run{ID: 7, Change: 123, PatchSet: 2, Revision: "rev2", TestOnly: true}, patchEnv, newer, &botSelf, false},
		{"the change is closed", tested, patchEnv, closed, &botSelf, false},
		{"already posted by ductbot", tested, patchEnv, change(2, trusted, ours), &botSelf, false},
		{"a spoofed message does not suppress the vote (defect 3)", tested, patchEnv, change(2, trusted, spoof), &botSelf, true},
		{"a custom matrix is reported in chat only", tested, &run.Env{Kind: run.EnvCustom}, change(2, trusted), &botSelf, false},
		{"no revision", &run.Run{ID: 7, Change: 123}, patchEnv, change(2, trusted), &botSelf, false},
		{"the change is gone", tested, patchEnv, nil, &botSelf, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := VoteTarget(c.r, c.env, c.ch, c.self, url)
			if got.Post != c.post {
				t.Errorf("VoteTarget = %+v, want post=%v", got, c.post)
			}
			if !got.Post && got.Why == "" {
				t.Errorf("no reason given for not posting")
			}
		})
	}
}

func TestAlreadyReported(t *testing.T) {
	const url = "https://d.example/runs/7"
	text := "ductbot: PASSED\n\nTest logs: " + url + "\n"
	cases := []struct {
		name string
		msg  gerrit.Message
		self *gerrit.Account
		want bool
	}{
		{"ductbot's own message", gerrit.Message{Author: botSelf, Tag: ReviewTag, Text: text}, &botSelf, true},
		{"someone else's message with the tag and the link", gerrit.Message{Author: stranger, Tag: ReviewTag, Text: text}, &botSelf, false},
		{"ductbot's message for another run", gerrit.Message{Author: botSelf, Tag: ReviewTag, Text: "Test logs: https://d.example/runs/70\n"}, &botSelf, false},
		{"ductbot's untagged message", gerrit.Message{Author: botSelf, Text: text}, &botSelf, false},
		{"own account unknown", gerrit.Message{Author: botSelf, Tag: ReviewTag, Text: text}, nil, false},
	}
	for _, c := range cases {
		if got := AlreadyReported([]gerrit.Message{c.msg}, c.self, url); got != c.want {
			t.Errorf("%s: AlreadyReported = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestAdmit(t *testing.T) {
	cases := []struct {
		name      string
		status    run.EnvStatus
		inCluster int
		max       int
		want      bool
	}{
		{"no cap", run.EnvWaiting, 100, 0, true},
		{"a new environment below the cap", run.EnvWaiting, 2, 3, true},
		{"a new environment at the cap (defect 5)", run.EnvWaiting, 3, 3, false},
		{"a gone environment coming back at the cap", run.EnvGone, 3, 3, false},
		{"an environment in the cluster at the cap", run.EnvReady, 3, 3, true},
		{"a broken one in the cluster at the cap", run.EnvBroken, 3, 3, true},
	}
	for _, c := range cases {
		if got := Admit(c.status, c.inCluster, c.max); got != c.want {
			t.Errorf("%s: Admit = %v, want %v", c.name, got, c.want)
		}
	}
}
