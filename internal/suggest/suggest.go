// Package suggest finds the word a person most likely meant, for "did you
// mean" hints in configuration errors and chat replies.
package suggest

import "strings"

// Closest returns the candidate nearest to name (ignoring case) when it is
// likely a typo of it, else "".
func Closest(name string, candidates []string) string {
	best, bestDist := "", -1
	lname := strings.ToLower(name)
	for _, c := range candidates {
		d := Distance(lname, strings.ToLower(c))
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	limit := max(1, min(3, len([]rune(name))/3))
	if bestDist < 0 || bestDist > limit {
		return ""
	}
	return best
}

// Distance is the Levenshtein edit distance between a and b, in runes.
// Inputs longer than 64 runes are not compared (the distance is their
// length), which bounds the cost for text taken from outside.
func Distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		return max(len(ra), len(rb))
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
