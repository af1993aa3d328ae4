package pipeline

import (
	"fmt"
	"strings"

	"github.com/ductbot/ductbot/core/gerrit"
)

// Path is how code came to be asked for: every way into a deploy goes
// through Gate with its path.
type Path string

// The paths that deploy code.
const (
	PathUpload    Path = "upload"     // a new patch set in Gerrit
	PathRecheck   Path = "recheck"    // a "recheck" comment in Gerrit
	PathEnv       Path = "env"        // chat !env N: the change asked for by name
	PathChangeRef Path = "change-ref" // chat !env ... component=change:N, a change pulled into a matrix
	PathRetest    Path = "retest"     // chat !retest: the tests of what is deployed, again
	// PathDependsOn: a change named in a Depends-On footer, deployed in its
	// dependent's environment.
	PathDependsOn Path = "depends-on"
	// PathRerun: a dependency's new patch set reruns its dependent's
	// patch set, which passed the gate when it was triggered.
	PathRerun Path = "rerun"
)

// GateInput is everything the trust gate looks at. The caller resolves who
// is trusted (group memberships need Gerrit) before asking; the gate itself
// does no I/O.
type GateInput struct {
	Path   Path
	Change *gerrit.Change // the change whose code would deploy, current patch set
	// PatchSet is the patch set asked for; 0 means the current one.
	PatchSet int
	// Configured says the change's project (and branch) is one ductbot is
	// configured for.
	Configured bool
	// UploaderTrusted says the uploader of the current patch set is on the
	// project's trusted list.
	UploaderTrusted bool
	// RecheckVouch says a trusted account commented "recheck" on this very
	// patch set (PathRecheck and PathDependsOn).
	RecheckVouch bool
	// ChatVouch says the chat user asking is on chat.permissions.vouch.
	ChatVouch bool
	// Deployed says this patch set passed the gate before: it is what the
	// environment already runs (PathRetest), or it was triggered by upload
	// or recheck (PathRerun).
	Deployed bool
	// Prefix is the chat command prefix, for the wording of refusals.
	Prefix string
}

// Refusal says why the gate refused, in words for the person who asked.
type Refusal struct {
	Reason string
	// Untrusted is set when the only thing missing is a vouch: the caller
	// may tell Gerrit how to get one.
	Untrusted bool
}

func (r *Refusal) Error() string       { return r.Reason }
func (r *Refusal) UserMessage() string { return r.Reason }

// Gate is the trust gate: it decides whether the code of a change's patch
// set may be deployed, on every path that deploys code. It returns nil to
// allow, or a Refusal that names the change and says what would allow it.
//
// The rules, in order:
//   - changes of projects or branches ductbot is not configured for, closed
//     changes and private changes never deploy;
//   - only the current patch set deploys;
//   - a work-in-progress change deploys only when asked for by name (!env N,
//     or a Depends-On footer);
//   - a retest runs what is deployed, which passed the gate when deployed;
//     a rerun for a dependency's new patch set runs a patch set that passed
//     it when triggered;
//   - a patch set from a trusted uploader deploys;
//   - anything else needs a vouch: a trusted "recheck" on that patch set, or a
//     chat user on chat.permissions.vouch.
//
// Gate does not decide who is trusted (GateInput carries that) nor whether
// a recheck is recent enough (Decide does).
func Gate(in GateInput) *Refusal {
	ch := in.Change
	if ch == nil {
		return &Refusal{Reason: "no such change"}
	}
	name := fmt.Sprintf("change %d", ch.Number)
	switch {
	case !in.Configured:
		return &Refusal{Reason: fmt.Sprintf("%s is in %s (branch %s), which ductbot is not configured to deploy", name, ch.Project, ch.Branch)}
	case !ch.Open():
		return &Refusal{Reason: fmt.Sprintf("%s is %s; only open changes are deployed", name, strings.ToLower(ch.Status))}
	case ch.Private:
		return &Refusal{Reason: fmt.Sprintf("%s is private; ductbot does not deploy private changes", name)}
	case in.PatchSet != 0 && in.PatchSet != ch.PatchSet:
		return &Refusal{Reason: fmt.Sprintf("%s is at patch set %d, not %d; only the current patch set is deployed", name, ch.PatchSet, in.PatchSet)}
	case ch.WorkInProgress && in.Path != PathEnv && in.Path != PathRetest && in.Path != PathDependsOn:
		return &Refusal{Reason: fmt.Sprintf("%s is work in progress; it is deployed only when asked for by name (%senv %d)", name, in.Prefix, ch.Number)}
	}
	switch {
	case (in.Path == PathRetest || in.Path == PathRerun) && in.Deployed:
		return nil
	case in.UploaderTrusted:
		return nil
	case (in.Path == PathRecheck || in.Path == PathDependsOn) && in.RecheckVouch:
		return nil
	case (in.Path == PathEnv || in.Path == PathChangeRef || in.Path == PathRetest || in.Path == PathDependsOn) && in.ChatVouch:
		return nil
	}
	return &Refusal{Untrusted: true, Reason: fmt.Sprintf(
		"%s patch set %d was uploaded by someone not on the trusted list; it deploys once a trusted reviewer comments \"recheck\" on it in Gerrit, "+
			"or someone listed in chat.permissions.vouch asks for it (%senv %d)", name, ch.PatchSet, in.Prefix, ch.Number)}
}
