package deploy

import (
	"os"
	"testing"

	"gopkg.in/yaml.v3"
)

// The example PrometheusRule alerts on what issue 12 names (poll stale, chat
// disconnected, runs erroring, capacity exhausted), and every metric, label
// and function its expressions use is in a real scrape of ductbot's
// /metrics (see checkPromQL).
func TestPrometheusRule(t *testing.T) {
	b, err := os.ReadFile("prometheusrule.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var pr struct {
		Kind string `yaml:"kind"`
		Spec struct {
			Groups []struct {
				Rules []struct {
					Alert string `yaml:"alert"`
					Expr  string `yaml:"expr"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(b, &pr); err != nil {
		t.Fatal(err)
	}
	if pr.Kind != "PrometheusRule" || len(pr.Spec.Groups) == 0 {
		t.Fatalf("kind %q with %d groups", pr.Kind, len(pr.Spec.Groups))
	}
	scraped := scrape(t)
	alerts := map[string]bool{}
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
			_, problems := checkPromQL(r.Expr, scraped)
			for _, p := range problems {
				t.Errorf("%s: %s", r.Alert, p)
			}
		}
	}
	for _, want := range []string{"DuctbotGerritPollStale", "DuctbotChatDisconnected", "DuctbotRunsErroring", "DuctbotCapacityExhausted"} {
		if !alerts[want] {
			t.Errorf("no alert %s", want)
		}
	}
}
