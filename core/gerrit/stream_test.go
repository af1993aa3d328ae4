package gerrit_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/ductbot/ductbot/core/gerrit"
	"github.com/ductbot/ductbot/core/gerrit/gerrittest"
)

// logRecorder keeps every log record as one line of text.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	l.lines = append(l.lines, b.String())
	l.mu.Unlock()
	return nil
}

// find returns the first line containing every one of parts.
func (l *logRecorder) find(parts ...string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(line, p) }) {
			return line, true
		}
	}
	return "", false
}

func (l *logRecorder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// recorder is a HandleFunc that records every change it is handed.
type recorder struct {
	mu    sync.Mutex
	calls []gerrit.Change
	// before, when set, runs before each change is recorded.
	before func(gerrit.Change)
}

func (r *recorder) handle(_ context.Context, c gerrit.Change) error {
	r.mu.Lock()
	before := r.before
	r.mu.Unlock()
	if before != nil {
		before(c)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, c)
	return nil
}

// count returns how many times change n was handed over at patch set ps.
func (r *recorder) count(n, ps int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := 0
	for _, c := range r.calls {
		if c.Number == n && c.PatchSet == ps {
			k++
		}
	}
	return k
}

func (r *recorder) all() []gerrit.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// streamWorld is a test Gerrit with its SSH endpoint, and a poller (10
// minute interval) fed by a stream, both running.
type streamWorld struct {
	t      *testing.T
	gs     *gerrittest.Server
	files  gerrittest.SSHClientFiles
	poller *gerrit.Poller
	rec    *recorder
	logs   *logRecorder

	mu        sync.Mutex
	reasons   []string // of the poller's cycles
	events    map[string]int
	connected atomic.Int32
	reconns   atomic.Int32
}

type streamSetup struct {
	ssh      gerrittest.SSHOptions
	interval time.Duration
	projects []gerrit.ProjectFilter
	// knownHosts, when set, replaces the known_hosts file's content.
	knownHosts func(w *streamWorld) string
	keepalive  time.Duration
}

func startStream(t *testing.T, edit func(*streamSetup)) *streamWorld {
	t.Helper()
	setup := streamSetup{interval: 10 * time.Minute, keepalive: 5 * time.Second}
	if edit != nil {
		edit(&setup)
	}
	w := &streamWorld{t: t, gs: newServer(t), rec: &recorder{}, logs: &logRecorder{}, events: map[string]int{}}
	if _, err := w.gs.StartSSH(setup.ssh); err != nil {
		t.Fatal(err)
	}
	var err error
	if w.files, err = w.gs.WriteSSHClientFiles(t.TempDir(), botUser); err != nil {
		t.Fatal(err)
	}
	if setup.knownHosts != nil {
		if err := os.WriteFile(w.files.KnownHostsFile, []byte(setup.knownHosts(w)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(w.logs)
	w.poller = gerrit.NewPoller(newClient(t, w.gs), gerrit.PollOptions{
		Projects: setup.projects, Interval: setup.interval, Cursor: newMemCursor(), Logger: log,
		ReconcileGap: 20 * time.Millisecond,
		OnCycle: func(reason string, _ time.Duration, _ error) {
			w.mu.Lock()
			w.reasons = append(w.reasons, reason)
			w.mu.Unlock()
		},
	})
	st, err := gerrit.NewStream(w.poller, gerrit.StreamOptions{
		Address: w.gs.SSHAddr(), Username: botUser, PrivateKeyFile: w.files.PrivateKeyFile,
		KnownHostsFile: w.files.KnownHostsFile, Projects: setup.projects, Keepalive: setup.keepalive,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Settle: 50 * time.Millisecond,
		Logger: log,
		OnConnected: func(up bool) {
			if up {
				w.connected.Add(1)
			} else {
				w.connected.Add(-1)
			}
		},
		OnEvent: func(typ string) {
			w.mu.Lock()
			w.events[typ]++
			w.mu.Unlock()
		},
		OnReconnect: func() { w.reconns.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { w.poller.Run(ctx, w.rec.handle) })
	wg.Go(func() { st.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if t.Failed() {
			t.Logf("logs:\n%s", w.logs)
		}
	})
	return w
}

// waitFor polls cond until it holds, failing the test after 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitConnected waits until the stream runs on the server and the reconcile
// after connecting is done.
func (w *streamWorld) waitConnected(reconciles int) {
	w.t.Helper()
	waitFor(w.t, "the stream to connect", func() bool { return w.gs.Streams() == 1 && w.connected.Load() == 1 })
	waitFor(w.t, "the reconcile after connecting", func() bool { return w.reconciles("connected") >= reconciles })
}

func (w *streamWorld) reconciles(reason string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := 0
	for _, r := range w.reasons {
		if r == reason {
			k++
		}
	}
	return k
}

func (w *streamWorld) eventCount(typ string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.events[typ]
}

// TestStreamUploadWithLongPollInterval: with a 10 minute poll interval, a
// new change and a new patch set are handed over within moments: only the
// stream explains it.
func TestStreamUploadWithLongPollInterval(t *testing.T) {
	w := startStream(t, nil)
	w.waitConnected(1)
	start := time.Now()
	n := w.gs.CreateChange("wiki", "main", "new", "alice")
	waitFor(t, "the new change", func() bool { return w.rec.count(n, 1) == 1 })
	ps, _ := w.gs.UploadPatchSet(n, "alice", "")
	waitFor(t, "the new patch set", func() bool { return w.rec.count(n, ps) == 1 })
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
	got := w.rec.all()
	if len(got[len(got)-1].Messages) == 0 {
		t.Error("the change was handed over without its messages")
	}
	w.gs.SetStatus(n, gerrittest.StatusMerged) // the handler cancels its runs at once
	waitFor(t, "the merge", func() bool {
		all := w.rec.all()
		return all[len(all)-1].Status == gerrit.StatusMerged
	})
	w.mu.Lock()
	cycles := len(w.reasons)
	w.mu.Unlock()
	if cycles != 2 { // at start, and once connected
		t.Errorf("poll cycles %v, want [start connected]: the uploads must come from events", w.reasons)
	}
}

// TestStreamGapAfterDisconnect: the connection drops and Gerrit refuses new
// ones while three changes are uploaded; after the reconnect every one is
// handed over exactly once (by the reconcile, not twice by the reconcile
// and an event), and the stream works again.
func TestStreamGapAfterDisconnect(t *testing.T) {
	w := startStream(t, nil)
	w.waitConnected(1)
	before := w.gs.CreateChange("wiki", "main", "before", "alice")
	waitFor(t, "the change before the cut", func() bool { return w.rec.count(before, 1) == 1 })

	w.gs.RefuseSSH(true)
	if w.gs.DropStreams() != 1 {
		t.Fatal("no stream to drop")
	}
	waitFor(t, "the client to notice", func() bool { return w.connected.Load() == 0 })
	var gap []int
	for i := range 3 {
		gap = append(gap, w.gs.CreateChange("wiki", "main", fmt.Sprintf("during the gap %d", i), "alice"))
	}
	w.gs.UploadPatchSet(before, "bob", "")
	time.Sleep(100 * time.Millisecond) // a few refused reconnects
	for _, n := range gap {
		if w.rec.count(n, 1) != 0 {
			t.Fatalf("change %d handed over while disconnected with a 10m poll interval", n)
		}
	}
	w.gs.RefuseSSH(false)
	w.waitConnected(2)
	for _, n := range gap {
		waitFor(t, fmt.Sprintf("change %d from the gap", n), func() bool { return w.rec.count(n, 1) >= 1 })
	}
	waitFor(t, "the patch set from the gap", func() bool { return w.rec.count(before, 2) >= 1 })

	after := w.gs.CreateChange("wiki", "main", "after", "alice")
	waitFor(t, "the change after the reconnect", func() bool { return w.rec.count(after, 1) == 1 })
	time.Sleep(100 * time.Millisecond) // let any duplicate arrive
	for _, n := range append(gap, before, after) {
		c, _ := w.gs.Change(n)
		for _, ps := range c.PatchSets {
			if k := w.rec.count(n, ps.Number); k != 1 {
				t.Errorf("change %d patch set %d handed over %d times, want once", n, ps.Number, k)
			}
		}
	}
	if w.reconns.Load() < 1 {
		t.Error("no reconnect counted")
	}
}

// TestStreamDroppedOutputReconciles: Gerrit's queue for the client
// overflows (2 events) while output is stalled; it drops the rest and
// says dropped-output, and the reconcile that follows finds every change.
func TestStreamDroppedOutputReconciles(t *testing.T) {
	w := startStream(t, func(s *streamSetup) { s.ssh.StreamQueue = 2 })
	w.waitConnected(1)
	w.gs.PauseStreams()
	var ns []int
	for i := range 6 {
		ns = append(ns, w.gs.CreateChange("wiki", "main", fmt.Sprintf("burst %d", i), "alice"))
	}
	w.gs.ResumeStreams()
	waitFor(t, "the dropped-output reconcile", func() bool { return w.reconciles(gerrit.EventDroppedOutput) == 1 })
	for _, n := range ns {
		waitFor(t, fmt.Sprintf("change %d", n), func() bool { return w.rec.count(n, 1) == 1 })
	}
	time.Sleep(50 * time.Millisecond) // let any duplicate arrive
	for _, n := range ns {
		if k := w.rec.count(n, 1); k != 1 {
			t.Errorf("change %d handed over %d times, want once", n, k)
		}
	}
	// The queue held 2, and the writer one more it was about to write.
	if got := w.eventCount(gerrit.EventPatchsetCreated); got != 3 {
		t.Errorf("%d patchset-created events read, want 3 (the rest were dropped)", got)
	}
	if got := w.eventCount(gerrit.EventDroppedOutput); got != 1 {
		t.Errorf("%d dropped-output events read, want 1", got)
	}
}

// TestStreamDroppedOutputEmitted: a dropped-output Gerrit sends on its own
// triggers a reconcile too, and changes it covers are handed over once.
func TestStreamDroppedOutputEmitted(t *testing.T) {
	w := startStream(t, nil)
	w.waitConnected(1)
	w.gs.EmitDroppedOutput()
	waitFor(t, "the reconcile", func() bool { return w.reconciles(gerrit.EventDroppedOutput) == 1 })
}

// TestStreamEventsDuringReconcileQueued: events that arrive while a
// reconcile is busy (here, its handler is slow), for changes its query did
// not return, wait and are handled after it, each once; none is dropped.
func TestStreamEventsDuringReconcileQueued(t *testing.T) {
	w := startStream(t, nil)
	w.waitConnected(1)
	slow := w.gs.CreateChange("wiki", "main", "slow to handle", "alice")
	waitFor(t, "the slow change", func() bool { return w.rec.count(slow, 1) == 1 })
	inHandler, release := make(chan struct{}), make(chan struct{})
	var once, released sync.Once
	free := func() { released.Do(func() { close(release) }) }
	defer free() // registered after startStream's cleanup: runs before it
	w.rec.mu.Lock()
	w.rec.before = func(c gerrit.Change) {
		if c.Number == slow {
			once.Do(func() { close(inHandler); <-release })
		}
	}
	w.rec.mu.Unlock()
	// A new version of the change that only a reconcile sees (ductbot's
	// own comments are not read on their event), then a reconcile, whose
	// handling of it is slow.
	w.gs.AddComment(slow, botUser, "a new version for the reconcile")
	w.gs.EmitDroppedOutput()
	<-inHandler // the reconcile has queried and is busy: changes from now on are not in its batch
	var during []int
	for i := range 3 {
		during = append(during, w.gs.CreateChange("wiki", "main", fmt.Sprintf("during %d", i), "alice"))
	}
	waitFor(t, "the events to arrive", func() bool { return w.eventCount(gerrit.EventPatchsetCreated) == 4 })
	free()
	waitFor(t, "the dropped-output reconcile", func() bool { return w.reconciles(gerrit.EventDroppedOutput) == 1 })
	for _, n := range during {
		waitFor(t, fmt.Sprintf("change %d", n), func() bool { return w.rec.count(n, 1) == 1 })
	}
	time.Sleep(100 * time.Millisecond) // let any duplicate arrive
	for _, n := range during {
		if k := w.rec.count(n, 1); k != 1 {
			t.Errorf("change %d handed over %d times, want once", n, k)
		}
	}
}

// TestStreamWrongHostKeyRefused: a host key known_hosts does not list for
// the address is refused, before authenticating, with the presented key's
// SHA256 fingerprint in the log; the stream keeps retrying and never runs.
func TestStreamWrongHostKeyRefused(t *testing.T) {
	other, err := newPublicKey()
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]func(*streamWorld) string{
		"mismatch": func(w *streamWorld) string {
			return knownhosts.Line([]string{knownhosts.Normalize(w.gs.SSHAddr())}, other) + "\n"
		},
		"unknown host": func(w *streamWorld) string {
			return knownhosts.Line([]string{"[gerrit.example.org]:29418"}, w.gs.SSHHostKey()) + "\n"
		},
		"revoked": func(w *streamWorld) string {
			return "@revoked " + knownhosts.Line([]string{knownhosts.Normalize(w.gs.SSHAddr())}, w.gs.SSHHostKey()) + "\n"
		},
	} {
		t.Run(name, func(t *testing.T) {
			w := startStream(t, func(s *streamSetup) { s.knownHosts = content })
			waitFor(t, "three connection attempts", func() bool { return w.gs.SSHConnects() >= 3 || w.gs.Streams() > 0 })
			if w.gs.Streams() != 0 || w.connected.Load() != 0 {
				t.Fatal("the stream ran with a host key known_hosts does not vouch for")
			}
			fp := ssh.FingerprintSHA256(w.gs.SSHHostKey())
			if _, ok := w.logs.find("refusing to connect", fp); !ok {
				t.Errorf("no log line names the presented fingerprint %s:\n%s", fp, w.logs)
			}
		})
	}
}

// TestStreamMalformedLineSkipped: lines that are not JSON objects, or are
// cut, are logged and skipped; the next event is handled.
func TestStreamMalformedLineSkipped(t *testing.T) {
	w := startStream(t, nil)
	w.waitConnected(1)
	w.gs.EmitRaw("this is not JSON")
	w.gs.EmitRaw(`{"type":"patchset-created","change":{"project":"wiki","number":`)
	w.gs.EmitRaw(`["an","array"]`)
	w.gs.EmitRaw(`{"type":"ref-replicated","project":"wiki"}`) // a type ductbot does not use
	n := w.gs.CreateChange("wiki", "main", "after the garbage", "alice")
	waitFor(t, "the change after the garbage", func() bool { return w.rec.count(n, 1) == 1 })
	if got := w.eventCount(gerrit.EventInvalid); got != 3 {
		t.Errorf("%d invalid lines counted, want 3", got)
	}
	if got := w.eventCount(gerrit.EventOther); got != 1 {
		t.Errorf("%d other events counted, want 1", got)
	}
	if line, ok := w.logs.find("unreadable gerrit stream-events line", "this is not JSON"); !ok {
		t.Errorf("the malformed line is not logged:\n%s", w.logs)
	} else if !strings.HasPrefix(line, "WARN") {
		t.Errorf("logged as %q, want a warning", line)
	}
	if w.connected.Load() != 1 || w.reconns.Load() != 0 {
		t.Error("the stream reconnected over a malformed line")
	}
}

// TestStreamEventSameHandlerPath: an event for an untrusted uploader's patch
// set hands the handler exactly what a poll hands it for that version (the
// change read through REST with its messages and uploader), so the
// pipeline's trust gate decides on the same data; nothing is taken from
// the event itself.
func TestStreamEventSameHandlerPath(t *testing.T) {
	w := startStream(t, nil)
	w.waitConnected(1)
	w.gs.AddAccount("mallory", "Mallory", "mallory@example.org")
	n := w.gs.CreateChange("wiki", "main", "untrusted", "alice")
	ps, _ := w.gs.UploadPatchSet(n, "mallory", "")
	waitFor(t, "the untrusted patch set", func() bool { return w.rec.count(n, ps) == 1 })
	var fromStream gerrit.Change
	for _, c := range w.rec.all() {
		if c.Number == n && c.PatchSet == ps {
			fromStream = c
		}
	}
	polled, err := gerrit.NewPoller(newClient(t, w.gs), gerrit.PollOptions{Logger: quietLogger()}).Poll(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(polled, func(c gerrit.Change) bool { return c.Number == n })
	if i < 0 {
		t.Fatal("the poll does not return the change")
	}
	if !reflect.DeepEqual(fromStream, polled[i]) {
		t.Errorf("the stream handed over\n%+v\nthe poll hands over\n%+v", fromStream, polled[i])
	}
	if fromStream.Uploader.Username != "mallory" || fromStream.Uploader.Email != "mallory@example.org" {
		t.Errorf("uploader %+v, want mallory's detailed account", fromStream.Uploader)
	}
}

// TestStreamProjectFilterAndOwnComments: events for projects ductbot does
// not watch, and ductbot's own comments, cost Gerrit no REST request.
func TestStreamProjectFilterAndOwnComments(t *testing.T) {
	w := startStream(t, func(s *streamSetup) { s.projects = []gerrit.ProjectFilter{{Name: "wiki", Branches: []string{"main"}}} })
	w.waitConnected(1)
	watched := w.gs.CreateChange("wiki", "main", "watched", "alice")
	waitFor(t, "the watched change", func() bool { return w.rec.count(watched, 1) == 1 })
	w.gs.ResetRequests()
	w.gs.CreateChange("elsewhere", "main", "not watched", "alice")
	w.gs.CreateChange("wiki", "stable", "other branch", "alice")
	w.gs.AddComment(watched, botUser, "ductbot's own comment")
	time.Sleep(200 * time.Millisecond)
	if got := w.gs.Requests(); got != 0 {
		t.Errorf("%d REST requests for 3 ignored events, want none (%v)", got, w.gs.RequestCounts())
	}
	w.gs.AddComment(watched, "alice", "someone else's comment")
	waitFor(t, "the comment", func() bool { return len(w.rec.all()) == 2 })
	if got := w.gs.Requests(); got != 1 {
		t.Errorf("%d REST requests for a comment, want 1 (%v)", got, w.gs.RequestCounts())
	}
}

// TestStreamKeepaliveDetectsDeadConnection: a connection that stops
// answering (no FIN, no data) is given up after one keepalive interval,
// and the stream reconnects and reconciles.
func TestStreamKeepaliveDetectsDeadConnection(t *testing.T) {
	w := startStream(t, func(s *streamSetup) { s.keepalive = 100 * time.Millisecond })
	w.waitConnected(1)
	w.gs.FreezeStreams()
	lost := w.gs.CreateChange("wiki", "main", "sent into the void", "alice")
	waitFor(t, "a reconnect", func() bool { return w.reconns.Load() >= 1 })
	w.waitConnected(2)
	waitFor(t, "the change the dead connection swallowed", func() bool { return w.rec.count(lost, 1) == 1 })
	if _, ok := w.logs.find("no answer to a keepalive"); !ok {
		t.Errorf("the keepalive timeout is not logged:\n%s", w.logs)
	}
	if w.gs.Keepalives() == 0 {
		t.Error("no keepalive reached the server")
	}
}

// TestStreamCapabilityMissing: without the Stream Events capability Gerrit
// refuses the command; the stream logs Gerrit's message and retries,
// without asking for a reconcile each time.
func TestStreamCapabilityMissing(t *testing.T) {
	gs := newServer(t)
	if _, err := gs.StartSSH(gerrittest.SSHOptions{}); err != nil {
		t.Fatal(err)
	}
	files, err := gs.WriteSSHClientFiles(t.TempDir(), "ductbot")
	if err != nil {
		t.Fatal(err)
	}
	// A second account has a key but not the capability.
	gs.AddSSHKey("nocap", files.PublicKey)
	logs := &logRecorder{}
	var reasons []string
	var mu sync.Mutex
	p := gerrit.NewPoller(newClient(t, gs), gerrit.PollOptions{Interval: 10 * time.Minute, Logger: slog.New(logs), ReconcileGap: time.Millisecond,
		OnCycle: func(r string, _ time.Duration, _ error) { mu.Lock(); reasons = append(reasons, r); mu.Unlock() }})
	st, err := gerrit.NewStream(p, gerrit.StreamOptions{Address: gs.SSHAddr(), Username: "nocap", PrivateKeyFile: files.PrivateKeyFile,
		KnownHostsFile: files.KnownHostsFile, MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Settle: 200 * time.Millisecond,
		Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { p.Run(ctx, func(context.Context, gerrit.Change) error { return nil }) })
	wg.Go(func() { st.Run(ctx) })
	waitFor(t, "five attempts", func() bool { return gs.SSHConnects() >= 5 })
	cancel()
	wg.Wait()
	if _, ok := logs.find("Stream Events", "nocap does not have"); !ok {
		t.Errorf("Gerrit's refusal is not logged:\n%s", logs)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(reasons, []string{"start"}) {
		t.Errorf("poll cycles %v, want only the first: a refused stream must not cause reconciles", reasons)
	}
}

func TestNewStreamChecksItsOptions(t *testing.T) {
	dir := t.TempDir()
	gs := newServer(t)
	if _, err := gs.StartSSH(gerrittest.SSHOptions{}); err != nil {
		t.Fatal(err)
	}
	files, err := gs.WriteSSHClientFiles(dir, botUser)
	if err != nil {
		t.Fatal(err)
	}
	encrypted := filepath.Join(dir, "encrypted")
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(encrypted, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	p := gerrit.NewPoller(newClient(t, gs), gerrit.PollOptions{})
	ok := gerrit.StreamOptions{Address: gs.SSHAddr(), Username: botUser, PrivateKeyFile: files.PrivateKeyFile, KnownHostsFile: files.KnownHostsFile}
	if _, err := gerrit.NewStream(p, ok); err != nil {
		t.Fatalf("valid options refused: %v", err)
	}
	for name, tt := range map[string]struct {
		edit func(*gerrit.StreamOptions)
		want string
	}{
		"no port":         {func(o *gerrit.StreamOptions) { o.Address = "gerrit.example.org" }, "host:port"},
		"bad port":        {func(o *gerrit.StreamOptions) { o.Address = "gerrit.example.org:99999" }, "bad port"},
		"no user":         {func(o *gerrit.StreamOptions) { o.Username = "" }, "username"},
		"no key":          {func(o *gerrit.StreamOptions) { o.PrivateKeyFile = filepath.Join(dir, "missing") }, "reading the private key"},
		"not a key":       {func(o *gerrit.StreamOptions) { o.PrivateKeyFile = o.KnownHostsFile }, "private key"},
		"encrypted key":   {func(o *gerrit.StreamOptions) { o.PrivateKeyFile = encrypted }, "encrypted"},
		"no known_hosts":  {func(o *gerrit.StreamOptions) { o.KnownHostsFile = "" }, "known_hosts"},
		"bad known_hosts": {func(o *gerrit.StreamOptions) { o.KnownHostsFile = o.PrivateKeyFile }, "known_hosts"},
	} {
		t.Run(name, func(t *testing.T) {
			o := ok
			tt.edit(&o)
			_, err := gerrit.NewStream(p, o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewStream = %v, want an error about %q", err, tt.want)
			}
		})
	}
}

func TestParseEvent(t *testing.T) {
	created := time.Unix(1700000000, 0).UTC()
	for _, tt := range []struct {
		name string
		line string
		want gerrit.Event
		err  bool
	}{
		{"patchset-created as documented",
			`{"type":"patchset-created","change":{"project":"wiki","branch":"main","id":"I0123","number":12345,"subject":"s","owner":{"name":"A","email":"a@x","username":"alice"},"url":"https://g/c/wiki/+/12345","status":"NEW"},"patchSet":{"number":3,"revision":"abc","ref":"refs/changes/45/12345/3","uploader":{"username":"alice"},"createdOn":1700000000},"uploader":{"username":"alice"},"eventCreatedOn":1700000000}`,
			gerrit.Event{Type: "patchset-created", Project: "wiki", Branch: "main", Number: 12345, ChangeID: "I0123", PatchSet: 3, Created: created}, false},
		{"number as a string", `{"type":"change-merged","change":{"number":"77"}}`, gerrit.Event{Type: "change-merged", Number: 77}, false},
		{"number missing: from the URL", `{"type":"comment-added","change":{"url":"https://g/c/a/b/+/881"},"author":{"username":"bob"}}`, gerrit.Event{Type: "comment-added", Number: 881, Author: "bob"}, false},
		{"old-style URL", `{"type":"comment-added","change":{"url":"https://g/r/882/"}}`, gerrit.Event{Type: "comment-added", Number: 882}, false},
		{"number missing: from the ref", `{"type":"patchset-created","patchSet":{"ref":"refs/changes/83/883/2","number":2}}`, gerrit.Event{Type: "patchset-created", Number: 883, PatchSet: 2}, false},
		{"a ref that lies", `{"type":"patchset-created","patchSet":{"ref":"refs/changes/99/883/2"}}`, gerrit.Event{Type: "patchset-created"}, false},
		{"refs/heads branch", `{"type":"change-restored","change":{"branch":"refs/heads/main","number":5}}`, gerrit.Event{Type: "change-restored", Branch: "main", Number: 5}, false},
		{"odd types everywhere", `{"type":7,"change":"nope","patchSet":[1],"author":null,"eventCreatedOn":"soon"}`, gerrit.Event{}, false},
		{"null number, float time", `{"type":"wip-state-changed","change":{"number":null},"eventCreatedOn":1700000000.0}`, gerrit.Event{Type: "wip-state-changed", Created: created}, false},
		{"negative and huge numbers", `{"type":"x","change":{"number":-4},"patchSet":{"number":99999999999}}`, gerrit.Event{Type: "x"}, false},
		{"dropped-output", `{"type":"dropped-output"}`, gerrit.Event{Type: "dropped-output"}, false},
		{"unknown fields", `{"type":"hashtags-changed","added":["a"],"change":{"number":3,"extra":{"deep":[1,2]}}}`, gerrit.Event{Type: "hashtags-changed", Number: 3}, false},
		{"not JSON", `hello`, gerrit.Event{}, true},
		{"cut", `{"type":"patchset-created","change":{`, gerrit.Event{}, true},
		{"array", `[1,2]`, gerrit.Event{}, true},
		{"empty", ``, gerrit.Event{}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := gerrit.ParseEvent([]byte(tt.line))
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseEvent(f *testing.F) {
	f.Add([]byte(`{"type":"patchset-created","change":{"number":1,"url":"https://g/c/p/+/1"},"patchSet":{"number":1,"ref":"refs/changes/01/1/1"}}`))
	f.Add([]byte(`{"type":"dropped-output"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		ev, err := gerrit.ParseEvent(line)
		if err == nil && (ev.Number < 0 || ev.PatchSet < 0) {
			t.Errorf("negative numbers from %q: %+v", line, ev)
		}
	})
}

// TestPollerHintsDedupe: a hint for a version the poll already handed over
// costs one read and no second handling; a hint that fails to read is
// retried; a hint for a change Gerrit does not show is dropped.
func TestPollerHintsDedupe(t *testing.T) {
	s := newServer(t)
	n := s.CreateChange("wiki", "main", "a", "alice")
	rec := &recorder{}
	p := gerrit.NewPoller(newClient(t, s, func(o *gerrit.Options) { o.Retries = -1 }), gerrit.PollOptions{Interval: 10 * time.Minute, Logger: quietLogger()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, rec.handle) }()
	defer func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v", err)
		}
	}()
	waitFor(t, "the first poll", func() bool { return rec.count(n, 1) == 1 })
	s.ResetRequests()
	p.Notify(gerrit.Hint{Number: n, PatchSet: 1})
	waitFor(t, "the hint's read", func() bool { return s.Requests() == 1 })
	time.Sleep(20 * time.Millisecond)
	if k := rec.count(n, 1); k != 1 {
		t.Errorf("handed over %d times, want once", k)
	}
	s.FailNext(1, 503)
	ps, _ := s.UploadPatchSet(n, "alice", "")
	p.Notify(gerrit.Hint{Number: n, PatchSet: ps})
	waitFor(t, "the retried hint", func() bool { return rec.count(n, ps) == 1 })
	s.ResetRequests()
	p.Notify(gerrit.Hint{Number: 9999})
	waitFor(t, "the read of the unknown change", func() bool { return s.Requests() == 1 })
	time.Sleep(50 * time.Millisecond)
	if s.Requests() != 1 {
		t.Errorf("a change Gerrit does not show was read %d times, want once", s.Requests())
	}
}

// TestPollerHintWaitsForTheIndex: an event names patch set 2 while Gerrit's
// query still shows patch set 1 (its index lags behind its events): the
// poller reads again shortly instead of dropping the hint, and hands patch
// set 2 over once Gerrit shows it, with no event or poll to help.
func TestPollerHintWaitsForTheIndex(t *testing.T) {
	s := newServer(t)
	n := s.CreateChange("wiki", "main", "a", "alice")
	rec := &recorder{}
	p := gerrit.NewPoller(newClient(t, s), gerrit.PollOptions{Interval: 10 * time.Minute, Logger: quietLogger()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx, rec.handle); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the first poll", func() bool { return rec.count(n, 1) == 1 })
	s.ResetRequests()
	p.Notify(gerrit.Hint{Number: n, PatchSet: 2, Type: gerrit.EventPatchsetCreated})
	waitFor(t, "the first read", func() bool { return s.Requests() >= 1 })
	s.UploadPatchSet(n, "alice", "")
	waitFor(t, "patch set 2", func() bool { return rec.count(n, 2) == 1 })
	if k := rec.count(n, 1); k != 1 {
		t.Errorf("patch set 1 handed over %d times, want once (a stale read is not handed over)", k)
	}
}

func newPublicKey() (ssh.PublicKey, error) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return ssh.NewPublicKey(pub)
}
