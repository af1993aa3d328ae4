package localcluster

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

var shared struct {
	once sync.Once
	c    *Cluster
	err  error
}

// Shared returns the cluster shared by the tests of one test binary,
// starting it on first use, so that packages whose other tests need no
// cluster do not pay for one. A package that calls it must stop it from
// TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(localcluster.RunTests(m)) }
//
// Under -short it skips the test: `go test -short` runs only the tests that
// need no cluster, in seconds.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the local Kubernetes control plane; skipped under -short")
	}
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		bins, err := Install(ctx, InstallOptions{})
		if err != nil {
			shared.err = err
			return
		}
		shared.c, shared.err = Start(ctx, Options{Binaries: bins, Progress: os.Stderr})
	})
	if shared.err != nil {
		t.Fatalf("local Kubernetes control plane: %v", shared.err)
	}
	return shared.c
}

// RunTests runs the package's tests and then stops the shared cluster, if
// one was started, leaving no process behind. It returns the exit code.
func RunTests(m *testing.M) int {
	code := m.Run()
	if shared.c != nil {
		if err := shared.c.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping the local cluster: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}
