// Command ductbot gives every Gerrit patch set its own Kubernetes test
// environment, votes on it, and talks about it in chat.
//
//	ductbot run      --config FILE   run the bot
//	ductbot validate --config FILE   check a configuration and exit
//	ductbot sweep    --config FILE   run one cleanup sweep now
//	ductbot state migrate --from sqlite:PATH --to postgres
//	ductbot demo                     the whole loop on this machine
//	ductbot dev install | dev cluster up|down|env
//	ductbot version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/ductbot/ductbot/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usageText = `usage:
  ductbot run      --config FILE   run the bot
  ductbot validate --config FILE   check a configuration and exit
  ductbot sweep    --config FILE   run one cleanup sweep now
  ductbot state migrate --from sqlite:PATH --to postgres [--dsn-env VAR | --dsn-file FILE | --config FILE]
                                   copy an installation's state into PostgreSQL
  ductbot demo                     the whole loop on this machine (local cluster, Gerrit test server, console chat)
  ductbot dev install              build the local control plane's binaries into the cache
  ductbot dev cluster up|down|env  run a local Kubernetes control plane
  ductbot version                  module version, VCS revision, Go version
  ductbot help [COMMAND]           this, or a command's flags (also COMMAND --help)

exit status: 0 done, 1 failed, 2 called wrongly (unknown command or flag)`

func main() {
	ctx, stop := signalContext()
	code := realMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func cmdValidate(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	path := fs.String("config", "ductbot.yaml", "configuration file")
	offline := fs.Bool("offline", false, "skip the checks that need the secrets (environment variables and secret files), e.g. in CI")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.LoadWith(*path, config.Options{Offline: *offline})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "configuration OK: %d projects, %d components, chart %s\n", len(cfg.Projects), len(cfg.Components), cfg.Chart.Ref)
	return nil
}

func cmdRun(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	path := fs.String("config", "ductbot.yaml", "configuration file")
	grace := fs.Duration("grace", 30*time.Second, "how long in-flight steps may finish after SIGTERM")
	jsonLogs := fs.Bool("json-logs", false, "log JSON lines instead of text (old spelling of --log-format json)")
	lf := addLogFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if _, err := lf.logger(*jsonLogs, nil); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	log, err := lf.logger(*jsonLogs, cfg)
	if err != nil {
		return err
	}
	a, err := newApp(ctx, cfg, appOptions{Logger: log, ConsoleIn: os.Stdin, ConsoleOut: os.Stdout})
	if err != nil {
		return err
	}
	err = a.run(ctx, *grace)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func cmdSweep(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("sweep", flag.ContinueOnError)
	path := fs.String("config", "ductbot.yaml", "configuration file")
	lf := addLogFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if _, err := lf.logger(false, nil); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	log, err := lf.logger(false, cfg)
	if err != nil {
		return err
	}
	cfg.Chat.Console = false
	a, err := newApp(ctx, cfg, appOptions{Logger: log})
	if err != nil {
		return err
	}
	defer a.close()
	return a.sweeps.runOnce(ctx)
}

func newLogger(json bool) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if os.Getenv("DUCTBOT_DEBUG") != "" {
		opts.Level = slog.LevelDebug
	}
	if json {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
