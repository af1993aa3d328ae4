package pipeline

import (
	"strings"

	"github.com/ductbot/ductbot/core/gerrit"
	"github.com/ductbot/ductbot/core/run"
)

// VoteDecision says whether a finished run's review is posted, and why not.
type VoteDecision struct {
	Post bool
	// Why is the reason for not posting, for the log.
	Why string
}

// VoteTarget decides whether the review of a finished run goes to Gerrit,
// from the run, its environment and the change as Gerrit shows it now. A
// review goes only on the revision that was deployed and tested (the run's
// Revision), only while that revision is the change's current one and the
// change is open, and only once: a message of ductbot's own account that
// links this run means it was posted already (a crash after posting, or a
// POST that timed out after Gerrit took it).
//
// Runs of custom matrices are reported in chat only. VoteTarget does not
// decide the vote's value (ReviewFor does) and is not consulted in dry run.
func VoteTarget(r *run.Run, env *run.Env, ch *gerrit.Change, self *gerrit.Account, runURL string) VoteDecision {
	switch {
	case env != nil && env.Kind == run.EnvCustom:
		return VoteDecision{Why: "a custom matrix is reported in chat only"}
	case r.Change == 0 || r.Revision == "":
		return VoteDecision{Why: "the run tested no patch set"}
	case ch == nil:
		return VoteDecision{Why: "the change no longer exists"}
	case AlreadyReported(ch.Messages, self, runURL):
		return VoteDecision{Why: "already posted (found among the change's messages)"}
	case !ch.Open():
		return VoteDecision{Why: "the change is " + strings.ToLower(ch.Status)}
	case ch.CurrentRevision != r.Revision:
		return VoteDecision{Why: "the tested revision is no longer the current patch set"}
	}
	return VoteDecision{Post: true}
}

// AlreadyReported reports whether ductbot's own account already posted the
// review of the run whose page is runURL. Only messages written by self
// count: anyone can write a message that carries ductbot's tag and a run's
// link, and such a message must not suppress a vote. With no known own
// account nothing counts.
func AlreadyReported(msgs []gerrit.Message, self *gerrit.Account, runURL string) bool {
	return postedBySelf(msgs, self, func(m gerrit.Message) bool {
		return strings.HasPrefix(m.Tag, ReviewTag) && strings.Contains(m.Text, runURL+"\n")
	})
}

// postedBySelf reports whether ductbot's own account wrote a message that
// match accepts. Only its own messages count (anyone can copy its text and
// tag); with no known own account, none does.
func postedBySelf(msgs []gerrit.Message, self *gerrit.Account, match func(gerrit.Message) bool) bool {
	if self == nil || self.ID == 0 {
		return false
	}
	for _, m := range msgs {
		if m.Author.ID == self.ID && match(m) {
			return true
		}
	}
	return false
}
