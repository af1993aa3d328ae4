package store

import (
	"errors"

	"github.com/ductbot/ductbot/core/run"
)

// ErrNotFound is returned (wrapped) when a looked-up record does not exist.
var ErrNotFound = errors.New("not found")

// RunFilter selects runs. Zero fields match everything.
type RunFilter struct {
	Env        string
	Project    string
	Change     int
	PatchSet   int
	Unfinished bool // only runs not in run.StateDone
	Limit      int  // 0: no limit; newest first
}

// EnvFilter selects environments. Zero fields match everything.
type EnvFilter struct {
	Project     string
	Change      int
	Kind        run.EnvKind
	RequestedBy string
	Alive       bool // exclude run.EnvGone
}
