package run

// Announcement is one run's result, handed to whatever tells people.
type Announcement struct {
	Run           Run
	Env           Env
	Channels      []string // the channels configured for the change's project
	RunURL        string   // the run's log page
	DefaultMatrix Matrix   // the matrix a per-change environment would run
	ReplyTo       string   // opaque: where a chat request's answer goes, set and read by the chat side
}

// CustomMatrix reports whether the run's matrix differs from the default one.
func (a Announcement) CustomMatrix() bool { return !a.Run.Matrix.Equal(a.DefaultMatrix) }

// SweepSummary is what one cleanup sweep did, announced once per sweep.
type SweepSummary struct {
	Removed  []SweepAction // environments torn down (or that would be, in dry run)
	Skipped  []SweepAction // environments left alone because something failed
	Repaired []string      // releases recovered from a stuck pending state
	DryRun   bool
	Channels []string
}

// SweepAction is one environment a sweep acted on or skipped, and why.
type SweepAction struct {
	Env    string
	Policy string // merged, abandoned, ttl, idle, orphan
	Reason string
}
