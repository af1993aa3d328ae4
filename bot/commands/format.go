package commands

import (
	"fmt"
	"strings"

	"github.com/ductbot/ductbot/bot/chat"
	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/internal/people"
)

// maxSweepLines bounds the environments listed in one sweep summary.
const maxSweepLines = 10

// FormatAnnouncement renders a run's result for the channels: the result,
// change, patch set, subject and owner in the title; the environment URL,
// log link, when it differs from the default, the matrix, and the changes
// Depends-On footers brought in, as fields.
// Subject and owner are untrusted; adapters make them safe for their network.
// The owner is shown by name, never by e-mail address (people.DisplayName).
func FormatAnnouncement(a run.Announcement) chat.Message {
	r := a.Run
	result := string(r.Result)
	if result == "" {
		result = string(r.State)
	}
	title := fmt.Sprintf("%s %s: change %d patch set %d", resultMark(r.Result), strings.ToUpper(result), r.Change, r.PatchSet)
	if r.Subject != "" {
		title += " “" + chat.StripControl(r.Subject) + "”"
	}
	if owner := people.DisplayName(r.Owner); owner != "" {
		title += " by " + chat.StripControl(owner)
	}
	m := chat.Message{Title: title, Error: r.Result != run.ResultPassed}
	if a.Env.URL != "" {
		m.Fields = append(m.Fields, chat.Field{Name: "env", Value: a.Env.URL})
	}
	if a.RunURL != "" {
		m.Fields = append(m.Fields, chat.Field{Name: "logs", Value: a.RunURL})
	}
	if a.CustomMatrix() && len(r.Matrix) > 0 {
		m.Fields = append(m.Fields, chat.Field{Name: "matrix", Value: matrixText(r.Matrix)})
	}
	if len(r.Deps) > 0 {
		m.Fields = append(m.Fields, chat.Field{Name: "depends-on", Value: run.FormatDeps(r.Deps)})
	}
	d := r.Diagnosis
	if r.Result == run.ResultError && r.Detail != "" && (d == nil || d.Class == run.DiagnosisInfrastructure) {
		m.Lines = append(m.Lines, "detail: "+lastLine(r.Detail))
	}
	if d != nil && (r.Result == run.ResultFailed || r.Result == run.ResultError) {
		m.Lines = append(m.Lines, diagnosisLines(d)...)
	}
	return m
}

// Bounds of a diagnosis in a chat message: the run page has all of it.
const (
	chatLogLines = 5
	chatEvents   = 3
)

// diagnosisLines say which component failed and why, its last log lines
// and its last warning events, briefly. Log and events are untrusted:
// adapters strip them for their network; each line is bounded here.
func diagnosisLines(d *run.Diagnosis) []string {
	what := "failed"
	switch d.Class {
	case run.DiagnosisBroken:
		what = "broken"
	case run.DiagnosisImage:
		what = "image missing"
	case run.DiagnosisInfrastructure:
		what = "cluster"
	}
	comp := d.Component
	if comp == "" {
		comp = "?"
	}
	whose := "not this change's component"
	if d.Own {
		whose = "this change's component"
	}
	out := []string{fmt.Sprintf("%s: %s (%s): %s", what, comp, whose, lastLine(d.Reason))}
	if logs := strings.TrimRight(d.Logs, "\n"); strings.TrimSpace(logs) != "" {
		lines := strings.Split(logs, "\n")
		for _, l := range lines[max(0, len(lines)-chatLogLines):] {
			out = append(out, "log: "+lastLine(l))
		}
	}
	for _, e := range d.Events[max(0, len(d.Events)-chatEvents):] {
		out = append(out, "event: "+lastLine(e))
	}
	return out
}

func resultMark(r run.Result) string {
	switch r {
	case run.ResultPassed:
		return "✔"
	case run.ResultFailed, run.ResultError:
		return "✘"
	default:
		return "•"
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	const maxDetail = 300
	if len(s) > maxDetail {
		r := []rune(s)
		if len(r) > maxDetail {
			s = string(r[:maxDetail]) + "…"
		}
	}
	return s
}

// FormatSweep renders one cleanup sweep as one message: counts in the title,
// then up to a bounded number of removed and skipped environments.
func FormatSweep(s run.SweepSummary) chat.Message {
	title := "Cleanup sweep"
	if s.DryRun {
		title += " (dry run, nothing removed)"
	}
	verb := "removed"
	if s.DryRun {
		verb = "would remove"
	}
	title += fmt.Sprintf(": %s %d, skipped %d, repaired %d.", verb, len(s.Removed), len(s.Skipped), len(s.Repaired))
	m := chat.Message{Title: title}
	lines := 0
	add := func(kind string, acts []run.SweepAction) {
		for i, a := range acts {
			if lines >= maxSweepLines {
				m.Lines = append(m.Lines, fmt.Sprintf("and %d more %s", len(acts)-i, kind))
				return
			}
			line := fmt.Sprintf("%s %s (%s)", kind, a.Env, a.Policy)
			if a.Reason != "" {
				line += ": " + lastLine(a.Reason)
			}
			m.Lines = append(m.Lines, line)
			lines++
		}
	}
	add(verb, s.Removed)
	add("skipped", s.Skipped)
	if len(s.Repaired) > 0 {
		m.Lines = append(m.Lines, "repaired: "+strings.Join(s.Repaired[:min(len(s.Repaired), maxSweepLines)], ", "))
	}
	return m
}
