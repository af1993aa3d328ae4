package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// DefaultStreamPollInterval is gerrit.poll_interval's default with
// gerrit.stream_events: the period of the REST reconcile.
const DefaultStreamPollInterval = 5 * time.Minute

type keyProblem struct{ key, msg string }

// checkStreamEvents checks gerrit.stream_events: the address, and that the
// key and known_hosts files can be read and used (ductbot reads them at
// start, so a problem found now is one found before deploying).
func checkStreamEvents(se StreamEvents, username string) []keyProblem {
	var out []keyProblem
	add := func(key, format string, args ...any) {
		out = append(out, keyProblem{key, fmt.Sprintf(format, args...)})
	}
	if username == "" {
		add("", "needs gerrit.username: the stream connects over SSH as that account")
	}
	addrOK := false
	if se.Address == "" {
		add(".address", "required: Gerrit's SSH host:port, e.g. gerrit.example.org:29418")
	} else if host, port, err := net.SplitHostPort(se.Address); err != nil || host == "" {
		add(".address", "%q is not host:port (Gerrit's SSH port is usually 29418)", se.Address)
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		add(".address", "%q: port must be 1..65535", se.Address)
	} else {
		addrOK = true
	}
	switch b, err := readFile(se.PrivateKeyFile); {
	case se.PrivateKeyFile == "":
		add(".private_key_file", "required: a file holding the account's SSH private key (never the key itself)")
	case err != nil:
		add(".private_key_file", "%v", err)
	default:
		_, err := ssh.ParsePrivateKey(b)
		var pass *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &pass):
			add(".private_key_file", "%s is encrypted with a passphrase; ductbot needs a key without one (keep the file readable only by ductbot)", se.PrivateKeyFile)
		case err != nil:
			add(".private_key_file", "%s is not an SSH private key: %v", se.PrivateKeyFile, err)
		}
	}
	if se.KnownHostsFile == "" {
		add(".known_hosts_file", "required: Gerrit's host key in known_hosts format (ssh-keyscan -p 29418 <host>, checked with Gerrit's admins); ductbot never connects to an unchecked host")
		return out
	}
	cb, err := knownhosts.New(se.KnownHostsFile)
	if err != nil {
		add(".known_hosts_file", "%v", err)
		return out
	}
	if addrOK {
		err := cb(se.Address, &net.TCPAddr{IP: net.IPv4zero}, probeKey{})
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) && len(ke.Want) == 0 {
			add(".known_hosts_file", "%s has no key for %s (a non-22 port is written [host]:port)", se.KnownHostsFile, knownhosts.Normalize(se.Address))
		}
	}
	return out
}

func readFile(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, errors.Unwrap(err))
	}
	return b, nil
}

// probeKey is a host key no known_hosts file lists: offering it tells
// which keys the file knows for a host.
type probeKey struct{}

func (probeKey) Type() string                        { return "ductbot-probe" }
func (probeKey) Marshal() []byte                     { return []byte("ductbot-probe") }
func (probeKey) Verify([]byte, *ssh.Signature) error { return errors.New("probe key") }
