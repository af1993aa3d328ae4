package config

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"
	"time"

	"helm.sh/helm/v3/pkg/chart/loader"
)

// The data each kind of template in the configuration is executed with at
// run time; validation executes every template against a sample of it, so a
// field that does not exist (such as {{.Reff}}) is an error naming its key.
// They mirror core/pipeline's RefData, the values data and EnvData.
type (
	refSample struct {
		Change   int
		PatchSet int
		Revision string
		Project  string
		Branch   string
		Ref      string
	}
	valuesSample struct{ Ref, Component string }
	envSample    struct {
		Env       string
		Namespace string
		Release   string
		Change    int
		URL       string
		Subject   string
	}
)

var (
	sampleRef    = refSample{Change: 12345, PatchSet: 3, Revision: "0123456789abcdef0123456789abcdef01234567", Project: "mediawiki/extensions/WikiLambda", Branch: "master", Ref: "refs/changes/45/12345/3"}
	sampleValues = valuesSample{Ref: "0123456789ab", Component: "wiki"}
	sampleEnv    = envSample{Env: "c12345", Namespace: "ductbot-c12345", Release: "c12345", Change: 12345, URL: "http://c12345.example.org/", Subject: "Fix a bug"}
)

var cantEvaluate = regexp.MustCompile(`can't evaluate field (\w+)`)

// checkTemplate parses a template as the pipeline does and executes it with
// sample data of the kind it will see.
func checkTemplate(s string, data any) error {
	t, err := template.New("").Funcs(TemplateFuncs).Option("missingkey=error").Parse(s)
	if err != nil {
		return fmt.Errorf("not a valid template: %v", err)
	}
	if err := t.Execute(new(bytes.Buffer), data); err != nil {
		if m := cantEvaluate.FindStringSubmatch(err.Error()); m != nil {
			return fmt.Errorf("%q: there is no field .%s; this template may use %s", s, m[1], fieldList(data))
		}
		msg := err.Error()
		if i := strings.Index(msg, "executing"); i >= 0 {
			msg = msg[i:]
		}
		return fmt.Errorf("%q fails with sample data: %s", s, msg)
	}
	return nil
}

func fieldList(data any) string {
	switch data.(type) {
	case refSample:
		return ".Change, .PatchSet, .Revision, .Project, .Branch, .Ref"
	case valuesSample:
		return ".Ref, .Component"
	}
	return ".Env, .Namespace, .Release, .Change, .URL, .Subject"
}

// checkChartRef checks a local chart.ref: it must exist and be a chart (a
// folder with Chart.yaml, or a packaged .tgz). oci:// and http(s):// refs
// are left to run time (they need the network).
func checkChartRef(ref string) error {
	if ref == "" || strings.HasPrefix(ref, "oci://") || strings.HasPrefix(ref, "https://") || strings.HasPrefix(ref, "http://") {
		return nil
	}
	fi, err := os.Stat(ref)
	if err != nil {
		where := ""
		if !filepath.IsAbs(ref) {
			if wd, werr := os.Getwd(); werr == nil {
				where = " (relative to the working directory " + wd + ")"
			}
		}
		return fmt.Errorf("%q: no such chart folder or .tgz file%s; a chart is also oci://registry/path/chart or https://repo/url/<chart>", ref, where)
	}
	if fi.IsDir() {
		if _, err := os.Stat(filepath.Join(ref, "Chart.yaml")); err != nil {
			return fmt.Errorf("%q is not a Helm chart: it has no Chart.yaml", ref)
		}
	}
	if _, err := loader.Load(ref); err != nil {
		return fmt.Errorf("%q is not a Helm chart: %v", ref, err)
	}
	return nil
}

var (
	slackChannelID = regexp.MustCompile(`^[CGD][A-Z0-9]{6,}$`)
)

// validateMore holds the checks issue 12 added: ranges where an explicit 0
// or a negative number makes no sense, the chart and kubeconfig paths,
// and project channels against the chat adapters configured.
func validateMore(c *Config, add func(path, format string, args ...any)) {
	if err := checkChartRef(c.Chart.Ref); err != nil {
		add("chart.ref", "%v", err)
	}
	if kc := c.Kubernetes.Kubeconfig; kc != "" {
		if _, err := os.Stat(kc); err != nil {
			add("kubernetes.kubeconfig", "%q: no such file (leave it empty to use the in-cluster service account or $KUBECONFIG)", kc)
		}
	}
	if ml := c.Web.MetricsListen; ml != "" {
		if _, _, err := net.SplitHostPort(ml); err != nil {
			add("web.metrics_listen", "%q is not host:port (e.g. :9090)", ml)
		} else if ml == c.Web.Listen {
			add("web.metrics_listen", "%q is web.listen too: leave metrics_listen empty to serve /metrics there", ml)
		}
	}
	if l := c.Log.Level; l != "" && !oneOf(l, []string{"debug", "info", "warn", "error"}) {
		add("log.level", "%q is not debug, info, warn or error (default info)", l)
	}
	if f := c.Log.Format; f != "" && f != "text" && f != "json" {
		add("log.format", "%q is not text or json (default text)", f)
	}
	if c.Gerrit.Lookback < 0 {
		add("gerrit.lookback", "must not be negative")
	}
	cl := c.Cleanup
	atLeast := func(path string, d Duration, min time.Duration, def string) {
		if d.D() < min {
			add(path, "must be at least %s (default %s), got %s", fmtDuration(min), def, fmtDuration(d.D()))
		}
	}
	atLeast("cleanup.ttl_default", cl.TTLDefault, time.Minute, "24h")
	atLeast("cleanup.ttl_max", cl.TTLMax, time.Minute, "7d")
	atLeast("cleanup.idle_after", cl.IdleAfter, time.Hour, "14d; set cleanup.idle: false to keep idle environments")
	if cl.SleepAfter != 0 {
		atLeast("cleanup.sleep_after", cl.SleepAfter, time.Minute, "off")
	}
	atLeast("cleanup.orphan_grace", cl.OrphanGrace, time.Minute, "10m")
	atLeast("cleanup.logs_retention", cl.LogsRetention, time.Hour, "30d")
	if c.Chat.RatePerMinute == 0 {
		add("chat.rate_per_minute", "0 would refuse every command: at least 1 (default 20)")
	}
	if n := c.Chat.MaxEnvsPerUser; n == 0 || n < -1 {
		add("chat.max_envs_per_user", "must be at least 1, or -1 for no limit (default 3), got %d", n)
	}

	// Channels: each project's channel must be one an adapter serves. The
	// console serves every channel; with no chat configured at all there
	// is nothing to announce to and channels wait for an adapter.
	chatting := c.Chat.IRC != nil || c.Chat.Slack != nil
	for i, pr := range c.Projects {
		if !chatting || c.Chat.Console {
			break
		}
		for j, chn := range pr.Channels {
			p := fmt.Sprintf("projects[%d].channels[%d]", i, j)
			irc := strings.HasPrefix(chn, "#") || strings.HasPrefix(chn, "&")
			switch {
			case irc && c.Chat.IRC == nil:
				add(p, "%q is an IRC channel, but chat.irc is not configured", chn)
			case !irc && c.Chat.Slack == nil:
				add(p, "%q is not an IRC channel (#name) and chat.slack is not configured", chn)
			case !irc && !slackChannelID.MatchString(chn):
				add(p, "%q is not a Slack channel ID: Slack channels are named by ID, such as C0123456789 (channel details, at the bottom)", chn)
			}
		}
	}
	if sl := c.Chat.Slack; sl != nil {
		for i, chn := range sl.Channels {
			if !slackChannelID.MatchString(chn) {
				add(fmt.Sprintf("chat.slack.channels[%d]", i), "%q is not a Slack channel ID: Slack channels are named by ID, such as C0123456789 (channel details, at the bottom)", chn)
			}
		}
	}
}

// fmtDuration writes whole days as "3d" and drops zero minutes and seconds.
func fmtDuration(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	s = strings.TrimSuffix(s, "0m")
	if s == "" {
		return "0s"
	}
	return s
}
