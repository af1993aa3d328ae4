package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ductbot/ductbot/cmd/internal/cli"
	"github.com/ductbot/ductbot/config"
	"github.com/ductbot/ductbot/core/store"
)

const stateLong = `ductbot state migrate --from sqlite:PATH --to postgres [--dsn-env VAR | --dsn-file FILE | --config FILE]
    copy an installation's state (runs and their logs, environments, Gerrit
    cursors and watermark) from its SQLite file into an empty PostgreSQL
    database. Stop ductbot first: what it writes during the copy is not copied.
    The database's URL comes from the environment variable or file named,
    else from the configuration's state.dsn_env or state.dsn_file.
    --from postgres --to sqlite:PATH copies the other way.`

func stateCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "state",
		Short: "copy an installation's state between SQLite and PostgreSQL",
		Long:  stateLong,
	}
	c.AddCommand(stateMigrateCmd())
	return c
}

func stateMigrateCmd() *cobra.Command {
	var from, to, dsnEnv, dsnFile, cfgPath string
	c := &cobra.Command{
		Use:   "migrate --from sqlite:PATH --to postgres [--dsn-env VAR | --dsn-file FILE | --config FILE]",
		Short: "copy an installation's state into an empty database",
		Long:  stateLong,
		Args:  cli.NoArgs,
	}
	c.RunE = func(c *cobra.Command, _ []string) error {
		ctx := c.Context()
		if from == "" || to == "" {
			return cli.Usagef("say where from and where to: --from sqlite:PATH --to postgres (see %s --help)", c.CommandPath())
		}
		if (from == "postgres") == (to == "postgres") {
			return cli.Usagef("copy between one SQLite file and one PostgreSQL database: one of --from and --to is postgres, the other sqlite:PATH (see %s --help)", c.CommandPath())
		}
		dsn := func() (string, error) {
			if dsnEnv != "" || dsnFile != "" {
				if dsnEnv != "" && dsnFile != "" {
					return "", errors.New("--dsn-env or --dsn-file, not both")
				}
				return config.Secret(dsnEnv, dsnFile)
			}
			if cfgPath == "" {
				return "", errors.New("name the PostgreSQL URL's environment variable (--dsn-env), file (--dsn-file) or a configuration with state.driver: postgres (--config)")
			}
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return "", err
			}
			if cfg.State.Driver != config.DriverPostgres {
				return "", fmt.Errorf("%s: state.driver is %s: set it to postgres with state.dsn_env or state.dsn_file, or use --dsn-env", cfgPath, cfg.State.Driver)
			}
			return cfg.State.DSN()
		}
		open := func(spec string) (*store.Store, error) {
			if spec == "postgres" {
				d, err := dsn()
				if err != nil {
					return nil, err
				}
				return store.OpenPostgres(ctx, d)
			}
			path, ok := strings.CutPrefix(spec, "sqlite:")
			if !ok || path == "" {
				return nil, fmt.Errorf("%q: want sqlite:PATH or postgres", spec)
			}
			if _, err := os.Stat(path); err != nil && spec == from {
				return nil, fmt.Errorf("--from %s: %w", spec, err) // do not make an empty file to copy from
			}
			return store.Open(ctx, path)
		}
		src, err := open(from)
		if err != nil {
			return fmt.Errorf("--from: %w", err)
		}
		defer src.Close()
		dst, err := open(to)
		if err != nil {
			return fmt.Errorf("--to: %w", err)
		}
		defer dst.Close()
		copied, err := store.Copy(ctx, dst, src)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.OutOrStdout(), "copied %s from %s to %s\n", copied, src, dst)
		return nil
	}
	f := c.Flags()
	f.StringVar(&from, "from", "", "sqlite:PATH or postgres")
	f.StringVar(&to, "to", "", "postgres or sqlite:PATH")
	f.StringVar(&dsnEnv, "dsn-env", "", "environment variable holding the PostgreSQL URL")
	f.StringVar(&dsnFile, "dsn-file", "", "file holding the PostgreSQL URL")
	f.StringVar(&cfgPath, "config", "", "configuration whose state.dsn_env or state.dsn_file names the PostgreSQL URL")
	return c
}
