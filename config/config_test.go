package config

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestExampleFileIsValid(t *testing.T) {
	t.Setenv("GERRIT_HTTP_PASSWORD", "x")
	t.Setenv("IRC_NICKSERV_PASSWORD", "x")
	t.Setenv("SLACK_BOT_TOKEN", "xoxb-x")
	t.Setenv("SLACK_APP_TOKEN", "xapp-x")
	t.Chdir("..") // chart.ref in the example is relative to the repository root, where ductbot is run from
	cfg, err := Load("examples/ductbot.yaml")
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
	if cfg.Kubernetes.Instance != DefaultInstance || cfg.Report.MaxLogBytes != DefaultMaxLogBytes {
		t.Errorf("instance %q, max_log_bytes %d; the example should show the defaults", cfg.Kubernetes.Instance, cfg.Report.MaxLogBytes)
	}
}

// The example is what people copy: it must not let everyone get code from
// untrusted uploaders deployed, neither through !env nor by vouching.
func TestExampleDoesNotLetEveryoneDeployUntrustedCode(t *testing.T) {
	t.Setenv("GERRIT_HTTP_PASSWORD", "x")
	t.Setenv("IRC_NICKSERV_PASSWORD", "x")
	t.Setenv("SLACK_BOT_TOKEN", "xoxb-x")
	t.Setenv("SLACK_APP_TOKEN", "xapp-x")
	t.Chdir("..") // chart.ref in the example is relative to the repository root, where ductbot is run from
	cfg, err := Load("examples/ductbot.yaml")
	if err != nil {
		t.Fatalf("examples/ductbot.yaml: %v", err)
	}
	everyone := func(pat string) bool {
		_, glob, _ := strings.Cut(pat, ":")
		return pat == "*" || strings.Trim(glob, "*?!@") == ""
	}
	for key, list := range map[string][]string{
		"chat.permissions.env":   cfg.Chat.Permissions["env"],
		"chat.permissions.vouch": cfg.Chat.Permissions[VouchKey],
		"chat.default_allow":     cfg.Chat.DefaultAllow,
	} {
		if key != "chat.default_allow" && len(list) == 0 {
			t.Errorf("%s is empty: the example should name who may do it", key)
		}
		for _, pat := range list {
			if everyone(pat) {
				t.Errorf("%s lets everyone in (%q)", key, pat)
			}
		}
	}
}

const minimal = `
gerrit: {url: "https://gerrit.example.org", dry_run: true}
projects: [{name: p, component: wiki}]
components: [{name: wiki, default_ref: latest, values: {wiki.image.tag: "{{.Ref}}"}}]
chart: {ref: ./testdata/chart}
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
		"instance": cfg.Kubernetes.Instance, "max_log_bytes": cfg.Report.MaxLogBytes,
	} {
		want := map[string]any{
			"poll_interval": 30 * time.Second, "lookback": time.Hour, "vote_label": "Verified",
			"max_parallel": 4, "public_url": "http://localhost:8080", "schedule": "@every 10m",
			"notify_on_failure": "OWNER", "retries": 2,
			"instance": "ductbot", "max_log_bytes": 1048576,
		}[name]
		if got != want {
			t.Errorf("default %s = %v, want %v", name, got, want)
		}
	}
	if !On(cfg.Cleanup.Merged) || !On(cfg.Cleanup.TTL) {
		t.Error("cleanup policies should default to on")
	}
	if v, ok := cfg.Chat.Permissions[VouchKey]; ok || len(v) > 0 {
		t.Errorf("chat.permissions.vouch defaults to %q, want unset (nobody vouches)", v)
	}
}

// The new keys: what is accepted, and what each refusal says, with its path.
func TestValidateInstanceLogBoundAndPermissions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra string // appended to minimal
		want  string // "" means valid; else a substring of the one error
	}{
		{"instance default", ``, ""},
		{"instance ok", "kubernetes: {instance: ductbot-staging-2}", ""},
		{"instance of 63 chars", "kubernetes: {instance: " + strings.Repeat("a", 63) + "}", ""},
		{"instance of 64 chars", "kubernetes: {instance: " + strings.Repeat("a", 64) + "}",
			`kubernetes.instance: "` + strings.Repeat("a", 64) + `" must be a Kubernetes label value: lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters`},
		{"instance upper case", "kubernetes: {instance: Ductbot}", `kubernetes.instance: "Ductbot" must be a Kubernetes label value`},
		{"instance ends with -", "kubernetes: {instance: ductbot-}", `kubernetes.instance: "ductbot-" must be a Kubernetes label value`},
		{"instance starts with -", "kubernetes: {instance: -a}", `kubernetes.instance: "-a" must be a Kubernetes label value`},
		{"instance with a dot", "kubernetes: {instance: a.b}", `kubernetes.instance: "a.b" must be a Kubernetes label value`},
		{"instance with a slash", "kubernetes: {instance: a/b}", `kubernetes.instance: "a/b" must be a Kubernetes label value`},

		{"log bound minimum", "report: {max_log_bytes: 4096}", ""},
		{"log bound maximum", "report: {max_log_bytes: 67108864}", ""},
		{"log bound too small", "report: {max_log_bytes: 4095}",
			"report.max_log_bytes: 4095 is out of range: a run's test logs may be limited to 4096 (4 KiB) to 67108864 (64 MiB) bytes"},
		{"log bound negative", "report: {max_log_bytes: -1}", "report.max_log_bytes: -1 is out of range"},
		{"log bound too large", "report: {max_log_bytes: 67108865}", "report.max_log_bytes: 67108865 is out of range"},

		{"vouch accepted", `chat: {permissions: {vouch: ["slack:U0MAINT1", "irc:alice"], env: ["irc:*!*@wikimedia/*"]}}`, ""},
		{"vouch for everyone is accepted", `chat: {permissions: {vouch: ["*"]}}`, ""},
		{"vouch pattern checked", `chat: {permissions: {vouch: ["slack:U1", "alice"]}}`,
			`chat.permissions.vouch[1]: pattern "alice": expected "*" or network:pattern`},
		{"command pattern checked", `chat: {permissions: {destroy: [":x"]}}`, `chat.permissions.destroy[0]: pattern ":x"`},
		{"default_allow pattern checked", `chat: {default_allow: ["slack:"]}`, `chat.default_allow[0]: pattern "slack:"`},
		{"unknown command with suggestion", `chat: {permissions: {destory: ["*"]}}`, "chat.permissions.destory: not a chat command; did you mean destroy?"},
		{"vouch misspelt", `chat: {permissions: {vouches: ["slack:U1"]}}`, "chat.permissions.vouches: not a chat command; did you mean vouch?"},
		{"unknown command", `chat: {permissions: {frobnicate-everything: ["*"]}}`, "chat.permissions.frobnicate-everything: not a chat command; expected one of destroy, env,"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(minimal + tc.extra))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			var fe Errors
			if !errors.As(err, &fe) || len(fe) != 1 {
				t.Fatalf("want exactly one problem, got %v", err)
			}
			if !mentions(fe[0].String(), tc.want) {
				t.Errorf("error = %q\nwant it to contain %q", fe[0].String(), tc.want)
			}
		})
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
`, []string{"gerrit.pol_interval: line 2: unknown key; did you mean poll_interval?",
			"projects[0].chanels: line 3: unknown key; did you mean channels?",
			"colour: line 6: unknown key; expected one of"}},
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
				if !mentions(err.Error(), w) {
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

var lineNo = regexp.MustCompile(`: line \d+:`)

// mentions reports whether a problem's text contains want, either as it is
// or with its "line N:" left out (for wants that do not name the line).
func mentions(got, want string) bool {
	return strings.Contains(got, want) || strings.Contains(lineNo.ReplaceAllString(got, ":"), want)
}
