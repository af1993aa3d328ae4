package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestExampleFileIsValid(t *testing.T) {
	t.Setenv("GERRIT_HTTP_PASSWORD", "x")
	t.Setenv("IRC_NICKSERV_PASSWORD", "x")
	t.Setenv("SLACK_BOT_TOKEN", "xoxb-x")
	t.Setenv("SLACK_APP_TOKEN", "xapp-x")
	cfg, err := Load("../examples/ductbot.yaml")
	if err != nil {
		t.Fatalf("examples/ductbot.yaml: %v", err)
	}
	if got := cfg.Kubernetes.DeployTimeout.D(); got != 10*time.Minute {
		t.Errorf("deploy_timeout = %s", got)
	}
	if got := cfg.Cleanup.TTLMax.D(); got != 7*24*time.Hour {
		t.Errorf("ttl_max = %s, want 7 days", got)
	}
	if c, ok := cfg.Component("orchestrator"); !ok || c.RefTemplate != DefaultRefTemplate || c.Values["orchestrator.image.tag"] != "{{.Ref}}" {
		t.Errorf("orchestrator component = %+v, %v", c, ok)
	}
	if pw, err := cfg.GerritPassword(); err != nil || pw != "x" {
		t.Errorf("GerritPassword() = %q, %v", pw, err)
	}
}

const minimal = `
gerrit: {url: "https://gerrit.example.org", dry_run: true}
projects: [{name: p, component: wiki}]
components: [{name: wiki, default_ref: latest, values: {wiki.image.tag: "{{.Ref}}"}}]
chart: {ref: ./chart}
`

func TestDefaults(t *testing.T) {
	cfg, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]any{
		"poll_interval": cfg.Gerrit.PollInterval.D(), "lookback": cfg.Gerrit.Lookback.D(),
		"vote_label": cfg.Gerrit.VoteLabel, "max_parallel": cfg.Kubernetes.MaxParallel,
		"public_url": cfg.Web.PublicURL, "schedule": cfg.Cleanup.Schedule,
		"notify_on_failure": cfg.Report.NotifyOnFailure, "retries": cfg.Kubernetes.Retries,
	} {
		want := map[string]any{
			"poll_interval": 30 * time.Second, "lookback": time.Hour, "vote_label": "Verified",
			"max_parallel": 4, "public_url": "http://localhost:8080", "schedule": "@every 10m",
			"notify_on_failure": "OWNER", "retries": 2,
		}[name]
		if got != want {
			t.Errorf("default %s = %v, want %v", name, got, want)
		}
	}
	if !On(cfg.Cleanup.Merged) || !On(cfg.Cleanup.TTL) {
		t.Error("cleanup policies should default to on")
	}
}

func TestBadConfigsReportEveryProblemWithItsPath(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []string // substrings, each must appear
	}{
		{"empty", ``, []string{"the file is empty"}},
		{"not yaml", "gerrit: [", []string{"not valid YAML"}},
		{"unknown keys with suggestions", `
gerrit: {url: "https://g", dry_run: true, pol_interval: 5s}
projects: [{name: p, component: wiki, chanels: ["#x"]}]
components: [{name: wiki, default_ref: latest, values: {a: "{{.Ref}}"}}]
chart: {ref: ./c}
colour: blue
`, []string{"gerrit.pol_interval (line 2): unknown key; did you mean poll_interval?",
			"projects[0].chanels (line 3): unknown key; did you mean channels?",
			"colour (line 6): unknown key; expected one of"}},
		{"inline secret", `
gerrit: {url: "https://g", username: bot, password: hunter2}
`, []string{"gerrit.password", "secrets are never written in the file"}},
		{"many problems at once", `
gerrit: {url: "ftp://g", username: bot, password_env: DUCTBOT_TEST_UNSET_VAR, poll_interval: 0.5s}
projects: [{name: p, component: wikki}, {name: p}]
components: [{name: Wiki!, default_ref: "a b", ref_template: "{{.Revision", values: {"a..b": "{{.Ref}}"}}]
chart: {url_template: "{{"}
kubernetes: {max_parallel: -1, namespace_prefix: "Bad_Prefix", quota: {pods: lots}}
report: {notify_on_success: LOUD}
cleanup: {schedule: "TZ=UTC", ttl_default: 10d, ttl_max: 1d}
chat: {irc: {server: nohost, channels: [general]}}
`, []string{
			`gerrit.url: "ftp://g" is not an http(s) URL`,
			"gerrit.password_env: environment variable DUCTBOT_TEST_UNSET_VAR is not set",
			"gerrit.poll_interval: must be at least 1s",
			`projects[0].component: "wikki" is not a configured component`,
			`projects[1].name: "p" is configured twice`,
			"projects[1].component: required",
			`components[0].name: "Wiki!" must be lower-case`,
			`components[0].default_ref: "a b" must be an image-tag-like token`,
			"components[0].ref_template: not a valid template",
			`components[0].values: "a..b" is not a dotted chart-values path`,
			"chart.ref: required",
			"chart.url_template: not a valid template",
			"kubernetes.max_parallel: must be at least 1",
			"kubernetes.namespace_prefix",
			`kubernetes.quota: quota["pods"]: "lots" is not a Kubernetes quantity`,
			`report.notify_on_success: "LOUD" is not one of NONE, OWNER, OWNER_REVIEWERS, ALL`,
			`cleanup.schedule: "TZ=UTC" is not a cron schedule`,
			"cleanup.ttl_default: 240h0m0s is longer than cleanup.ttl_max",
			`chat.irc.server: "nohost" is not host:port`,
			"chat.irc.nick: required",
			`chat.irc.channels[0]: "general" must start with # or &`,
		}},
		{"bad duration", `
gerrit: {url: "https://g", dry_run: true, lookback: soon}
`, []string{`"soon" is not a duration like 90s, 10m, 2h or 3d`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatal("Parse accepted a bad configuration")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
			var fe Errors
			if tc.name == "many problems at once" && (!errors.As(err, &fe) || len(fe) < len(tc.want)) {
				t.Errorf("want at least %d separate problems, got %d", len(tc.want), len(fe))
			}
		})
	}
}

func TestValidateScheduleNeverPanics(t *testing.T) {
	for _, tt := range []struct {
		spec string
		ok   bool
	}{
		{"@every 10m", true}, {"@daily", true}, {"*/10 * * * *", true}, {DefaultSchedule, true},
		{"TZ=Europe/Berlin 0 3 * * *", true}, {"CRON_TZ=UTC 0 3 * * *", true},
		{"", false}, {"   ", false},
		{"TZ=UTC", false}, // panics inside the cron parser
		{"CRON_TZ=", false}, {"CRON_TZ=UTC", false}, {"every 10 minutes", false}, {"* * *", false},
		{"0 0 * * * *", false}, // six fields: seconds are not accepted
		{"@every", false}, {"@every ten", false}, {"@every -1s", false}, {"60 * * * *", false},
	} {
		err := ValidateSchedule(tt.spec)
		if tt.ok != (err == nil) {
			t.Errorf("ValidateSchedule(%q) = %v, want ok=%v", tt.spec, err, tt.ok)
		}
		if err != nil && (!strings.Contains(err.Error(), "five fields") || !strings.Contains(err.Error(), "@every")) {
			t.Errorf("ValidateSchedule(%q) = %q, want it to say what is expected", tt.spec, err)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"90s": 90 * time.Second, "3d": 72 * time.Hour, "1d12h": 36 * time.Hour, "10m": 10 * time.Minute} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "1.5d", "x3d", "3dd", "forever"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) accepted it", in)
		}
	}
}
