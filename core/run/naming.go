package run

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
)

// MaxReleaseName is Helm's limit on release names.
const MaxReleaseName = 53

// Names are the Kubernetes names of one environment.
type Names struct {
	Env       string // also the Helm release name
	Namespace string
}

// PatchEnvName is the stable name of a change's own environment.
func PatchEnvName(change int) string { return fmt.Sprintf("change-%d", change) }

// CustomEnvName names the environment of a change with a custom matrix: the
// same change and matrix always give the same name.
func CustomEnvName(change int, m Matrix) string {
	return fmt.Sprintf("change-%d-%s", change, m.Hash())
}

// NamesFor derives the release and namespace names of an environment, both
// valid DNS-1123 labels; the release at most 53 characters and the namespace
// at most 63, shortened with a hash when longer.
func NamesFor(prefix, env string) Names {
	env = fitDNS(env, MaxReleaseName)
	return Names{Env: env, Namespace: fitDNS(prefix+env, 63)}
}

var notDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// fitDNS lower-cases s, replaces what DNS-1123 forbids, and when it is longer
// than max keeps a prefix and appends a hash of the whole.
func fitDNS(s string, max int) string {
	clean := strings.Trim(notDNS.ReplaceAllString(strings.ToLower(s), "-"), "-")
	if clean == "" {
		clean = "env"
	}
	if len(clean) <= max {
		return clean
	}
	sum := sha256.Sum256([]byte(s))
	h := hex.EncodeToString(sum[:])[:8]
	return strings.TrimRight(clean[:max-9], "-") + "-" + h
}
