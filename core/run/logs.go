package run

import (
	"slices"

	"github.com/ductbot/ductbot/internal/text"
)

// BoundLogs returns a copy of a run's test logs that are, together, at most
// maxBytes long (maxBytes <= 0: no limit; pod names and phases not counted).
// The budget is shared max-min fairly: going from the shortest log up, each
// gets the smaller of its length and an even share of what is left, so a
// pod with a short log leaves its unused share to the others. A log longer
// than its share keeps its head and its tail around a line saying how much
// was cut (text.HeadTail). Every log comes back valid UTF-8.
func BoundLogs(logs []TestLog, maxBytes int) []TestLog {
	out := slices.Clone(logs)
	if maxBytes <= 0 {
		return out
	}
	order := make([]int, len(out))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return len(out[a].Log) - len(out[b].Log) })
	left := maxBytes
	for k, i := range order {
		share := min(len(out[i].Log), left/(len(order)-k))
		if share <= 0 {
			out[i].Log = "" // HeadTail reads 0 as "no limit"
			continue
		}
		out[i].Log = text.HeadTail(out[i].Log, share)
		left -= len(out[i].Log)
	}
	return out
}
