package deploy

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ductbot/ductbot/core/metrics"
)

// The example PrometheusRule and the Grafana dashboard are checked against
// what a scrape of ductbot's /metrics really returns. PromQL's own parser
// (github.com/prometheus/prometheus/promql/parser) is not in the module
// graph and would pull in much of Prometheus, so promqlRefs below is a
// small lexer that is just enough for the expressions we write: it finds
// the metric names, the label names they are matched on, the labels
// aggregations group by, and the functions called.

// series is what one scrape exposes: each sample name (a histogram's
// _bucket, _sum and _count) with the label names it carries.
type series map[string]map[string]bool

// targetLabels are added by Prometheus (and the prometheus-operator's
// ServiceMonitor), not by ductbot: expressions may match and group by them.
var targetLabels = []string{"job", "instance", "namespace", "pod", "service", "container", "endpoint"}

// scrape builds ductbot's registry as the program does (metrics.New, with
// build_info set), gives every labelled collector a child so that it is
// exposed, serves it with promhttp as web.metrics_listen does, GETs
// /metrics and parses the text exposition.
func scrape(t *testing.T) series {
	t.Helper()
	m := metrics.New()
	m.BuildInfo.WithLabelValues("v0.1.0", "abc123", "go1.26").Set(1)
	v := reflect.ValueOf(m).Elem()
	for i := 0; i < v.NumField(); i++ {
		get := v.Field(i).MethodByName("GetMetricWithLabelValues")
		if !get.IsValid() {
			continue
		}
		// The number of labels is the only one that works.
		made := false
		for n := 1; n <= 8 && !made; n++ {
			args := make([]reflect.Value, n)
			for j := range args {
				args[j] = reflect.ValueOf("x")
			}
			out := get.Call(args)
			made = out[1].IsNil()
		}
		if !made {
			t.Fatalf("metrics.Metrics.%s: no label count works", v.Type().Field(i).Name)
		}
	}
	srv := httptest.NewServer(promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	defer srv.Close()
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("/metrics Content-Type %q, want the text format", ct)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parsing the scrape: %v", err)
	}
	out := series{}
	add := func(name string, labels []*dto.LabelPair, extra ...string) {
		if out[name] == nil {
			out[name] = map[string]bool{}
		}
		for _, l := range labels {
			out[name][l.GetName()] = true
		}
		for _, l := range extra {
			out[name][l] = true
		}
	}
	for name, f := range fams {
		for _, s := range f.GetMetric() {
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				add(name+"_bucket", s.GetLabel(), "le")
				add(name+"_sum", s.GetLabel())
				add(name+"_count", s.GetLabel())
			case dto.MetricType_SUMMARY:
				add(name, s.GetLabel(), "quantile")
				add(name+"_sum", s.GetLabel())
				add(name+"_count", s.GetLabel())
			default:
				add(name, s.GetLabel())
			}
		}
	}
	if len(out["ductbot_build_info"]) == 0 {
		t.Fatalf("the scrape has no ductbot_build_info with labels:\n%s", body)
	}
	return out
}

// promqlRef is what one expression refers to.
type promqlRef struct {
	metrics   []string            // metric names in selectors
	matchers  map[string][]string // metric → label names it is matched on
	grouping  []string            // labels in by/without/on/ignoring/group_* lists
	functions []string            // functions and aggregations called
}

// promqlFunctions are the PromQL functions and aggregation operators an
// expression may call (a misspelt one is an error, as Prometheus says).
var promqlFunctions = map[string]bool{}

func init() {
	for _, f := range strings.Fields(`abs absent absent_over_time avg avg_over_time bottomk ceil changes clamp clamp_max
		clamp_min count count_over_time count_values day_of_month day_of_week day_of_year days_in_month delta deriv
		exp floor group histogram_avg histogram_count histogram_fraction histogram_quantile histogram_sum
		histogram_stddev histogram_stdvar holt_winters hour idelta increase irate label_join label_replace last_over_time
		limitk limit_ratio ln log10 log2 max max_over_time min min_over_time minute month predict_linear
		present_over_time quantile quantile_over_time rate resets round scalar sgn sort sort_desc sort_by_label
		sort_by_label_desc sqrt stddev stddev_over_time stdvar stdvar_over_time sum sum_over_time time timestamp
		topk vector year label_values query_result`) {
		promqlFunctions[f] = true
	}
}

var (
	promqlKeywords     = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true, "inf": true, "nan": true}
	promqlAggregations = map[string]bool{"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
		"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true}
	promqlGroupings = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}
	promqlToken     = regexp.MustCompile(`^(?:` +
		`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + // strings
		`\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*|` + // Grafana variables
		`[0-9][0-9A-Za-z.]*|\.[0-9]+|` + // numbers and durations
		`[A-Za-z_:][A-Za-z0-9_:]*|` + // identifiers
		`==|!=|=~|!~|<=|>=|[-+*/%^<>=(){}\[\],@])`)
)

// promqlRefs lexes expr. Grafana's variables ($job, $__rate_interval) are
// taken as values.
func promqlRefs(expr string) (promqlRef, error) {
	var toks []string
	for rest := strings.TrimSpace(expr); rest != ""; rest = strings.TrimSpace(rest) {
		if strings.HasPrefix(rest, "#") { // a comment, to the end of the line
			_, rest, _ = strings.Cut(rest, "\n")
			continue
		}
		tok := promqlToken.FindString(rest)
		if tok == "" {
			return promqlRef{}, fmt.Errorf("cannot read %q", rest)
		}
		toks = append(toks, tok)
		rest = rest[len(tok):]
	}
	ref := promqlRef{matchers: map[string][]string{}}
	isIdent := func(s string) bool { return regexp.MustCompile(`^[A-Za-z_:][A-Za-z0-9_:]*$`).MatchString(s) }
	// closing returns the index of the token closing the bracket at i.
	closing := func(i int) (int, error) {
		open, shut := toks[i], map[string]string{"(": ")", "{": "}", "[": "]"}[toks[i]]
		depth := 0
		for j := i; j < len(toks); j++ {
			switch toks[j] {
			case open:
				depth++
			case shut:
				depth--
				if depth == 0 {
					return j, nil
				}
			}
		}
		return 0, fmt.Errorf("unclosed %s", open)
	}
	for i := 0; i < len(toks); i++ {
		tok := toks[i]
		next := ""
		if i+1 < len(toks) {
			next = toks[i+1]
		}
		switch {
		case tok == "[": // a range or subquery duration
			j, err := closing(i)
			if err != nil {
				return ref, err
			}
			i = j
		case tok == "{":
			return ref, fmt.Errorf("a selector without a metric name at %q", strings.Join(toks[i:], " "))
		case !isIdent(tok), promqlKeywords[strings.ToLower(tok)]:
		case promqlGroupings[tok]:
			if next != "(" {
				continue // group_left without labels
			}
			j, err := closing(i + 1)
			if err != nil {
				return ref, err
			}
			for _, l := range toks[i+2 : j] {
				if l != "," {
					ref.grouping = append(ref.grouping, l)
				}
			}
			i = j
		case next == "(", promqlAggregations[tok] && (next == "by" || next == "without"):
			ref.functions = append(ref.functions, tok)
		default: // a metric name
			ref.metrics = append(ref.metrics, tok)
			if next != "{" {
				continue
			}
			j, err := closing(i + 1)
			if err != nil {
				return ref, err
			}
			// label op value, ...
			in := toks[i+2 : j]
			for k := 0; k < len(in); k += 4 {
				if !isIdent(in[k]) || k+2 >= len(in) || !slices.Contains([]string{"=", "!=", "=~", "!~"}, in[k+1]) {
					return ref, fmt.Errorf("cannot read the matchers of %s: %q", tok, strings.Join(in, " "))
				}
				ref.matchers[tok] = append(ref.matchers[tok], in[k])
			}
			i = j
		}
	}
	return ref, nil
}

// checkPromQL returns the metrics expr uses and a problem for every
// metric, label and function it refers to that the scrape does not have
// (or PromQL does not know).
func checkPromQL(expr string, scraped series) (used, problems []string) {
	ref, err := promqlRefs(expr)
	if err != nil {
		return nil, []string{fmt.Sprintf("%v in %q", err, expr)}
	}
	if len(ref.metrics) == 0 {
		problems = append(problems, fmt.Sprintf("no metric in %q", expr))
	}
	for _, f := range ref.functions {
		if !promqlFunctions[f] {
			problems = append(problems, fmt.Sprintf("%s() is not a PromQL function", f))
		}
	}
	labels := map[string]bool{}
	for _, l := range targetLabels {
		labels[l] = true
	}
	for _, name := range ref.metrics {
		have, ok := scraped[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s is not in a scrape of ductbot's /metrics", name))
			continue
		}
		for l := range have {
			labels[l] = true
		}
		for _, l := range ref.matchers[name] {
			if !have[l] && !slices.Contains(targetLabels, l) {
				problems = append(problems, fmt.Sprintf("%s has no label %s (it has %v)", name, l, slices.Sorted(maps.Keys(have))))
			}
		}
	}
	for _, l := range ref.grouping {
		if !labels[l] {
			problems = append(problems, fmt.Sprintf("groups by %s, which none of %v has", l, ref.metrics))
		}
	}
	return ref.metrics, problems
}

// TestPromQLRefs: the lexer finds what the checks rely on, and refuses
// what it cannot read rather than passing it.
func TestPromQLRefs(t *testing.T) {
	ref, err := promqlRefs(`histogram_quantile(0.95, sum by (le, reason) (rate(ductbot_gerrit_reconcile_duration_seconds_bucket{job=~"$job", reason!="x,y}"}[$__rate_interval])))
		/ on (job) group_left (version) max by (job, version) (ductbot_build_info offset 5m) > bool 1e3 # a comment`)
	if err != nil {
		t.Fatal(err)
	}
	want := promqlRef{
		metrics:   []string{"ductbot_gerrit_reconcile_duration_seconds_bucket", "ductbot_build_info"},
		matchers:  map[string][]string{"ductbot_gerrit_reconcile_duration_seconds_bucket": {"job", "reason"}},
		grouping:  []string{"le", "reason", "job", "version", "job", "version"},
		functions: []string{"histogram_quantile", "sum", "rate", "max"},
	}
	if !reflect.DeepEqual(ref, want) {
		t.Errorf("promqlRefs =\n%+v\nwant\n%+v", ref, want)
	}
	for _, bad := range []string{`{__name__="x"}`, `sum(x{job="a"`, `x{job}`, "x ~ y"} {
		if _, err := promqlRefs(bad); err == nil {
			t.Errorf("promqlRefs(%q): no error", bad)
		}
	}

	scraped := scrape(t)
	for expr, want := range map[string]string{
		`ductbot_runs_totl`:                              "ductbot_runs_totl is not in a scrape",
		`ductbot_runs_total{reslt="error"}`:              "ductbot_runs_total has no label reslt",
		`sum by (netwrk) (ductbot_chat_connected)`:       "groups by netwrk",
		`rat(ductbot_runs_total[5m])`:                    "rat() is not a PromQL function",
		`ductbot_deploy_duration_seconds`:                "ductbot_deploy_duration_seconds is not in a scrape",
		`ductbot_deploy_duration_seconds_bucket{le="1"}`: "",
		`max by (pod) (ductbot_build_info{job="x"})`:     "",
	} {
		_, problems := checkPromQL(expr, scraped)
		if want == "" && len(problems) != 0 || want != "" && !strings.Contains(strings.Join(problems, "\n"), want) {
			t.Errorf("checkPromQL(%q) = %q, want a problem saying %q", expr, problems, want)
		}
	}
}
