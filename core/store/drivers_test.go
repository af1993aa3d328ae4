package store

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/ductbot/ductbot/core/store/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.RunTests(m)) }

// A driver is one database the store runs on. The store's tests run once
// per driver, as subtests named after it, against the real thing: an
// SQLite file, and a database of its own on the test binary's PostgreSQL
// server (pgtest).
type driver struct {
	name string
	d    *dialect
	// fresh makes an empty database and says where it is (a path or a DSN).
	fresh func(t testing.TB) string
	// open opens the store at where.
	open func(t testing.TB, where string) (*Store, error)
	// raw opens where without the store, for reading and damaging it.
	raw func(t testing.TB, where string) *sql.DB
	// versionQuery reads the schema version; setVersion writes one.
	versionQuery string
	setVersion   func(v int) string
}

var drivers = []driver{
	{
		name:         "sqlite",
		d:            sqliteDialect,
		fresh:        func(t testing.TB) string { return filepath.Join(t.TempDir(), "state.db") },
		open:         func(t testing.TB, path string) (*Store, error) { return Open(t.Context(), path) },
		raw:          func(t testing.TB, path string) *sql.DB { return rawDB(t, "sqlite", path) },
		versionQuery: "PRAGMA user_version",
		setVersion:   func(v int) string { return fmt.Sprintf("PRAGMA user_version = %d", v) },
	},
	{
		name:         "postgres",
		d:            postgresDialect,
		fresh:        func(t testing.TB) string { return pgtest.NewDatabase(t) },
		open:         func(t testing.TB, dsn string) (*Store, error) { return OpenPostgres(t.Context(), dsn) },
		raw:          func(t testing.TB, dsn string) *sql.DB { return rawDB(t, "pgx", dsn) },
		versionQuery: "SELECT version FROM schema_version",
		setVersion: func(v int) string {
			return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
				DELETE FROM schema_version; INSERT INTO schema_version (version) VALUES (%d)`, v)
		},
	},
}

func rawDB(t testing.TB, driverName, where string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driverName, where)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// openTemp opens a store on a fresh database, closed when the test ends,
// and says where the database is.
func (d driver) openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	where := d.fresh(t)
	return d.mustOpen(t, where), where
}

// mustOpen opens the store at where, closed when the test ends.
func (d driver) mustOpen(t testing.TB, where string) *Store {
	t.Helper()
	s, err := d.open(t, where)
	if err != nil {
		t.Fatalf("open %s store: %v", d.name, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// exec runs q, written with ? placeholders, on raw.
func (d driver) exec(t testing.TB, raw *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := raw.Exec(d.d.bind(q), args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// version reads the schema version of the database at where.
func (d driver) version(t testing.TB, where string) int {
	t.Helper()
	var v int
	if err := d.raw(t, where).QueryRow(d.versionQuery).Scan(&v); err != nil {
		t.Fatalf("read schema version: %v", err)
	}
	return v
}

// eachDriver runs test once per driver, as a subtest named after it.
func eachDriver(t *testing.T, test func(t *testing.T, d driver)) {
	t.Helper()
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) { test(t, d) })
	}
}

// benchDrivers runs bench once per driver.
func benchDrivers(b *testing.B, bench func(b *testing.B, d driver)) {
	for _, d := range drivers {
		b.Run(d.name, func(b *testing.B) { bench(b, d) })
	}
}

// openTemp opens an SQLite store in a temporary file, for the tests about
// SQLite files.
func openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	return drivers[0].openTemp(t)
}
