package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ductbot/ductbot/cmd/internal/app"
	"github.com/ductbot/ductbot/cmd/internal/buildinfo"
	"github.com/ductbot/ductbot/cmd/internal/cli"
	"github.com/ductbot/ductbot/config"
)

const rootLong = `ductbot gives every Gerrit patch set its own Kubernetes test environment,
votes Verified on it and talks about it in chat.

exit status: 0 done, 1 failed, 2 called wrongly (unknown command or flag)`

// realMain is ductbot's main without the exit: it returns the exit status.
func realMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if version != "" {
		buildinfo.Version = version
	}
	return cli.Execute(ctx, newRoot(), args, stdout, stderr)
}

// newRoot is the ductbot command and its subcommands.
func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:     "ductbot",
		Short:   "a Kubernetes test environment, a Verified vote and a chat message for every Gerrit patch set",
		Long:    rootLong,
		Version: buildinfo.Line("ductbot"),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.AddCommand(runCmd(), validateCmd(), sweepCmd(), stateCmd(), cli.VersionCommand("ductbot"), movedCmd("dev"), movedCmd("demo"))
	return cli.Root(root)
}

// movedCmd is a command that moved to the development command
// (ductbot-dev), hidden: it says where, and exits 2.
func movedCmd(name string) *cobra.Command {
	return &cobra.Command{
		Use:                name,
		Hidden:             true,
		Short:              "moved to ductbot-dev",
		Long:               fmt.Sprintf("%q moved to the development command: go run ./cmd/ductbot-dev --help", name),
		Args:               cobra.ArbitraryArgs,
		FParseErrWhitelist: cobra.FParseErrWhitelist{UnknownFlags: true},
		RunE: func(*cobra.Command, []string) error {
			return cli.Usagef("%q moved to the development command ductbot-dev, which the production binary does not link: go run ./cmd/ductbot-dev --help", name)
		},
	}
}

func validateCmd() *cobra.Command {
	var path string
	var offline bool
	c := &cobra.Command{
		Use:   "validate [--config FILE] [--offline]",
		Short: "check a configuration as run does, report every problem, and exit",
		Long: `Check a configuration as run does: report every problem with its key path and,
where the value came from the file, its line; then exit.
--offline skips the checks that need the secrets (their environment variables
and files), e.g. in CI.`,
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cfg, err := config.LoadWith(path, config.Options{Offline: offline})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "configuration OK: %d projects, %d components, chart %s\n", len(cfg.Projects), len(cfg.Components), cfg.Chart.Ref)
			return nil
		},
	}
	c.Flags().StringVar(&path, "config", "ductbot.yaml", "configuration file")
	c.Flags().BoolVar(&offline, "offline", false, "skip the checks that need the secrets (environment variables and secret files), e.g. in CI")
	return c
}

func runCmd() *cobra.Command {
	var path string
	var grace time.Duration
	var jsonLogs bool
	var lf logFlags
	c := &cobra.Command{
		Use:   "run [--config FILE] [--grace DURATION] [--log-level LEVEL] [--log-format text|json]",
		Short: "run the bot: watch Gerrit, deploy and test patch sets, vote, talk in chat",
		Long: `Run the bot: watch Gerrit, deploy and test patch sets, vote, talk in chat,
serve the dashboard and metrics, sweep. On SIGTERM or SIGINT it stops taking
work and gives in-flight steps --grace to finish.`,
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if _, err := lf.logger(jsonLogs, nil); err != nil {
				return err
			}
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			log, err := lf.logger(jsonLogs, cfg)
			if err != nil {
				return err
			}
			a, err := app.New(c.Context(), cfg, app.Options{Logger: log, ConsoleIn: os.Stdin, ConsoleOut: os.Stdout})
			if err != nil {
				return err
			}
			err = a.Run(c.Context(), grace)
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	c.Flags().StringVar(&path, "config", "ductbot.yaml", "configuration file")
	c.Flags().DurationVar(&grace, "grace", 30*time.Second, "how long in-flight steps may finish after SIGTERM")
	c.Flags().BoolVar(&jsonLogs, "json-logs", false, "log JSON lines (old spelling of --log-format json)")
	_ = c.Flags().MarkHidden("json-logs")
	lf = addLogFlags(c.Flags())
	return c
}

func sweepCmd() *cobra.Command {
	var path string
	var lf logFlags
	c := &cobra.Command{
		Use:   "sweep [--config FILE] [--log-level LEVEL] [--log-format text|json]",
		Short: "run one cleanup sweep now",
		Args:  cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if _, err := lf.logger(false, nil); err != nil {
				return err
			}
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			log, err := lf.logger(false, cfg)
			if err != nil {
				return err
			}
			cfg.Chat.Console = false
			a, err := app.New(c.Context(), cfg, app.Options{Logger: log})
			if err != nil {
				return err
			}
			defer a.Close()
			return a.SweepOnce(c.Context())
		},
	}
	c.Flags().StringVar(&path, "config", "ductbot.yaml", "configuration file")
	lf = addLogFlags(c.Flags())
	return c
}

// logFlags are --log-level and --log-format; unset, the configuration's
// log.level and log.format apply.
type logFlags struct{ level, format *string }

func addLogFlags(fs *pflag.FlagSet) logFlags {
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
		return nil, cli.Usagef("--log-level %q: want debug, info, warn or error", levelName)
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
	return nil, cli.Usagef("--log-format %q: want text or json", format)
}
