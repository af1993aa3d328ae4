// Package store keeps ductbot's durable state (runs, environments, test logs
// and small key/values such as the Gerrit watermark): in one embedded SQLite
// file by default (Open), or in a PostgreSQL database that several replicas
// share (OpenPostgres). Both are the same Store with the same behaviour; the
// few statements that differ live in a dialect. It persists what it is given
// and decides nothing: the pipeline owns every state transition.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrNewerSchema is returned (wrapped) by Open when the file was written by a
// newer ductbot whose schema this binary does not know.
var ErrNewerSchema = errors.New("store schema is newer than this binary")

// ErrCorrupt is returned (wrapped) by Open when the file is not an SQLite
// database or is damaged.
var ErrCorrupt = errors.New("store file is not a valid SQLite database")

// connectTimeout bounds each new PostgreSQL connection unless the DSN
// sets connect_timeout.
var connectTimeout = 10 * time.Second

// busyTimeout is how long a connection waits for a lock held by another
// connection (another process, or a checkpoint) before giving up.
const busyTimeout = 10 * time.Second

// Store is ductbot's state. It is safe for concurrent use.
//
// On SQLite, writes go through a single connection, so concurrent writers
// queue in Go instead of failing with SQLITE_BUSY, and reads use a separate
// pool that WAL mode lets run alongside the writer. On PostgreSQL both are
// one pool, and the server orders concurrent writers, also those of other
// replicas.
type Store struct {
	d    *dialect
	name string // the file, or the database's host and name: for messages, never a password
	path string // the SQLite file; "" on PostgreSQL
	w    db     // writes
	r    db     // reads
	now  func() time.Time

	maxLogBytes atomic.Int64 // per run, all pods together; <= 0: no limit
}

// DefaultMaxLogBytes is the test log limit per run of a new Store.
const DefaultMaxLogBytes = 1 << 20

// Open opens (creating if needed) the state file at path and brings its
// schema up to date. It fails with ErrNewerSchema if the file's schema is
// newer than this binary knows and with ErrCorrupt if the file is not a
// usable SQLite database.
func Open(ctx context.Context, path string) (*Store, error) {
	w, err := openDB(path, false)
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	s := newStore(sqliteDialect, path, w)
	s.path = path

	if err := s.check(ctx); err != nil {
		w.Close()
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, s.classify(err)
	}

	r, err := openDB(path, true)
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(4)
	if err := r.PingContext(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, s.classify(fmt.Errorf("open store %s for reading: %w", path, err))
	}
	s.r = newDB(r, s.d)
	return s, nil
}

func newStore(d *dialect, name string, w *sql.DB) *Store {
	s := &Store{d: d, name: name, w: newDB(w, d), r: newDB(w, d), now: time.Now}
	s.maxLogBytes.Store(DefaultMaxLogBytes)
	return s
}

// OpenPostgres connects to the PostgreSQL database dsn names (a URL such as
// postgres://user:password@host:5432/ductbot?sslmode=verify-full, or
// key=value pairs) and brings its schema up to date; replicas starting
// together migrate one at a time. It fails with ErrNewerSchema if the
// database's schema is newer than this binary knows. Errors name the host
// and the database, never the password.
func OpenPostgres(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's message may quote the DSN: say only what is wrong with it.
		return nil, errors.New("open store: the PostgreSQL DSN does not parse: want postgres://user:password@host:port/database or host=... dbname=... pairs")
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = connectTimeout // a DSN's connect_timeout wins
	}
	name := fmt.Sprintf("postgres://%s/%s", hostPort(cfg), url.PathEscape(cfg.Database))
	conn := stdlib.OpenDB(*cfg)
	conn.SetMaxOpenConns(8)
	conn.SetMaxIdleConns(4)
	conn.SetConnMaxIdleTime(5 * time.Minute)
	s := newStore(postgresDialect, name, conn)
	if err := conn.PingContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("open store %s: %w", name, err)
	}
	if err := s.migrate(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return s, nil
}

func hostPort(cfg *pgx.ConnConfig) string {
	if cfg.Port == 0 || cfg.Port == 5432 {
		return cfg.Host
	}
	return fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)
}

// openDB returns a pool whose connections are set up with WAL, a busy
// timeout and foreign keys. Write transactions begin IMMEDIATE so they take
// the write lock up front, where the busy timeout applies.
func openDB(path string, readOnly bool) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Set("_txlock", "immediate")
	}
	dsn := (&url.URL{Scheme: "file", Opaque: path, RawQuery: q.Encode()}).String()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return db, nil
}

// check connects and runs a quick integrity check, so a damaged file is
// reported at start-up rather than in the middle of a run. SQLite only.
func (s *Store) check(ctx context.Context) error {
	if err := s.w.pool.PingContext(ctx); err != nil {
		return s.classify(fmt.Errorf("open store %s: %w", s.name, err))
	}
	var res string
	if err := s.w.QueryRowContext(ctx, "PRAGMA quick_check").Scan(&res); err != nil {
		return s.classify(fmt.Errorf("check store %s: %w", s.name, err))
	}
	if res != "ok" {
		return fmt.Errorf("%w: %s: integrity check: %s", ErrCorrupt, s.name, res)
	}
	return nil
}

// classify turns SQLite's "not a database" and "malformed" errors into
// ErrCorrupt, keeping the original error in the chain. Other errors, and
// every PostgreSQL one, are returned as they are.
func (s *Store) classify(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT:
			return fmt.Errorf("%w: %w", ErrCorrupt, err) // err names the file
		}
	}
	return err
}

// Close closes the file or the connections. Calls after Close fail.
func (s *Store) Close() error {
	if s.r.pool == s.w.pool {
		return s.w.pool.Close()
	}
	return errors.Join(s.r.pool.Close(), s.w.pool.Close())
}

// SetMaxLogBytes sets how many bytes of test logs PutTestLogs keeps per run,
// all of the run's pods together (DefaultMaxLogBytes until set); n <= 0
// means no limit. It applies to logs put from then on; logs already stored
// are not cut. It is safe to call while the store is in use.
func (s *Store) SetMaxLogBytes(n int) { s.maxLogBytes.Store(int64(n)) }

// Path returns the file the store was opened from; "" on PostgreSQL.
func (s *Store) Path() string { return s.path }

// Driver is "sqlite" or "postgres".
func (s *Store) Driver() string { return s.d.name }

// String names the store for messages: the file, or the PostgreSQL host and
// database (never the password).
func (s *Store) String() string { return s.name }

// inTx runs fn in a write transaction and commits it if fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(txn) error) error {
	t, err := s.w.pool.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(txn{t, s.d}); err != nil {
		_ = t.Rollback()
		return err
	}
	if err := t.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
