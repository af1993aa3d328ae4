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
	// Search selects runs whose subject or owner holds it, ignoring ASCII
	// case, or whose change number it is. It is matched as text: % and _
	// are not wildcards. Owner is matched as stored, e-mail address
	// included; a caller that shows results in public checks them again.
	Search string
	Limit  int // 0: no limit; newest first
	// Offset skips that many of the newest runs f selects (paging).
	Offset int
}

// EnvFilter selects environments. Zero fields match everything.
type EnvFilter struct {
	Project     string
	Change      int
	Kind        run.EnvKind
	RequestedBy string
	Alive       bool // exclude run.EnvGone
}
