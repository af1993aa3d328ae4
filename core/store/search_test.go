package store

import (
	"reflect"
	"testing"

	"github.com/ductbot/ductbot/core/run"
)

// RunFilter.Search and Offset on every driver: the dashboard's search and
// paging.
func TestListRunsSearchAndOffset(t *testing.T) {
	eachDriver(t, func(t *testing.T, d driver) {
		s, _ := d.openTemp(t)
		specs := []run.Run{
			{Env: "a", Project: "p1", Change: 12345, PatchSet: 1, Subject: "Fix the Evaluator", Owner: "Jane Doe <jane@example.org>", State: run.StateDone},
			{Env: "b", Project: "p1", Change: 777, PatchSet: 1, Subject: "100% done_now", Owner: "Bob", State: run.StateDone},
			{Env: "c", Project: "p2", Change: 42, PatchSet: 1, Subject: `back\slash`, Owner: "carol", State: run.StateQueued},
			{Env: "d", Project: "p2", Change: 12345, PatchSet: 2, Subject: "Change 777 follow-up", Owner: "Jane Doe <jane@example.org>", State: run.StateDone},
		}
		ids := createRuns(t, s, specs)
		tests := []struct {
			name string
			f    RunFilter
			want []int64
		}{
			{"subject, any case", RunFilter{Search: "EVALUATOR"}, []int64{ids[0]}},
			{"owner", RunFilter{Search: "jane doe"}, []int64{ids[3], ids[0]}},
			{"change number or subject", RunFilter{Search: "777"}, []int64{ids[3], ids[1]}},
			{"change number", RunFilter{Search: " 42 "}, []int64{ids[2]}},
			{"percent is literal", RunFilter{Search: "0%"}, []int64{ids[1]}},
			{"percent is no wildcard", RunFilter{Search: "%e%"}, nil},
			{"underscore is literal", RunFilter{Search: "e_n"}, []int64{ids[1]}},
			{"underscore is no wildcard", RunFilter{Search: "h_E"}, nil},
			{"backslash is literal", RunFilter{Search: `k\s`}, []int64{ids[2]}},
			{"a number too big for a change", RunFilter{Search: "99999999999"}, nil},
			{"with another filter", RunFilter{Search: "jane", Project: "p1"}, []int64{ids[0]}},
			{"no match", RunFilter{Search: "nobody"}, nil},
			{"offset", RunFilter{Offset: 1, Limit: 2}, []int64{ids[2], ids[1]}},
			{"offset without limit", RunFilter{Offset: 3}, []int64{ids[0]}},
			{"offset past the end", RunFilter{Offset: 4, Limit: 2}, nil},
			{"offset and search", RunFilter{Search: "jane", Offset: 1, Limit: 5}, []int64{ids[0]}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got := runIDs(t, s, tt.f)
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("ListRuns(%+v) ids = %v, want %v", tt.f, got, tt.want)
				}
			})
		}
	})
}
