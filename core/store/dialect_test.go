package store

import (
	"context"
	"errors"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/core/store/pgtest"
)

func TestBind(t *testing.T) {
	tests := []struct{ in, sqlite, postgres string }{
		{"SELECT 1", "SELECT 1", "SELECT 1"},
		{"a = ? AND b IN (?, ?)", "a = ? AND b IN (?, ?)", "a = $1 AND b IN ($2, $3)"},
		{"?", "?", "$1"},
		{"x = ?,", "x = ?,", "x = $1,"},
	}
	for _, tt := range tests {
		if got := sqliteDialect.bind(tt.in); got != tt.sqlite {
			t.Errorf("sqlite bind(%q) = %q, want %q", tt.in, got, tt.sqlite)
		}
		for range 2 { // the second time from the cache
			if got := postgresDialect.bind(tt.in); got != tt.postgres {
				t.Errorf("postgres bind(%q) = %q, want %q", tt.in, got, tt.postgres)
			}
		}
	}
}

// TestSchemasAlike: the migrations make the same tables and columns on
// both databases.
func TestSchemasAlike(t *testing.T) {
	columns := map[string]map[string][]string{} // driver → table → columns
	for _, d := range drivers {
		_, where := d.openTemp(t)
		raw := d.raw(t, where)
		q := `SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
			WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.name`
		if d.name == "postgres" {
			q = `SELECT table_name, column_name FROM information_schema.columns
				WHERE table_schema = current_schema() AND table_name <> 'schema_version'
				ORDER BY table_name COLLATE "C", column_name COLLATE "C"`
		}
		rows, err := raw.Query(q)
		if err != nil {
			t.Fatalf("%s: %v", d.name, err)
		}
		tables := map[string][]string{}
		for rows.Next() {
			var table, col string
			if err := rows.Scan(&table, &col); err != nil {
				t.Fatal(err)
			}
			tables[table] = append(tables[table], col)
		}
		rows.Close()
		columns[d.name] = tables
	}
	if len(columns["sqlite"]) < 6 {
		t.Fatalf("only %d SQLite tables: %v", len(columns["sqlite"]), columns["sqlite"])
	}
	if !reflect.DeepEqual(columns["sqlite"], columns["postgres"]) {
		t.Errorf("schemas differ:\nsqlite   %v\npostgres %v", columns["sqlite"], columns["postgres"])
	}
}

// TestByteOrder: environments created at the same time list by name byte
// by byte on both databases, also where the database collates otherwise
// (pgtest's databases sort as en-US, which puts "a" before "B").
func TestByteOrder(t *testing.T) {
	eachDriver(t, func(t *testing.T, d driver) {
		s, _ := d.openTemp(t)
		names := []string{"b-2", "B-1", "a-3", "_x", "Z"}
		for _, n := range names {
			if err := s.PutEnv(t.Context(), &run.Env{Name: n, CreatedAt: at(0)}); err != nil {
				t.Fatal(err)
			}
		}
		envs, err := s.ListEnvs(t.Context(), EnvFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range envs {
			got = append(got, e.Name)
		}
		want := slices.Clone(names)
		slices.Sort(want) // Go compares strings byte-wise
		if !slices.Equal(got, want) {
			t.Errorf("ListEnvs order = %q, want %q", got, want)
		}
	})
}

// TestOutsideText: commit subjects, error details and test logs with NUL
// bytes and invalid UTF-8 are stored (PostgreSQL refuses both in text),
// each bad byte as U+FFFD, the same on both databases.
func TestOutsideText(t *testing.T) {
	eachDriver(t, func(t *testing.T, d driver) {
		s, _ := d.openTemp(t)
		ctx := t.Context()
		bad := "a\x00b\xffc"
		const clean = "a\uFFFDb\uFFFDc"
		r := &run.Run{Env: "e", Subject: bad, Owner: bad, Detail: bad}
		if err := s.CreateRun(ctx, r); err != nil {
			t.Fatalf("CreateRun: %v", err)
		}
		r.Detail = "helm: " + bad
		if err := s.UpdateRun(ctx, r); err != nil {
			t.Fatalf("UpdateRun: %v", err)
		}
		got, err := s.GetRun(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Subject != clean || got.Owner != clean || got.Detail != "helm: "+clean {
			t.Errorf("run text = %q, %q, %q; want %q", got.Subject, got.Owner, got.Detail, clean)
		}
		if err := s.PutTestLogs(ctx, r.ID, []run.TestLog{{Pod: "p\x00", Phase: "Failed", Log: bad}}); err != nil {
			t.Fatalf("PutTestLogs: %v", err)
		}
		logs, err := s.TestLogs(ctx, r.ID)
		if err != nil || len(logs) != 1 || logs[0].Log != clean || logs[0].Pod != "p\uFFFD" {
			t.Errorf("TestLogs = %+v, %v; want the log %q", logs, err, clean)
		}
		e := &run.Env{Name: "e", Subject: bad, Owner: bad}
		if _, err := s.CreateOrReviveEnv(ctx, e); err != nil {
			t.Fatalf("CreateOrReviveEnv: %v", err)
		}
		if _, err := s.CreateOrReviveEnv(ctx, e); err != nil {
			t.Fatalf("CreateOrReviveEnv of a live env: %v", err)
		}
		if err := s.PutEnv(ctx, e); err != nil {
			t.Fatalf("PutEnv: %v", err)
		}
		if ge, err := s.GetEnv(ctx, "e"); err != nil || ge.Subject != clean || ge.Owner != clean {
			t.Errorf("env text = %+v, %v; want %q", ge, err, clean)
		}
	})
}

// TestCreateOrReviveEnvConcurrent: requests racing for one new environment
// make it exactly once; the others update the live record.
func TestCreateOrReviveEnvConcurrent(t *testing.T) {
	eachDriver(t, func(t *testing.T, d driver) {
		s, _ := d.openTemp(t)
		for round := range 3 {
			name := "race-" + string(rune('a'+round))
			const n = 8
			var (
				wg      sync.WaitGroup
				mu      sync.Mutex
				created int
				errs    []error
			)
			for i := range n {
				wg.Go(func() {
					c, err := s.CreateOrReviveEnv(t.Context(), &run.Env{Name: name, Status: run.EnvWaiting, RequestedBy: string(rune('A' + i))})
					mu.Lock()
					defer mu.Unlock()
					if c {
						created++
					}
					if err != nil {
						errs = append(errs, err)
					}
				})
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			if created != 1 {
				t.Errorf("%s: created %d times, want once", name, created)
			}
		}
	})
}

// TestPostgresConcurrentOpen: replicas starting together on an empty
// database migrate it one at a time and all open it.
func TestPostgresConcurrentOpen(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	stores := make([]*Store, n)
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = OpenPostgres(t.Context(), dsn) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", i, err)
			continue
		}
		stores[i].Close()
	}
	if v := drivers[1].version(t, dsn); v != SchemaVersion() {
		t.Errorf("schema version = %d, want %d", v, SchemaVersion())
	}
}

// TestPostgresErrorsHidePassword: a DSN that does not parse, a wrong
// password and an unreachable server are errors that never show the
// password.
func TestPostgresErrorsHidePassword(t *testing.T) {
	srv := pgtest.Shared(t)
	const secret = "s3cr3t-Pa55"
	tests := []struct {
		name, dsn, want string
	}{
		{"unparseable", "postgres://u:" + secret + "@host:notaport/db", "does not parse"},
		{"unreachable", "postgres://u:" + secret + "@127.0.0.1:1/ductbot?connect_timeout=2&sslmode=disable", "127.0.0.1:1/ductbot"},
		{"no such database", strings.Replace(srv.DSN("nosuchdb"), "postgres@", "postgres:"+secret+"@", 1), "nosuchdb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			s, err := OpenPostgres(ctx, tt.dsn)
			if err == nil {
				s.Close()
				t.Fatal("OpenPostgres succeeded")
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error shows the password: %v", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

// TestPostgresConnectTimeout: a server that accepts connections and never
// answers does not hang OpenPostgres.
func TestPostgresConnectTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // silent until the test ends
		}
	}()
	old := connectTimeout
	connectTimeout = time.Second
	defer func() { connectTimeout = old }()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // a bound for the test, not the one tested
	defer cancel()
	start := time.Now()
	s, err := OpenPostgres(ctx, "postgres://u@"+ln.Addr().String()+"/ductbot?sslmode=disable")
	if err == nil {
		s.Close()
		t.Fatal("OpenPostgres of a silent server succeeded")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("OpenPostgres took %s to give up, want about the connect timeout (1s): %v", took, err)
	}
}
