package gerrittest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// DefaultStreamQueue is how many events a stream-events session may have
// waiting to be written before newer ones are dropped.
const DefaultStreamQueue = 1000

// SSHOptions configure the SSH endpoint [Server.StartSSH] opens.
type SSHOptions struct {
	// Addr is the address to listen on; by default a free loopback port
	// (Gerrit's own default is 29418).
	Addr string
	// HostKey is the server's host key; by default a new Ed25519 key.
	HostKey ssh.Signer
	// StreamQueue is how many events a stream-events session may have
	// waiting to be written; defaults to DefaultStreamQueue. When it is
	// full, newer events are dropped and the session is sent
	// {"type":"dropped-output"} once the queue has drained, as Gerrit does
	// for a client that reads too slowly.
	StreamQueue int
}

// sshServer is the SSH side of a Server: public-key authentication and the
// `gerrit stream-events` command.
type sshServer struct {
	srv     *Server
	ln      net.Listener
	config  *ssh.ServerConfig
	hostKey ssh.PublicKey
	queue   int

	mu       sync.Mutex
	keys     map[string][][]byte // authorized keys by username, wire format
	canStrm  map[string]bool     // the Stream Events capability, by username
	refuse   bool
	paused   chan struct{} // non-nil while stream output is paused; closed on resume
	conns    map[*sshConn]bool
	sessions map[*streamSession]bool
	closed   bool

	wg         sync.WaitGroup
	connects   atomic.Int64
	keepalives atomic.Int64
}

type sshConn struct {
	conn   *ssh.ServerConn
	user   string
	frozen atomic.Bool
	done   chan struct{} // closed when the connection ends
}

// streamSession is one running `gerrit stream-events`.
type streamSession struct {
	conn    *sshConn
	types   map[string]bool // subscribed types; nil: every type
	queue   chan []byte
	dropped atomic.Bool
}

// StartSSH opens the server's SSH endpoint, which authenticates accounts by
// public key ([Server.AddSSHKey]) and serves `gerrit stream-events [-s
// TYPE]...` to accounts with the Stream Events capability
// ([Server.GrantStreamEvents]). It returns the address it listens on. Events
// follow the server's state changes: patchset-created (and ref-updated) on
// CreateChange and UploadPatchSet, comment-added on AddComment and on
// reviews posted through REST, change-merged, change-abandoned and
// change-restored on SetStatus, wip-state-changed, private-state-changed and
// change-deleted. Close stops it.
func (s *Server) StartSSH(opts SSHOptions) (string, error) {
	signer := opts.HostKey
	if signer == nil {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return "", err
		}
		if signer, err = ssh.NewSignerFromKey(priv); err != nil {
			return "", err
		}
	}
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("gerrittest: SSH listening on %s: %w", addr, err)
	}
	q := opts.StreamQueue
	if q <= 0 {
		q = DefaultStreamQueue
	}
	ss := &sshServer{
		srv: s, ln: ln, hostKey: signer.PublicKey(), queue: q,
		keys: map[string][][]byte{}, canStrm: map[string]bool{},
		conns: map[*sshConn]bool{}, sessions: map[*streamSession]bool{},
	}
	ss.config = &ssh.ServerConfig{
		ServerVersion: "SSH-2.0-GerritCodeReview_3.10.0 (APACHE-SSHD-2.12.0)",
		PublicKeyCallback: func(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			ss.mu.Lock()
			defer ss.mu.Unlock()
			want := key.Marshal()
			if slices.ContainsFunc(ss.keys[c.User()], func(k []byte) bool { return string(k) == string(want) }) {
				return nil, nil
			}
			return nil, fmt.Errorf("gerrittest: unknown key for %q", c.User())
		},
	}
	ss.config.AddHostKey(signer)
	s.mu.Lock()
	if s.ssh != nil {
		s.mu.Unlock()
		ln.Close()
		return "", errors.New("gerrittest: SSH already started")
	}
	s.ssh = ss
	s.mu.Unlock()
	ss.wg.Add(1)
	go ss.accept()
	return ln.Addr().String(), nil
}

// SSHAddr is the SSH endpoint's address, or "" before StartSSH.
func (s *Server) SSHAddr() string {
	if ss := s.sshServer(); ss != nil {
		return ss.ln.Addr().String()
	}
	return ""
}

// SSHHostKey is the SSH endpoint's host public key, or nil before StartSSH.
func (s *Server) SSHHostKey() ssh.PublicKey {
	if ss := s.sshServer(); ss != nil {
		return ss.hostKey
	}
	return nil
}

func (s *Server) sshServer() *sshServer {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.ssh
}

func (s *Server) mustSSH() *sshServer {
	ss := s.sshServer()
	if ss == nil {
		panic("gerrittest: StartSSH first")
	}
	return ss
}

// AddSSHKey lets username (created as an account if needed) authenticate
// over SSH with key.
func (s *Server) AddSSHKey(username string, key ssh.PublicKey) {
	s.mu.Lock()
	s.accountLocked(username)
	s.mu.Unlock()
	ss := s.mustSSH()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.keys[username] = append(ss.keys[username], key.Marshal())
}

// GrantStreamEvents gives username the Stream Events global capability,
// without which `gerrit stream-events` is refused.
func (s *Server) GrantStreamEvents(username string) {
	ss := s.mustSSH()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.canStrm[username] = true
}

// RefuseSSH makes the endpoint close new connections at once (true), as a
// Gerrit that is restarting would, or accept them again (false).
func (s *Server) RefuseSSH(refuse bool) {
	ss := s.mustSSH()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.refuse = refuse
}

// DropStreams closes the connection of every running stream-events
// session, as a network cut or a Gerrit restart does, and returns how many
// it closed. Clients may connect again at once: combine with RefuseSSH to
// keep them out.
func (s *Server) DropStreams() int {
	ss := s.mustSSH()
	ss.mu.Lock()
	var conns []*sshConn
	for st := range ss.sessions {
		conns = append(conns, st.conn)
	}
	ss.mu.Unlock()
	for _, c := range conns {
		c.conn.Close()
	}
	return len(conns)
}

// FreezeStreams makes every open SSH connection a black hole: no more
// events are written and keepalive requests get no answer, as with a peer
// that vanished without closing the connection. New connections work.
func (s *Server) FreezeStreams() {
	ss := s.mustSSH()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for c := range ss.conns {
		c.frozen.Store(true)
	}
}

// PauseStreams stops writing events to every stream-events session; they
// queue (and overflow, see SSHOptions.StreamQueue) until ResumeStreams.
func (s *Server) PauseStreams() {
	ss := s.mustSSH()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.paused == nil {
		ss.paused = make(chan struct{})
	}
}

// ResumeStreams writes the queued events, then dropped-output to sessions
// that lost some.
func (s *Server) ResumeStreams() {
	ss := s.mustSSH()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.paused != nil {
		close(ss.paused)
		ss.paused = nil
	}
}

// EmitDroppedOutput sends {"type":"dropped-output"} to every stream-events
// session, as Gerrit does after it dropped events for a client.
func (s *Server) EmitDroppedOutput() { s.EmitRaw(`{"type":"dropped-output"}`) }

// EmitRaw sends line, which should not end in a newline, to every
// stream-events session whatever its subscriptions: for tests of what a
// client does with malformed or unexpected output.
func (s *Server) EmitRaw(line string) {
	ss := s.mustSSH()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for st := range ss.sessions {
		select {
		case st.queue <- []byte(line):
		default:
			st.dropped.Store(true)
		}
	}
}

// Streams returns how many stream-events sessions are running.
func (s *Server) Streams() int {
	ss := s.mustSSH()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.sessions)
}

// SSHConnects returns how many TCP connections the SSH endpoint accepted,
// refused ones included.
func (s *Server) SSHConnects() int64 { return s.mustSSH().connects.Load() }

// Keepalives returns how many keepalive requests the SSH endpoint received.
func (s *Server) Keepalives() int64 { return s.mustSSH().keepalives.Load() }

// SSHClientFiles are the files a client needs to reach the SSH endpoint.
type SSHClientFiles struct {
	PrivateKeyFile string // an unencrypted OpenSSH private key
	KnownHostsFile string // the endpoint's host key, for its address
	PublicKey      ssh.PublicKey
}

// WriteSSHClientFiles makes a new key for username, authorizes it, grants
// username the Stream Events capability, and writes the private key and a
// known_hosts file naming the endpoint's host key into dir.
func (s *Server) WriteSSHClientFiles(dir, username string) (SSHClientFiles, error) {
	ss := s.mustSSH()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return SSHClientFiles{}, err
	}
	block, err := ssh.MarshalPrivateKey(priv, username+"@ductbot-test")
	if err != nil {
		return SSHClientFiles{}, err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return SSHClientFiles{}, err
	}
	f := SSHClientFiles{
		PrivateKeyFile: filepath.Join(dir, "id_ed25519_"+username),
		KnownHostsFile: filepath.Join(dir, "known_hosts"),
		PublicKey:      sshPub,
	}
	if err := os.WriteFile(f.PrivateKeyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		return SSHClientFiles{}, err
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(ss.ln.Addr().String())}, ss.hostKey)
	if err := os.WriteFile(f.KnownHostsFile, []byte(line+"\n"), 0o644); err != nil {
		return SSHClientFiles{}, err
	}
	s.AddSSHKey(username, sshPub)
	s.GrantStreamEvents(username)
	return f, nil
}

// close stops the endpoint and waits for its goroutines.
func (ss *sshServer) close() {
	ss.mu.Lock()
	ss.closed = true
	conns := make([]*sshConn, 0, len(ss.conns))
	for c := range ss.conns {
		conns = append(conns, c)
	}
	if ss.paused != nil {
		close(ss.paused)
		ss.paused = nil
	}
	ss.mu.Unlock()
	ss.ln.Close()
	for _, c := range conns {
		c.conn.Close()
	}
	ss.wg.Wait()
}

func (ss *sshServer) accept() {
	defer ss.wg.Done()
	for {
		nc, err := ss.ln.Accept()
		if err != nil {
			return
		}
		ss.connects.Add(1)
		ss.mu.Lock()
		refuse, closed := ss.refuse, ss.closed
		if !refuse && !closed {
			ss.wg.Add(1)
		}
		ss.mu.Unlock()
		if refuse || closed {
			nc.Close()
			continue
		}
		go ss.serveConn(nc)
	}
}

func (ss *sshServer) serveConn(nc net.Conn) {
	defer ss.wg.Done()
	sconn, chans, reqs, err := ssh.NewServerConn(nc, ss.config)
	if err != nil {
		nc.Close()
		return
	}
	c := &sshConn{conn: sconn, user: sconn.User(), done: make(chan struct{})}
	ss.mu.Lock()
	if ss.closed {
		ss.mu.Unlock()
		sconn.Close()
		return
	}
	ss.conns[c] = true
	ss.mu.Unlock()
	defer func() {
		ss.mu.Lock()
		delete(ss.conns, c)
		ss.mu.Unlock()
	}()

	var wg sync.WaitGroup
	wg.Go(func() {
		for r := range reqs {
			if !strings.HasPrefix(r.Type, "keepalive@") {
				r.Reply(false, nil)
				continue
			}
			ss.keepalives.Add(1)
			if !c.frozen.Load() {
				r.Reply(true, nil) // as Apache SSHD's keep-alive handler does
			}
		}
	})
	wg.Go(func() {
		sconn.Wait()
		close(c.done)
	})
	for nch := range chans {
		if nch.ChannelType() != "session" {
			nch.Reject(ssh.UnknownChannelType, "unknown channel type")
			continue
		}
		ch, chReqs, err := nch.Accept()
		if err != nil {
			continue
		}
		wg.Go(func() { ss.session(c, ch, chReqs) })
	}
	sconn.Close()
	wg.Wait()
}

// session serves one session channel: one exec request.
func (ss *sshServer) session(c *sshConn, ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for r := range reqs {
		switch r.Type {
		case "exec":
			var p struct{ Command string }
			if err := ssh.Unmarshal(r.Payload, &p); err != nil {
				r.Reply(false, nil)
				continue
			}
			r.Reply(true, nil)
			go ssh.DiscardRequests(reqs)
			status := ss.exec(c, ch, p.Command)
			ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
			return
		case "shell":
			r.Reply(true, nil)
			go ssh.DiscardRequests(reqs)
			fmt.Fprint(ch.Stderr(), "\r\n  ****    Welcome to Gerrit Code Review    ****\r\n\r\n  Unfortunately, interactive shells are disabled.\r\n\r\n")
			ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{127}))
			return
		default:
			r.Reply(false, nil)
		}
	}
}

// exec runs one command line and returns its exit status.
func (ss *sshServer) exec(c *sshConn, ch ssh.Channel, line string) uint32 {
	args := strings.Fields(line)
	if len(args) < 2 || args[0] != "gerrit" || args[1] != "stream-events" {
		name := line
		if len(args) > 1 && args[0] == "gerrit" {
			name = "gerrit: " + args[1]
		}
		fmt.Fprintf(ch.Stderr(), "fatal: %s: not found\n", name)
		return 1
	}
	var types map[string]bool
	for i := 2; i < len(args); i++ {
		a := args[i]
		var v string
		switch {
		case a == "-s" || a == "--subscribe":
			if i+1 >= len(args) {
				fmt.Fprintf(ch.Stderr(), "fatal: Option %q takes an operand\n", a)
				return 1
			}
			i++
			v = args[i]
		case strings.HasPrefix(a, "--subscribe="):
			v = strings.TrimPrefix(a, "--subscribe=")
		default:
			fmt.Fprintf(ch.Stderr(), "fatal: %q is not a valid option\n", a)
			return 1
		}
		if types == nil {
			types = map[string]bool{}
		}
		types[v] = true
	}
	ss.mu.Lock()
	allowed := ss.canStrm[c.user]
	ss.mu.Unlock()
	if !allowed {
		fmt.Fprintf(ch.Stderr(), "fatal: %s does not have \"Stream Events\" capability.\n", c.user)
		return 1
	}
	return ss.stream(c, ch, types)
}

// stream runs `gerrit stream-events` until the client or the server ends
// it.
func (ss *sshServer) stream(c *sshConn, ch ssh.Channel, types map[string]bool) uint32 {
	st := &streamSession{conn: c, types: types, queue: make(chan []byte, ss.queue)}
	ss.mu.Lock()
	if ss.closed {
		ss.mu.Unlock()
		return 1
	}
	ss.sessions[st] = true
	ss.mu.Unlock()
	defer func() {
		ss.mu.Lock()
		delete(ss.sessions, st)
		ss.mu.Unlock()
	}()
	// Read and ignore stdin: clients close it at once (EOF), which does
	// not end the command. The connection ending or a failed write does.
	go io.Copy(io.Discard, ch)
	write := func(line []byte) bool {
		_, err := ch.Write(append(line, '\n'))
		return err == nil
	}
	for {
		select {
		case line := <-st.queue:
			if !ss.waitWritable(c) {
				return 0
			}
			if !write(line) {
				return 0
			}
			if len(st.queue) == 0 && st.dropped.Swap(false) {
				if !write([]byte(`{"type":"dropped-output"}`)) {
					return 0
				}
			}
		case <-c.done:
			return 0
		}
	}
}

// waitWritable waits while output is paused or the connection frozen; it
// returns false when the connection ended meanwhile.
func (ss *sshServer) waitWritable(c *sshConn) bool {
	for {
		if c.frozen.Load() {
			<-c.done
			return false
		}
		ss.mu.Lock()
		p := ss.paused
		ss.mu.Unlock()
		if p == nil {
			return true
		}
		select {
		case <-p:
		case <-c.done:
			return false
		}
	}
}

// publish queues line for every session subscribed to typ.
func (ss *sshServer) publish(typ string, line []byte) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for st := range ss.sessions {
		if st.types != nil && !st.types[typ] {
			continue
		}
		select {
		case st.queue <- line:
		default:
			st.dropped.Store(true)
		}
	}
}
