package web

import (
	"bufio"
	"io"
	"strings"

	"github.com/ductbot/ductbot/core/run"
)

// A run's test logs are first bounded to the configured size (run.BoundLogs):
// the raw log, the page and the API all see the same bounded text. The page
// then shows at most maxShownLines lines of each pod's log: the first
// headShownLines and the last ones, plus the lines that say where ductbot
// cut bytes out, so the cut is always visible.
const (
	maxShownLines  = 5000
	headShownLines = 1000
	maxCutLines    = 4 // cut markers shown at most per pod, beyond the head and tail
)

// cutMarker is in the line text.HeadTail puts where it cut a log.
const cutMarker = "bytes cut by ductbot"

// The raw log and the page number their lines the same way: each pod's
// section starts with a header line, and line N of log.txt is anchor #LN on
// the page.

// logSection is one pod's log, numbered for the page.
type logSection struct {
	Pod    string
	Phase  string
	Header int       // the number of the section's header line
	Lines  []logLine // the lines shown
	Hidden int       // lines not shown (they are in the raw log)
	Total  int
}

// logLine is one numbered line of a log.
type logLine struct {
	N       int
	Text    string
	Skipped int // lines not shown right before this one
}

// sectionHeader is the raw log's header line of one pod.
func sectionHeader(l run.TestLog) string {
	h := "=== pod " + oneLine(l.Pod)
	if p := oneLine(l.Phase); p != "" {
		h += " (" + p + ")"
	}
	return h + " ==="
}

// splitLines splits a log into lines; a final newline ends the last line
// rather than starting an empty one.
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// numberLogs numbers the logs for the page and picks the lines it shows.
func numberLogs(logs []run.TestLog) []logSection {
	secs := make([]logSection, 0, len(logs))
	n := 0
	for _, l := range logs {
		n++
		sec := logSection{Pod: l.Pod, Phase: l.Phase, Header: n}
		lines := splitLines(l.Log)
		sec.Total = len(lines)
		tailFrom := len(lines) - (maxShownLines - headShownLines)
		if len(lines) <= maxShownLines {
			tailFrom = 0
		}
		skipped, cuts := 0, 0
		for i, t := range lines {
			show := i < headShownLines || i >= tailFrom
			if !show && cuts < maxCutLines && strings.Contains(t, cutMarker) {
				show = true
				cuts++
			}
			if !show {
				skipped++
				continue
			}
			sec.Lines = append(sec.Lines, logLine{N: n + 1 + i, Text: displayLine(t), Skipped: skipped})
			sec.Hidden += skipped
			skipped = 0
		}
		n += len(lines)
		secs = append(secs, sec)
	}
	return secs
}

// writeRawLog writes the logs as one text file, numbered as on the page.
// The log text is written as the pods printed it.
func writeRawLog(w io.Writer, logs []run.TestLog) error {
	bw := bufio.NewWriter(w)
	for _, l := range logs {
		bw.WriteString(sectionHeader(l))
		bw.WriteByte('\n')
		for _, line := range splitLines(l.Log) {
			bw.WriteString(line)
			bw.WriteByte('\n')
		}
	}
	return bw.Flush()
}
