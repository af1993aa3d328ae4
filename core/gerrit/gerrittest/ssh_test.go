package gerrittest_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/ductbot/ductbot/core/gerrit/gerrittest"
)

// sshWorld is a test server with its SSH endpoint and a plain SSH client's
// files for the account "bot" (with the Stream Events capability).
type sshWorld struct {
	t     *testing.T
	s     *gerrittest.Server
	files gerrittest.SSHClientFiles
}

func newSSHWorld(t *testing.T, opts gerrittest.SSHOptions) *sshWorld {
	t.Helper()
	s := gerrittest.New()
	t.Cleanup(s.Close)
	if _, err := s.StartSSH(opts); err != nil {
		t.Fatal(err)
	}
	files, err := s.WriteSSHClientFiles(t.TempDir(), "bot")
	if err != nil {
		t.Fatal(err)
	}
	return &sshWorld{t: t, s: s, files: files}
}

// dial connects as user with the world's key, checking the host key.
func (w *sshWorld) dial(user string) *ssh.Client {
	w.t.Helper()
	b, err := os.ReadFile(w.files.PrivateKeyFile)
	if err != nil {
		w.t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(b)
	if err != nil {
		w.t.Fatal(err)
	}
	cb, err := knownhosts.New(w.files.KnownHostsFile)
	if err != nil {
		w.t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", w.s.SSHAddr(), &ssh.ClientConfig{
		User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: cb, Timeout: 10 * time.Second,
	})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { c.Close() })
	return c
}

// exec runs command and returns its stdout reader and the session.
func (w *sshWorld) exec(c *ssh.Client, command string) (*bufio.Reader, *ssh.Session, *bytes.Buffer) {
	w.t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		w.t.Fatal(err)
	}
	out, err := sess.StdoutPipe()
	if err != nil {
		w.t.Fatal(err)
	}
	var stderr bytes.Buffer
	sess.Stderr = &stderr
	if err := sess.Start(command); err != nil {
		w.t.Fatal(err)
	}
	return bufio.NewReader(out), sess, &stderr
}

func (w *sshWorld) waitStreams(n int) {
	w.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for w.s.Streams() != n {
		if time.Now().After(deadline) {
			w.t.Fatalf("%d streams running, want %d", w.s.Streams(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// next reads one line as a JSON object, failing after 10 seconds.
func next(t *testing.T, r *bufio.Reader) map[string]any {
	t.Helper()
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		line, err := r.ReadString('\n')
		ch <- result{line, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			t.Fatalf("reading an event: %v", res.err)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(res.line), &m); err != nil {
			t.Fatalf("event %q is not a JSON object: %v", res.line, err)
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return nil
}

// field walks a path of object keys.
func field(m map[string]any, path ...string) any {
	var v any = m
	for _, k := range path {
		o, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = o[k]
	}
	return v
}

// TestStreamEventsSchema checks each event against Gerrit's
// cmd-stream-events.txt and json.txt: types, nesting and JSON kinds.
func TestStreamEventsSchema(t *testing.T) {
	w := newSSHWorld(t, gerrittest.SSHOptions{})
	w.s.AddAccount("alice", "Alice", "alice@example.org")
	w.s.SetHTTPPassword("bot", "pw")
	r, _, _ := w.exec(w.dial("bot"), "gerrit stream-events")
	w.waitStreams(1)

	n := w.s.CreateChange("wiki", "main", "Add a thing", "alice")
	c, _ := w.s.Change(n)
	ref := next(t, r) // ref-updated for the patch set ref comes first
	if ref["type"] != "ref-updated" || field(ref, "refUpdate", "refName") != "refs/changes/01/1/1" || field(ref, "refUpdate", "project") != "wiki" {
		t.Errorf("ref-updated = %v", ref)
	}
	ev := next(t, r)
	checks := map[string]any{
		"type":                       "patchset-created",
		"change.project":             "wiki",
		"change.branch":              "main",
		"change.id":                  c.ChangeID,
		"change.number":              float64(n),
		"change.subject":             "Add a thing",
		"change.owner.name":          "Alice",
		"change.owner.email":         "alice@example.org",
		"change.owner.username":      "alice",
		"change.url":                 w.s.URL() + "/c/wiki/+/1",
		"change.status":              "NEW",
		"patchSet.number":            float64(1),
		"patchSet.revision":          c.Current().Revision,
		"patchSet.ref":               "refs/changes/01/1/1",
		"patchSet.uploader.username": "alice",
		"patchSet.createdOn":         float64(c.Current().Created.Unix()),
		"uploader.username":          "alice",
		"eventCreatedOn":             float64(c.Updated.Unix()),
	}
	for path, want := range checks {
		if got := field(ev, strings.Split(path, ".")...); got != want {
			t.Errorf("%s = %#v, want %#v", path, got, want)
		}
	}
	if _, ok := field(ev, "change", "owner", "_account_id").(float64); ok {
		t.Error("stream accounts carry name, email and username, not REST's _account_id")
	}

	w.s.AddComment(n, "bob", "recheck")
	ev = next(t, r)
	if ev["type"] != "comment-added" || field(ev, "author", "username") != "bob" || ev["comment"] != "Patch Set 1:\n\nrecheck" {
		t.Errorf("comment-added = %v", ev)
	}

	// A review through REST is a comment-added with approvals, whose
	// values Gerrit writes as strings.
	resp := call(t, "POST", w.s.URL()+"/a/changes/wiki~1/revisions/current/review", "bot", "pw", `{"message":"ok","labels":{"Verified":1}}`)
	if resp.status != 200 {
		t.Fatalf("review: %d %s", resp.status, resp.body)
	}
	ev = next(t, r)
	approvals, _ := ev["approvals"].([]any)
	if ev["type"] != "comment-added" || len(approvals) != 1 || field(approvals[0].(map[string]any), "type") != "Verified" || field(approvals[0].(map[string]any), "value") != "1" {
		t.Errorf("review's comment-added = %v", ev)
	}

	for _, tt := range []struct {
		do    func()
		types []string
		actor string
	}{
		{func() { w.s.SetWIP(n, true) }, []string{"wip-state-changed"}, "changer"},
		{func() { w.s.SetPrivate(n, true) }, []string{"private-state-changed"}, "changer"},
		{func() { w.s.SetStatus(n, gerrittest.StatusAbandoned) }, []string{"change-abandoned"}, "abandoner"},
		{func() { w.s.SetStatus(n, gerrittest.StatusNew) }, []string{"change-restored"}, "restorer"},
		{func() { w.s.SetStatus(n, gerrittest.StatusMerged) }, []string{"ref-updated", "change-merged"}, "submitter"},
		{func() { w.s.DeleteChange(n) }, []string{"change-deleted"}, "deleter"},
	} {
		tt.do()
		for _, typ := range tt.types {
			ev := next(t, r)
			if ev["type"] != typ {
				t.Errorf("type %v, want %s", ev["type"], typ)
				continue
			}
			if field(ev, tt.actor, "username") != "alice" {
				t.Errorf("%s: %s = %v, want alice", typ, tt.actor, ev[tt.actor])
			}
			if typ != "ref-updated" && field(ev, "change", "number") != float64(n) {
				t.Errorf("%s: change.number = %v", typ, field(ev, "change", "number"))
			}
		}
	}
}

// TestStreamEventsSubscribe: -s and --subscribe select types.
func TestStreamEventsSubscribe(t *testing.T) {
	w := newSSHWorld(t, gerrittest.SSHOptions{})
	r, _, _ := w.exec(w.dial("bot"), "gerrit stream-events -s comment-added --subscribe=change-merged")
	w.waitStreams(1)
	n := w.s.CreateChange("wiki", "main", "a", "alice") // not subscribed
	w.s.SetStatus(n, gerrittest.StatusMerged)
	if ev := next(t, r); ev["type"] != "change-merged" {
		t.Errorf("first event %v, want change-merged", ev["type"])
	}
	w.s.AddComment(n, "bob", "late")
	if ev := next(t, r); ev["type"] != "comment-added" {
		t.Errorf("second event %v, want comment-added", ev["type"])
	}
}

// TestStreamEventsOverflow: a client that cannot keep up loses events and
// is told so with dropped-output, after what was queued.
func TestStreamEventsOverflow(t *testing.T) {
	w := newSSHWorld(t, gerrittest.SSHOptions{StreamQueue: 1})
	r, _, _ := w.exec(w.dial("bot"), "gerrit stream-events -s patchset-created")
	w.waitStreams(1)
	w.s.PauseStreams()
	for range 5 {
		w.s.CreateChange("wiki", "main", "burst", "alice")
	}
	w.s.ResumeStreams()
	var types []string
	for {
		ev := next(t, r)
		types = append(types, ev["type"].(string))
		if ev["type"] == "dropped-output" {
			break
		}
	}
	if len(types) >= 6 || types[0] != "patchset-created" {
		t.Errorf("events %v, want a few patchset-created then dropped-output", types)
	}
}

// TestSSHRefusals: an unknown key, a missing capability and an unknown
// command are refused the way Gerrit refuses them.
func TestSSHRefusals(t *testing.T) {
	w := newSSHWorld(t, gerrittest.SSHOptions{})
	w.s.AddSSHKey("nocap", w.files.PublicKey)

	_, sess, stderr := w.exec(w.dial("nocap"), "gerrit stream-events")
	var exit *ssh.ExitError
	if err := sess.Wait(); !errors.As(err, &exit) || exit.ExitStatus() != 1 || !strings.Contains(stderr.String(), `"Stream Events" capability`) {
		t.Errorf("without the capability: %v, stderr %q", err, stderr)
	}
	_, sess, stderr = w.exec(w.dial("bot"), "gerrit frobnicate")
	if err := sess.Wait(); !errors.As(err, &exit) || exit.ExitStatus() != 1 || !strings.Contains(stderr.String(), "fatal: gerrit: frobnicate: not found") {
		t.Errorf("unknown command: %v, stderr %q", err, stderr)
	}
	_, sess, stderr = w.exec(w.dial("bot"), "gerrit stream-events --bogus")
	if err := sess.Wait(); !errors.As(err, &exit) || !strings.Contains(stderr.String(), "is not a valid option") {
		t.Errorf("unknown option: %v, stderr %q", err, stderr)
	}

	b, _ := os.ReadFile(w.files.PrivateKeyFile)
	signer, _ := ssh.ParsePrivateKey(b)
	_, err := ssh.Dial("tcp", w.s.SSHAddr(), &ssh.ClientConfig{User: "stranger", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(w.s.SSHHostKey()), Timeout: 10 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Errorf("a key not registered for the user: %v, want an authentication failure", err)
	}
}

// TestSSHDropAndRefuse: DropStreams cuts running streams; RefuseSSH keeps
// new connections out until lifted.
func TestSSHDropAndRefuse(t *testing.T) {
	w := newSSHWorld(t, gerrittest.SSHOptions{})
	r, _, _ := w.exec(w.dial("bot"), "gerrit stream-events")
	w.waitStreams(1)
	w.s.RefuseSSH(true)
	if got := w.s.DropStreams(); got != 1 {
		t.Fatalf("dropped %d streams, want 1", got)
	}
	if _, err := r.ReadString('\n'); !errors.Is(err, io.EOF) {
		t.Errorf("read after the drop: %v, want EOF", err)
	}
	conn, err := net.DialTimeout("tcp", w.s.SSHAddr(), 5*time.Second)
	if err == nil {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Read(make([]byte, 1)); err == nil {
			t.Error("a refused connection got data")
		}
		conn.Close()
	}
	w.s.RefuseSSH(false)
	w.dial("bot")
}
