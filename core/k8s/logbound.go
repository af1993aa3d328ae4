package k8s

import (
	"strings"
	"unicode/utf8"

	"github.com/ductbot/ductbot/internal/text"
)

// boundedLog is an io.Writer for a log the patch under test controls: it
// keeps at most the first max/2 bytes written (the head) and the last
// max-max/2 bytes (a rolling tail), whatever is written, so memory stays
// within max. String joins them the way text.HeadTail cuts a whole log:
// for valid UTF-8, and a max that leaves room for the cut marker (above
// about 100 bytes), the result is exactly text.HeadTail(everything, max).
// It is not safe for concurrent use.
type boundedLog struct {
	max     int
	headCap int
	tailCap int
	head    []byte
	tail    []byte // grows to tailCap, then a ring whose oldest byte is at pos
	pos     int
	total   int64 // bytes written
}

func newBoundedLog(max int) *boundedLog {
	if max <= 0 {
		max = DefaultMaxLogBytes
	}
	return &boundedLog{max: max, headCap: max / 2, tailCap: max - max/2}
}

// Write never fails.
func (b *boundedLog) Write(p []byte) (int, error) {
	n := len(p)
	b.total += int64(n)
	if room := b.headCap - len(b.head); room > 0 {
		take := min(room, len(p))
		b.head = appendWithin(b.head, p[:take], b.headCap)
		p = p[take:]
	}
	if room := b.tailCap - len(b.tail); room > 0 && len(p) > 0 {
		take := min(room, len(p))
		b.tail = appendWithin(b.tail, p[:take], b.tailCap)
		p = p[take:]
	}
	if len(p) >= b.tailCap {
		copy(b.tail, p[len(p)-b.tailCap:])
		b.pos = 0
		return n, nil
	}
	for len(p) > 0 {
		k := copy(b.tail[b.pos:], p)
		b.pos = (b.pos + k) % b.tailCap
		p = p[k:]
	}
	return n, nil
}

// appendWithin appends p to dst, growing dst's capacity as append would
// but never beyond limit (len(dst)+len(p) must be within it).
func appendWithin(dst, p []byte, limit int) []byte {
	if need := len(dst) + len(p); need > cap(dst) {
		grown := make([]byte, len(dst), min(max(2*cap(dst), need, 512), limit))
		copy(grown, dst)
		dst = grown
	}
	return append(dst, p...)
}

// Len is how many bytes were written, kept or not.
func (b *boundedLog) Len() int64 { return b.total }

// String is the log within max bytes: all of it when it fit, else its head,
// a line saying how many bytes were cut, and its tail; valid UTF-8.
func (b *boundedLog) String() string {
	tail := make([]byte, 0, len(b.tail))
	tail = append(append(tail, b.tail[b.pos:]...), b.tail[:b.pos]...)
	dropped := b.total - int64(len(b.head)) - int64(len(tail))
	if dropped == 0 {
		return text.HeadTail(string(b.head)+string(tail), b.max)
	}
	// The head may end and the ring start inside a character: those bytes
	// are cut too (validating them would make replacement characters).
	head := b.head
	for i := len(head) - 1; i >= 0 && i >= len(head)-utf8.UTFMax; i-- {
		if utf8.RuneStart(head[i]) {
			if !utf8.FullRune(head[i:]) {
				head = head[:i]
			}
			break
		}
	}
	skip := 0
	for skip < len(tail) && skip < utf8.UTFMax && !utf8.RuneStart(tail[skip]) {
		skip++
	}
	h := strings.ToValidUTF8(string(head), "\uFFFD")
	t := strings.ToValidUTF8(string(tail[skip:]), "\uFFFD")
	// The length text.HeadTail would see, had it been given everything.
	whole := int64(len(h)) + int64(len(b.head)-len(head)) + dropped + int64(skip) + int64(len(t))
	room := b.max - len(text.CutMarker(whole, b.max))
	if room <= 0 {
		return text.Truncate(h, b.max, "")
	}
	hn := min(room/2, len(h))
	for hn > 0 && hn < len(h) && !utf8.RuneStart(h[hn]) {
		hn--
	}
	ts := max(len(t)-(room-hn), 0)
	for ts < len(t) && !utf8.RuneStart(t[ts]) {
		ts++
	}
	return h[:hn] + text.CutMarker(whole-int64(hn)-int64(len(t)-ts), b.max) + t[ts:]
}
