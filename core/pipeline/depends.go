package pipeline

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/ductbot/ductbot/core/gerrit"
	"github.com/ductbot/ductbot/core/run"
)

// MaxDeps bounds how many changes one change's Depends-On footers may pull
// in, directly and through each other.
const MaxDeps = 20

// DepFooter is one Depends-On footer: a Change-Id or a change URL.
type DepFooter struct {
	Raw      string // the value as written
	ChangeID string // set for a Change-Id
	Number   int    // set for a change URL
}

func (f DepFooter) String() string { return "Depends-On: " + f.Raw }

var (
	dependsOnLine = regexp.MustCompile(`(?im)^[ \t]*Depends-On:[ \t]*(.*?)[ \t]*$`)
	// Gerrit's change URL forms: /c/project/+/123, /c/123, /#/c/123, /123,
	// each optionally followed by /patchset, /, or a file path.
	changeURLPath = regexp.MustCompile(`^/(?:c/(?:.+/\+/)?|#/c/(?:.+/\+/)?)?(\d+)(?:/.*)?$`)
)

// ParseDependsOn returns the Depends-On footers of a commit message, in
// order and each once, as Zuul reads them: any line "Depends-On: <value>"
// (the key's case does not matter). A value is a Change-Id, or the URL of a
// change on the Gerrit at gerritURL (its host and path prefix must match).
// Values that are neither come back in bad, as written.
func ParseDependsOn(message, gerritURL string) (footers []DepFooter, bad []string) {
	base, _ := url.Parse(strings.TrimRight(gerritURL, "/"))
	seen := map[string]bool{}
	for _, m := range dependsOnLine.FindAllStringSubmatch(message, -1) {
		v := m[1]
		f, ok := parseDepValue(v, base)
		if !ok {
			bad = append(bad, v)
			continue
		}
		key := f.ChangeID + "#" + strconv.Itoa(f.Number)
		if !seen[key] {
			seen[key] = true
			footers = append(footers, f)
		}
	}
	return footers, bad
}

func parseDepValue(v string, base *url.URL) (DepFooter, bool) {
	if gerrit.IsChangeID(v) {
		return DepFooter{Raw: v, ChangeID: v}, true
	}
	u, err := url.Parse(v)
	if err != nil || base == nil || (u.Scheme != "http" && u.Scheme != "https") || !strings.EqualFold(u.Host, base.Host) {
		return DepFooter{}, false
	}
	p, ok := strings.CutPrefix(u.Path, strings.TrimRight(base.Path, "/"))
	if !ok {
		return DepFooter{}, false
	}
	if u.Fragment != "" && (p == "/" || p == "") { // https://host/#/c/123/
		p = "/#" + u.Fragment
	}
	sm := changeURLPath.FindStringSubmatch(p)
	if sm == nil {
		return DepFooter{}, false
	}
	n, err := strconv.Atoi(sm[1])
	if err != nil || n <= 0 {
		return DepFooter{}, false
	}
	return DepFooter{Raw: v, Number: n}, true
}

// DepsInput is everything the dependency decision looks at: the change
// whose run is being decided, and what Gerrit returned for every footer
// reachable from it. The caller fetches these (and resolves trust) first;
// ResolveDeps does no I/O.
type DepsInput struct {
	Root *gerrit.Change
	// ByChangeID holds, for each Change-Id named, the changes with that
	// Change-Id in the configured projects (several for cherry-picks).
	ByChangeID map[string][]*gerrit.Change
	// ByNumber holds the changes named by URL, by number.
	ByNumber  map[int]*gerrit.Change
	GerritURL string
	// ComponentOf returns the component a change's project and branch
	// deploy as, and false when ductbot is not configured for them.
	ComponentOf func(*gerrit.Change) (string, bool)
	// UploaderTrusted and RecheckVouched say whether a dependency's
	// current patch set was uploaded by a trusted account, or has a
	// trusted "recheck" comment (a vouch).
	UploaderTrusted func(*gerrit.Change) bool
	RecheckVouched  func(*gerrit.Change) bool
	// ChatVouch says the chat user asking for the root (!env) is listed in
	// chat.permissions.vouch: they vouch for what its footers name too.
	ChatVouch bool
}

// DepsPlan is what the dependency decision says.
type DepsPlan struct {
	// Deps are the dependencies to list, in the order found: open ones
	// deploy their current patch set, merged ones their component's
	// default ref.
	Deps []run.Dep
	// Open are the open dependencies, each with the component whose ref
	// becomes its current patch set (as a change:N/P ref would).
	Open []DepChange
	// Problems say why the run must not start, each naming the changes
	// involved. Untrusted is set when every problem is a dependency that
	// waits for a vouch.
	Problems  []string
	Untrusted bool
	// Reached are all the changes the footers reached, for rerunning the
	// root when one of them gets a new patch set.
	Reached []int
}

// DepChange is an open dependency and the component it replaces.
type DepChange struct {
	Component string
	Change    *gerrit.Change
}

// ResolveDeps follows the Depends-On footers of the root change, and of
// its open dependencies in turn, and decides what the root's environment
// deploys beside the root's own patch set. It is a pure function:
//
//   - a Change-Id names the change with that Change-Id in the configured
//     projects; of several (cherry-picks), the one on the same branch as
//     the change naming it; none, or several and none on that branch, is a
//     problem;
//   - a change in a project (and branch) ductbot is not configured for is a
//     problem;
//   - a merged dependency is listed and deploys nothing of its own: its
//     component's default ref has it; its footers are not followed;
//   - an abandoned dependency is a problem: the run does not start;
//   - an open dependency goes through the trust gate (PathDependsOn); one
//     the gate refuses is a problem that says how to vouch for it;
//   - two open changes for one component (the root's own included) are a
//     problem: an environment runs one version of each component;
//   - a cycle of footers is a problem naming it;
//   - more than MaxDeps changes is a problem.
func ResolveDeps(in DepsInput) DepsPlan {
	var plan DepsPlan
	root := in.Root
	rootComp, _ := in.ComponentOf(root)
	owners := map[string][]int{rootComp: {root.Number}} // component -> open changes deploying it
	state := map[int]int{root.Number: 1}                // 1: on the path being followed, 2: done
	var path []int
	untrusted, other := 0, 0
	problem := func(untrustedOne bool, format string, args ...any) {
		plan.Problems = append(plan.Problems, fmt.Sprintf(format, args...))
		if untrustedOne {
			untrusted++
		} else {
			other++
		}
	}

	var visit func(ch *gerrit.Change)
	visit = func(ch *gerrit.Change) {
		path = append(path, ch.Number)
		defer func() { path = path[:len(path)-1] }()
		footers, bad := ParseDependsOn(ch.CommitMessage, in.GerritURL)
		for _, b := range bad {
			problem(false, "change %d: \"Depends-On: %s\" is neither a Change-Id (I and 40 hex digits) nor a change URL on %s", ch.Number, b, in.GerritURL)
		}
		for _, f := range footers {
			dep, why := pickDep(in, ch, f)
			if dep == nil {
				problem(false, "%s", why)
				continue
			}
			switch state[dep.Number] {
			case 1:
				problem(false, "Depends-On cycle: %s", cycleText(path, dep.Number))
				continue
			case 2:
				continue // reached another way already
			}
			if len(plan.Reached) >= MaxDeps {
				problem(false, "change %d reaches more than %d changes through Depends-On; ductbot follows at most %d", root.Number, MaxDeps, MaxDeps)
				return
			}
			state[dep.Number] = 2
			plan.Reached = append(plan.Reached, dep.Number)
			comp, configured := in.ComponentOf(dep)
			named := fmt.Sprintf("change %d (named in change %d's %s)", dep.Number, ch.Number, f)
			switch {
			case !configured:
				problem(false, "%s is in %s (branch %s), which ductbot is not configured to deploy", named, dep.Project, dep.Branch)
				continue
			case dep.Status == gerrit.StatusMerged:
				plan.Deps = append(plan.Deps, run.Dep{Change: dep.Number, Project: dep.Project, Component: comp, Merged: true})
				continue
			case dep.Status == gerrit.StatusAbandoned:
				problem(false, "%s is abandoned; restore it, or remove the footer, to get an environment", named)
				continue
			}
			gate := GateInput{Path: PathDependsOn, Change: dep, Configured: true,
				UploaderTrusted: in.UploaderTrusted != nil && in.UploaderTrusted(dep),
				RecheckVouch:    in.RecheckVouched != nil && in.RecheckVouched(dep),
				ChatVouch:       in.ChatVouch}
			if r := Gate(gate); r != nil {
				if r.Untrusted {
					problem(true, "%s patch set %d was uploaded by someone not on the trusted list; it deploys once a trusted reviewer comments \"recheck\" on change %d patch set %d", named, dep.PatchSet, dep.Number, dep.PatchSet)
				} else {
					problem(false, "%s cannot be deployed: %s", named, r.Reason)
				}
				continue
			}
			owners[comp] = append(owners[comp], dep.Number)
			plan.Deps = append(plan.Deps, run.Dep{Change: dep.Number, Project: dep.Project, Component: comp, PatchSet: dep.PatchSet, Revision: dep.CurrentRevision})
			plan.Open = append(plan.Open, DepChange{Component: comp, Change: dep})
			state[dep.Number] = 1
			visit(dep)
			state[dep.Number] = 2
		}
	}
	visit(root)

	comps := make([]string, 0, len(owners))
	for c := range owners {
		comps = append(comps, c)
	}
	slices.Sort(comps)
	for _, c := range comps {
		if nums := owners[c]; len(nums) > 1 {
			problem(false, "%s all change component %s; an environment runs one version of each component, so their changes must be one change (or depend on each other through git)", changeList(nums), c)
		}
	}
	plan.Untrusted = untrusted > 0 && other == 0
	return plan
}

// pickDep finds the change a footer of ch names, or says why there is none.
func pickDep(in DepsInput, ch *gerrit.Change, f DepFooter) (*gerrit.Change, string) {
	if f.Number != 0 {
		if d := in.ByNumber[f.Number]; d != nil {
			return d, ""
		}
		return nil, fmt.Sprintf("change %d's %s: no change %d on %s that ductbot can see", ch.Number, f, f.Number, in.GerritURL)
	}
	cands := in.ByChangeID[f.ChangeID]
	if len(cands) == 1 {
		return cands[0], ""
	}
	var same []*gerrit.Change
	for _, c := range cands {
		if c.Branch == ch.Branch {
			same = append(same, c)
		}
	}
	if len(same) == 1 {
		return same[0], ""
	}
	if len(cands) == 0 {
		return nil, fmt.Sprintf("change %d's %s matches no change in the projects ductbot is configured for", ch.Number, f)
	}
	nums := make([]int, len(cands))
	for i, c := range cands {
		nums[i] = c.Number
	}
	return nil, fmt.Sprintf("change %d's %s matches %s, none of them alone on branch %s; name one by its URL instead", ch.Number, f, changeList(nums), ch.Branch)
}

// cycleText is "change 1 → change 2 → change 1" for the path that reaches
// back to n.
func cycleText(path []int, n int) string {
	i := slices.Index(path, n)
	parts := make([]string, 0, len(path)-i+1)
	for _, p := range path[i:] {
		parts = append(parts, "change "+strconv.Itoa(p))
	}
	parts = append(parts, "change "+strconv.Itoa(n))
	return strings.Join(parts, " → ")
}

// changeList is "changes 1, 2 and 3".
func changeList(nums []int) string {
	s := make([]string, len(nums))
	for i, n := range nums {
		s[i] = strconv.Itoa(n)
	}
	if len(s) == 1 {
		return "change " + s[0]
	}
	return "changes " + strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}
