package suggest

import "testing"

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "abc", 0}, {"orchestrator", "orchestrater", 1},
		{"kitten", "sitting", 3}, {"flaw", "lawn", 2}, {"a", "", 1}, {"évaluateur", "evaluateur", 1}, {"", "abc", 3},
	} {
		if got := Distance(tc.a, tc.b); got != tc.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestClosest(t *testing.T) {
	names := []string{"wiki", "orchestrator", "evaluator"}
	for _, tc := range []struct{ in, want string }{
		{"orchestator", "orchestrator"}, {"Evaluater", "evaluator"}, {"wikki", "wiki"}, {"Wiki", "wiki"},
		{"database", ""}, {"x", ""},
	} {
		if got := Closest(tc.in, names); got != tc.want {
			t.Errorf("Closest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
