package gerrittest

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func TestParseQuery(t *testing.T) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	alice := &account{id: 1, username: "alice", email: "alice@example.com"}
	changes := []*change{
		{number: 1, project: "wiki", branch: "main", status: StatusNew, owner: alice, updated: base},
		{number: 2, project: "wiki", branch: "rel", status: StatusMerged, owner: alice, updated: base.Add(time.Hour)},
		{number: 3, project: "svc/orchestrator", branch: "main", status: StatusAbandoned, owner: alice, updated: base.Add(2 * time.Hour)},
		{number: 4, project: "svc/orchestrator", branch: "main", status: StatusNew, wip: true, owner: alice, updated: base.Add(3 * time.Hour)},
		{number: 5, project: "wiki", branch: "main", status: StatusNew, private: true, owner: alice, updated: base.Add(4 * time.Hour), changeID: "Iabc"},
	}
	tests := []struct {
		q    string
		want []int
	}{
		{"", []int{1, 2, 3, 4, 5}},
		{"status:open", []int{1, 4, 5}},
		{"is:open", []int{1, 4, 5}},
		{"status:merged", []int{2}},
		{"status:closed", []int{2, 3}},
		{"status:merged OR status:abandoned", []int{2, 3}},
		{`project:"svc/orchestrator"`, []int{3, 4}},
		{"project:wiki branch:main", []int{1, 5}},
		{"project:wiki AND branch:refs/heads/main", []int{1, 5}},
		{"project:wiki -is:private", []int{1, 2}},
		{"status:open NOT is:wip", []int{1, 5}},
		{"is:wip", []int{4}},
		{"(project:wiki OR project:svc/orchestrator) status:open -is:wip -is:private", []int{1}},
		{"-(status:merged OR status:abandoned)", []int{1, 4, 5}},
		{`after:"2026-03-01 13:00:00"`, []int{2, 3, 4, 5}},
		{`after:"2026-03-01 13:00:00.000000001"`, []int{3, 4, 5}},
		{"after:2026-03-01", []int{1, 2, 3, 4, 5}},
		{`before:"2026-03-01 13:00:00"`, []int{1, 2}},
		{"change:3 OR change:5 OR change:99", []int{3, 5}},
		{"change:Iabc", []int{5}},
		{`project:{wiki}`, []int{1, 2, 5}},
		{`project:"wi\"ki"`, nil},
		{"owner:alice status:merged", []int{2}},
	}
	for _, tt := range tests {
		t.Run(tt.q, func(t *testing.T) {
			pred, err := parseQuery(tt.q)
			if err != nil {
				t.Fatalf("parseQuery(%q): %v", tt.q, err)
			}
			var got []int
			for _, c := range changes {
				if pred(c) {
					got = append(got, c.number)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("parseQuery(%q) matched %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}

func TestParseQueryErrors(t *testing.T) {
	for _, q := range []string{
		"foo:bar",
		"status:weird",
		"project:wiki OR",
		"(project:wiki",
		"project:wiki)",
		`project:"unterminated`,
		"after:yesterday",
		"bareword",
		"project:",
		"-",
	} {
		t.Run(q, func(t *testing.T) {
			_, err := parseQuery(q)
			if !errors.Is(err, errQuery) {
				t.Errorf("parseQuery(%q) = %v, want an error wrapping errQuery", q, err)
			}
		})
	}
}
