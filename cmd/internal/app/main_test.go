package app

import (
	"os"
	"testing"

	"github.com/ductbot/ductbot/core/k8s/localcluster"
	"github.com/ductbot/ductbot/core/store/pgtest"
)

// The tests share one local control plane and one PostgreSQL server.
func TestMain(m *testing.M) {
	os.Exit(pgtest.RunTests(runFunc(func() int { return localcluster.RunTests(m) })))
}

// runFunc lets TestMain hand pgtest a run of the tests wrapped by another
// helper.
type runFunc func() int

func (f runFunc) Run() int { return f() }
