package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// ductbot-dev keeps ductbot's CLI contract: --help exits 0 for the root
// and every command, a usage error exits 2 and is printed once.
func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		code      int
		out, errs string // substrings of stdout and stderr
		errsOnce  string // printed exactly once on stderr
	}{
		{args: nil, code: 2, errs: "usage: ductbot-dev COMMAND"},
		{args: []string{"help"}, code: 0, out: "exit status: 0 done, 1 failed, 2 called wrongly"},
		{args: []string{"demo", "--help"}, code: 0, out: "usage: ductbot-dev demo"},
		{args: []string{"cluster"}, code: 2, errs: "usage: ductbot-dev cluster COMMAND"},
		{args: []string{"cluster", "sideways"}, code: 2, errsOnce: `unknown command "sideways" for "ductbot-dev cluster"`},
		{args: []string{"instal"}, code: 2, errsOnce: `did you mean "install"?`},
		{args: []string{"install", "now"}, code: 2, errsOnce: `install: unexpected argument "now"`},
		{args: []string{"demo", "--listen"}, code: 2, errsOnce: "flag needs an argument: --listen"},
		{args: []string{"run"}, code: 2, errsOnce: `unknown command "run"`},
		{args: []string{"version"}, code: 0, out: runtime.Version()},
	} {
		var out, errs bytes.Buffer
		code := realMain(t.Context(), tc.args, &out, &errs)
		if code != tc.code {
			t.Errorf("ductbot-dev %q: exit %d, want %d\nstdout: %s\nstderr: %s", tc.args, code, tc.code, out.String(), errs.String())
		}
		if !strings.Contains(out.String(), tc.out) || !strings.Contains(errs.String(), tc.errs) {
			t.Errorf("ductbot-dev %q: stdout %q, stderr %q; want %q and %q in them", tc.args, out.String(), errs.String(), tc.out, tc.errs)
		}
		if tc.errsOnce != "" && strings.Count(errs.String(), tc.errsOnce) != 1 {
			t.Errorf("ductbot-dev %q: stderr %q, want %q exactly once", tc.args, errs.String(), tc.errsOnce)
		}
	}
}

func TestHelpForEveryCommand(t *testing.T) {
	var paths [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		paths = append(paths, path)
		for _, sub := range c.Commands() {
			walk(sub, append(append([]string(nil), path...), sub.Name()))
		}
	}
	walk(newRoot(), nil)
	for _, path := range paths {
		args := append(append([]string(nil), path...), "--help")
		var out, errs bytes.Buffer
		if code := realMain(t.Context(), args, &out, &errs); code != 0 || errs.Len() > 0 || !strings.Contains(out.String(), "usage: ductbot-dev") {
			t.Errorf("ductbot-dev %q: exit %d, stdout %q, stderr %q; want 0, the usage, nothing", args, code, out.String(), errs.String())
		}
	}
}
