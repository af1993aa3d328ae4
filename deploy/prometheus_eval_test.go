package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"gopkg.in/yaml.v3"

	"github.com/ductbot/ductbot/core/metrics"
)

// TestQueriesOnPrometheus runs a real Prometheus (Debian's prometheus
// package) that scrapes ductbot's registry, served as web.metrics_listen
// serves it, and evaluates every query of the Grafana dashboard, which
// must parse and return series, and checks the PrometheusRule's rules with
// promtool. It is skipped where Prometheus is not installed (apt-get
// install prometheus); TestGrafanaDashboard and TestPrometheusRule check
// the names everywhere.
func TestQueriesOnPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus")
	}
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("no prometheus binary (Debian: apt-get install prometheus)")
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("no promtool binary")
	}
	dir := t.TempDir()

	t.Run("rules", func(t *testing.T) {
		b, err := os.ReadFile("prometheusrule.yaml")
		if err != nil {
			t.Fatal(err)
		}
		var pr struct {
			Spec struct {
				Groups []any `yaml:"groups"`
			} `yaml:"spec"`
		}
		if err := yaml.Unmarshal(b, &pr); err != nil {
			t.Fatal(err)
		}
		rules, err := yaml.Marshal(map[string]any{"groups": pr.Spec.Groups})
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, "rules.yaml")
		if err := os.WriteFile(file, rules, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput(); err != nil {
			t.Errorf("promtool check rules: %v\n%s", err, out)
		}
	})

	// ductbot's registry with a little of everything in it.
	m := metrics.New()
	m.BuildInfo.WithLabelValues("v0.1.0", "abc123", "go1.26").Set(1)
	m.LastSuccessfulPoll.SetToCurrentTime()
	m.LastSweep.SetToCurrentTime()
	m.ChatConnected.WithLabelValues("slack").Set(1)
	m.ChatMessages.WithLabelValues("slack", "sent").Add(3)
	for _, r := range []string{"passed", "failed", "error"} {
		m.RunsTotal.WithLabelValues("wiki", r).Inc()
	}
	m.Reviews.WithLabelValues("Verified", "+1").Inc()
	m.Reviews.WithLabelValues("Verified", "-1").Inc()
	m.DeployDuration.WithLabelValues("wiki").Observe(42)
	m.TestDuration.WithLabelValues("wiki").Observe(90)
	m.GerritPollDuration.Observe(0.3)
	m.GerritReconcileDuration.WithLabelValues("poll").Observe(0.4)
	m.GerritPollErrors.Inc()
	m.QueueDepth.Set(2)
	m.LiveEnvs.Set(5)
	m.SweepRemovals.WithLabelValues("merged").Inc()
	m.SweepSkips.WithLabelValues("kept").Inc()
	target := httptest.NewServer(promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	defer target.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	config := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: ductbot
    static_configs: [{targets: [%q], labels: {pod: ductbot-0}}]
`, strings.TrimPrefix(target.URL, "http://"))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, prom, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--log.level=warn")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()

	type result struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result json.RawMessage `json:"result"`
		} `json:"data"`
	}
	query := func(q string) (result, error) {
		var r result
		resp, err := http.Get("http://" + addr + "/api/v1/query?" + url.Values{"query": {q}}.Encode())
		if err != nil {
			return r, err
		}
		defer resp.Body.Close()
		err = json.NewDecoder(resp.Body).Decode(&r)
		return r, err
	}
	// Enough scrapes for rate() over the windows below.
	deadline := time.Now().Add(time.Minute)
	for {
		r, err := query(`count_over_time(up{job="ductbot"}[1m]) >= 5 and up{job="ductbot"} == 1`)
		if err == nil && r.Status == "success" && len(r.Data.Result) > 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus did not scrape ductbot 5 times: %v %+v\n%s", err, r, logs.String())
		}
		time.Sleep(500 * time.Millisecond)
	}

	// As Grafana sends them, for the job variable's one value.
	grafana := strings.NewReplacer("$job", "ductbot", "$project", ".+", "$__rate_interval", "10s", "$__range", "1m")
	d := loadDashboard(t)
	n := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			q := grafana.Replace(tg.Expr)
			r, err := query(q)
			if err != nil || r.Status != "success" {
				t.Errorf("panel %q, query %s: %q: %v %s", p.Title, tg.RefID, q, err, r.Error)
				continue
			}
			if string(r.Data.Result) == "[]" || len(r.Data.Result) == 0 {
				t.Errorf("panel %q, query %s: %q returns nothing", p.Title, tg.RefID, q)
			}
			n++
		}
	}
	t.Logf("%d dashboard queries evaluated", n)
	// The job variable: label_values(ductbot_build_info, job).
	resp, err := http.Get("http://" + addr + "/api/v1/label/job/values?" + url.Values{"match[]": {"ductbot_build_info"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var jobs struct {
		Data []string `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&jobs); err != nil || len(jobs.Data) != 1 || jobs.Data[0] != "ductbot" {
		t.Errorf("label_values(ductbot_build_info, job) = %v (%v), want [ductbot]", jobs.Data, err)
	}
}
