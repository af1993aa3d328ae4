// Package config holds ductbot's configuration: the types of the YAML file,
// loading with defaults, and validation that reports every problem with the
// path of the field it concerns. examples/ductbot.yaml documents every key.
//
// Secrets (the Gerrit HTTP password, chat tokens) are never written in the
// file: only the name of an environment variable (`*_env`) or of a file
// (`*_file`) that holds them.
package config

import (
	"fmt"

	"os"
	"strings"
	"time"

	"github.com/ductbot/ductbot/core/k8s"
)

// Config is the whole file.
type Config struct {
	Gerrit     Gerrit      `yaml:"gerrit"`
	Projects   []Project   `yaml:"projects"`
	Components []Component `yaml:"components"`
	Chart      Chart       `yaml:"chart"`
	Kubernetes Kubernetes  `yaml:"kubernetes"`
	Web        Web         `yaml:"web"`
	State      State       `yaml:"state"`
	HA         HA          `yaml:"ha"`
	Report     Report      `yaml:"report"`
	Chat       Chat        `yaml:"chat"`
	Cleanup    Cleanup     `yaml:"cleanup"`
	Log        Log         `yaml:"log"`
}

// Log is how ductbot logs; the --log-level and --log-format flags win.
type Log struct {
	Level  string `yaml:"level"`  // debug, info (default), warn or error
	Format string `yaml:"format"` // text (default) or json
}

// Gerrit says which Gerrit to watch and how to vote.
type Gerrit struct {
	URL          string   `yaml:"url"`
	Username     string   `yaml:"username"`
	PasswordEnv  string   `yaml:"password_env"`
	PasswordFile string   `yaml:"password_file"`
	PollInterval Duration `yaml:"poll_interval"` // default 30s; 5m with stream_events
	VoteLabel    string   `yaml:"vote_label"`    // default Verified
	DryRun       bool     `yaml:"dry_run"`       // never write to Gerrit
	Lookback     Duration `yaml:"lookback"`      // first start only; default 1h
	// StreamEvents, when set, listens to `gerrit stream-events` over SSH
	// (as gerrit.username) to react within a second; poll_interval is then
	// the period of the REST reconcile.
	StreamEvents *StreamEvents `yaml:"stream_events"`
}

// StreamEvents is Gerrit's SSH event stream.
type StreamEvents struct {
	Address        string `yaml:"address"`          // Gerrit's SSH host:port, usually port 29418
	PrivateKeyFile string `yaml:"private_key_file"` // the account's unencrypted SSH private key
	KnownHostsFile string `yaml:"known_hosts_file"` // Gerrit's host key(s), OpenSSH known_hosts format
}

// Project is one Gerrit project whose patch sets ductbot deploys.
type Project struct {
	Name      string   `yaml:"name"`
	Branches  []string `yaml:"branches"`  // empty: every branch
	Component string   `yaml:"component"` // the component a patch set of this project replaces
	Channels  []string `yaml:"channels"`  // where results are announced ("#chan" on IRC, channel IDs on Slack)
	Trusted   Trust    `yaml:"trusted"`
}

// Trust lists who may have their patch sets deployed automatically. Anyone
// else's patch set waits for a trusted person's `recheck` or `!env`.
type Trust struct {
	Accounts []string `yaml:"accounts"` // Gerrit usernames or numeric account IDs
	Emails   []string `yaml:"emails"`
	Groups   []string `yaml:"groups"` // Gerrit group names or UUIDs
}

// Component is one service of the system under test.
type Component struct {
	Name string `yaml:"name"`
	// DefaultRef is the version environments run unless told otherwise.
	DefaultRef string `yaml:"default_ref"`
	// RefTemplate turns a patch set into a ref (text/template over
	// .Change .PatchSet .Revision .Project .Branch .Ref); default "{{.Revision}}".
	RefTemplate string `yaml:"ref_template"`
	// Values maps a dotted chart-values path to a template over .Ref (and
	// .Component), e.g. {"orchestrator.image.tag": "{{.Ref}}"}.
	Values map[string]string `yaml:"values"`
}

// Chart is the Helm chart every environment is built from.
type Chart struct {
	Ref     string         `yaml:"ref"` // local path, oci://..., or a repository URL ending in the chart name
	Version string         `yaml:"version"`
	Values  map[string]any `yaml:"values"` // base values for every environment
	// EnvValues maps dotted paths to templates over .Env .Namespace .Release
	// .Change .URL, e.g. {"ingress.host": "{{.Env}}.envs.example.org"}.
	EnvValues map[string]string `yaml:"env_values"`
	// URLTemplate is an environment's URL (template over .Env .Namespace
	// .Release .Change); default "http://{{.Env}}.local/".
	URLTemplate string `yaml:"url_template"`
}

// Kubernetes says where environments go and how hard to push the cluster.
type Kubernetes struct {
	Kubeconfig      string   `yaml:"kubeconfig"` // empty: in-cluster config
	Context         string   `yaml:"context"`
	NamespacePrefix string   `yaml:"namespace_prefix"` // default "ductbot-"
	MaxParallel     int      `yaml:"max_parallel"`     // deploys at once; default 4
	DeployTimeout   Duration `yaml:"deploy_timeout"`   // default 10m
	TestTimeout     Duration `yaml:"test_timeout"`     // default 10m
	Retries         int      `yaml:"retries"`          // extra attempts after an infrastructure error; default 2
	RetryBackoff    Duration `yaml:"retry_backoff"`    // first wait between attempts, doubling; default 10s
	MaxEnvs         int      `yaml:"max_envs"`         // live environments at most; 0: no cap
	// MaxSleeping caps the environments asleep at once (they do not count
	// toward MaxEnvs); 0: no cap.
	MaxSleeping int `yaml:"max_sleeping"`
	// Instance names this ductbot among others sharing the cluster: it is
	// the value of the ductbot.dev/instance label on every namespace and
	// release, and sweeps, repairs and orphan removal touch only objects
	// carrying it. Default "ductbot"; a Kubernetes label value.
	Instance string `yaml:"instance"`
	// Quota is each environment namespace's ResourceQuota (hard limits).
	Quota map[string]string `yaml:"quota"`
	// DefaultRequests and DefaultLimits are the namespace LimitRange's
	// container defaults.
	DefaultRequests map[string]string `yaml:"default_requests"`
	DefaultLimits   map[string]string `yaml:"default_limits"`
	// Isolate adds a NetworkPolicy that keeps environments apart.
	Isolate bool `yaml:"isolate"`
	// While Helm waits for a deploy, ductbot watches its pods and stops
	// early when they show the deploy cannot succeed (see the README's
	// "How results are classified"):
	// CrashRestarts: a container down again after this many restarts
	// crash-loops: the run failed (-1). Default 2.
	CrashRestarts int `yaml:"crash_restarts"`
	// ReadyTimeout: a container running this long without being ready
	// never will be: the run failed (-1). Default 3m.
	ReadyTimeout Duration `yaml:"ready_timeout"`
	// ImageWait: how long an image that cannot be pulled may take to
	// appear (CI may not have pushed it yet) before the run is an error
	// naming it. Default 10m.
	ImageWait Duration `yaml:"image_wait"`
}

// Web is the dashboard and the links in votes and announcements.
type Web struct {
	Listen    string `yaml:"listen"`     // default ":8080"
	PublicURL string `yaml:"public_url"` // how people reach it; default http://localhost<listen>
	// MetricsListen, when set, serves /metrics on its own host:port (such
	// as one only Prometheus reaches) instead of on listen.
	MetricsListen string `yaml:"metrics_listen"`
}

// State is where ductbot keeps what it must not forget: one SQLite file
// (the default), or a PostgreSQL database several replicas share.
type State struct {
	Driver string `yaml:"driver"` // "sqlite" (default) or "postgres"
	Path   string `yaml:"path"`   // sqlite: the file; default "ductbot.db"
	// DSNEnv or DSNFile names the environment variable or the file holding
	// the PostgreSQL connection URL (it carries a password, so it is never
	// written in this file). postgres only; exactly one of them.
	DSNEnv  string `yaml:"dsn_env"`
	DSNFile string `yaml:"dsn_file"`
}

// State drivers.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// DSN is the PostgreSQL connection URL of a postgres state.
func (s State) DSN() (string, error) { return Secret(s.DSNEnv, s.DSNFile) }

// HA runs ductbot as several replicas of which one, the holder of a
// Kubernetes Lease, does the work: watching Gerrit, the queue, sweeps and
// chat. Every replica serves the dashboard. It needs state.driver postgres.
type HA struct {
	Enabled bool `yaml:"enabled"`
	// LeaseName is the coordination.k8s.io Lease the replicas compete for;
	// default "<kubernetes.instance>-leader".
	LeaseName string `yaml:"lease_name"`
	// LeaseNamespace is where the Lease lives; default the namespace of the
	// pod ductbot runs in.
	LeaseNamespace string `yaml:"lease_namespace"`
	// LeaseDuration is how long the followers wait after the leader's last
	// renewal before one takes over (whole seconds; default 15s): with
	// retry_period, how long the gate is down when the leader's node dies.
	// RenewDeadline is how long the leader keeps trying to renew before it
	// stops working (default 10s; at least 2s shorter than lease_duration),
	// and RetryPeriod the time between tries (default 1s; renew_deadline
	// longer than 1.2 times it). A follower takes over up to
	// lease_duration + 4.4 retry periods after the leader's last renewal
	// (client-go stretches each retry period by up to 2.2 times).
	LeaseDuration Duration `yaml:"lease_duration"`
	RenewDeadline Duration `yaml:"renew_deadline"`
	RetryPeriod   Duration `yaml:"retry_period"`
}

// Defaults of the ha timings.
const (
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 1 * time.Second
)

// Report controls the Gerrit review of each run.
type Report struct {
	NotifyOnSuccess string `yaml:"notify_on_success"` // NONE, OWNER, OWNER_REVIEWERS, ALL; default NONE
	NotifyOnFailure string `yaml:"notify_on_failure"` // default OWNER
	VoteOnError     bool   `yaml:"vote_on_error"`     // -1 on infrastructure errors too; default false
	// MaxLogBytes bounds one run's test logs (all its pods together): a
	// longer log keeps its head and its tail and says how much was cut, in
	// memory, in the store and on the pages. Default 1 MiB.
	MaxLogBytes int `yaml:"max_log_bytes"`
}

// Chat configures the chat networks and the commands.
type Chat struct {
	Prefix  string `yaml:"prefix"` // default "!"
	Console bool   `yaml:"console"`
	IRC     *IRC   `yaml:"irc"`
	Slack   *Slack `yaml:"slack"`
	// Permissions maps a command name to the identities that may run it
	// ("*", "slack:U123", "irc:account", "irc:nick!*@host"). One key is not
	// a command: "vouch" (VouchKey) lists the chat users whose !env may
	// deploy code from untrusted uploaders; unset, nobody's.
	Permissions    map[string][]string `yaml:"permissions"`
	DefaultAllow   []string            `yaml:"default_allow"`   // for commands that change things and are not listed
	RatePerMinute  int                 `yaml:"rate_per_minute"` // per person; default 20
	MaxEnvsPerUser int                 `yaml:"max_envs_per_user"`
}

// IRC is one IRC network.
type IRC struct {
	Server              string   `yaml:"server"` // host:port
	TLS                 bool     `yaml:"tls"`
	Nick                string   `yaml:"nick"`
	PasswordEnv         string   `yaml:"password_env"` // server password
	NickServPasswordEnv string   `yaml:"nickserv_password_env"`
	Channels            []string `yaml:"channels"`
}

// Slack is one Slack workspace, reached over Socket Mode.
type Slack struct {
	BotTokenEnv string   `yaml:"bot_token_env"` // xoxb-...
	AppTokenEnv string   `yaml:"app_token_env"` // xapp-... with connections:write
	Channels    []string `yaml:"channels"`
}

// Cleanup controls the sweep that tears environments down.
type Cleanup struct {
	Schedule    string   `yaml:"schedule"` // cron spec; default "@every 10m"
	DryRun      bool     `yaml:"dry_run"`
	Merged      *bool    `yaml:"merged"`    // tear down when the change merged; default true
	Abandoned   *bool    `yaml:"abandoned"` // default true
	MergedGrace Duration `yaml:"merged_grace"`
	TTL         *bool    `yaml:"ttl"`         // expire !env environments; default true
	TTLDefault  Duration `yaml:"ttl_default"` // default 24h
	TTLMax      Duration `yaml:"ttl_max"`     // default 7d
	Idle        *bool    `yaml:"idle"`        // default true
	IdleAfter   Duration `yaml:"idle_after"`  // default 14d
	// SleepAfter puts an environment to sleep after this long without a
	// run or a chat command naming it; 0 (the default) never does.
	SleepAfter    Duration `yaml:"sleep_after"`
	Orphans       *bool    `yaml:"orphans"` // default true
	OrphanGrace   Duration `yaml:"orphan_grace"`
	LogsRetention Duration `yaml:"logs_retention"` // default 30d
	Protected     []string `yaml:"protected"`      // environment names no policy removes
}

// NamespacePolicy is the quota, limits and isolation of every environment
// namespace.
func (k Kubernetes) NamespacePolicy() k8s.NamespacePolicy {
	return k8s.NamespacePolicy{Quota: k.Quota, DefaultRequests: k.DefaultRequests, DefaultLimits: k.DefaultLimits, Isolate: k.Isolate}
}

// On reports a policy switch, true when unset.
func On(b *bool) bool { return b == nil || *b }

// Secret reads a secret from the environment variable or the file named;
// exactly one of them should be set. An empty result with a nil error means
// neither was set.
func Secret(envName, file string) (string, error) {
	switch {
	case envName != "":
		v, ok := os.LookupEnv(envName)
		if !ok || v == "" {
			return "", fmt.Errorf("environment variable %s is not set", envName)
		}
		return v, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("reading secret file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return "", nil
}

// GerritPassword is the Gerrit HTTP password.
func (c *Config) GerritPassword() (string, error) {
	return Secret(c.Gerrit.PasswordEnv, c.Gerrit.PasswordFile)
}

// Component returns the named component.
func (c *Config) Component(name string) (Component, bool) {
	for _, comp := range c.Components {
		if comp.Name == name {
			return comp, true
		}
	}
	return Component{}, false
}

// Project returns the named project.
func (c *Config) Project(name string) (Project, bool) {
	for _, p := range c.Projects {
		if p.Name == name {
			return p, true
		}
	}
	return Project{}, false
}

// Duration is a time.Duration written as "90s", "10m", "1h30m" or "14d".
type Duration time.Duration

// D is the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// ParseDuration accepts Go durations plus a day unit ("3d", "1d12h").
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	var days time.Duration
	if i := strings.Index(s, "d"); i > 0 {
		var n int
		if _, err := fmt.Sscanf(s[:i], "%d", &n); err != nil || fmt.Sprint(n) != s[:i] {
			return 0, fmt.Errorf("%q is not a duration like 90s, 10m, 2h or 3d", s)
		}
		days = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration like 90s, 10m, 2h or 3d", s)
	}
	return days + d, nil
}

// UnmarshalText implements encoding.TextUnmarshaler (used by YAML).
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }
