package commands

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/ductbot/ductbot/core/run"
)

var testComponents = []string{"wiki", "orchestrator", "evaluator"}

func TestParseEnv(t *testing.T) {
	tests := []struct {
		args      string
		change    int
		ps        int
		overrides run.Matrix
		ttl       time.Duration
		errHas    string // non-empty: an error containing this is expected
	}{
		{args: "12345", change: 12345},
		{args: "12345/2", change: 12345, ps: 2},
		{args: "12345 orchestrator=abc evaluator=def", change: 12345, overrides: run.Matrix{"orchestrator": "abc", "evaluator": "def"}},
		{args: "12345 wiki=change:67890", change: 12345, overrides: run.Matrix{"wiki": "change:67890"}},
		{args: "12345 wiki=change:67890/3 ttl=90m", change: 12345, overrides: run.Matrix{"wiki": "change:67890/3"}, ttl: 90 * time.Minute},
		{args: "1 ttl=3d", change: 1, ttl: 72 * time.Hour},
		{args: "1 ttl=1d12h", change: 1, ttl: 36 * time.Hour},
		{args: "1 orchestrator=" + strings.Repeat("a", 128), change: 1, overrides: run.Matrix{"orchestrator": strings.Repeat("a", 128)}},
		{args: "", errHas: "which change"},
		{args: "abc", errHas: "not a change number"},
		{args: "0", errHas: "not a change number"},
		{args: "-5", errHas: "not a change number"},
		{args: "99999999999", errHas: "not a change number"},
		{args: "12345/", errHas: "no valid patch set"},
		{args: "12345/x", errHas: "no valid patch set"},
		{args: "orchestrator=abc", errHas: "not a change number"},
		{args: "1 orchestrater=abc", errHas: `did you mean "orchestrator"`},
		{args: "1 zzz=abc", errHas: "configured: wiki, orchestrator, evaluator"},
		{args: "1 orchestrator=abc orchestrator=def", errHas: "given twice"},
		{args: "1 orchestrator=a;rm", errHas: "not a valid ref"},
		{args: "1 orchestrator=", errHas: "not a valid ref"},
		{args: "1 orchestrator=" + strings.Repeat("a", 129), errHas: "at most 128"},
		{args: "1 orchestrator=change:abc", errHas: "change:NNNN"},
		{args: "1 orchestrator=change:1/", errHas: "change:NNNN"},
		{args: "1 orchestrator=ab{{.}}", errHas: "not a valid ref"},
		{args: "1 abc", errHas: "not component=ref"},
		{args: "1 ttl=0", errHas: "positive"},
		{args: "1 ttl=-1h", errHas: "not a duration"},
		{args: "1 ttl=soon", errHas: "not a duration"},
		{args: "1 ttl=1h ttl=2h", errHas: "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			req, err := ParseEnv(strings.Fields(tt.args), testComponents)
			if tt.errHas != "" {
				if err == nil {
					t.Fatalf("ParseEnv(%q) = %+v, want an error containing %q", tt.args, req, tt.errHas)
				}
				if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("ParseEnv(%q) error = %q, want ErrUsage containing %q", tt.args, err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseEnv(%q): %v", tt.args, err)
			}
			if req.Change != tt.change || req.PatchSet != tt.ps || req.TTL != tt.ttl || !maps.Equal(req.Overrides, tt.overrides) {
				t.Fatalf("ParseEnv(%q) = change %d ps %d ttl %v overrides %v; want %d %d %v %v",
					tt.args, req.Change, req.PatchSet, req.TTL, req.Overrides, tt.change, tt.ps, tt.ttl, tt.overrides)
			}
		})
	}
}
