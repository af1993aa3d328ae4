package irc

import (
	"strings"
	"unicode/utf8"
)

// IRC line budget: a line is at most 512 bytes with CRLF, and the server
// relays our PRIVMSG to others with our full prefix added, so the text must
// leave room for ":nick!user@host PRIVMSG target :" and "\r\n".
const (
	maxLine    = 512
	maxUserLen = 10 + 1 // USERLEN, plus the "~" a server adds without ident
	maxHostLen = 63
)

// textBudget is how many bytes of text fit in one relayed PRIVMSG from nick
// to target.
func textBudget(nick, target string) int {
	overhead := len(":!@ PRIVMSG  :\r\n") + len(nick) + maxUserLen + maxHostLen + len(target)
	return max(maxLine-overhead, 32)
}

// splitText cuts text into pieces of at most limit bytes, at whitespace
// where possible and never inside a UTF-8 character. text must not contain
// line breaks (the caller strips control characters first).
func splitText(text string, limit int) []string {
	var out []string
	for len(text) > limit {
		cut := strings.LastIndexAny(text[:limit+1], " ")
		if cut <= 0 {
			cut = limit
			for cut > 0 && !utf8.RuneStart(text[cut]) {
				cut--
			}
			if cut == 0 { // a single rune wider than limit cannot happen (limit >= 32)
				cut = limit
			}
		}
		if piece := strings.TrimRight(text[:cut], " "); piece != "" {
			out = append(out, piece)
		}
		text = strings.TrimLeft(text[cut:], " ")
	}
	if text != "" {
		out = append(out, text)
	}
	return out
}
