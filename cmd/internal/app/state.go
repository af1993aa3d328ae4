package app

import (
	"context"
	"fmt"

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
