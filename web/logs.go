package web

import (
	"bufio"
	"io"
	"strings"

	"github.com/ductbot/ductbot/core/run"
)

// maxShownLines is how many lines of one pod's log a run page shows; the
// rest is in the raw download.
const maxShownLines = 5000

// The raw log and the page number their lines the same way: each pod's
// section starts with a header line, and line N of log.txt is anchor #LN on
// the page.

// logSection is one pod's log, numbered for the page.
type logSection struct {
	Pod    string
	Phase  string
	Header int       // the number of the section's header line
	Lines  []logLine // the lines shown: the last maxShownLines
	Hidden int       // lines not shown, from the start of the log
	Total  int
}

// logLine is one numbered line of a log.
type logLine struct {
	N    int
	Text string
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

// numberLogs numbers the logs for the page.
func numberLogs(logs []run.TestLog) []logSection {
	secs := make([]logSection, 0, len(logs))
	n := 0
	for _, l := range logs {
		n++
		sec := logSection{Pod: l.Pod, Phase: l.Phase, Header: n}
		lines := splitLines(l.Log)
		sec.Total = len(lines)
		if len(lines) > maxShownLines {
			sec.Hidden = len(lines) - maxShownLines
		}
		sec.Lines = make([]logLine, 0, len(lines)-sec.Hidden)
		for i, text := range lines {
			if i >= sec.Hidden {
				sec.Lines = append(sec.Lines, logLine{N: n + 1 + i, Text: displayLine(text)})
			}
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
