package config

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// streamFiles writes a private key, an encrypted one, and a known_hosts
// file listing a host key for gerrit.example.org:29418.
func streamFiles(t *testing.T) (key, encrypted, knownHosts string) {
	t.Helper()
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	key = filepath.Join(dir, "id_ed25519")
	os.WriteFile(key, pem.EncodeToMemory(block), 0o600)
	block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	encrypted = filepath.Join(dir, "encrypted")
	os.WriteFile(encrypted, pem.EncodeToMemory(block), 0o600)
	hostPub, _, _ := ed25519.GenerateKey(rand.Reader)
	hk, _ := ssh.NewPublicKey(hostPub)
	knownHosts = filepath.Join(dir, "known_hosts")
	os.WriteFile(knownHosts, []byte(knownhosts.Line([]string{"[gerrit.example.org]:29418"}, hk)+"\n"), 0o644)
	return key, encrypted, knownHosts
}

func TestStreamEventsConfig(t *testing.T) {
	t.Setenv("DUCTBOT_TEST_GERRIT_PW", "x")
	key, encrypted, kh := streamFiles(t)
	base := `
projects: [{name: p, component: wiki}]
components: [{name: wiki, default_ref: latest, values: {wiki.image.tag: "{{.Ref}}"}}]
chart: {ref: ./testdata/chart}
`
	gerrit := func(extra string) string {
		return fmt.Sprintf("gerrit: {url: \"https://g\", username: bot, password_env: DUCTBOT_TEST_GERRIT_PW%s}\n", extra) + base
	}
	stream := func(addr, key, kh string) string {
		return fmt.Sprintf(", stream_events: {address: %q, private_key_file: %q, known_hosts_file: %q}", addr, key, kh)
	}

	cfg, err := Parse([]byte(gerrit(stream("gerrit.example.org:29418", key, kh))))
	if err != nil {
		t.Fatalf("a valid stream configuration refused: %v", err)
	}
	if got := cfg.Gerrit.PollInterval.D(); got != 5*time.Minute {
		t.Errorf("poll_interval with the stream defaults to %s, want 5m", got)
	}
	se := cfg.Gerrit.StreamEvents
	if se == nil || se.Address != "gerrit.example.org:29418" || se.PrivateKeyFile != key || se.KnownHostsFile != kh {
		t.Errorf("stream_events = %+v", se)
	}
	cfg, err = Parse([]byte(gerrit(", poll_interval: 1m" + stream("gerrit.example.org:29418", key, kh))))
	if err != nil || cfg.Gerrit.PollInterval.D() != time.Minute {
		t.Errorf("an explicit poll_interval with the stream: %v, %v", cfg, err)
	}
	cfg, err = Parse([]byte(gerrit("")))
	if err != nil || cfg.Gerrit.StreamEvents != nil || cfg.Gerrit.PollInterval.D() != 30*time.Second {
		t.Errorf("without the stream: %+v, %v; want no stream and the 30s default", cfg.Gerrit, err)
	}

	for _, tc := range []struct {
		name string
		yaml string
		want []string
	}{
		{"everything missing", gerrit(", stream_events: {}"), []string{
			"gerrit.stream_events.address: required",
			"gerrit.stream_events.private_key_file: required",
			"gerrit.stream_events.known_hosts_file: required",
		}},
		{"no username", strings.Replace(gerrit(stream("g:29418", key, kh)), "username: bot, password_env: DUCTBOT_TEST_GERRIT_PW", "dry_run: true", 1),
			[]string{"gerrit.stream_events: needs gerrit.username"}},
		{"bad address", gerrit(stream("gerrit.example.org", key, kh)), []string{`gerrit.stream_events.address: "gerrit.example.org" is not host:port`}},
		{"bad port", gerrit(stream("g:0", key, kh)), []string{"gerrit.stream_events.address", "port must be 1..65535"}},
		{"missing key file", gerrit(stream("gerrit.example.org:29418", "/nonexistent/key", kh)), []string{"gerrit.stream_events.private_key_file: cannot read /nonexistent/key"}},
		{"not a key", gerrit(stream("gerrit.example.org:29418", kh, kh)), []string{"gerrit.stream_events.private_key_file", "is not an SSH private key"}},
		{"encrypted key", gerrit(stream("gerrit.example.org:29418", encrypted, kh)), []string{"gerrit.stream_events.private_key_file", "encrypted with a passphrase"}},
		{"unreadable known_hosts", gerrit(stream("gerrit.example.org:29418", key, "/nonexistent/kh")), []string{"gerrit.stream_events.known_hosts_file"}},
		{"host not in known_hosts", gerrit(stream("other.example.org:29418", key, kh)), []string{"gerrit.stream_events.known_hosts_file", "has no key for [other.example.org]:29418"}},
		{"inline key refused", gerrit(", stream_events: {address: \"g:29418\", private_key: \"-----BEGIN\"}"), []string{"gerrit.stream_events.private_key", "unknown key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !mentions(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}
