package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ductbot/ductbot/config"
	"github.com/ductbot/ductbot/core/store"
)

// openState opens the store the configuration names.
func openState(ctx context.Context, st config.State) (*store.Store, error) {
	if st.Driver == config.DriverPostgres {
		dsn, err := st.DSN()
		if err != nil {
			return nil, fmt.Errorf("state.dsn_env: %w", err)
		}
		s, err := store.OpenPostgres(ctx, dsn)
		if err != nil {
			return nil, fmt.Errorf("opening state: %w", err)
		}
		return s, nil
	}
	s, err := store.Open(ctx, st.Path)
	if err != nil {
		return nil, fmt.Errorf("opening state %s: %w", st.Path, err)
	}
	return s, nil
}

const stateUsage = `usage:
  ductbot state migrate --from sqlite:PATH --to postgres [--dsn-env VAR | --dsn-file FILE | --config FILE]
      copy an installation's state (runs and their logs, environments, Gerrit
      cursors and watermark) from its SQLite file into an empty PostgreSQL
      database. Stop ductbot first: what it writes during the copy is not copied.
      The database's URL comes from the environment variable or file named,
      else from the configuration's state.dsn_env or state.dsn_file.
      --from postgres --to sqlite:PATH copies the other way.`

// runState runs `ductbot state ...`.
func runState(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 || args[0] != "migrate" {
		return usage(errors.New(stateUsage))
	}
	fs := flag.NewFlagSet("state migrate", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	from := fs.String("from", "", "sqlite:PATH or postgres")
	to := fs.String("to", "", "postgres or sqlite:PATH")
	dsnEnv := fs.String("dsn-env", "", "environment variable holding the PostgreSQL URL")
	dsnFile := fs.String("dsn-file", "", "file holding the PostgreSQL URL")
	cfgPath := fs.String("config", "", "configuration whose state.dsn_env or state.dsn_file names the PostgreSQL URL")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return usage(errors.New(stateUsage))
		}
		return usage(fmt.Errorf("%w\n%s", err, stateUsage))
	}
	if fs.NArg() > 0 {
		return usagef("unexpected %q\n%s", fs.Arg(0), stateUsage)
	}
	if *from == "" || *to == "" {
		return usage(errors.New("say where from and where to: --from sqlite:PATH --to postgres\n" + stateUsage))
	}
	if (*from == "postgres") == (*to == "postgres") {
		return usage(errors.New("copy between one SQLite file and one PostgreSQL database: one of --from and --to is postgres, the other sqlite:PATH\n" + stateUsage))
	}
	dsn := func() (string, error) {
		if *dsnEnv != "" || *dsnFile != "" {
			if *dsnEnv != "" && *dsnFile != "" {
				return "", errors.New("--dsn-env or --dsn-file, not both")
			}
			return config.Secret(*dsnEnv, *dsnFile)
		}
		if *cfgPath == "" {
			return "", errors.New("name the PostgreSQL URL's environment variable (--dsn-env), file (--dsn-file) or a configuration with state.driver: postgres (--config)")
		}
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return "", err
		}
		if cfg.State.Driver != config.DriverPostgres {
			return "", fmt.Errorf("%s: state.driver is %s: set it to postgres with state.dsn_env or state.dsn_file, or use --dsn-env", *cfgPath, cfg.State.Driver)
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
		if _, err := os.Stat(path); err != nil && spec == *from {
			return nil, fmt.Errorf("--from %s: %w", spec, err) // do not make an empty file to copy from
		}
		return store.Open(ctx, path)
	}
	src, err := open(*from)
	if err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	defer src.Close()
	dst, err := open(*to)
	if err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	defer dst.Close()
	c, err := store.Copy(ctx, dst, src)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "copied %s from %s to %s\n", c, src, dst)
	return nil
}
