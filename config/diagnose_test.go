package config

import (
	"errors"
	"testing"
	"time"
)

// kubernetes.crash_restarts, ready_timeout and image_wait: their defaults,
// and each refusal with its key path.
func TestDiagnosisKeys(t *testing.T) {
	cfg, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	k := cfg.Kubernetes
	if k.CrashRestarts != 2 || k.ReadyTimeout.D() != 3*time.Minute || k.ImageWait.D() != 10*time.Minute {
		t.Errorf("defaults crash_restarts %d, ready_timeout %s, image_wait %s; want 2, 3m, 10m", k.CrashRestarts, k.ReadyTimeout.D(), k.ImageWait.D())
	}
	cfg, err = Parse([]byte(minimal + "kubernetes: {crash_restarts: 5, ready_timeout: 90s, image_wait: 2m}"))
	if err != nil || cfg.Kubernetes.CrashRestarts != 5 || cfg.Kubernetes.ReadyTimeout.D() != 90*time.Second || cfg.Kubernetes.ImageWait.D() != 2*time.Minute {
		t.Errorf("set values: %+v, %v", cfg.Kubernetes, err)
	}
	for _, tc := range []struct{ extra, want string }{
		{"kubernetes: {crash_restarts: -1}", "kubernetes.crash_restarts: must be at least 1 (default 2), got -1"},
		{"kubernetes: {ready_timeout: 500ms}", "kubernetes.ready_timeout: must be at least 1s (default 3m0s)"},
		{"kubernetes: {image_wait: -5s}", `kubernetes.image_wait: "-5s" is negative; durations are 0 or more`},
		{"kubernetes: {image_wait: 0s}", "kubernetes.image_wait: must be at least 1s (default 10m0s)"},
	} {
		_, err := Parse([]byte(minimal + tc.extra))
		var fe Errors
		if !errors.As(err, &fe) || len(fe) != 1 || !mentions(fe[0].String(), tc.want) {
			t.Errorf("%s: err = %v, want one problem %q", tc.extra, err, tc.want)
		}
	}
}
