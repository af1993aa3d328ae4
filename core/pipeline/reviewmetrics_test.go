package pipeline_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ductbot/ductbot/core/store"
)

// A vote Gerrit took is counted in ductbot_reviews_total by label and
// result.
func TestReviewsAreCounted(t *testing.T) {
	r := newRig(t, 0, "")
	r.start()
	r.upload(1, 1, alice)
	runs := r.runs(store.RunFilter{Change: 1})
	if len(runs) != 1 {
		t.Fatalf("runs = %d, want 1", len(runs))
	}
	r.waitFor("the run done", func() bool { return r.finished(runs[0].ID) })
	if v := testutil.ToFloat64(r.metrics.Reviews.WithLabelValues("Verified", "+1")); v != 1 {
		t.Errorf(`ductbot_reviews_total{label="Verified",result="+1"} = %v, want 1`, v)
	}
	if n := testutil.CollectAndCount(r.metrics.Reviews); n != 1 {
		t.Errorf("%d series of ductbot_reviews_total, want 1", n)
	}
}
