package pipeline_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ductbot/ductbot/core/run"
)

// On the local cluster: A in the wiki project, B in the orchestrator
// project with "Depends-On: A". B's environment runs A's revision for wiki
// (the Deployment's image tag shows it), B's vote and announcement list A,
// and a new patch set of A reruns B with it.
func TestDependsOnOnTheCluster(t *testing.T) {
	h := newHarness(t, "")
	h.start()
	a := h.gerrit.CreateChange(wikiProject, "master", "Wiki: call the new orchestrator API", "alice")
	aChange, _ := h.gerrit.Change(a)
	b := h.gerrit.CreateChangeMessage(project, "master",
		"Orchestrator: serve the new API\n\nThe wiki side is in the change this depends on.\n\nDepends-On: "+aChange.ChangeID+"\n", "alice")

	h.waitFor(3*time.Minute, "B's vote", func() bool { return len(h.votes(b)) > 0 })
	aSHA := aChange.Current().Revision
	v := h.votes(b)[0]
	if v.Labels["Verified"] != 1 || !strings.Contains(v.Message, "Depends-On: change "+strconv.Itoa(a)+" patch set 1 (wiki)\n") {
		t.Fatalf("B's vote = %+v, want Verified+1 listing change %d patch set 1 (wiki):\n%s", v.Labels, a, v.Message)
	}
	wikiImage := func(envName string) string {
		t.Helper()
		env, err := h.store.GetEnv(context.Background(), envName)
		if err != nil {
			t.Fatal(err)
		}
		dep, err := h.cluster.Client.AppsV1().Deployments(env.Namespace).Get(context.Background(), env.Release+"-wiki", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return dep.Spec.Template.Spec.Containers[0].Image
	}
	envB := run.PatchEnvName(b)
	if img := wikiImage(envB); !strings.HasSuffix(img, ":"+aSHA) {
		t.Errorf("B's wiki image %q, want A's revision %s", img, aSHA)
	}
	found := false
	for _, an := range h.ann.all() {
		if an.Run.Change == b && len(an.Run.Deps) == 1 && an.Run.Deps[0].Change == a {
			found = true
		}
	}
	if !found {
		t.Errorf("no announcement of B's run carries its dependency on change %d", a)
	}

	// A new patch set of A reruns B with it.
	_, aSHA2 := h.gerrit.UploadPatchSet(a, "alice", "")
	h.waitFor(3*time.Minute, "B's second vote", func() bool { return len(h.votes(b)) > 1 })
	v2 := h.votes(b)[1]
	if v2.PatchSet != 1 || !strings.Contains(v2.Message, "Depends-On: change "+strconv.Itoa(a)+" patch set 2 (wiki)\n") {
		t.Errorf("B's second vote = patch set %d:\n%s\nwant patch set 1 listing change %d patch set 2", v2.PatchSet, v2.Message, a)
	}
	runs := h.runs(b)
	if len(runs) != 2 || runs[0].Trigger != run.TriggerDependency || runs[0].Matrix["wiki"] != aSHA2 {
		t.Errorf("B's runs = %d, newest trigger %q wiki %q; want 2, the newest a dependency rerun with wiki at %s", len(runs), runs[0].Trigger, runs[0].Matrix["wiki"], aSHA2)
	}
	if img := wikiImage(envB); !strings.HasSuffix(img, ":"+aSHA2) {
		t.Errorf("B's wiki image after the rerun %q, want A's patch set 2 revision %s", img, aSHA2)
	}
}
