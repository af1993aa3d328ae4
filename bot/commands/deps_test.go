package commands

import (
	"testing"

	"github.com/ductbot/ductbot/core/run"
)

// An announcement lists what the run's Depends-On footers brought in.
func TestFormatAnnouncementListsDependencies(t *testing.T) {
	r := run.Run{Change: 20, PatchSet: 1, State: run.StateDone, Result: run.ResultPassed,
		Deps: []run.Dep{{Change: 10, PatchSet: 3, Component: "wiki"}, {Change: 9, Component: "evaluator", Merged: true}}}
	m := FormatAnnouncement(run.Announcement{Run: r})
	want := "change 10 patch set 3 (wiki), change 9 (evaluator, merged: its default ref)"
	found := false
	for _, f := range m.Fields {
		if f.Name == "depends-on" {
			found = f.Value == want
		}
	}
	if !found {
		t.Errorf("fields %+v, want depends-on: %s", m.Fields, want)
	}
	if m := FormatAnnouncement(run.Announcement{Run: run.Run{Change: 20, PatchSet: 1, Result: run.ResultPassed}}); len(m.Fields) != 0 {
		t.Errorf("a run without dependencies: fields %+v", m.Fields)
	}
}
