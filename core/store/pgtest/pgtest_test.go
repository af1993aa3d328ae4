package pgtest

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStartStop starts a server of its own, uses it, and stops it: the
// process is gone by its PID and the folder is removed.
func TestStartStop(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL; skipped under -short")
	}
	s, err := Start(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	name, err := s.CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", s.DSN(name))
	if err != nil {
		t.Fatal(err)
	}
	var got int
	if err := db.QueryRowContext(t.Context(), "SELECT 40 + 2").Scan(&got); err != nil || got != 42 {
		t.Errorf("SELECT 40 + 2 = %d, %v", got, err)
	}
	db.Close()
	pid := s.PID()
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("postgres pid %d still exists after Stop (kill 0: %v)", pid, err)
	}
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Errorf("data folder %s left behind: %v", s.Dir, err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// TestNewDatabase gives each test an empty database of its own on the
// shared server, dropped afterwards.
func TestNewDatabase(t *testing.T) {
	var first string
	t.Run("a", func(t *testing.T) {
		first = NewDatabase(t)
		db, err := sql.Open("pgx", first)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.ExecContext(t.Context(), "CREATE TABLE x (y INT)"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("b", func(t *testing.T) {
		second := NewDatabase(t)
		if second == first {
			t.Fatalf("the same database twice: %s", second)
		}
		// Text sorts as en-US, not byte-wise.
		db, err := sql.Open("pgx", second)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var less bool
		if err := db.QueryRowContext(t.Context(), "SELECT 'a' < 'B'").Scan(&less); err != nil || !less {
			t.Errorf("'a' < 'B' = %v, %v; want true (en-US collation)", less, err)
		}
	})
	// a's database was dropped when a ended.
	db, err := sql.Open("pgx", first)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(5 * time.Second)
	for db.PingContext(t.Context()) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("database %s still exists after its test", first)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestBinariesMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := findBinaries(filepath.Join(t.TempDir(), "*", "bin"))
	if want := "install the Debian package postgresql"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("findBinaries with nothing installed: %v, want an error saying %q", err, want)
	}
}

func TestMain(m *testing.M) { os.Exit(RunTests(m)) }
