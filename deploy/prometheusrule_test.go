package deploy

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/ductbot/ductbot/core/metrics"
)

// The example PrometheusRule alerts on what issue 12 names (poll stale, chat
// disconnected, runs erroring, capacity exhausted), and every metric its
// expressions use is one ductbot exports.
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
	exported := exportedNames()
	alerts := map[string]bool{}
	name := regexp.MustCompile(`\bductbot_[a-z_]+`)
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
			for _, n := range name.FindAllString(r.Expr, -1) {
				if !exported[n] {
					t.Errorf("%s: %s is not a metric ductbot exports", r.Alert, n)
				}
			}
		}
	}
	for _, want := range []string{"DuctbotGerritPollStale", "DuctbotChatDisconnected", "DuctbotRunsErroring", "DuctbotCapacityExhausted"} {
		if !alerts[want] {
			t.Errorf("no alert %s", want)
		}
	}
}

// exportedNames is every series name the collectors in metrics.Metrics
// describe, histograms with their _bucket, _sum and _count.
func exportedNames() map[string]bool {
	m := metrics.New()
	names := map[string]bool{}
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	v := reflect.ValueOf(m).Elem()
	for i := 0; i < v.NumField(); i++ {
		c, ok := v.Field(i).Interface().(prometheus.Collector)
		if !ok {
			continue
		}
		if _, isReg := c.(*prometheus.Registry); isReg {
			continue
		}
		ch := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			if mm := fq.FindStringSubmatch(d.String()); mm != nil {
				n := mm[1]
				names[n] = true
				if strings.Contains(v.Type().Field(i).Type.String(), "Histogram") {
					names[n+"_bucket"], names[n+"_sum"], names[n+"_count"] = true, true, true
				}
			}
		}
	}
	return names
}
