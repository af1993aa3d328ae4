package deploy

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
)

// grafanaPanel is the part of a Grafana panel the checks read.
type grafanaPanel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource map[string]any `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // a collapsed row's
}

type grafanaDashboard struct {
	UID           string         `json:"uid"`
	Title         string         `json:"title"`
	SchemaVersion int            `json:"schemaVersion"`
	Panels        []grafanaPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"` // a string, or {query: ...}
		} `json:"list"`
	} `json:"templating"`
}

func loadDashboard(t *testing.T) grafanaDashboard {
	t.Helper()
	b, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	return d
}

// TestGrafanaDashboard: every PromQL expression of deploy/grafana-dashboard.json
// (panels and template variables) reads only metrics, labels and functions
// that exist, the metrics being those of a real scrape of ductbot's
// /metrics, so that a renamed metric or label breaks this test; the panels
// the operators need are there; and the dashboard is well formed for
// Grafana (a datasource variable on every panel, unique ids, panels within
// the 24-column grid and not overlapping).
func TestGrafanaDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 {
		t.Errorf("uid %q, title %q, schemaVersion %d: want a uid, a title and a schema of Grafana 9 or later", d.UID, d.Title, d.SchemaVersion)
	}
	scraped := scrape(t)

	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(string)
		if m, ok := v.Query.(map[string]any); ok {
			q, _ = m["query"].(string)
		}
		// label_values(metric, label) is Grafana's, not PromQL.
		if inner, ok := strings.CutPrefix(q, "label_values("); ok {
			metric, label, _ := strings.Cut(strings.TrimSuffix(inner, ")"), ",")
			label = strings.TrimSpace(label)
			if _, problems := checkPromQL(metric, scraped); len(problems) > 0 {
				t.Errorf("variable %s: %s", v.Name, strings.Join(problems, "; "))
			} else if _, problems := checkPromQL(fmt.Sprintf("sum by (%s) (%s)", label, metric), scraped); len(problems) > 0 {
				t.Errorf("variable %s: %s", v.Name, strings.Join(problems, "; "))
			}
			continue
		}
		if _, problems := checkPromQL(q, scraped); len(problems) > 0 {
			t.Errorf("variable %s: %s", v.Name, strings.Join(problems, "; "))
		}
	}
	if !vars["datasource"] || !vars["job"] || !vars["project"] {
		t.Errorf("template variables %v, want datasource, job and project", vars)
	}

	// The run metrics have a project label, chosen with $project.
	runMetric := map[string]bool{"ductbot_runs_total": true, "ductbot_deploy_duration_seconds_bucket": true, "ductbot_test_duration_seconds_bucket": true}
	var panels []grafanaPanel
	for _, p := range d.Panels {
		panels = append(panels, p)
		panels = append(panels, p.Panels...)
	}
	used := map[string][]string{} // metric → panel titles
	ids := map[int]string{}
	type cell struct{ x, y int }
	taken := map[cell]string{}
	for _, p := range panels {
		where := fmt.Sprintf("panel %q", p.Title)
		if other, dup := ids[p.ID]; dup || p.ID == 0 {
			t.Errorf("%s: id %d (also %q)", where, p.ID, other)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W < 1 || g.H < 1 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("%s: gridPos %+v outside the 24-column grid", where, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := taken[cell{x, y}]; ok {
					t.Errorf("%s overlaps %q at %d,%d", where, other, x, y)
				}
				taken[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Title == "" || p.Datasource["uid"] != "${datasource}" {
			t.Errorf("%s: datasource %v, want a title and the ${datasource} variable", where, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no queries", where)
		}
		for _, tg := range p.Targets {
			metrics, problems := checkPromQL(tg.Expr, scraped)
			for _, pr := range problems {
				t.Errorf("%s, query %s: %s", where, tg.RefID, pr)
			}
			if !strings.Contains(tg.Expr, `job=~"$job"`) {
				t.Errorf("%s, query %s: %q does not select job=~\"$job\"", where, tg.RefID, tg.Expr)
			}
			for _, m := range metrics {
				used[m] = append(used[m], p.Title)
				if runMetric[m] && !strings.Contains(tg.Expr, `project=~"$project"`) {
					t.Errorf("%s, query %s: %s without project=~\"$project\"", where, tg.RefID, m)
				}
			}
		}
	}

	// What an operator looks at first: is it polling, is chat up, how do
	// runs go and how long they take, is there a queue, do reviews land,
	// which build runs.
	for _, m := range []string{
		"ductbot_last_successful_poll_timestamp_seconds",
		"ductbot_last_sweep_timestamp_seconds",
		"ductbot_chat_connected",
		"ductbot_runs_total",
		"ductbot_deploy_duration_seconds_bucket",
		"ductbot_test_duration_seconds_bucket",
		"ductbot_queue_depth",
		"ductbot_live_environments",
		"ductbot_reviews_total",
		"ductbot_build_info",
	} {
		if len(used[m]) == 0 {
			t.Errorf("no panel shows %s", m)
		}
	}
	if testing.Verbose() {
		for _, m := range slices.Sorted(maps.Keys(used)) {
			t.Logf("%s: %q", m, used[m])
		}
	}
}
