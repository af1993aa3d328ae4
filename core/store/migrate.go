package store

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations are the schema steps, in order. The file's PRAGMA user_version
// is the number of steps applied. Never edit a released step; append a new
// one.
var migrations = []string{
	// 1: runs, environments, test logs, key/values.
	`
CREATE TABLE runs (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	env           TEXT    NOT NULL,
	project       TEXT    NOT NULL,
	change_number INTEGER NOT NULL,
	patch_set     INTEGER NOT NULL,
	revision      TEXT    NOT NULL,
	subject       TEXT    NOT NULL,
	owner         TEXT    NOT NULL,
	matrix        TEXT    NOT NULL, -- JSON object
	trigger_kind  TEXT    NOT NULL,
	requested_by  TEXT    NOT NULL,
	test_only     INTEGER NOT NULL,
	state         TEXT    NOT NULL,
	result        TEXT    NOT NULL,
	attempts      INTEGER NOT NULL,
	detail        TEXT    NOT NULL,
	reported      INTEGER NOT NULL,
	-- times are UTC unix nanoseconds; NULL is the zero time
	created_at    INTEGER NOT NULL,
	started_at    INTEGER,
	deployed_at   INTEGER,
	tested_at     INTEGER,
	finished_at   INTEGER
);
CREATE INDEX runs_by_env ON runs (env, id);
CREATE INDEX runs_by_change ON runs (change_number, patch_set);
CREATE INDEX runs_unfinished ON runs (id) WHERE state <> 'done';
CREATE INDEX runs_by_finished ON runs (finished_at) WHERE state = 'done';

CREATE TABLE test_logs (
	run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	seq    INTEGER NOT NULL,
	pod    TEXT    NOT NULL,
	phase  TEXT    NOT NULL,
	log    TEXT    NOT NULL,
	PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

CREATE TABLE envs (
	name         TEXT    PRIMARY KEY,
	namespace    TEXT    NOT NULL,
	release      TEXT    NOT NULL,
	kind         TEXT    NOT NULL,
	project      TEXT    NOT NULL,
	change_number INTEGER NOT NULL,
	patch_set    INTEGER NOT NULL,
	revision     TEXT    NOT NULL,
	subject      TEXT    NOT NULL,
	owner        TEXT    NOT NULL,
	matrix       TEXT    NOT NULL,
	url          TEXT    NOT NULL,
	status       TEXT    NOT NULL,
	protected    INTEGER NOT NULL,
	requested_by TEXT    NOT NULL,
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL,
	active_at    INTEGER,
	expires_at   INTEGER,
	gone_at      INTEGER
);
CREATE INDEX envs_by_created ON envs (created_at, name);
CREATE INDEX envs_by_change ON envs (change_number);

CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID;
`,
}

// SchemaVersion is the schema version this binary writes.
func SchemaVersion() int { return len(migrations) }

// migrate applies the steps the file has not seen, all in one transaction,
// so a failure leaves the file at its old version.
func (s *Store) migrate(ctx context.Context) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		var have int
		if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&have); err != nil {
			return fmt.Errorf("read schema version of %s: %w", s.path, err)
		}
		want := len(migrations)
		if have > want {
			return fmt.Errorf("%w: %s has schema version %d, this binary knows up to %d", ErrNewerSchema, s.path, have, want)
		}
		for v := have; v < want; v++ {
			if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
				return fmt.Errorf("migrate %s to schema version %d: %w", s.path, v+1, err)
			}
		}
		if have < want {
			// PRAGMA takes no parameters; want is a trusted int.
			if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", want)); err != nil {
				return fmt.Errorf("set schema version of %s: %w", s.path, err)
			}
		}
		return nil
	})
}
