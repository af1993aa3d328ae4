package main

import (
	"os/exec"
	"strings"
	"testing"
)

// devPackages must not be linked into the production binary: the local
// control plane, the Gerrit and PostgreSQL test servers, the demo, the
// development command, and the standard library's test support. Tests may
// import them; `go list -deps` without -test lists only what the binary
// links.
var devPackages = []string{
	"testing",
	"net/http/httptest",
	"github.com/ductbot/ductbot/core/k8s/localcluster",
	"github.com/ductbot/ductbot/core/gerrit/gerrittest",
	"github.com/ductbot/ductbot/core/store/pgtest",
	"github.com/ductbot/ductbot/cmd/internal/demo",
	"github.com/ductbot/ductbot/cmd/ductbot-dev",
}

func TestProductionBinaryHasNoDevPackages(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list -deps: %v\n%s", err, stderr)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed %d packages: %q", len(deps), deps)
	}
	for _, p := range deps {
		for _, dev := range devPackages {
			if p == dev || strings.HasPrefix(p, dev+"/") {
				t.Errorf("the production binary links %s", p)
			}
		}
	}
}
