package k8s

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ductbot/ductbot/internal/text"
)

// logText is n bytes of log with one-, two-, three- and four-byte
// characters, so cuts fall inside characters too.
func logText(n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "line %d: é € 𝄞 ok\n", i)
	}
	s := b.String()[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// TestBoundedLogMatchesHeadTail: whatever the sizes and however the log is
// written, the bounded writer gives exactly what text.HeadTail gives for the
// whole log, and never holds more than max bytes.
func TestBoundedLogMatchesHeadTail(t *testing.T) {
	for _, limit := range []int{150, 151, 256, 1000, 4096} {
		for _, size := range []int{0, 1, limit / 2, limit - 1, limit, limit + 1, limit + 7, 2 * limit, 3*limit + 5, 10 * limit} {
			whole := logText(size)
			for _, chunk := range []int{1, 3, 64, limit/2 + 1, limit, 1 << 30} {
				b := newBoundedLog(limit)
				for rest := whole; len(rest) > 0; {
					n := min(chunk, len(rest))
					if got, err := b.Write([]byte(rest[:n])); got != n || err != nil {
						t.Fatalf("Write = %d, %v; want %d, nil", got, err, n)
					}
					rest = rest[n:]
					if cap(b.head) > b.headCap || cap(b.tail) > b.tailCap {
						t.Fatalf("limit %d: holding head cap %d, tail cap %d; want within %d and %d", limit, cap(b.head), cap(b.tail), b.headCap, b.tailCap)
					}
				}
				got, want := b.String(), text.HeadTail(whole, limit)
				if got != want {
					t.Fatalf("limit %d, %d bytes written %d at a time:\n got %q\nwant %q", limit, len(whole), chunk, got, want)
				}
				if len(got) > limit || b.Len() != int64(len(whole)) {
					t.Fatalf("limit %d: String is %d bytes, Len %d; want within the limit and %d", limit, len(got), b.Len(), len(whole))
				}
			}
		}
	}
}

// TestBoundedLogHuge: 64 MiB through a 1 MiB writer keeps 1 MiB, both ends,
// and says how much it cut.
func TestBoundedLogHuge(t *testing.T) {
	b := newBoundedLog(0) // the default
	line := []byte(strings.Repeat("x", 1000) + "\n")
	b.Write([]byte("FIRST LINE\n"))
	for range 64 << 10 {
		b.Write(line)
	}
	b.Write([]byte("LAST LINE\n"))
	got := b.String()
	if len(got) > DefaultMaxLogBytes || cap(b.head)+cap(b.tail) > DefaultMaxLogBytes {
		t.Fatalf("String %d bytes, holding %d; want at most %d", len(got), cap(b.head)+cap(b.tail), DefaultMaxLogBytes)
	}
	if !strings.HasPrefix(got, "FIRST LINE\n") || !strings.HasSuffix(got, "LAST LINE\n") || !strings.Contains(got, "bytes cut by ductbot") {
		t.Errorf("String lost an end or the marker: %q ... %q", got[:40], got[len(got)-40:])
	}
}

// TestBoundedLogInvalidUTF8: a test printing bytes that are not UTF-8 still
// gives valid UTF-8 within the limit.
func TestBoundedLogInvalidUTF8(t *testing.T) {
	for _, size := range []int{100, 300, 5000} {
		raw := make([]byte, size)
		for i := range raw {
			raw[i] = byte(0x80 + i%0x7f) // continuation and lead bytes, out of order
		}
		b := newBoundedLog(256)
		b.Write(raw)
		if got := b.String(); !utf8.ValidString(got) || len(got) > 256 {
			t.Errorf("%d invalid bytes: String is %d bytes, valid %v; want valid within 256", size, len(got), utf8.ValidString(got))
		}
	}
}

func TestIsTestHookAnnotation(t *testing.T) {
	for v, want := range map[string]bool{
		"test": true, "test-success": true, "pre-install, test": true, " test ,post-upgrade": true,
		"": false, "pre-install": false, "test-failure": false, "tests": false, "post-install,pre-upgrade": false,
	} {
		if got := isTestHookAnnotation(v); got != want {
			t.Errorf("isTestHookAnnotation(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestInstanceOwnership(t *testing.T) {
	managed := func(instance string) map[string]string {
		l := map[string]string{LabelManagedBy: ManagedBy, LabelEnv: "e"}
		if instance != "" {
			l[LabelInstance] = instance
		}
		return l
	}
	tests := []struct {
		name    string
		labels  map[string]string
		owner   string          // InstanceOf
		owns    map[string]bool // by client instance; absent: false
		foreign map[string]bool // refused by client instance; absent: false
	}{
		{"staging's", managed("staging"), "staging",
			map[string]bool{"staging": true}, map[string]bool{"prod": true, DefaultInstance: true}},
		{"default's, labelled", managed(DefaultInstance), DefaultInstance,
			map[string]bool{DefaultInstance: true}, map[string]bool{"staging": true, "prod": true}},
		{"older ductbot's, no instance label", managed(""), DefaultInstance,
			map[string]bool{DefaultInstance: true}, map[string]bool{"staging": true, "prod": true}},
		{"not ductbot's", map[string]string{"team": "x"}, "", nil, nil},
		{"no labels", nil, "", nil, nil},
		{"instance label without managed-by", map[string]string{LabelInstance: "prod"}, "prod",
			nil, map[string]bool{"staging": true, DefaultInstance: true}},
		{"managed by someone else", map[string]string{LabelManagedBy: "Helm"}, "", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := InstanceOf(tt.labels); got != tt.owner {
				t.Errorf("InstanceOf = %q, want %q", got, tt.owner)
			}
			for _, inst := range []string{DefaultInstance, "staging", "prod"} {
				c := &Client{opts: Options{Instance: inst}}
				if got := c.owns(tt.labels); got != tt.owns[inst] {
					t.Errorf("instance %s: owns = %v, want %v", inst, got, tt.owns[inst])
				}
				err := c.foreign("namespace", "ns", tt.labels)
				if (err != nil) != tt.foreign[inst] {
					t.Errorf("instance %s: foreign = %v, want refused %v", inst, err, tt.foreign[inst])
				}
				if err != nil && (!strings.Contains(err.Error(), fmt.Sprintf("%q", tt.owner)) || !strings.Contains(err.Error(), fmt.Sprintf("%q", inst))) {
					t.Errorf("instance %s: error %q should name both instances", inst, err)
				}
			}
		})
	}
}

// TestStampOverridesCaller: the caller's labels are kept, but cannot claim
// another instance or another manager.
func TestStampOverridesCaller(t *testing.T) {
	c := &Client{opts: Options{Instance: "staging"}}
	in := map[string]string{LabelInstance: "prod", LabelManagedBy: "someone", LabelEnv: "e1"}
	got := c.stamp(in)
	if got[LabelInstance] != "staging" || got[LabelManagedBy] != ManagedBy || got[LabelEnv] != "e1" {
		t.Errorf("stamp = %v, want instance staging, managed by ductbot, env e1", got)
	}
	if in[LabelInstance] != "prod" {
		t.Errorf("stamp changed the caller's map")
	}
	if got := c.stampOnto(map[string]string{LabelInstance: "prod", "x": "y"}); got[LabelInstance] != "staging" || got["x"] != "y" {
		t.Errorf("stampOnto = %v", got)
	}
}
