package irc

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ircServer is a real ngircd on a loopback port, started and stopped by PID.
type ircServer struct {
	t    *testing.T
	conf string
	addr string
	cmd  *exec.Cmd
}

const ngircdPath = "/usr/sbin/ngircd"

func startServer(t *testing.T) *ircServer {
	t.Helper()
	if _, err := os.Stat(ngircdPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ngircd is required in CI (apt-get install ngircd): %v", err)
		}
		t.Skipf("ngircd not installed (apt-get install ngircd): %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "ngircd.conf")
	text := fmt.Sprintf(`[Global]
Name = irc.test
Info = ductbot test server
Listen = 127.0.0.1
Ports = %d
MotdPhrase = hello
AdminInfo1 = test
AdminInfo2 = test
AdminEMail = test@example.invalid
[Limits]
MaxNickLength = 30
PingTimeout = 300
[Options]
PAM = no
Ident = no
DNS = no
`, port)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &ircServer{t: t, conf: conf, addr: fmt.Sprintf("127.0.0.1:%d", port)}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *ircServer) start() {
	s.t.Helper()
	s.cmd = exec.Command(ngircdPath, "--nodaemon", "--config", s.conf)
	if testing.Verbose() {
		s.cmd.Stdout, s.cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("starting ngircd: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("ngircd did not listen on %s: %v", s.addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *ircServer) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

// client is a raw IRC client speaking over a plain net.Conn.
type client struct {
	t    *testing.T
	nick string
	conn net.Conn
	r    *bufio.Reader
}

func dialClient(t *testing.T, addr, nick, channel string) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &client{t: t, nick: nick, conn: conn, r: bufio.NewReader(conn)}
	c.send("NICK " + nick)
	c.send("USER " + nick + " 0 * :test client")
	c.expect(" 001 ", 30*time.Second)
	c.send("JOIN " + channel)
	c.expect(" 366 ", 30*time.Second)
	return c
}

func (c *client) send(line string) {
	c.t.Helper()
	if _, err := c.conn.Write([]byte(line + "\r\n")); err != nil {
		c.t.Fatalf("client write: %v", err)
	}
}

// next returns the next line, answering PINGs, or "" on timeout.
func (c *client) next(deadline time.Time) (string, error) {
	for {
		_ = c.conn.SetReadDeadline(deadline)
		l, err := c.r.ReadString('\n')
		if err != nil {
			return "", err
		}
		l = strings.TrimRight(l, "\r\n")
		if rest, ok := strings.CutPrefix(l, "PING "); ok {
			c.send("PONG " + rest)
			continue
		}
		return l, nil
	}
}

// expect reads until a line contains want, returning the lines read.
func (c *client) expect(want string, timeout time.Duration) []string {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var seen []string
	for {
		l, err := c.next(deadline)
		if err != nil {
			c.t.Fatalf("waiting for %q: %v; saw:\n%s", want, err, strings.Join(seen, "\n"))
		}
		seen = append(seen, l)
		if strings.Contains(l, want) {
			return seen
		}
	}
}

// waitMember polls NAMES until nick is in channel.
func (c *client) waitMember(channel, nick string) {
	c.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		c.send("NAMES " + channel)
		for _, l := range c.expect(" 366 ", 30*time.Second) {
			if strings.Contains(l, " 353 ") && slices.Contains(strings.Fields(strings.NewReplacer("@", "", "+", "").Replace(strings.ToLower(l[strings.LastIndex(l, ":")+1:]))), nick) {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("%s did not join %s", nick, channel)
}
