package main

import (
	"bytes"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ductbot/ductbot/config"
	"github.com/spf13/cobra"
)

// The CLI contract: --help exits 0 for the root and every command, a
// usage error exits 2 and is printed once, a failure exits 1.
func TestExitCodes(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("gerrit: {url: ftp://x}\nkubernetes: {retries: four}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args      []string
		code      int
		out, errs string // substrings of stdout and stderr
		errsOnce  string // printed exactly once on stderr
	}{
		{args: nil, code: 2, errs: "usage:"},
		{args: []string{"--help"}, code: 0, out: "usage:"},
		{args: []string{"-h"}, code: 0, out: "usage:"},
		{args: []string{"help"}, code: 0, out: "exit status: 0 done, 1 failed, 2 called wrongly"},
		{args: []string{"help", "validate"}, code: 0, out: "usage: ductbot validate"},
		{args: []string{"help", "state", "migrate"}, code: 0, out: "usage: ductbot state migrate"},
		{args: []string{"help", "frobnicate"}, code: 2, errsOnce: `help: unknown command "frobnicate"`},
		{args: []string{"validate", "-help"}, code: 0, out: "usage: ductbot validate"},
		{args: []string{"frobnicate"}, code: 2, errsOnce: `unknown command "frobnicate"`},
		{args: []string{"run", "--help"}, code: 0, out: "usage: ductbot run"},
		{args: []string{"validate", "-h"}, code: 0, out: "usage: ductbot validate"},
		{args: []string{"sweep", "--help"}, code: 0, out: "usage: ductbot sweep"},
		{args: []string{"state", "--help"}, code: 0, out: "ductbot state migrate"},
		{args: []string{"state", "migrate", "--help"}, code: 0, out: "ductbot state migrate"},
		{args: []string{"version", "--help"}, code: 0, out: "usage: ductbot version"},
		{args: []string{"validate", "--bogus"}, code: 2, errsOnce: "unknown flag: --bogus"},
		{args: []string{"validate", "--config", bad, "extra"}, code: 2, errsOnce: `unexpected argument "extra"`},
		{args: []string{"run", "--log-format", "xml", "--config", bad}, code: 2, errsOnce: `--log-format "xml": want text or json`},
		{args: []string{"run", "--log-level", "loud", "--config", bad}, code: 2, errsOnce: `--log-level "loud"`},
		{args: []string{"state"}, code: 2, errs: "usage:"},
		{args: []string{"state", "migrate", "--nope"}, code: 2, errsOnce: "unknown flag: --nope"},
		{args: []string{"demo"}, code: 2, errsOnce: `"demo" moved to the development command ductbot-dev`},
		{args: []string{"dev", "install"}, code: 2, errsOnce: `"dev" moved to the development command ductbot-dev`},
		{args: []string{"dev", "cluster", "up", "--now"}, code: 2, errsOnce: `"dev" moved to the development command ductbot-dev`},
		{args: []string{"state", "copy"}, code: 2, errsOnce: `unknown command "copy" for "ductbot state"`},
		{args: []string{"valdate"}, code: 2, errsOnce: `did you mean "validate"?`},
		{args: []string{"--version"}, code: 0, out: runtime.Version()},
		{args: []string{"version", "extra"}, code: 2, errs: `version: unexpected argument "extra"`},
		{args: []string{"validate", "--config", bad}, code: 1, errsOnce: `kubernetes.retries: line 2: "four" is not an integer`},
		{args: []string{"validate", "--offline", "--config", bad}, code: 1, errsOnce: `kubernetes.retries: line 2: "four" is not an integer`},
		{args: []string{"validate", "--config", filepath.Join(t.TempDir(), "missing.yaml")}, code: 1, errs: "reading configuration"},
		{args: []string{"version"}, code: 0, out: runtime.Version()},
	} {
		var out, errs bytes.Buffer
		code := realMain(t.Context(), tc.args, &out, &errs)
		if code != tc.code {
			t.Errorf("ductbot %q: exit %d, want %d\nstdout: %s\nstderr: %s", tc.args, code, tc.code, out.String(), errs.String())
		}
		if !strings.Contains(out.String(), tc.out) {
			t.Errorf("ductbot %q: stdout %q, want it to contain %q", tc.args, out.String(), tc.out)
		}
		if !strings.Contains(errs.String(), tc.errs) {
			t.Errorf("ductbot %q: stderr %q, want it to contain %q", tc.args, errs.String(), tc.errs)
		}
		if tc.errsOnce != "" && strings.Count(errs.String(), tc.errsOnce) != 1 {
			t.Errorf("ductbot %q: stderr %q, want %q exactly once", tc.args, errs.String(), tc.errsOnce)
		}
		if tc.code == 0 && errs.Len() > 0 {
			t.Errorf("ductbot %q: exit 0 with stderr %q", tc.args, errs.String())
		}
	}
}

// Every command's --help and -h exit 0 and print its usage on stdout,
// nothing on stderr.
func TestHelpForEveryCommand(t *testing.T) {
	var paths [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		paths = append(paths, path)
		for _, sub := range c.Commands() {
			if sub.Hidden {
				continue // dev and demo: they moved
			}
			walk(sub, append(append([]string(nil), path...), sub.Name()))
		}
	}
	walk(newRoot(), nil)
	if len(paths) < 7 {
		t.Fatalf("only %d commands: %q", len(paths), paths)
	}
	for _, path := range paths {
		for _, h := range []string{"--help", "-h"} {
			args := append(append([]string(nil), path...), h)
			var out, errs bytes.Buffer
			if code := realMain(t.Context(), args, &out, &errs); code != 0 || errs.Len() > 0 || !strings.Contains(out.String(), "usage: ductbot") {
				t.Errorf("ductbot %q: exit %d, stdout %q, stderr %q; want 0, the usage, nothing", args, code, out.String(), errs.String())
			}
		}
	}
}

// The built binary's version names the commit it was built from.
func TestVersionOfTheBuiltBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not in a git work tree: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "ductbot")
	if out, err := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// Go stamps no VCS information in some checkouts (a linked git
	// worktree, whose .git is a file): then there is nothing to read.
	if stamp, err := exec.Command("go", "version", "-m", bin).Output(); err == nil && !strings.Contains(string(stamp), "vcs.revision=") {
		t.Skipf("go build stamped no VCS revision here (a git worktree?):\n%s", stamp)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := "(revision " + strings.TrimSpace(string(head))
	if !strings.HasPrefix(string(out), "ductbot ") || !strings.Contains(string(out), want) || !strings.Contains(string(out), runtime.Version()) {
		t.Errorf("ductbot version = %q, want the module version, %q and %s", out, want, runtime.Version())
	}
	cmd := exec.Command(bin, "frobnicate")
	if err := cmd.Run(); cmd.ProcessState.ExitCode() != 2 {
		t.Errorf("ductbot frobnicate: %v, want exit status 2", err)
	}
}

// --log-level and --log-format win over log.level and log.format, which
// apply when the flags are not given.
func TestLogFlagsAndConfig(t *testing.T) {
	t.Setenv("DUCTBOT_DEBUG", "")
	cfg := &config.Config{Log: config.Log{Level: "debug", Format: "json"}}
	for _, tc := range []struct {
		level, format string
		cfg           *config.Config
		json, debug   bool
	}{
		{"", "", nil, false, false},
		{"", "", cfg, true, true},
		{"warn", "text", cfg, false, false},
		{"debug", "", nil, false, true},
	} {
		lf := logFlags{level: &tc.level, format: &tc.format}
		log, err := lf.logger(false, tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, isJSON := log.Handler().(*slog.JSONHandler)
		if isJSON != tc.json || log.Enabled(t.Context(), slog.LevelDebug) != tc.debug {
			t.Errorf("flags %q %q, config %v: json %v debug %v, want %v %v", tc.level, tc.format, tc.cfg != nil,
				isJSON, log.Enabled(t.Context(), slog.LevelDebug), tc.json, tc.debug)
		}
	}
}
