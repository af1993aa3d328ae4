package gerrit

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Defaults for StreamOptions.
const (
	DefaultKeepalive = 30 * time.Second
	// KeepaliveMissed is how many keepalive intervals in a row may pass
	// without an answer before the connection is given up (OpenSSH's
	// ServerAliveCountMax).
	KeepaliveMissed          = 3
	DefaultStreamDialTimeout = 30 * time.Second
	DefaultStreamMinBackoff  = time.Second
	DefaultStreamMaxBackoff  = time.Minute
	DefaultStreamSettle      = time.Second
	// MaxEventLine bounds one stream-events line; a longer one is skipped
	// (and a reconcile asked for, since it held an event).
	MaxEventLine = 4 << 20
)

// Event type labels for StreamOptions.OnEvent besides Gerrit's own types.
const (
	EventOther   = "other"   // a type ductbot does not use
	EventInvalid = "invalid" // a line that is not a JSON object, or too long
)

// StreamOptions configure a Stream.
type StreamOptions struct {
	// Address is Gerrit's SSH address, host:port (Gerrit's default port is
	// 29418).
	Address string
	// Username is the SSH user: ductbot's Gerrit account, which needs the
	// Stream Events global capability and PrivateKeyFile's public key.
	Username string
	// PrivateKeyFile holds the account's unencrypted private key
	// (OpenSSH, PKCS#1, PKCS#8 or SEC 1 PEM). It is read once, by
	// NewStream.
	PrivateKeyFile string
	// KnownHostsFile lists Gerrit's host keys in OpenSSH known_hosts
	// format. It is read again before each connection, so an updated
	// host key is picked up without a restart. A host key it does not
	// list is refused.
	KnownHostsFile string
	// Projects, when set, drop events for changes outside them before any
	// REST read (an event that names no project is kept).
	Projects []ProjectFilter
	// Keepalive is how often the connection is probed with a
	// keepalive@openssh.com request; it is given up when KeepaliveMissed
	// intervals in a row pass without an answer. Defaults to
	// DefaultKeepalive.
	Keepalive time.Duration
	// DialTimeout bounds the TCP connect and the SSH handshake; defaults
	// to DefaultStreamDialTimeout.
	DialTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before a reconnect: it
	// starts at MinBackoff, doubles per failure, is capped at MaxBackoff,
	// and is jittered; a connection that stayed up for MaxBackoff resets
	// it. Defaults: DefaultStreamMinBackoff, DefaultStreamMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// Settle is how long a new connection must stay up before the REST
	// reconcile that covers the time without a stream is asked for, so a
	// server that accepts and drops connections does not cause a
	// reconcile for each; events received meanwhile are handled anyway.
	// Defaults to DefaultStreamSettle.
	Settle time.Duration
	Logger *slog.Logger
	// OnConnected, when set, is called with true when the stream is
	// running and with false when it stopped, for metrics.
	OnConnected func(bool)
	// OnEvent, when set, is called for each line read with the event's
	// type: one of StreamEventTypes, EventOther or EventInvalid.
	OnEvent func(typ string)
	// OnReconnect, when set, is called before each connection attempt
	// after the first.
	OnReconnect func()
}

// Stream listens to Gerrit's `gerrit stream-events` over SSH and feeds a
// Poller: each event that names a change becomes a Hint (the Poller reads
// the change through REST and hands it to the same HandleFunc as a poll),
// and after every connection and on dropped-output the Poller is asked for
// a reconcile from its watermark, since the stream does not replay what
// happened while it was away. Events are hints, never truth: nothing is
// decided from an event's own fields except which change to read.
type Stream struct {
	opts   StreamOptions
	poller *Poller
	signer ssh.Signer
	log    *slog.Logger
	cmd    string
}

// NewStream checks opts, reads the private key, and returns a Stream that
// feeds p. It does not connect.
func NewStream(p *Poller, opts StreamOptions) (*Stream, error) {
	if p == nil {
		return nil, errors.New("gerrit stream: no poller to feed")
	}
	host, port, err := net.SplitHostPort(opts.Address)
	if err != nil || host == "" {
		return nil, fmt.Errorf("gerrit stream: address %q is not host:port", opts.Address)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, fmt.Errorf("gerrit stream: address %q: bad port", opts.Address)
	}
	if opts.Username == "" {
		return nil, errors.New("gerrit stream: no username")
	}
	if opts.KnownHostsFile == "" {
		return nil, errors.New("gerrit stream: no known_hosts file: the host key must be checked")
	}
	signer, err := LoadPrivateKey(opts.PrivateKeyFile)
	if err != nil {
		return nil, fmt.Errorf("gerrit stream: %w", err)
	}
	if _, err := knownhosts.New(opts.KnownHostsFile); err != nil {
		return nil, fmt.Errorf("gerrit stream: known_hosts: %w", err)
	}
	if opts.Keepalive <= 0 {
		opts.Keepalive = DefaultKeepalive
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultStreamDialTimeout
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultStreamMinBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultStreamMaxBackoff
	}
	opts.MaxBackoff = max(opts.MaxBackoff, opts.MinBackoff)
	if opts.Settle <= 0 {
		opts.Settle = DefaultStreamSettle
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	cmd := "gerrit stream-events"
	for _, t := range StreamEventTypes {
		cmd += " -s " + t
	}
	return &Stream{
		opts: opts, poller: p, signer: signer, cmd: cmd,
		log: log.With(slog.String("component", "gerrit-stream"), slog.String("address", opts.Address)),
	}, nil
}

// LoadPrivateKey reads an unencrypted SSH private key file.
func LoadPrivateKey(path string) (ssh.Signer, error) {
	if path == "" {
		return nil, errors.New("no private key file")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the private key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(b)
	var pass *ssh.PassphraseMissingError
	if errors.As(err, &pass) {
		return nil, fmt.Errorf("private key %s is encrypted: give ductbot a key without a passphrase (keep the file private)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w", path, err)
	}
	return signer, nil
}

// Command is the command line the stream runs on Gerrit.
func (s *Stream) Command() string { return s.cmd }

// Run connects, reads events until the connection ends, and reconnects
// with capped, jittered backoff, until ctx is done; it returns ctx's error.
// Connection failures are logged, never returned: REST polling goes on
// while the stream is away.
func (s *Stream) Run(ctx context.Context) error {
	failures := 0
	for attempt := 0; ; attempt++ {
		if attempt > 0 && s.opts.OnReconnect != nil {
			s.opts.OnReconnect()
		}
		up, err := s.session(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if up >= s.opts.MaxBackoff {
			failures = 0
		}
		failures++
		wait := jitter(backoff(s.opts.MinBackoff, failures, s.opts.MaxBackoff))
		lvl := slog.LevelWarn
		if failures >= 5 {
			// Polling still sees every change, but only every poll
			// interval: say so loudly.
			lvl = slog.LevelError
		}
		s.log.Log(ctx, lvl, "gerrit event stream disconnected; REST polling goes on, reconnecting",
			slog.Any("error", err), slog.Duration("was_up", up.Round(time.Millisecond)),
			slog.Int("consecutive_failures", failures), slog.Duration("retry_in", wait.Round(time.Millisecond)))
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// jitter spreads d over [d/2, d].
func jitter(d time.Duration) time.Duration {
	half := d / 2
	return half + rand.N(half+1)
}

// session runs one connection: dial, check the host key, authenticate,
// start stream-events, and read until the end. It returns how long the
// stream was running and why it ended.
func (s *Stream) session(ctx context.Context) (time.Duration, error) {
	client, err := s.dial(ctx)
	if err != nil {
		return 0, err
	}
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		return 0, fmt.Errorf("opening an SSH session: %w", err)
	}
	defer sess.Close()
	stdout, err := sess.StdoutPipe()
	if err != nil {
		return 0, err
	}
	stderr := &boundedBuffer{max: 4 << 10}
	sess.Stderr = stderr
	if err := sess.Start(s.cmd); err != nil {
		return 0, fmt.Errorf("starting %q: %w", "gerrit stream-events", err)
	}
	started := time.Now()
	if s.opts.OnConnected != nil {
		s.opts.OnConnected(true)
		defer s.opts.OnConnected(false)
	}
	s.log.Info("gerrit event stream connected")

	// Whatever ends first (ctx, a missed keepalive, the settle timer
	// asking for the reconcile) is handled here; closing the client ends
	// the read loop.
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(done)
	var kaErr error
	var kaMu sync.Mutex
	wg.Go(func() {
		settle := time.NewTimer(s.opts.Settle)
		defer settle.Stop()
		tick := time.NewTicker(s.opts.Keepalive)
		defer tick.Stop()
		// One keepalive is outstanding at a time; answered holds its
		// answer (nil: the connection is alive; any reply, even a
		// refusal, says so).
		var answered chan error
		missed := 0
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				client.Close()
				return
			case <-settle.C:
				// The stream has been up a while: whatever happened
				// since the last event it (or an earlier stream) saw is
				// read through REST now.
				s.poller.Reconcile("connected")
			case <-tick.C:
				var err error
				if answered != nil {
					select {
					case err = <-answered:
						answered, missed = nil, 0
					default:
						missed++
						if missed >= KeepaliveMissed {
							err = fmt.Errorf("no answer to a keepalive for %s", time.Duration(missed)*s.opts.Keepalive)
						}
					}
				}
				if err == nil && answered == nil {
					answered = make(chan error, 1)
					go func(c chan<- error) {
						_, _, err := client.SendRequest("keepalive@openssh.com", true, nil)
						c <- err
					}(answered)
				}
				if err != nil {
					kaMu.Lock()
					kaErr = fmt.Errorf("keepalive: %w", err)
					kaMu.Unlock()
					client.Close()
					return
				}
			}
		}
	})

	readErr := s.read(ctx, stdout)
	up := time.Since(started)
	// Gerrit sends the exit status (and its error message) before it
	// closes the channel; a dead connection sends nothing, so do not wait
	// long for it.
	waited := make(chan error, 1)
	go func() { waited <- sess.Wait() }()
	var waitErr error
	select {
	case waitErr = <-waited:
	case <-time.After(2 * time.Second):
	}
	client.Close()
	kaMu.Lock()
	defer kaMu.Unlock()
	switch {
	case kaErr != nil:
		return up, kaErr
	case ctx.Err() != nil:
		return up, ctx.Err()
	}
	var exit *ssh.ExitError
	if errors.As(waitErr, &exit) {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = "(no message)"
		}
		return up, fmt.Errorf("gerrit stream-events exited with status %d: %s (does the account have the Stream Events capability?)", exit.ExitStatus(), msg)
	}
	if readErr == nil || errors.Is(readErr, io.EOF) {
		return up, errors.New("connection closed by Gerrit")
	}
	return up, readErr
}

// dial connects and authenticates, checking Gerrit's host key against the
// known_hosts file.
func (s *Stream) dial(ctx context.Context) (*ssh.Client, error) {
	check, algos, err := hostKeyCheck(s.opts.KnownHostsFile, s.opts.Address, s.log)
	if err != nil {
		return nil, err
	}
	cfg := &ssh.ClientConfig{
		User:              s.opts.Username,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(s.signer)},
		HostKeyCallback:   check,
		HostKeyAlgorithms: algos,
		Timeout:           s.opts.DialTimeout,
		ClientVersion:     "SSH-2.0-ductbot",
	}
	d := net.Dialer{Timeout: s.opts.DialTimeout, KeepAlive: s.opts.Keepalive}
	conn, err := d.DialContext(ctx, "tcp", s.opts.Address)
	if err != nil {
		return nil, fmt.Errorf("connecting: %w", err)
	}
	conn.SetDeadline(time.Now().Add(s.opts.DialTimeout))
	stop := context.AfterFunc(ctx, func() { conn.Close() }) // shutting down ends a slow handshake
	c, chans, reqs, err := ssh.NewClientConn(conn, s.opts.Address, cfg)
	stop()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("SSH handshake: %w", err)
	}
	conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}

// hostKeyCheck reads the known_hosts file and returns the host key
// callback for addr, which refuses any key the file does not list for it
// and logs the presented key's SHA256 fingerprint, and the host key
// algorithms to offer: those of the keys the file lists for addr, so the
// server is not asked for a key type the file cannot check.
func hostKeyCheck(file, addr string, log *slog.Logger) (ssh.HostKeyCallback, []string, error) {
	cb, err := knownhosts.New(file)
	if err != nil {
		return nil, nil, fmt.Errorf("reading known_hosts: %w", err)
	}
	check := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := cb(hostname, remote, key)
		if err == nil {
			return nil
		}
		fp := ssh.FingerprintSHA256(key)
		var ke *knownhosts.KeyError
		var re *knownhosts.RevokedError
		switch {
		case errors.As(err, &re):
			log.Error("Gerrit's SSH host key is revoked in known_hosts; refusing to connect",
				slog.String("key_type", key.Type()), slog.String("fingerprint", fp), slog.String("known_hosts", file))
		case errors.As(err, &ke) && len(ke.Want) > 0:
			log.Error("Gerrit's SSH host key does not match known_hosts; refusing to connect (check the key with Gerrit's admins before changing the file)",
				slog.String("key_type", key.Type()), slog.String("fingerprint", fp), slog.String("known_hosts", file),
				slog.String("expected", fingerprints(ke.Want)))
		default:
			log.Error("Gerrit's SSH host is not in known_hosts; refusing to connect",
				slog.String("key_type", key.Type()), slog.String("fingerprint", fp), slog.String("known_hosts", file),
				slog.String("host", knownhosts.Normalize(hostname)))
		}
		return fmt.Errorf("host key %s %s refused: %w", key.Type(), fp, err)
	}
	return check, knownAlgorithms(cb, addr), nil
}

func fingerprints(keys []knownhosts.KnownKey) string {
	var out []string
	for _, k := range keys {
		out = append(out, k.Key.Type()+" "+ssh.FingerprintSHA256(k.Key)+" ("+k.Filename+":"+strconv.Itoa(k.Line)+")")
	}
	return strings.Join(out, ", ")
}

// knownAlgorithms asks cb which keys it knows for addr (by offering a key
// it cannot know) and returns the host key algorithms that verify them;
// nil, the library's default, when it knows none.
func knownAlgorithms(cb ssh.HostKeyCallback, addr string) []string {
	err := cb(addr, &net.TCPAddr{IP: net.IPv4zero}, probeKey{})
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		return nil
	}
	var algos []string
	for _, k := range ke.Want {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			algos = append(algos, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		default:
			algos = append(algos, t)
		}
	}
	slices.Sort(algos)
	return slices.Compact(algos)
}

// probeKey is a public key no known_hosts file lists.
type probeKey struct{}

func (probeKey) Type() string                        { return "ductbot-probe" }
func (probeKey) Marshal() []byte                     { return []byte("ductbot-probe") }
func (probeKey) Verify([]byte, *ssh.Signature) error { return errors.New("probe key") }

// read reads event lines until r ends.
func (s *Stream) read(ctx context.Context, r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var line []byte
	tooLong := false
	for {
		chunk, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			if !tooLong && len(line)+len(chunk) <= MaxEventLine {
				line = append(line, chunk...)
			} else {
				tooLong, line = true, line[:0]
			}
			continue
		case err != nil:
			return err
		}
		if tooLong || len(line)+len(chunk) > MaxEventLine {
			s.invalid("a line longer than "+strconv.Itoa(MaxEventLine)+" bytes", nil)
		} else {
			line = append(line, chunk...)
			s.handleLine(line)
		}
		line, tooLong = line[:0], false
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// invalid counts and logs a line that cannot be read, and asks for a
// reconcile: it may have named a change.
func (s *Stream) invalid(what string, line []byte) {
	if s.opts.OnEvent != nil {
		s.opts.OnEvent(EventInvalid)
	}
	attrs := []any{slog.String("what", what)}
	if line != nil {
		attrs = append(attrs, slog.String("line", quoteBounded(line, 200)))
	}
	s.log.Warn("skipping an unreadable gerrit stream-events line; a reconcile will catch up", attrs...)
	s.poller.Reconcile("unreadable-event")
}

// handleLine turns one line into a hint or a reconcile request.
func (s *Stream) handleLine(line []byte) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return
	}
	ev, err := ParseEvent(line)
	if err != nil {
		s.invalid(err.Error(), line)
		return
	}
	typ := ev.Type
	if !slices.Contains(StreamEventTypes, typ) {
		typ = EventOther
	}
	if s.opts.OnEvent != nil {
		s.opts.OnEvent(typ)
	}
	switch {
	case typ == EventOther:
		s.log.Debug("ignoring a gerrit event", slog.String("type", quoteBounded([]byte(ev.Type), 64)))
	case typ == EventDroppedOutput:
		s.log.Warn("Gerrit dropped events for this stream; reconciling through REST")
		s.poller.Reconcile(EventDroppedOutput)
	case ev.Number == 0:
		// Gerrit did not say which change: read what changed since the
		// watermark instead.
		s.log.Warn("a gerrit event names no change number; reconciling through REST", slog.String("type", typ))
		s.poller.Reconcile("event-without-change")
	case ev.Project != "" && !inScopes(s.opts.Projects, ev.Project, ev.Branch):
		s.log.Debug("ignoring a gerrit event for a project ductbot does not watch",
			slog.String("type", typ), slog.Int("change", ev.Number))
	case typ == EventCommentAdded && ev.Author != "" && ev.Author == s.opts.Username:
		// ductbot's own review: nothing to do, and reading the change
		// again would only cost Gerrit a request.
	default:
		s.log.Debug("gerrit event", slog.String("type", typ), slog.Int("change", ev.Number), slog.Int("patchset", ev.PatchSet))
		s.poller.Notify(Hint{Number: ev.Number, PatchSet: ev.PatchSet, Type: typ})
	}
}

// inScopes reports whether a change of project on branch (when known) is
// in scopes; every change is when scopes is empty.
func inScopes(scopes []ProjectFilter, project, branch string) bool {
	if len(scopes) == 0 {
		return true
	}
	for _, sc := range scopes {
		if sc.Name != "" && sc.Name != project {
			continue
		}
		if len(sc.Branches) == 0 || branch == "" || slices.Contains(sc.Branches, branch) {
			return true
		}
	}
	return false
}

// quoteBounded quotes at most n bytes of untrusted text for a log line.
func quoteBounded(b []byte, n int) string {
	if len(b) > n {
		return strconv.Quote(string(b[:n])) + "..."
	}
	return strconv.Quote(string(b))
}

// boundedBuffer keeps the first max bytes written to it.
type boundedBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (w *boundedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if room := w.max - len(w.b); room > 0 {
		w.b = append(w.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (w *boundedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.ToValidUTF8(string(w.b), "?")
}
