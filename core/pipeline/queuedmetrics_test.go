package pipeline_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/core/store"
)

// A queued run that ends before it starts (superseded by a newer patch set)
// is counted under its project and result, like every other run.
func TestQueuedRunEndedIsCounted(t *testing.T) {
	r := newRig(t, 0, "")
	release := r.cluster.holdDeploys(run.PatchEnvName(5))
	defer release()
	r.start()
	r.upload(5, 1, alice)
	r.waitEnv(run.PatchEnvName(5), run.EnvDeploying)
	r.upload(5, 2, alice) // waits: patch set 1 is still being deployed
	queued := r.runs(store.RunFilter{Change: 5, PatchSet: 2})[0]
	r.upload(5, 3, alice) // supersedes patch set 2 while it is queued
	r.waitFor("patch set 2 superseded", func() bool { return r.finished(queued.ID) })
	if got := testutil.ToFloat64(r.metrics.RunsTotal.WithLabelValues("wiki", string(run.ResultSuperseded))); got < 1 {
		t.Errorf("runs_total{project=wiki,result=superseded} = %v, want at least 1", got)
	}
}
