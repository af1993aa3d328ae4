package commands

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ductbot/ductbot/internal/suggest"

	"github.com/ductbot/ductbot/core/pipeline"
	"github.com/ductbot/ductbot/core/run"
)

// ErrUsage marks an error in a command's arguments. Its message says what was
// expected; the router adds the command's usage.
var ErrUsage = errors.New("bad arguments")

// maxChange bounds change and patch set numbers so that parsing never
// overflows and obvious garbage is refused early.
const maxChange = 1<<31 - 1

var (
	tagRef    = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)
	changeRef = regexp.MustCompile(`^change:([0-9]{1,10})(?:/([0-9]{1,10}))?$`)
)

func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, args...))
}

// ParseEnv parses the arguments of !env:
//
//	<change>[/<patchset>] [component=ref ...] [ttl=<duration>]
//
// components are the configured component names. A ref is an image-tag-like
// token ([A-Za-z0-9._-], at most 128 characters) or change:NNNN[/P]. The
// returned request has Change, PatchSet, Overrides and TTL set; By and
// ReplyTo are the caller's. Every error wraps ErrUsage and says what was
// expected. ParseEnv does not decide the default or maximum TTL.
func ParseEnv(args []string, components []string) (pipeline.EnvRequest, error) {
	var req pipeline.EnvRequest
	if len(args) == 0 {
		return req, usageErr("which change? give a change number, e.g. 12345 or 12345/2")
	}
	change, ps, err := parseChange(args[0])
	if err != nil {
		return req, err
	}
	req.Change, req.PatchSet = change, ps
	for _, arg := range args[1:] {
		key, val, ok := strings.Cut(arg, "=")
		if !ok || key == "" {
			return req, usageErr("%q is not component=ref or ttl=duration", clip(arg))
		}
		if key == "ttl" {
			if req.TTL != 0 {
				return req, usageErr("ttl is given twice")
			}
			d, err := ParseTTL(val)
			if err != nil {
				return req, err
			}
			req.TTL = d
			continue
		}
		if !slices.Contains(components, key) {
			return req, unknownComponent(key, components)
		}
		if _, dup := req.Overrides[key]; dup {
			return req, usageErr("component %s is given twice", key)
		}
		if err := checkRef(key, val); err != nil {
			return req, err
		}
		if req.Overrides == nil {
			req.Overrides = run.Matrix{}
		}
		req.Overrides[key] = val
	}
	return req, nil
}

// parseChange parses "12345" or "12345/2".
func parseChange(s string) (change, patchSet int, err error) {
	num, psText, hasPS := strings.Cut(s, "/")
	change, err = positive(num)
	if err != nil {
		return 0, 0, usageErr("%q is not a change number; expected e.g. 12345 or 12345/2", clip(s))
	}
	if hasPS {
		patchSet, err = positive(psText)
		if err != nil {
			return 0, 0, usageErr("%q has no valid patch set; expected e.g. 12345/2", clip(s))
		}
	}
	return change, patchSet, nil
}

func positive(s string) (int, error) {
	if s == "" || len(s) > 10 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 || n > maxChange {
		return 0, strconv.ErrRange
	}
	return n, nil
}

func checkRef(component, ref string) error {
	if m := changeRef.FindStringSubmatch(ref); m != nil {
		if _, err := positive(m[1]); err != nil {
			return usageErr("%s=%s: the change number is out of range", component, clip(ref))
		}
		if m[2] != "" {
			if _, err := positive(m[2]); err != nil {
				return usageErr("%s=%s: the patch set is out of range", component, clip(ref))
			}
		}
		return nil
	}
	if strings.HasPrefix(ref, "change:") {
		return usageErr("%s=%s: expected change:NNNN or change:NNNN/P", component, clip(ref))
	}
	if !tagRef.MatchString(ref) {
		return usageErr("%s=%s is not a valid ref; expected an image tag or commit (letters, digits, . _ -, at most 128 characters) or change:NNNN[/P]", component, clip(ref))
	}
	return nil
}

func unknownComponent(name string, components []string) error {
	list := "none are configured"
	if len(components) > 0 {
		list = "configured: " + strings.Join(components, ", ")
	}
	if best := suggest.Closest(name, components); best != "" {
		return usageErr("unknown component %q; did you mean %q? (%s)", clip(name), best, list)
	}
	return usageErr("unknown component %q (%s)", clip(name), list)
}

// ParseTTL parses a lifetime such as 90m, 2h, 3d or 1d12h. It must be
// positive. It does not apply the configured maximum.
func ParseTTL(s string) (time.Duration, error) {
	bad := usageErr("ttl=%s is not a duration; expected e.g. 90m, 2h or 3d", clip(s))
	if s == "" || len(s) > 32 {
		return 0, bad
	}
	var days time.Duration
	if num, rest, ok := strings.Cut(s, "d"); ok {
		n, err := strconv.Atoi(num)
		if err != nil || n < 0 || n > 3650 {
			return 0, bad
		}
		days = time.Duration(n) * 24 * time.Hour
		s = rest
	}
	var d time.Duration
	if s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil || d < 0 || strings.HasPrefix(s, "+") {
			return 0, bad
		}
	}
	d += days
	if d <= 0 {
		return 0, usageErr("ttl must be positive")
	}
	return d, nil
}

// clip bounds untrusted text echoed back in replies.
func clip(s string) string {
	const maxEcho = 40
	if len(s) <= maxEcho {
		return s
	}
	r := []rune(s)
	if len(r) <= maxEcho {
		return s
	}
	return string(r[:maxEcho]) + "…"
}
