package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/ductbot/ductbot/config"
)

// Exit statuses: 0 done (and --help), 1 the command failed, 2 ductbot was
// called wrongly (unknown command or flag, missing argument).
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// usageError is a mistake in how ductbot was called: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usage marks err as a usage error.
func usage(err error) error { return usageError{err} }

// usagef is a new usage error.
func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// commandHelp is each command's --help.
var commandHelp = map[string]string{
	"run": `usage: ductbot run [--config FILE] [--grace DURATION] [--log-level LEVEL] [--log-format text|json]
  run the bot: watch Gerrit, deploy and test patch sets, vote, talk in chat`,
	"validate": `usage: ductbot validate [--config FILE] [--offline]
  check a configuration as run does, report every problem with its key path and line, and exit;
  --offline skips the checks that need the secrets (their environment variables and files)`,
	"sweep": `usage: ductbot sweep [--config FILE] [--log-level LEVEL] [--log-format text|json]
  run one cleanup sweep now`,
	"state":   stateUsage,
	"demo":    "usage: ductbot demo [--listen ADDR]\n  the whole loop on this machine (local cluster, Gerrit test server, console chat)",
	"dev":     "usage: ductbot dev install | dev cluster up|down|env\n  build the local control plane's binaries; run a local Kubernetes control plane",
	"version": "usage: ductbot version\n  print ductbot's module version, VCS revision and Go version",
}

// realMain is ductbot's main without the exit: it returns the exit status.
func realMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usageText)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 {
			if h, ok := commandHelp[rest[0]]; ok {
				fmt.Fprintln(stdout, h)
				return exitOK
			}
		}
		fmt.Fprintln(stdout, usageText)
		return exitOK
	}
	if h, ok := commandHelp[cmd]; ok && wantsHelp(rest) {
		fmt.Fprintln(stdout, h)
		return exitOK
	}
	var err error
	switch cmd {
	case "run":
		err = cmdRun(ctx, rest)
	case "validate":
		err = cmdValidate(rest, stdout)
	case "sweep":
		err = cmdSweep(ctx, rest)
	case "state":
		err = runState(ctx, rest, stdout)
	case "demo":
		err = runDemo(ctx, rest)
	case "dev":
		err = runDev(ctx, rest)
	case "version", "--version", "-version":
		if len(rest) > 0 {
			err = usagef("version takes no arguments, got %q", rest[0])
			break
		}
		fmt.Fprintln(stdout, versionLine())
	default:
		err = usagef("unknown command %q\n%s", cmd, usageText)
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, new(usageError)):
		fmt.Fprintln(stderr, "ductbot:", err)
		return exitUsage
	default:
		fmt.Fprintln(stderr, "ductbot:", err)
		return exitFail
	}
}

// wantsHelp reports whether args ask for help before any "--".
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help", "help":
			return true
		}
	}
	return false
}

// parseFlags parses args into fs. The flag package's own printing is
// silenced so an error is printed once, by realMain; a bad flag is a usage
// error carrying the flags' defaults; -h is flag.ErrHelp after the usage
// went to stdout.
func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case err == nil:
		if fs.NArg() > 0 {
			return usagef("%s: unexpected argument %q\n%s", fs.Name(), fs.Arg(0), flagDefaults(fs))
		}
		return nil
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintf(os.Stdout, "usage of ductbot %s:\n%s", fs.Name(), flagDefaults(fs))
		return err
	default:
		return usagef("%s: %v\n%s", fs.Name(), err, flagDefaults(fs))
	}
}

func flagDefaults(fs *flag.FlagSet) string {
	var b strings.Builder
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	return b.String()
}

// logFlags are --log-level and --log-format; unset, the configuration's
// log.level and log.format apply.
type logFlags struct{ level, format *string }

func addLogFlags(fs *flag.FlagSet) logFlags {
	return logFlags{
		level:  fs.String("log-level", "", "debug, info, warn or error (default log.level, else info; DUCTBOT_DEBUG=1 means debug)"),
		format: fs.String("log-format", "", "text or json (default log.format, else text)"),
	}
}

// logger builds the logger the flags, else cfg (may be nil), describe;
// jsonLogs is the old --json-logs flag, still accepted.
func (f logFlags) logger(jsonLogs bool, cfg *config.Config) (*slog.Logger, error) {
	levelName, format := *f.level, *f.format
	if cfg != nil && levelName == "" {
		levelName = cfg.Log.Level
	}
	if cfg != nil && format == "" {
		format = cfg.Log.Format
	}
	if levelName == "" {
		levelName = "info"
	}
	if format == "" || (jsonLogs && *f.format == "") {
		format = "text"
		if jsonLogs {
			format = "json"
		}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(levelName)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", levelName)
	}
	if os.Getenv("DUCTBOT_DEBUG") != "" {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	}
	return nil, usagef("--log-format %q: want text or json", format)
}

// buildVersion is ductbot's module version, VCS revision and Go version,
// from the build information Go embeds; -ldflags "-X main.version=..."
// overrides the version.
func buildVersion() (ver, revision, goversion string) {
	ver, revision, goversion = version, "unknown", runtime.Version()
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	if ver == "dev" && bi.Main.Version != "" {
		ver = bi.Main.Version // "(devel)" for a build from a work tree
	}
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if modified && revision != "unknown" {
		revision += "-modified"
	}
	return
}

func versionLine() string {
	v, r, g := buildVersion()
	return fmt.Sprintf("ductbot %s (revision %s, %s)", v, r, g)
}
