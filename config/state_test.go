package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// state and ha: what is accepted, and what each refusal says, with its path.
func TestValidateStateAndHA(t *testing.T) {
	t.Setenv("DUCTBOT_TEST_DSN", "postgres://ductbot:pw@db:5432/ductbot")
	dsnFile := filepath.Join(t.TempDir(), "dsn")
	if err := os.WriteFile(dsnFile, []byte("postgres://ductbot:pw@db/ductbot\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		extra string // appended to minimal
		want  string // "" means valid; else a substring of the one error
	}{
		{"sqlite by default", ``, ""},
		{"sqlite with a path", `state: {driver: sqlite, path: /var/lib/ductbot/state.db}`, ""},
		{"postgres from an environment variable", `state: {driver: postgres, dsn_env: DUCTBOT_TEST_DSN}`, ""},
		{"postgres from a file", `state: {driver: postgres, dsn_file: ` + dsnFile + `}`, ""},
		{"postgres with ha", "state: {driver: postgres, dsn_env: DUCTBOT_TEST_DSN}\nha: {enabled: true}", ""},
		{"ha with its lease named", "state: {driver: postgres, dsn_env: DUCTBOT_TEST_DSN}\nha: {enabled: true, lease_name: ductbot.leader, lease_namespace: ci}", ""},
		{"ha off needs nothing", "ha: {enabled: false, lease_name: Whatever}", ""},

		{"unknown driver", `state: {driver: mysql}`, `state.driver: "mysql" is not sqlite (an embedded file, the default) or postgres (a shared database)`},
		{"postgres without a DSN", `state: {driver: postgres}`, "state.dsn_env: required with state.driver: postgres: the environment variable (dsn_env) or file (dsn_file)"},
		{"postgres with both", `state: {driver: postgres, dsn_env: DUCTBOT_TEST_DSN, dsn_file: ` + dsnFile + `}`, "state.dsn_env: set dsn_env or dsn_file, not both"},
		{"postgres variable unset", `state: {driver: postgres, dsn_env: DUCTBOT_NO_SUCH_VAR}`, "state.dsn_env: environment variable DUCTBOT_NO_SUCH_VAR is not set"},
		{"postgres file missing", `state: {driver: postgres, dsn_file: /nonexistent/dsn}`, "state.dsn_env: reading secret file"},
		{"postgres with a path", `state: {driver: postgres, dsn_env: DUCTBOT_TEST_DSN, path: x.db}`, "state.path: is the SQLite file; with state.driver: postgres"},
		{"sqlite with a DSN", `state: {dsn_env: DUCTBOT_TEST_DSN}`, "state.dsn_env: a DSN is for state.driver: postgres"},
		{"the DSN inline", `state: {dsn: "postgres://u:pw@db/x"}`, "state.dsn: line 6: unknown key: secrets are never written in the file; name an environment variable (dsn_env) or a file (dsn_file)"},
		{"ha with sqlite", "ha: {enabled: true}", "ha.enabled: high availability needs state.driver: postgres: replicas cannot share an SQLite file"},
		{"ha with explicit sqlite", "state: {driver: sqlite}\nha: {enabled: true}", "ha.enabled: high availability needs state.driver: postgres"},
		{"bad lease name", "state: {driver: postgres, dsn_env: DUCTBOT_TEST_DSN}\nha: {enabled: true, lease_name: Leader_1}", `ha.lease_name: "Leader_1" is not a Kubernetes object name`},
		{"bad lease namespace", "state: {driver: postgres, dsn_env: DUCTBOT_TEST_DSN}\nha: {enabled: true, lease_namespace: Prod.ns}", `ha.lease_namespace: "Prod.ns" is not a Kubernetes namespace name`},
		{"ha key misspelt", "ha: {enable: true}", "ha.enable: line 6: unknown key; did you mean enabled?"},
		{"ha timings", "state: {driver: postgres, dsn_env: DUCTBOT_TEST_DSN}\nha: {enabled: true, lease_duration: 4s, renew_deadline: 2s, retry_period: 500ms}", ""},
		{"lease in fractions", "state: {driver: postgres, dsn_env: DUCTBOT_TEST_DSN}\nha: {enabled: true, lease_duration: 4500ms, renew_deadline: 2s}", "ha.lease_duration: 4.5s: want whole seconds"},
		{"no margin", "state: {driver: postgres, dsn_env: DUCTBOT_TEST_DSN}\nha: {enabled: true, lease_duration: 10s}", "ha.renew_deadline: 10s: want at least 2s shorter than ha.lease_duration (10s)"},
		{"retry too slow", "state: {driver: postgres, dsn_env: DUCTBOT_TEST_DSN}\nha: {enabled: true, retry_period: 10s}", "ha.retry_period: 10s: want more than 0, and ha.renew_deadline (10s) longer than 1.2 times it"},
		{"retry without room for jitter", "state: {driver: postgres, dsn_env: DUCTBOT_TEST_DSN}\nha: {enabled: true, lease_duration: 5s, renew_deadline: 3s, retry_period: 2500ms}", "ha.retry_period: 2.5s: want more than 0, and ha.renew_deadline (3s) longer than 1.2 times it"},
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
			if strings.Contains(err.Error(), "pw@") {
				t.Errorf("the error shows a DSN: %v", err)
			}
		})
	}
}

func TestStateDefaults(t *testing.T) {
	cfg, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.State.Driver != DriverSQLite || cfg.State.Path != "ductbot.db" {
		t.Errorf("state = %+v, want sqlite at ductbot.db", cfg.State)
	}
	if cfg.HA.Enabled || cfg.HA.LeaseName != "ductbot-leader" || cfg.HA.LeaseNamespace != "" {
		t.Errorf("ha = %+v, want off, lease ductbot-leader in the pod's namespace", cfg.HA)
	}
	cfg, err = Parse([]byte(minimal + "kubernetes: {instance: staging}\nstate: {driver: postgres, dsn_file: /dev/null}"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.State.Path != "" || cfg.HA.LeaseName != "staging-leader" {
		t.Errorf("postgres state path %q (want none), lease %q (want staging-leader)", cfg.State.Path, cfg.HA.LeaseName)
	}
	if dsn, err := cfg.State.DSN(); err != nil || dsn != "" {
		t.Errorf("DSN from an empty file = %q, %v", dsn, err)
	}
}
