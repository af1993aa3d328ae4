package run

import (
	"fmt"
	"strings"
	"testing"
)

// A run's logs share one budget; short logs leave theirs to the long.
func TestBoundLogs(t *testing.T) {
	log := func(n int) string { return strings.Repeat("x", n-1) + "\n" }
	for _, tt := range []struct {
		name  string
		sizes []int
		max   int
		want  []int // exact sizes after bounding; -1: cut to at most the share, marked
	}{
		{"under the bound", []int{100, 200}, 300, []int{100, 200}},
		{"no bound", []int{1 << 20}, 0, []int{1 << 20}},
		{"one long log", []int{10000}, 4096, []int{-1}},
		{"a short log keeps all of it", []int{100, 10000, 20000}, 8192, []int{100, -1, -1}},
		{"equal shares", []int{9000, 9000}, 8192, []int{-1, -1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var in []TestLog
			for i, n := range tt.sizes {
				in = append(in, TestLog{Pod: fmt.Sprint("pod-", i), Log: log(n)})
			}
			out := BoundLogs(in, tt.max)
			total := 0
			for i, l := range out {
				total += len(l.Log)
				if l.Pod != in[i].Pod || len(in[i].Log) != tt.sizes[i] {
					t.Errorf("pod %d: %q, input changed", i, l.Pod)
				}
				switch w := tt.want[i]; {
				case w >= 0 && len(l.Log) != w:
					t.Errorf("pod %d: %d bytes, want %d untouched", i, len(l.Log), w)
				case w < 0 && (!strings.Contains(l.Log, "bytes cut by ductbot") || len(l.Log) < 1000):
					t.Errorf("pod %d: %d bytes, want a marked cut keeping most of its share", i, len(l.Log))
				}
			}
			if tt.max > 0 && total > tt.max {
				t.Errorf("%d bytes in all, more than %d", total, tt.max)
			}
		})
	}
}
