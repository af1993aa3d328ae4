package metrics

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The project label of the run metrics takes only configured project names
// and OtherProject, however many projects runs come from.
func TestProjectLabelIsBounded(t *testing.T) {
	m := New()
	if got := m.Project("mediawiki/core"); got != OtherProject {
		t.Errorf("before SetProjects: Project = %q, want %q", got, OtherProject)
	}
	m.SetProjects([]string{"mediawiki/extensions/WikiLambda", "function-orchestrator", ""})
	for project, want := range map[string]string{
		"mediawiki/extensions/WikiLambda": "mediawiki/extensions/WikiLambda",
		"function-orchestrator":           "function-orchestrator",
		"mediawiki/core":                  OtherProject,
		"Function-Orchestrator":           OtherProject, // Gerrit project names are case-sensitive
		"":                                OtherProject,
	} {
		if got := m.Project(project); got != want {
			t.Errorf("Project(%q) = %q, want %q", project, got, want)
		}
	}

	// 1,000 runs of unconfigured projects, through the label as the pipeline
	// records them.
	for i := range 1000 {
		p := m.Project(fmt.Sprintf("random/project-%d", i))
		m.RunsTotal.WithLabelValues(p, "passed").Inc()
		m.DeployDuration.WithLabelValues(p).Observe(1)
		m.TestDuration.WithLabelValues(p).Observe(1)
	}
	m.RunsTotal.WithLabelValues(m.Project("function-orchestrator"), "error").Inc()

	// Each configured project and other: one series per result, started at 0.
	if n, want := testutil.CollectAndCount(m.RunsTotal, "ductbot_runs_total"), 3*len(RunResults); n != want {
		t.Errorf("ductbot_runs_total has %d series, want %d (3 projects × %d results)", n, want, len(RunResults))
	}
	for _, c := range []struct {
		name string
		n    int
	}{{"ductbot_deploy_duration_seconds", testutil.CollectAndCount(m.DeployDuration)}, {"ductbot_test_duration_seconds", testutil.CollectAndCount(m.TestDuration)}} {
		if c.n != 3 {
			t.Errorf("%s has %d series, want 3", c.name, c.n)
		}
	}
	want := `
# HELP ductbot_runs_total Finished runs by project (a configured one, or other) and result.
# TYPE ductbot_runs_total counter
ductbot_runs_total{project="function-orchestrator",result="canceled"} 0
ductbot_runs_total{project="function-orchestrator",result="error"} 1
ductbot_runs_total{project="function-orchestrator",result="failed"} 0
ductbot_runs_total{project="function-orchestrator",result="passed"} 0
ductbot_runs_total{project="function-orchestrator",result="superseded"} 0
ductbot_runs_total{project="mediawiki/extensions/WikiLambda",result="canceled"} 0
ductbot_runs_total{project="mediawiki/extensions/WikiLambda",result="error"} 0
ductbot_runs_total{project="mediawiki/extensions/WikiLambda",result="failed"} 0
ductbot_runs_total{project="mediawiki/extensions/WikiLambda",result="passed"} 0
ductbot_runs_total{project="mediawiki/extensions/WikiLambda",result="superseded"} 0
ductbot_runs_total{project="other",result="canceled"} 0
ductbot_runs_total{project="other",result="error"} 0
ductbot_runs_total{project="other",result="failed"} 0
ductbot_runs_total{project="other",result="passed"} 1000
ductbot_runs_total{project="other",result="superseded"} 0
`
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want), "ductbot_runs_total"); err != nil {
		t.Error(err)
	}
}

// SetProjects and Project may run at the same time (go test -race).
func TestProjectsConcurrent(t *testing.T) {
	m := New()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 100 {
				if i%2 == 0 {
					m.SetProjects([]string{"a", fmt.Sprint(j)})
				} else if p := m.Project("a"); p != "a" && p != OtherProject {
					t.Errorf("Project(a) = %q", p)
				}
			}
		})
	}
	wg.Wait()
}
