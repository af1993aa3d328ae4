package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// step is one schema step: SQL, then optionally Go code that moves data
// the SQL cannot (parsing, say). Both run in the migration's transaction.
//
// The SQL is written once for both databases. Where their types differ it
// says so with a word in braces that each dialect spells its own way:
//
//	{run id}         the runs table's key: never reused, issued in order
//	{run ref}        a column holding a run's id
//	{bool}           a flag
//	{nanos}          a time: UTC unix nanoseconds, NULL for the zero time
//	{key text}       text that is a key and sorts byte by byte
//	{without rowid}  after a table with a composite or text key: SQLite's
//	                 storage hint, nothing elsewhere
type step struct {
	sql  string
	data func(ctx context.Context, tx txn, now time.Time) error
}

// migrations are the schema steps, in order: each database records how
// many it has applied (SQLite in PRAGMA user_version, PostgreSQL in the
// schema_version table) and applies the rest at Open, so each database has
// its own history of the same steps. Never edit a released step; append a
// new one.
var migrations = []step{
	// 1: runs, environments, test logs, key/values.
	{sql: `
CREATE TABLE runs (
	id            {run id},
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
	test_only     {bool}  NOT NULL,
	state         TEXT    NOT NULL,
	result        TEXT    NOT NULL,
	attempts      INTEGER NOT NULL,
	detail        TEXT    NOT NULL,
	reported      {bool}  NOT NULL,
	created_at    {nanos} NOT NULL,
	started_at    {nanos},
	deployed_at   {nanos},
	tested_at     {nanos},
	finished_at   {nanos}
);
CREATE INDEX runs_by_env ON runs (env, id);
CREATE INDEX runs_by_change ON runs (change_number, patch_set);
CREATE INDEX runs_unfinished ON runs (id) WHERE state <> 'done';
CREATE INDEX runs_by_finished ON runs (finished_at) WHERE state = 'done';

CREATE TABLE test_logs (
	run_id {run ref} NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	seq    INTEGER NOT NULL,
	pod    TEXT    NOT NULL,
	phase  TEXT    NOT NULL,
	log    TEXT    NOT NULL,
	PRIMARY KEY (run_id, seq)
){without rowid};

CREATE TABLE envs (
	name          {key text} PRIMARY KEY,
	namespace     TEXT    NOT NULL,
	release       TEXT    NOT NULL,
	kind          TEXT    NOT NULL,
	project       TEXT    NOT NULL,
	change_number INTEGER NOT NULL,
	patch_set     INTEGER NOT NULL,
	revision      TEXT    NOT NULL,
	subject       TEXT    NOT NULL,
	owner         TEXT    NOT NULL,
	matrix        TEXT    NOT NULL,
	url           TEXT    NOT NULL,
	status        TEXT    NOT NULL,
	protected     {bool}  NOT NULL,
	requested_by  TEXT    NOT NULL,
	created_at    {nanos} NOT NULL,
	updated_at    {nanos} NOT NULL,
	active_at     {nanos},
	expires_at    {nanos},
	gone_at       {nanos}
);
CREATE INDEX envs_by_created ON envs (created_at, name);
CREATE INDEX envs_by_change ON envs (change_number);

CREATE TABLE meta (
	key   {key text} PRIMARY KEY,
	value TEXT NOT NULL
){without rowid};
`},

	// 2: reply targets and per-change cursors get their own tables; their
	// meta rows (reply-to:, recheck-seen:, untrusted-notice:) move there.
	{sql: `
CREATE TABLE reply_targets (
	run_id {run ref} PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
	target TEXT NOT NULL -- opaque to the store
);

CREATE TABLE change_cursors (
	change_number INTEGER PRIMARY KEY,
	first_seen    {nanos},
	messages_seen {nanos},
	triggered     INTEGER NOT NULL,
	noticed       INTEGER NOT NULL
);
`, data: moveMetaRows},

	// 3: a run's diagnosis of its failed deploy (JSON of run.Diagnosis, ''
	// for none).
	{sql: `
ALTER TABLE runs ADD COLUMN diagnosis TEXT NOT NULL DEFAULT '';
`},

	// 4: Depends-On: the dependencies a run deployed (JSON of []run.Dep,
	// '' for none), and which changes name which in their footers, so a
	// new patch set of a dependency reruns its dependents.
	{sql: `
ALTER TABLE runs ADD COLUMN deps TEXT NOT NULL DEFAULT '';

CREATE TABLE change_deps (
	dependent  INTEGER NOT NULL,
	dependency INTEGER NOT NULL,
	PRIMARY KEY (dependent, dependency)
){without rowid};

CREATE INDEX change_deps_dependency ON change_deps (dependency);
`},
}

// SchemaVersion is the schema version this binary writes, on either
// database.
func SchemaVersion() int { return len(migrations) }

// migrate applies the steps the database has not seen, all in one
// transaction, so a failure leaves it at its old version.
func (s *Store) migrate(ctx context.Context) error {
	now := utc(s.now())
	return s.inTx(ctx, func(tx txn) error {
		have, err := s.d.schemaVersion(ctx, tx)
		if err != nil {
			return fmt.Errorf("read schema version of %s: %w", s.name, err)
		}
		want := len(migrations)
		if have > want {
			return fmt.Errorf("%w: %s has schema version %d, this binary knows up to %d", ErrNewerSchema, s.name, have, want)
		}
		for v := have; v < want; v++ {
			if _, err := tx.ExecContext(ctx, s.d.types.Replace(migrations[v].sql)); err != nil {
				return fmt.Errorf("migrate %s to schema version %d: %w", s.name, v+1, err)
			}
			if data := migrations[v].data; data != nil {
				if err := data(ctx, tx, now); err != nil {
					return fmt.Errorf("migrate %s to schema version %d: %w", s.name, v+1, err)
				}
			}
		}
		if have < want {
			if err := s.d.setSchemaVersion(ctx, tx, want); err != nil {
				return fmt.Errorf("set schema version of %s: %w", s.name, err)
			}
		}
		return nil
	})
}

// moveMetaRows is step 2's data: it moves the per-change and per-run values
// an older pipeline kept in meta into their tables and deletes those meta
// rows. Values are read the way that pipeline read them:
//
//   - "recheck-seen:<change>" = RFC3339Nano time, "" for none: the
//     cursor's MessagesSeen, and its FirstSeen too;
//   - "untrusted-notice:<change>/<patch set>" (any value): the notice was
//     posted; Noticed is the newest such patch set of the change;
//   - "reply-to:<run id>" = target, "" for deleted: non-empty targets of runs
//     that still exist go to reply_targets; the rest are dropped.
//
// That pipeline decided "already triggered" from the runs of the current
// patch set started by upload or recheck, so Triggered starts as the newest
// such patch set of each change, and changes that have such runs get a
// cursor too: otherwise the first delivery after the upgrade would start
// the current patch set's upload run again. FirstSeen is now when there is
// no recheck-seen time. A row whose key or value does not parse fails the
// step (the file stays at version 1), naming the row.
func moveMetaRows(ctx context.Context, tx txn, now time.Time) error {
	cursors := map[int]*ChangeCursor{}
	cursor := func(change int) *ChangeCursor {
		c := cursors[change]
		if c == nil {
			c = &ChangeCursor{Change: change}
			cursors[change] = c
		}
		return c
	}
	type reply struct {
		runID  int64
		target string
	}
	var replies []reply

	rows, err := tx.QueryContext(ctx, `SELECT key, value FROM meta
		WHERE `+movedMetaRows)
	if err != nil {
		return fmt.Errorf("read meta rows to move: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var key, value string
		if err := rows.Scan(&key, &value); err != nil {
			return fmt.Errorf("read meta rows to move: %w", err)
		}
		bad := func(why string) error { return fmt.Errorf("meta row %q = %q: %s", key, value, why) }
		switch {
		case strings.HasPrefix(key, "recheck-seen:"):
			change, err := positive(strings.TrimPrefix(key, "recheck-seen:"))
			if err != nil {
				return bad("change number: " + err.Error())
			}
			c := cursor(change)
			if value == "" {
				continue
			}
			seen, err := time.Parse(time.RFC3339Nano, value)
			if err != nil {
				return bad("time: " + err.Error())
			}
			c.MessagesSeen, c.FirstSeen = utc(seen), utc(seen)
		case strings.HasPrefix(key, "untrusted-notice:"):
			cs, ps, ok := strings.Cut(strings.TrimPrefix(key, "untrusted-notice:"), "/")
			change, err1 := positive(cs)
			patchSet, err2 := positive(ps)
			if !ok || err1 != nil || err2 != nil {
				return bad("want untrusted-notice:<change>/<patch set>")
			}
			c := cursor(change)
			c.Noticed = max(c.Noticed, patchSet)
		default: // reply-to:
			id, err := positive(strings.TrimPrefix(key, "reply-to:"))
			if err != nil {
				return bad("run id: " + err.Error())
			}
			if value != "" {
				replies = append(replies, reply{int64(id), value})
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read meta rows to move: %w", err)
	}
	rows.Close()

	// The trigger kinds as step 1's pipeline wrote them.
	trig, err := tx.QueryContext(ctx, `SELECT change_number, MAX(patch_set) FROM runs
		WHERE trigger_kind IN ('upload', 'recheck') AND change_number > 0 GROUP BY change_number`)
	if err != nil {
		return fmt.Errorf("read triggered patch sets: %w", err)
	}
	defer trig.Close()
	for trig.Next() {
		var change, patchSet int
		if err := trig.Scan(&change, &patchSet); err != nil {
			return fmt.Errorf("read triggered patch sets: %w", err)
		}
		cursor(change).Triggered = patchSet
	}
	if err := trig.Err(); err != nil {
		return fmt.Errorf("read triggered patch sets: %w", err)
	}
	trig.Close()

	for _, c := range cursors {
		if c.FirstSeen.IsZero() {
			c.FirstSeen = now
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO change_cursors
			(change_number, first_seen, messages_seen, triggered, noticed) VALUES (?, ?, ?, ?, ?)`,
			c.Change, timeArg(c.FirstSeen), timeArg(c.MessagesSeen), c.Triggered, c.Noticed); err != nil {
			return fmt.Errorf("move cursor of change %d: %w", c.Change, err)
		}
	}
	for _, r := range replies {
		if _, err := tx.ExecContext(ctx, `INSERT INTO reply_targets (run_id, target)
			SELECT ?, ? WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?)`, r.runID, r.target, r.runID); err != nil {
			return fmt.Errorf("move reply target of run %d: %w", r.runID, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM meta
		WHERE `+movedMetaRows); err != nil {
		return fmt.Errorf("delete moved meta rows: %w", err)
	}
	return nil
}

// movedMetaRows selects the meta rows step 2 moves, in SQL both databases
// speak (LIKE ignores case in SQLite).
const movedMetaRows = `substr(key, 1, 13) = 'recheck-seen:' OR substr(key, 1, 17) = 'untrusted-notice:'
	OR substr(key, 1, 9) = 'reply-to:'`

// positive parses a decimal number greater than zero.
func positive(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, err
	}
	if n <= 0 {
		return 0, fmt.Errorf("%d is not positive", n)
	}
	return n, nil
}
