// Package people turns the names ductbot stores about people into what it
// may show in public: announcements, the dashboard and the JSON API show
// names or usernames, never e-mail addresses.
package people

import "strings"

// DisplayName is how owner (a change owner or an asker as stored, such as
// "Jane Doe <jane@example.org>", "jane@example.org" or "jane") is shown in
// public. It drops every <...> part and cuts every word that holds an '@'
// to what comes before it, so no e-mail address survives. When nothing is
// left but an address in brackets, it keeps that address's user part:
//
//	"Jane Doe <jane@example.org>" -> "Jane Doe"
//	"jane@example.org"            -> "jane"
//	"<jane@example.org>"          -> "jane"
//	"jane"                        -> "jane"
func DisplayName(owner string) string {
	var kept, bracketed strings.Builder
	rest := owner
	for {
		open := strings.IndexByte(rest, '<')
		if open < 0 {
			kept.WriteString(rest)
			break
		}
		kept.WriteString(rest[:open])
		kept.WriteByte(' ')
		rest = rest[open+1:]
		end := strings.IndexByte(rest, '>')
		if end < 0 { // unclosed: the rest is the bracketed part
			end = len(rest)
		}
		if bracketed.Len() == 0 {
			bracketed.WriteString(rest[:end])
		}
		rest = rest[min(end+1, len(rest)):]
	}
	if name := withoutAddresses(kept.String()); name != "" {
		return name
	}
	return withoutAddresses(strings.ReplaceAll(bracketed.String(), ">", " "))
}

// withoutAddresses cuts every word holding an '@' to what precedes it and
// joins the words with single spaces.
func withoutAddresses(s string) string {
	words := strings.Fields(s)
	out := words[:0]
	for _, w := range words {
		if i := strings.IndexByte(w, '@'); i >= 0 {
			w = strings.TrimRight(w[:i], ".,;:(\"'")
			w = strings.TrimLeft(w, "(\"'")
		}
		if w != "" {
			out = append(out, w)
		}
	}
	return strings.Join(out, " ")
}
