package cleanup_test

import (
	"strings"
	"testing"

	"github.com/ductbot/ductbot/core/pipeline/cleanup"
)

func TestValidateSpec(t *testing.T) {
	tests := []struct {
		spec string
		ok   bool
	}{
		{"@every 10m", true},
		{"@daily", true},
		{"*/10 * * * *", true},
		{"TZ=Europe/Berlin 0 3 * * *", true},
		{cleanup.DefaultSchedule, true},
		{"", false},
		{"   ", false},
		{"TZ=UTC", false}, // panics inside the parser
		{"CRON_TZ=UTC", false},
		{"every 10 minutes", false},
		{"* * * *", false},
		{"0 0 * * * *", false}, // six fields: seconds are not accepted
		{"@every ten", false},
		{"61 * * * *", false},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			err := cleanup.ValidateSpec(tt.spec)
			if tt.ok {
				if err != nil {
					t.Fatalf("ValidateSpec(%q) = %v, want nil", tt.spec, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidateSpec(%q) = nil, want an error", tt.spec)
			}
			if !strings.Contains(err.Error(), "five fields") || !strings.Contains(err.Error(), "@every") {
				t.Errorf("ValidateSpec(%q) = %q, want it to say what is expected", tt.spec, err)
			}
		})
	}
}
