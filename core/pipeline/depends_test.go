package pipeline

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ductbot/ductbot/core/gerrit"
	"github.com/ductbot/ductbot/core/run"
)

const depGerrit = "https://review.example.org/r"

func cid(n int) string { return fmt.Sprintf("I%040x", n) }

func TestParseDependsOn(t *testing.T) {
	cases := []struct {
		name string
		msg  string
		want []DepFooter
		bad  []string
	}{
		{"none", "Subject\n\nBody\n\nChange-Id: " + cid(1), nil, nil},
		{"Change-Id", "S\n\nDepends-On: " + cid(7) + "\nChange-Id: " + cid(1), []DepFooter{{Raw: cid(7), ChangeID: cid(7)}}, nil},
		{"key in any case, spaces around",
			"S\n\n  depends-on:   " + cid(7) + "  \n", []DepFooter{{Raw: cid(7), ChangeID: cid(7)}}, nil},
		{"several, each once",
			"S\n\nDepends-On: " + cid(7) + "\nDepends-On: " + depGerrit + "/c/wiki/+/42\nDepends-On: " + cid(7),
			[]DepFooter{{Raw: cid(7), ChangeID: cid(7)}, {Raw: depGerrit + "/c/wiki/+/42", Number: 42}}, nil},
		{"URL with a nested project and patch set", "S\n\nDepends-On: " + depGerrit + "/c/svc/orchestrator/+/42/3",
			[]DepFooter{{Raw: depGerrit + "/c/svc/orchestrator/+/42/3", Number: 42}}, nil},
		{"short URL", "Depends-On: " + depGerrit + "/c/42/", []DepFooter{{Raw: depGerrit + "/c/42/", Number: 42}}, nil},
		{"bare number URL", "Depends-On: " + depGerrit + "/42", []DepFooter{{Raw: depGerrit + "/42", Number: 42}}, nil},
		{"old fragment URL", "Depends-On: " + depGerrit + "/#/c/42/", []DepFooter{{Raw: depGerrit + "/#/c/42/", Number: 42}}, nil},
		{"another Gerrit's URL", "Depends-On: https://gerrit.other.org/r/c/42", nil, []string{"https://gerrit.other.org/r/c/42"}},
		{"outside the Gerrit's path", "Depends-On: https://review.example.org/c/42", nil, []string{"https://review.example.org/c/42"}},
		{"not a change", "Depends-On: the cache fix", nil, []string{"the cache fix"}},
		{"short Change-Id", "Depends-On: I1234", nil, []string{"I1234"}},
		{"upper-case hex is not a Change-Id", "Depends-On: I" + strings.Repeat("A", 40), nil, []string{"I" + strings.Repeat("A", 40)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, bad := ParseDependsOn(c.msg, depGerrit)
			if !slices.Equal(got, c.want) || !slices.Equal(bad, c.bad) {
				t.Errorf("ParseDependsOn = %+v, bad %q; want %+v, bad %q", got, bad, c.want, c.bad)
			}
		})
	}
}

// depWorld is a set of changes in three projects, one per component, for
// ResolveDeps; every change is open, trusted and on main unless changed.
type depWorld struct {
	changes   map[int]*gerrit.Change
	untrusted map[int]bool
	vouched   map[int]bool
}

var depProjects = map[string]string{"wiki": "wiki", "svc/orchestrator": "orchestrator", "svc/evaluator": "evaluator"}

func newDepWorld() *depWorld {
	return &depWorld{changes: map[int]*gerrit.Change{}, untrusted: map[int]bool{}, vouched: map[int]bool{}}
}

// add makes change n in project with the given footers (Change-Ids of
// other changes by number, or literal values starting with "=").
func (w *depWorld) add(n int, project string, deps ...any) *gerrit.Change {
	msg := fmt.Sprintf("Change %d\n\n", n)
	for _, d := range deps {
		switch v := d.(type) {
		case int:
			msg += "Depends-On: " + cid(v) + "\n"
		case string:
			msg += "Depends-On: " + strings.TrimPrefix(v, "=") + "\n"
		}
	}
	c := &gerrit.Change{Project: project, Branch: "main", Number: n, ChangeID: cid(n), Status: gerrit.StatusNew,
		PatchSet: 2, CurrentRevision: fmt.Sprintf("sha%d", n), CommitMessage: msg + "Change-Id: " + cid(n) + "\n"}
	w.changes[n] = c
	return c
}

func (w *depWorld) input(root int) DepsInput {
	in := DepsInput{
		Root: w.changes[root], ByChangeID: map[string][]*gerrit.Change{}, ByNumber: map[int]*gerrit.Change{},
		GerritURL: depGerrit,
		ComponentOf: func(c *gerrit.Change) (string, bool) {
			comp, ok := depProjects[c.Project]
			return comp, ok && c.Branch == "main" || ok && c.Branch == "release-1"
		},
		UploaderTrusted: func(c *gerrit.Change) bool { return !w.untrusted[c.Number] },
		RecheckVouched:  func(c *gerrit.Change) bool { return w.vouched[c.Number] },
	}
	nums := make([]int, 0, len(w.changes))
	for n := range w.changes {
		nums = append(nums, n)
	}
	slices.Sort(nums)
	for _, n := range nums {
		c := w.changes[n]
		in.ByNumber[n] = c
		if _, configured := depProjects[c.Project]; configured {
			in.ByChangeID[c.ChangeID] = append(in.ByChangeID[c.ChangeID], c)
		}
	}
	return in
}

func TestResolveDeps(t *testing.T) {
	type want struct {
		deps      string   // FormatDeps of the plan
		open      []string // component=change of each open dependency
		problems  []string // each a substring of one problem, in order
		untrusted bool
		reached   []int
	}
	cases := []struct {
		name  string
		world func(w *depWorld)
		want  want
	}{
		{"no footers", func(w *depWorld) { w.add(1, "svc/orchestrator") }, want{}},
		{"one dependency by Change-Id", func(w *depWorld) {
			w.add(1, "svc/orchestrator", 2)
			w.add(2, "wiki")
		}, want{deps: "change 2 patch set 2 (wiki)", open: []string{"wiki=2"}, reached: []int{2}}},
		{"by URL", func(w *depWorld) {
			w.add(1, "svc/orchestrator", "="+depGerrit+"/c/wiki/+/2")
			w.add(2, "wiki")
		}, want{deps: "change 2 patch set 2 (wiki)", open: []string{"wiki=2"}, reached: []int{2}}},
		{"transitive", func(w *depWorld) {
			w.add(1, "svc/orchestrator", 2)
			w.add(2, "wiki", 3)
			w.add(3, "svc/evaluator")
		}, want{deps: "change 2 patch set 2 (wiki), change 3 patch set 2 (evaluator)", open: []string{"wiki=2", "evaluator=3"}, reached: []int{2, 3}}},
		{"diamond: reached twice, listed once", func(w *depWorld) {
			w.add(1, "svc/orchestrator", 2, 3)
			w.add(2, "wiki", 3)
			w.add(3, "svc/evaluator")
		}, want{deps: "change 2 patch set 2 (wiki), change 3 patch set 2 (evaluator)", open: []string{"wiki=2", "evaluator=3"}, reached: []int{2, 3}}},
		{"merged: listed, default ref, not followed", func(w *depWorld) {
			w.add(1, "svc/orchestrator", 2)
			w.add(2, "wiki", 3).Status = gerrit.StatusMerged
			w.add(3, "svc/evaluator")
		}, want{deps: "change 2 (wiki, merged: its default ref)", reached: []int{2}}},
		{"abandoned: no run", func(w *depWorld) {
			w.add(1, "svc/orchestrator", 2)
			w.add(2, "wiki").Status = gerrit.StatusAbandoned
		}, want{problems: []string{"change 2 (named in change 1's Depends-On: " + cid(2) + ") is abandoned"}, reached: []int{2}}},
		{"cycle through the root", func(w *depWorld) {
			w.add(1, "svc/orchestrator", 2)
			w.add(2, "wiki", 1)
		}, want{deps: "change 2 patch set 2 (wiki)", open: []string{"wiki=2"},
			problems: []string{"Depends-On cycle: change 1 → change 2 → change 1"}, reached: []int{2}}},
		{"cycle between dependencies", func(w *depWorld) {
			w.add(1, "svc/orchestrator", 2, 3)
			w.add(2, "wiki", 3)
			w.add(3, "svc/evaluator", 2)
		}, want{deps: "change 2 patch set 2 (wiki), change 3 patch set 2 (evaluator)", open: []string{"wiki=2", "evaluator=3"},
			problems: []string{"Depends-On cycle: change 2 → change 3 → change 2"}, reached: []int{2, 3}}},
		{"a change naming itself", func(w *depWorld) { w.add(1, "svc/orchestrator", 1) },
			want{problems: []string{"Depends-On cycle: change 1 → change 1"}}},
		{"two dependencies on one component", func(w *depWorld) {
			w.add(1, "svc/orchestrator", 2, 3)
			w.add(2, "wiki")
			w.add(3, "wiki")
		}, want{deps: "change 2 patch set 2 (wiki), change 3 patch set 2 (wiki)", open: []string{"wiki=2", "wiki=3"},
			problems: []string{"changes 2 and 3 all change component wiki"}, reached: []int{2, 3}}},
		{"a dependency on the root's own component", func(w *depWorld) {
			w.add(1, "svc/orchestrator", 2)
			w.add(2, "svc/orchestrator")
		}, want{deps: "change 2 patch set 2 (orchestrator)", open: []string{"orchestrator=2"},
			problems: []string{"changes 1 and 2 all change component orchestrator"}, reached: []int{2}}},
		{"untrusted dependency: says how to vouch", func(w *depWorld) {
			w.add(1, "svc/orchestrator", 2)
			w.add(2, "wiki")
			w.untrusted[2] = true
		}, want{problems: []string{`change 2 (named in change 1's Depends-On: ` + cid(2) + `) patch set 2 was uploaded by someone not on the trusted list; it deploys once a trusted reviewer comments "recheck" on change 2 patch set 2`},
			untrusted: true, reached: []int{2}}},
		{"untrusted dependency with a trusted recheck on it", func(w *depWorld) {
			w.add(1, "svc/orchestrator", 2)
			w.add(2, "wiki")
			w.untrusted[2], w.vouched[2] = true, true
		}, want{deps: "change 2 patch set 2 (wiki)", open: []string{"wiki=2"}, reached: []int{2}}},
		{"an untrusted transitive dependency", func(w *depWorld) {
			w.add(1, "svc/orchestrator", 2)
			w.add(2, "wiki", 3)
			w.add(3, "svc/evaluator")
			w.untrusted[3] = true
		}, want{deps: "change 2 patch set 2 (wiki)", open: []string{"wiki=2"},
			problems: []string{"change 3 (named in change 2's"}, untrusted: true, reached: []int{2, 3}}},
		{"private dependency", func(w *depWorld) {
			w.add(1, "svc/orchestrator", 2)
			w.add(2, "wiki").Private = true
		}, want{problems: []string{"change 2 (named in change 1's Depends-On: " + cid(2) + ") cannot be deployed: change 2 is private"}, reached: []int{2}}},
		{"cherry-picks: the same branch wins", func(w *depWorld) {
			w.add(1, "svc/orchestrator", 2)
			w.add(2, "wiki")
			pick := w.add(3, "wiki")
			pick.ChangeID, pick.Branch = cid(2), "release-1"
		}, want{deps: "change 2 patch set 2 (wiki)", open: []string{"wiki=2"}, reached: []int{2}}},
		{"cherry-picks, none on the dependent's branch", func(w *depWorld) {
			w.add(1, "svc/orchestrator", 2)
			w.add(2, "wiki").Branch = "release-1"
			pick := w.add(3, "wiki")
			pick.ChangeID, pick.Branch = cid(2), "release-2"
		}, want{problems: []string{"matches changes 2 and 3, none of them alone on branch main; name one by its URL"}}},
		{"a single match on another branch", func(w *depWorld) {
			w.add(1, "svc/orchestrator", 2)
			w.add(2, "wiki").Branch = "release-1"
		}, want{deps: "change 2 patch set 2 (wiki)", open: []string{"wiki=2"}, reached: []int{2}}},
		{"Change-Id found nowhere", func(w *depWorld) { w.add(1, "svc/orchestrator", 99) },
			want{problems: []string{"change 1's Depends-On: " + cid(99) + " matches no change in the projects ductbot is configured for"}}},
		{"URL of an unknown change", func(w *depWorld) { w.add(1, "svc/orchestrator", "="+depGerrit+"/c/99") },
			want{problems: []string{"no change 99 on " + depGerrit}}},
		{"URL of a change in a project not configured", func(w *depWorld) {
			w.add(1, "svc/orchestrator", "="+depGerrit+"/c/2")
			w.add(2, "docs")
		}, want{problems: []string{"change 2 (named in change 1's Depends-On: " + depGerrit + "/c/2) is in docs (branch main), which ductbot is not configured"}, reached: []int{2}}},
		{"a bad footer", func(w *depWorld) { w.add(1, "svc/orchestrator", "=see the wiki change") },
			want{problems: []string{`change 1: "Depends-On: see the wiki change" is neither a Change-Id`}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newDepWorld()
			c.world(w)
			plan := ResolveDeps(w.input(1))
			if got := run.FormatDeps(plan.Deps); got != c.want.deps {
				t.Errorf("deps = %q, want %q", got, c.want.deps)
			}
			var open []string
			for _, o := range plan.Open {
				open = append(open, fmt.Sprintf("%s=%d", o.Component, o.Change.Number))
			}
			if !slices.Equal(open, c.want.open) {
				t.Errorf("open = %v, want %v", open, c.want.open)
			}
			if len(plan.Problems) != len(c.want.problems) {
				t.Fatalf("problems = %q, want %d like %q", plan.Problems, len(c.want.problems), c.want.problems)
			}
			for i, p := range c.want.problems {
				if !strings.Contains(plan.Problems[i], p) {
					t.Errorf("problem %d = %q, want it to contain %q", i, plan.Problems[i], p)
				}
			}
			if plan.Untrusted != c.want.untrusted {
				t.Errorf("untrusted = %v, want %v", plan.Untrusted, c.want.untrusted)
			}
			if !slices.Equal(plan.Reached, c.want.reached) {
				t.Errorf("reached = %v, want %v", plan.Reached, c.want.reached)
			}
		})
	}
}

func TestResolveDepsBound(t *testing.T) {
	w := newDepWorld()
	for n := 1; n <= MaxDeps+5; n++ {
		w.add(n, "wiki", n+1)
	}
	w.add(MaxDeps+6, "wiki")
	plan := ResolveDeps(w.input(1))
	if len(plan.Reached) != MaxDeps || !slices.ContainsFunc(plan.Problems, func(p string) bool { return strings.Contains(p, fmt.Sprintf("more than %d changes", MaxDeps)) }) {
		t.Errorf("reached %d, problems %q; want %d reached and a problem saying so", len(plan.Reached), plan.Problems, MaxDeps)
	}
}

func TestDepString(t *testing.T) {
	if got := (run.Dep{Change: 5, PatchSet: 3, Component: "wiki"}).String(); got != "change 5 patch set 3 (wiki)" {
		t.Errorf("Dep.String = %q", got)
	}
}
