package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// head is a valid start of a file; every case below adds to it, so the
// lines in the expected messages count from here (gerrit: is line 1).
const head = `gerrit: {url: "https://gerrit.example.org", dry_run: true}
projects: [{name: p, component: wiki}]
components: [{name: wiki, default_ref: latest, values: {wiki.image.tag: "{{.Ref}}"}}]
chart: {ref: ./testdata/chart}
`

// Each broken configuration listed under "Why" in issue 12, with the exact
// problems validate must report: every one, with its key and line.
func TestIssue12BrokenConfigs(t *testing.T) {
	wd, _ := os.Getwd()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"misspelt command with everyone allowed", head + `chat:
  permissions: {destory: ["slack:U0ADMIN01"]}
  default_allow: ["*"]
`, []string{`chat.permissions.destory: line 6: not a chat command; did you mean destroy?`}},

		{"five bad durations, each with its key and line", head + `kubernetes:
  deploy_timeout: 30
  test_timeout: ten minutes
  retry_backoff: 5x
cleanup:
  ttl_default: 1w
  idle_after: "30"
`, []string{
			`kubernetes.deploy_timeout: line 6: "30" is not a duration like 90s, 10m, 2h or 3d`,
			`kubernetes.test_timeout: line 7: "ten minutes" is not a duration like 90s, 10m, 2h or 3d`,
			`kubernetes.retry_backoff: line 8: "5x" is not a duration like 90s, 10m, 2h or 3d`,
			`cleanup.ttl_default: line 10: "1w" is not a duration like 90s, 10m, 2h or 3d`,
			`cleanup.idle_after: line 11: "30" is not a duration like 90s, 10m, 2h or 3d`,
		}},

		{"a word for a number", head + `kubernetes:
  retries: four
  max_parallel: [2]
chat: {irc: {server: "irc.example.org:6697", nick: ductbot, tls: maybe}}
`, []string{
			`kubernetes.retries: line 6: "four" is not an integer`,
			`kubernetes.max_parallel: line 7: expected an integer, got a list`,
			`chat.irc.tls: line 8: "maybe" is not true or false`,
		}},

		{"negative durations", head + `cleanup: {idle_after: -1h, merged_grace: -5m}
`, []string{
			`cleanup.idle_after: line 5: "-1h" is negative; durations are 0 or more`,
			`cleanup.merged_grace: line 5: "-5m" is negative; durations are 0 or more`,
		}},

		{"explicit 0 where it makes no sense", head + `gerrit2: {}
kubernetes: {max_parallel: 0, deploy_timeout: 0s, crash_restarts: 0}
cleanup: {idle_after: 0s, ttl_max: 0s}
chat: {rate_per_minute: 0}
`, []string{
			`gerrit2: line 5: unknown key; did you mean gerrit?`,
			`kubernetes.max_parallel: line 6: must be at least 1, got 0`,
			`kubernetes.deploy_timeout: line 6: must be at least 1s`,
			`kubernetes.crash_restarts: line 6: must be at least 1 (default 2), got 0`,
			`cleanup.ttl_max: line 7: must be at least 1m (default 7d), got 0s`,
			`cleanup.idle_after: line 7: must be at least 1h (default 14d; set cleanup.idle: false to keep idle environments), got 0s`,
			`chat.rate_per_minute: line 8: 0 would refuse every command: at least 1 (default 20)`,
			`cleanup.ttl_default: line 7: 24h0m0s is longer than cleanup.ttl_max (0s)`,
		}},

		{"unknown template fields", strings.Replace(head, "chart: {ref: ./testdata/chart}\n", "", 1) + `chart:
  ref: ./testdata/chart
  url_template: "http://{{.Environment}}.example.org/"
  env_values: {ingress.host: "{{.Env}}.{{.Domain}}"}
components2: []
`, []string{
			`components2: line 8: unknown key; did you mean components?`,
			`chart.url_template: line 6: "http://{{.Environment}}.example.org/": there is no field .Environment; this template may use .Env, .Namespace, .Release, .Change, .URL, .Subject`,
			`chart.env_values.ingress.host: line 7: "{{.Env}}.{{.Domain}}": there is no field .Domain; this template may use .Env, .Namespace, .Release, .Change, .URL, .Subject`,
		}},

		{"unknown template field in a component", `gerrit: {url: "https://gerrit.example.org", dry_run: true}
projects: [{name: p, component: wiki}]
components:
  - name: wiki
    default_ref: latest
    ref_template: "{{.Revison}}"
    values: {wiki.image.tag: "{{.Reff}}"}
chart: {ref: ./testdata/chart}
`, []string{
			`components[0].ref_template: line 6: "{{.Revison}}": there is no field .Revison; this template may use .Change, .PatchSet, .Revision, .Project, .Branch, .Ref`,
			`components[0].values.wiki.image.tag: line 7: "{{.Reff}}": there is no field .Reff; this template may use .Ref, .Component`,
		}},

		{"missing chart, a folder that is not a chart, missing kubeconfig", strings.Replace(head, "./testdata/chart", "./no/such/chart", 1) + `kubernetes: {kubeconfig: ` + kubeconfig + `}
`, []string{
			`chart.ref: line 4: "./no/such/chart": no such chart folder or .tgz file (relative to the working directory ` + wd + `); a chart is also oci://registry/path/chart or https://repo/url/<chart>`,
			`kubernetes.kubeconfig: line 5: "` + kubeconfig + `": no such file (leave it empty to use the in-cluster service account or $KUBECONFIG)`,
		}},
		{"a folder that is not a chart", strings.Replace(head, "./testdata/chart", "./testdata", 1), []string{
			`chart.ref: line 4: "./testdata" is not a Helm chart: it has no Chart.yaml`,
		}},

		{"identities without a network, or the wrong syntax for theirs", head + `chat:
  permissions:
    sweep: ["U0ADMIN01"]
    destroy: ["slack:alice", "irc:alice smith", "matrix:@a:b.org"]
`, []string{
			`chat.permissions.destroy[0]: line 8: pattern "slack:alice": Slack people are named by member ID, such as slack:U0123ABCD (profile, ⋮, Copy member ID), not by name`,
			`chat.permissions.destroy[1]: line 8: pattern "irc:alice smith": an IRC pattern is an account name (irc:alice) or a nick!user@host mask (irc:*!*@host), without spaces or commas`,
			`chat.permissions.destroy[2]: line 8: pattern "matrix:@a:b.org": unknown network "matrix"; expected irc, slack or console`,
			`chat.permissions.sweep[0]: line 7: pattern "U0ADMIN01": expected "*" or network:pattern, e.g. slack:U0123 or irc:*!*@host`,
		}},

		{"channels no adapter serves, Slack channels by name", `gerrit: {url: "https://gerrit.example.org", dry_run: true}
projects:
  - {name: p, component: wiki, channels: ["#wikifunctions", general, C0123456789]}
components: [{name: wiki, default_ref: latest, values: {wiki.image.tag: "{{.Ref}}"}}]
chart: {ref: ./testdata/chart}
chat:
  slack: {bot_token_env: DUCTBOT_TEST_BOT, app_token_env: DUCTBOT_TEST_APP, channels: ["#random"]}
`, []string{
			`projects[0].channels[0]: line 3: "#wikifunctions" is an IRC channel, but chat.irc is not configured`,
			`projects[0].channels[1]: line 3: "general" is not a Slack channel ID: Slack channels are named by ID, such as C0123456789 (channel details, at the bottom)`,
			`chat.slack.channels[0]: line 7: "#random" is not a Slack channel ID: Slack channels are named by ID, such as C0123456789 (channel details, at the bottom)`,
		}},
		{"no chat at all is fine", head, nil},
		{"log level and format", head + "log: {level: verbose, format: yaml}\n", []string{
			`log.level: line 5: "verbose" is not debug, info, warn or error (default info)`,
			`log.format: line 5: "yaml" is not text or json (default text)`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("DUCTBOT_TEST_BOT", "xoxb-x")
			t.Setenv("DUCTBOT_TEST_APP", "xapp-x")
			_, err := Parse([]byte(tc.yaml))
			var fe Errors
			if err != nil && !errors.As(err, &fe) {
				t.Fatalf("err = %v, want Errors", err)
			}
			var got []string
			for _, e := range fe {
				got = append(got, e.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
			if err != nil && (strings.Contains(err.Error(), "(file)") || strings.Contains(err.Error(), "(value)")) {
				t.Errorf("a problem without its key: %v", err)
			}
		})
	}
}

// An explicit 0 stands where 0 means something; leaving a key out is what
// gets the default.
func TestExplicitZeroStaysZero(t *testing.T) {
	cfg, err := Parse([]byte(head + "kubernetes: {retries: 0, retry_backoff: 0s, max_envs: 0}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if k := cfg.Kubernetes; k.Retries != 0 || k.RetryBackoff != 0 || k.MaxEnvs != 0 {
		t.Errorf("retries %d, retry_backoff %s: want the 0s written in the file", k.Retries, k.RetryBackoff.D())
	}
	cfg, err = Parse([]byte(head))
	if err != nil {
		t.Fatal(err)
	}
	if k := cfg.Kubernetes; k.Retries != 2 || k.RetryBackoff.D().String() != "10s" {
		t.Errorf("unset: retries %d, retry_backoff %s; want the defaults 2 and 10s", k.Retries, k.RetryBackoff.D())
	}
}

// The console serves every channel; IRC channels need IRC.
func TestChannelsAndConsole(t *testing.T) {
	withChannel := strings.Replace(head, "component: wiki}", `component: wiki, channels: ["#wf"]}`, 1)
	for _, tc := range []struct{ chat, want string }{
		{"", ""},
		{"chat: {console: true}\n", ""},
		{"chat: {irc: {server: \"irc.example.org:6697\", nick: ductbot}}\n", ""},
		{"chat: {slack: {bot_token_env: DUCTBOT_TEST_BOT, app_token_env: DUCTBOT_TEST_APP}}\n",
			`projects[0].channels[0]: line 2: "#wf" is an IRC channel, but chat.irc is not configured`},
	} {
		t.Setenv("DUCTBOT_TEST_BOT", "xoxb-x")
		t.Setenv("DUCTBOT_TEST_APP", "xapp-x")
		_, err := Parse([]byte(withChannel + tc.chat))
		got := ""
		if err != nil {
			got = err.(Errors)[0].String()
		}
		if got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.chat, got, tc.want)
		}
	}
}

// --offline skips only the checks that need the secrets.
func TestOffline(t *testing.T) {
	yaml := `gerrit: {url: "https://gerrit.example.org", username: bot, password_env: DUCTBOT_TEST_UNSET_PW}
projects: [{name: p, component: wiki}]
components: [{name: wiki, default_ref: latest, values: {wiki.image.tag: "{{.Reff}}"}}]
chart: {ref: ./testdata/chart}
chat: {slack: {bot_token_env: DUCTBOT_TEST_UNSET_BOT, app_token_env: DUCTBOT_TEST_UNSET_APP, channels: [C0123456789]}}
`
	_, err := Parse([]byte(yaml))
	for _, want := range []string{"gerrit.password_env: line 1: environment variable DUCTBOT_TEST_UNSET_PW is not set",
		"chat.slack.bot_token_env: line 5: environment variable DUCTBOT_TEST_UNSET_BOT is not set"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("online: %v\nwant %q", err, want)
		}
	}
	_, err = ParseWith([]byte(yaml), Options{Offline: true})
	var fe Errors
	if !errors.As(err, &fe) || len(fe) != 1 || !strings.HasPrefix(fe[0].String(), "components[0].values.wiki.image.tag: line 3: ") {
		t.Errorf("offline: %v\nwant only the template problem", err)
	}
}

func TestMetricsListen(t *testing.T) {
	for _, tc := range []struct{ web, want string }{
		{`web: {metrics_listen: ":9090"}`, ""},
		{`web: {metrics_listen: "9090"}`, `web.metrics_listen: line 5: "9090" is not host:port (e.g. :9090)`},
		{`web: {listen: ":8080", metrics_listen: ":8080"}`, `web.metrics_listen: line 5: ":8080" is web.listen too: leave metrics_listen empty to serve /metrics there`},
	} {
		_, err := Parse([]byte(head + tc.web + "\n"))
		got := ""
		if err != nil {
			got = err.(Errors)[0].String()
		}
		if got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.web, got, tc.want)
		}
	}
}
