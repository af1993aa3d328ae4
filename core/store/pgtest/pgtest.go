// Package pgtest runs a real PostgreSQL server for tests: Debian's
// postgresql package, started from a temporary data folder on a loopback
// port, and stopped by PID. A test package shares one server among its
// tests and gives each test a database of its own:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.RunTests(m)) }
//
//	dsn := pgtest.NewDatabase(t)
//
// Under -short, tests that need PostgreSQL are skipped. Otherwise a missing
// server is a failure that names the package to install.
package pgtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the pgx driver, as "pgx"
)

// Package is the Debian package that provides the server.
const Package = "postgresql"

// Server is a running PostgreSQL server that trusts local connections as
// its superuser "postgres".
type Server struct {
	// Port is the loopback TCP port it listens on.
	Port int
	// Dir is its data folder, removed by Stop.
	Dir string

	cmd      *exec.Cmd
	log      string
	done     chan struct{}
	waitErr  error
	admin    *sql.DB
	stopOnce sync.Once
	stopErr  error
}

// Binaries finds the folder holding initdb and postgres: the newest
// /usr/lib/postgresql/<version>/bin, else PATH. The error says which
// Debian package to install.
func Binaries() (string, error) { return findBinaries("/usr/lib/postgresql/*/bin") }

func findBinaries(glob string) (string, error) {
	dirs, _ := filepath.Glob(glob)
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if executable(filepath.Join(d, "initdb")) && executable(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if d := filepath.Dir(p); executable(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("the PostgreSQL server (initdb, postgres) is not installed: not under /usr/lib/postgresql/*/bin nor on PATH; "+
		"install the Debian package %s (make deps, or apt-get install %s)", Package, Package)
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func executable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// Start initialises a data folder and starts a server on a free loopback
// port. As root it runs the server as the "postgres" user (or "nobody"),
// since initdb refuses to run as root. The server dies with this process.
func Start(ctx context.Context) (_ *Server, err error) {
	bin, err := Binaries()
	if err != nil {
		return nil, err
	}
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "ductbot-pg-")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, log: filepath.Join(dir, "server.log"), done: make(chan struct{})}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		return nil, err
	}
	if cred != nil {
		for _, p := range []string{dir, data} {
			if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
				return nil, fmt.Errorf("giving %s to the server's user: %w", p, err)
			}
		}
	}

	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	initdb.Env = append(os.Environ(), "LC_ALL=C")
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}

	for attempt := 0; ; attempt++ {
		s.Port, err = freePort()
		if err != nil {
			return nil, err
		}
		err = s.start(ctx, bin, data, cred)
		if err == nil || attempt == 2 || ctx.Err() != nil {
			break
		}
		s.done, s.waitErr = make(chan struct{}), nil // the port was taken meanwhile: try another
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) start(ctx context.Context, bin, data string, cred *syscall.Credential) error {
	f, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(s.Port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=300", "-c", "shared_buffers=32MB")
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group, stopped by PID; killed if this process dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("starting postgres: %w", err)
	}
	s.cmd = cmd
	done := s.done
	go func() {
		s.waitErr = cmd.Wait()
		f.Close()
		close(done)
	}()

	admin, err := sql.Open("pgx", s.DSN("postgres"))
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err = admin.PingContext(pctx)
		cancel()
		if err == nil {
			s.admin = admin
			return nil
		}
		select {
		case <-done:
			admin.Close()
			return fmt.Errorf("postgres exited at start (%v):\n%s", s.waitErr, s.tail())
		case <-ctx.Done():
			admin.Close()
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			admin.Close()
			return fmt.Errorf("postgres did not accept connections within 30s (%v):\n%s", err, s.tail())
		}
	}
}

// credential is who runs the server: nil (this process's user) unless that
// is root.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err1 == nil && err2 == nil && uid != 0 {
			return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
		}
	}
	return nil, errors.New("running as root and there is no postgres or nobody user to run PostgreSQL as (initdb refuses root)")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) tail() string {
	b, _ := os.ReadFile(s.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

// DSN is the URL of database db as the superuser.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, db)
}

// PID is the server's (the postmaster's) process ID.
func (s *Server) PID() int { return s.cmd.Process.Pid }

var dbSeq atomic.Int64

// CreateDatabase makes a new empty database and returns its name. It sorts
// text as American English (ICU's en-US), like most production databases
// and unlike the byte order of SQLite and of the C locale, so that a query
// whose order depends on the collation shows here; where the server has no
// ICU, it gets the server's default.
func (s *Server) CreateDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("test_%d_%d", os.Getpid(), dbSeq.Add(1))
	_, err := s.admin.ExecContext(ctx, "CREATE DATABASE "+name+
		" TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C' LOCALE_PROVIDER icu ICU_LOCALE 'en-US'")
	if err != nil {
		_, err = s.admin.ExecContext(ctx, "CREATE DATABASE "+name)
	}
	if err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return name, nil
}

// DropDatabase removes a database, closing its connections.
func (s *Server) DropDatabase(ctx context.Context, name string) error {
	if _, err := s.admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// Stop ends the server by PID (SIGINT: fast shutdown, then SIGKILL after ten
// seconds), waits for it and removes its folder. It is safe to call more
// than once.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		if s.admin != nil {
			s.admin.Close()
		}
		var errs []error
		if s.cmd != nil && s.cmd.Process != nil {
			pid := s.cmd.Process.Pid
			_ = syscall.Kill(pid, syscall.SIGINT)
			select {
			case <-s.done:
			case <-time.After(10 * time.Second):
				_ = syscall.Kill(-pid, syscall.SIGKILL)
				select {
				case <-s.done:
				case <-time.After(10 * time.Second):
					errs = append(errs, fmt.Errorf("postgres (pid %d) did not exit after SIGKILL", pid))
				}
			}
		}
		if err := os.RemoveAll(s.Dir); err != nil {
			errs = append(errs, err)
		}
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}

var shared struct {
	once sync.Once
	s    *Server
	err  error
}

// Shared returns the test binary's one server, starting it on first use.
// Under -short it skips the test.
func Shared(t testing.TB) *Server {
	t.Helper()
	if testing.Short() {
		t.Skip("needs PostgreSQL (Debian package " + Package + "); skipped under -short")
	}
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		shared.s, shared.err = Start(ctx)
	})
	if shared.err != nil {
		t.Fatalf("PostgreSQL for tests: %v", shared.err)
	}
	return shared.s
}

// NewDatabase makes an empty database on the shared server for this test,
// dropped when the test ends, and returns its DSN.
func NewDatabase(t testing.TB) string {
	t.Helper()
	s := Shared(t)
	name, err := s.CreateDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.DropDatabase(context.Background(), name); err != nil {
			t.Errorf("%v", err)
		}
	})
	return s.DSN(name)
}

// RunTests runs the package's tests (m is usually the *testing.M of
// TestMain, or another helper's RunTests wrapped around it) and then stops
// the shared server, if one was started, leaving no process behind. It
// returns the exit code.
func RunTests(m interface{ Run() int }) int {
	code := m.Run()
	if shared.s != nil {
		if err := shared.s.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping PostgreSQL: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}
