package k8s_test

import (
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
)

// The example chart lints strictly with every simulation mode, puts the
// mode on the component's pods only, and refuses an unknown mode.
func TestExampleChartSimulationModes(t *testing.T) {
	for _, mode := range []string{"", "crash", "image-missing", "never-ready"} {
		vals := map[string]any{"orchestrator": map[string]any{"simulate": map[string]any{"mode": mode}}}
		for _, m := range lint.AllWithKubeVersion(exampleChart, vals, "ns", nil).Messages {
			if m.Severity >= support.WarningSev {
				t.Errorf("mode %q: helm lint: %s", mode, m)
			}
		}
		out, err := render(t, vals)
		if err != nil {
			t.Fatalf("mode %q: %v", mode, err)
		}
		orch := out["wikifunctions/templates/orchestrator.yaml"]
		want := `sim.ductbot.dev/mode: "` + mode + `"`
		if strings.Count(orch, want) != 1 {
			t.Errorf("mode %q: the orchestrator's pods lack %s:\n%s", mode, want, orch)
		}
		if mode != "" && strings.Contains(out["wikifunctions/templates/wiki.yaml"]+out["wikifunctions/templates/evaluator.yaml"], `mode: "`+mode) {
			t.Errorf("mode %q leaked to another component", mode)
		}
		if mode == "crash" && !strings.Contains(orch, "simulated crash") {
			t.Errorf("a crash-looping orchestrator's log should say simulated crash:\n%s", orch)
		}
	}
	_, err := render(t, map[string]any{"wiki": map[string]any{"simulate": map[string]any{"mode": "explode"}}})
	if err == nil || !strings.Contains(err.Error(), `wiki.simulate.mode is "explode"`) {
		t.Errorf("unknown mode: err = %v, want one naming wiki.simulate.mode", err)
	}
}

func render(t *testing.T, vals map[string]any) (map[string]string, error) {
	t.Helper()
	ch, err := loader.Load(exampleChart)
	if err != nil {
		t.Fatal(err)
	}
	in := action.NewInstall(&action.Configuration{})
	in.ClientOnly, in.DryRun, in.ReleaseName, in.Namespace = true, true, "wf", "ns"
	in.KubeVersion = &chartutil.KubeVersion{Version: "v1.36.0", Major: "1", Minor: "36"}
	rel, err := in.Run(ch, vals)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, part := range strings.Split(rel.Manifest, "---\n# Source: ") {
		if name, body, ok := strings.Cut(part, "\n"); ok {
			out[strings.TrimPrefix(name, "# Source: ")] = body
		}
	}
	return out, nil
}
