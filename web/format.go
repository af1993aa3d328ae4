package web

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ductbot/ductbot/core/run"
)

// humanDuration writes d with its two largest units: "45s", "3m 12s",
// "2h 5m", "3d 4h".
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	d = d.Round(time.Second)
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	h := d / time.Hour
	d -= h * time.Hour
	m := d / time.Minute
	sec := (d - m*time.Minute) / time.Second
	switch {
	case days > 0:
		return fmt.Sprintf("%dd %dh", days, h)
	case h > 0:
		return fmt.Sprintf("%dh %dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm %ds", m, sec)
	default:
		return fmt.Sprintf("%ds", sec)
	}
}

// ago says how long before now t was; "" for the zero time.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return humanDuration(now.Sub(t)) + " ago"
}

// expiry says when an environment's time is up.
func expiry(now, t time.Time) string {
	switch {
	case t.IsZero():
		return "never"
	case t.After(now):
		return "in " + humanDuration(t.Sub(now))
	default:
		return "due " + humanDuration(now.Sub(t)) + " ago"
	}
}

// stamp is a full UTC timestamp for tooltips and detail tables.
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// rfc3339 formats t for the JSON API; "" for the zero time.
func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// pair is one component → ref entry of a matrix, for templates.
type pair struct{ Component, Ref string }

// sortedMatrix lists m by component name.
func sortedMatrix(m run.Matrix) []pair {
	ps := make([]pair, 0, len(m))
	for k, v := range m {
		ps = append(ps, pair{k, v})
	}
	slices.SortFunc(ps, func(a, b pair) int { return strings.Compare(a.Component, b.Component) })
	return ps
}

// runStatus is what a run's badge says: its result once finished, its
// state before.
func runStatus(r *run.Run) string {
	if r.Finished() && r.Result != run.ResultNone {
		return string(r.Result)
	}
	return string(r.State)
}

// runDuration is how long a run took, or has taken so far.
func runDuration(now time.Time, r *run.Run) time.Duration {
	end := r.FinishedAt
	if end.IsZero() {
		if r.Finished() {
			return 0
		}
		end = now
	}
	if r.CreatedAt.IsZero() || end.Before(r.CreatedAt) {
		return 0
	}
	return end.Sub(r.CreatedAt)
}

// ansi matches terminal escape sequences: CSI (colours, cursor moves) and
// OSC (titles, links).
var ansi = regexp.MustCompile(`\x1b\[[0-9:;<=>?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]`)

// displayLine makes one line of untrusted log text fit to show: valid
// UTF-8, no terminal escapes, no control characters but tabs, and only
// what follows the last carriage return (progress bars redraw with \r).
func displayLine(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = ansi.ReplaceAllString(s, "")
	if i := strings.LastIndexByte(strings.TrimRight(s, "\r"), '\r'); i >= 0 {
		s = s[i+1:]
	}
	return strings.Map(func(r rune) rune {
		if r == '\t' {
			return r
		}
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return -1
		}
		return r
	}, s)
}

// oneLine makes untrusted text safe to put on a single line of the raw log.
func oneLine(s string) string {
	return strings.Join(strings.Fields(displayLine(s)), " ")
}
