package config

import (
	"strings"
	"testing"
	"time"
)

// TestSleepConfig: cleanup.sleep_after is off and kubernetes.max_sleeping
// uncapped by default; set, they are read; out of range, they are errors
// naming their key.
func TestSleepConfig(t *testing.T) {
	cfg, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cleanup.SleepAfter != 0 || cfg.Kubernetes.MaxSleeping != 0 {
		t.Errorf("defaults: sleep_after %s, max_sleeping %d; want off and no cap", cfg.Cleanup.SleepAfter.D(), cfg.Kubernetes.MaxSleeping)
	}
	cfg, err = Parse([]byte(minimal + "kubernetes: {max_sleeping: 5}\ncleanup: {sleep_after: 2h}"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cleanup.SleepAfter.D() != 2*time.Hour || cfg.Kubernetes.MaxSleeping != 5 {
		t.Errorf("sleep_after %s, max_sleeping %d; want 2h and 5", cfg.Cleanup.SleepAfter.D(), cfg.Kubernetes.MaxSleeping)
	}
	for _, tc := range []struct{ extra, want string }{
		{"kubernetes: {max_sleeping: -1}", "kubernetes.max_sleeping"},
		{"cleanup: {sleep_after: 10s}", "cleanup.sleep_after"},
	} {
		_, err := Parse([]byte(minimal + tc.extra))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one naming %s", tc.extra, err, tc.want)
		}
	}
}
