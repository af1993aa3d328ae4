package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"text/template"
	"time"

	"github.com/robfig/cron/v3"
)

// Defaults applied to fields left empty.
const (
	DefaultPollInterval = 30 * time.Second
	DefaultLookback     = time.Hour
	DefaultVoteLabel    = "Verified"
	DefaultRefTemplate  = "{{.Revision}}"
	DefaultURLTemplate  = "http://{{.Env}}.local/"
	DefaultPrefix       = "ductbot-"
	DefaultSchedule     = "@every 10m"
	DefaultInstance     = "ductbot"
	DefaultMaxLogBytes  = 1 << 20 // 1 MiB per run
	MinMaxLogBytes      = 4096
	MaxMaxLogBytes      = 64 << 20 // 64 MiB
	// A deploy whose pods show it cannot succeed stops early: see
	// Kubernetes.CrashRestarts, ReadyTimeout and ImageWait.
	DefaultCrashRestarts = 2
	DefaultReadyTimeout  = 3 * time.Minute
	DefaultImageWait     = 10 * time.Minute
)

func (c *Config) applyDefaults() {
	g := &c.Gerrit
	if g.PollInterval == 0 {
		g.PollInterval = Duration(DefaultPollInterval)
		if g.StreamEvents != nil {
			g.PollInterval = Duration(DefaultStreamPollInterval)
		}
	}
	if g.Lookback == 0 {
		g.Lookback = Duration(DefaultLookback)
	}
	if g.VoteLabel == "" {
		g.VoteLabel = DefaultVoteLabel
	}
	g.URL = strings.TrimSuffix(g.URL, "/")
	for i := range c.Components {
		if c.Components[i].RefTemplate == "" {
			c.Components[i].RefTemplate = DefaultRefTemplate
		}
	}
	if c.Chart.URLTemplate == "" {
		c.Chart.URLTemplate = DefaultURLTemplate
	}
	k := &c.Kubernetes
	if k.NamespacePrefix == "" {
		k.NamespacePrefix = DefaultPrefix
	}
	if k.MaxParallel == 0 {
		k.MaxParallel = 4
	}
	if k.DeployTimeout == 0 {
		k.DeployTimeout = Duration(10 * time.Minute)
	}
	if k.TestTimeout == 0 {
		k.TestTimeout = Duration(10 * time.Minute)
	}
	if k.Retries == 0 {
		k.Retries = 2
	}
	if k.RetryBackoff == 0 {
		k.RetryBackoff = Duration(10 * time.Second)
	}
	if k.Instance == "" {
		k.Instance = DefaultInstance
	}
	if k.CrashRestarts == 0 {
		k.CrashRestarts = DefaultCrashRestarts
	}
	if k.ReadyTimeout == 0 {
		k.ReadyTimeout = Duration(DefaultReadyTimeout)
	}
	if k.ImageWait == 0 {
		k.ImageWait = Duration(DefaultImageWait)
	}
	if c.Web.Listen == "" {
		c.Web.Listen = ":8080"
	}
	if c.Web.PublicURL == "" {
		host := c.Web.Listen
		if strings.HasPrefix(host, ":") {
			host = "localhost" + host
		}
		c.Web.PublicURL = "http://" + host
	}
	c.Web.PublicURL = strings.TrimSuffix(c.Web.PublicURL, "/")
	if c.State.Driver == "" {
		c.State.Driver = DriverSQLite
	}
	if c.State.Path == "" && c.State.Driver == DriverSQLite {
		c.State.Path = "ductbot.db"
	}
	if c.HA.LeaseName == "" {
		c.HA.LeaseName = c.Kubernetes.Instance + "-leader"
	}
	if c.HA.LeaseDuration == 0 {
		c.HA.LeaseDuration = Duration(DefaultLeaseDuration)
	}
	if c.HA.RenewDeadline == 0 {
		c.HA.RenewDeadline = Duration(DefaultRenewDeadline)
	}
	if c.HA.RetryPeriod == 0 {
		c.HA.RetryPeriod = Duration(DefaultRetryPeriod)
	}
	if c.Report.NotifyOnSuccess == "" {
		c.Report.NotifyOnSuccess = "NONE"
	}
	if c.Report.NotifyOnFailure == "" {
		c.Report.NotifyOnFailure = "OWNER"
	}
	if c.Report.MaxLogBytes == 0 {
		c.Report.MaxLogBytes = DefaultMaxLogBytes
	}
	if c.Chat.Prefix == "" {
		c.Chat.Prefix = "!"
	}
	if c.Chat.RatePerMinute == 0 {
		c.Chat.RatePerMinute = 20
	}
	if c.Chat.MaxEnvsPerUser == 0 {
		c.Chat.MaxEnvsPerUser = 3
	}
	cl := &c.Cleanup
	if cl.Schedule == "" {
		cl.Schedule = DefaultSchedule
	}
	if cl.TTLDefault == 0 {
		cl.TTLDefault = Duration(24 * time.Hour)
	}
	if cl.TTLMax == 0 {
		cl.TTLMax = Duration(7 * 24 * time.Hour)
	}
	if cl.IdleAfter == 0 {
		cl.IdleAfter = Duration(14 * 24 * time.Hour)
	}
	if cl.OrphanGrace == 0 {
		cl.OrphanGrace = Duration(10 * time.Minute)
	}
	if cl.LogsRetention == 0 {
		cl.LogsRetention = Duration(30 * 24 * time.Hour)
	}
}

var (
	componentName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)
	refToken      = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)
	dnsPrefix     = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,19})?$`)
	labelValue    = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dnsSubdomain  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	notifyValues  = []string{"NONE", "OWNER", "OWNER_REVIEWERS", "ALL"}
)

// Validate reports every problem in an already-defaulted configuration.
func (c *Config) Validate() Errors {
	var errs Errors
	add := func(path, format string, args ...any) {
		errs = append(errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}

	// gerrit
	if c.Gerrit.URL == "" {
		add("gerrit.url", "required: the Gerrit base URL, e.g. https://gerrit.example.org")
	} else if u, err := url.Parse(c.Gerrit.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add("gerrit.url", "%q is not an http(s) URL", c.Gerrit.URL)
	}
	if c.Gerrit.PasswordEnv != "" && c.Gerrit.PasswordFile != "" {
		add("gerrit.password_env", "set password_env or password_file, not both")
	}
	if c.Gerrit.Username != "" && c.Gerrit.PasswordEnv == "" && c.Gerrit.PasswordFile == "" {
		add("gerrit.password_env", "gerrit.username is set: name the environment variable (password_env) or file (password_file) holding its HTTP password")
	}
	if c.Gerrit.Username == "" && !c.Gerrit.DryRun {
		add("gerrit.username", "required to vote; set it, or set gerrit.dry_run: true to only watch")
	}
	if _, err := c.GerritPassword(); err != nil {
		add("gerrit.password_env", "%v", err)
	}
	if c.Gerrit.PollInterval.D() < time.Second {
		add("gerrit.poll_interval", "must be at least 1s, got %s", c.Gerrit.PollInterval.D())
	}
	if se := c.Gerrit.StreamEvents; se != nil {
		for _, p := range checkStreamEvents(*se, c.Gerrit.Username) {
			add("gerrit.stream_events"+p.key, "%s", p.msg)
		}
	}

	// components
	if len(c.Components) == 0 {
		add("components", "at least one component is required")
	}
	seen := map[string]bool{}
	var compNames []string
	for i, comp := range c.Components {
		p := fmt.Sprintf("components[%d]", i)
		if !componentName.MatchString(comp.Name) {
			add(p+".name", "%q must be lower-case letters, digits and '-', at most 32 characters", comp.Name)
		} else if seen[comp.Name] {
			add(p+".name", "%q is configured twice", comp.Name)
		}
		seen[comp.Name] = true
		compNames = append(compNames, comp.Name)
		if !refToken.MatchString(comp.DefaultRef) {
			add(p+".default_ref", "%q must be an image-tag-like token: letters, digits, '.', '_', '-', at most 128 characters", comp.DefaultRef)
		}
		if err := checkTemplate(comp.RefTemplate, sampleRef); err != nil {
			add(p+".ref_template", "%v", err)
		}
		if len(comp.Values) == 0 {
			add(p+".values", "map at least one chart value path to the ref, e.g. {\"%s.image.tag\": \"{{.Ref}}\"}", comp.Name)
		}
		for path, tmpl := range comp.Values {
			if !validPath(path) {
				add(p+".values", "%q is not a dotted chart-values path like a.b.c", path)
			}
			if err := checkTemplate(tmpl, sampleValues); err != nil {
				add(p+".values."+path, "%v", err)
			}
		}
	}

	// projects
	if len(c.Projects) == 0 {
		add("projects", "at least one Gerrit project is required")
	}
	projSeen := map[string]bool{}
	for i, pr := range c.Projects {
		p := fmt.Sprintf("projects[%d]", i)
		if pr.Name == "" {
			add(p+".name", "required: the Gerrit project name")
		} else if projSeen[pr.Name] {
			add(p+".name", "%q is configured twice", pr.Name)
		}
		projSeen[pr.Name] = true
		if pr.Component == "" {
			add(p+".component", "required: which component a patch set of %s replaces (one of %s)", pr.Name, strings.Join(compNames, ", "))
		} else if !seen[pr.Component] {
			add(p+".component", "%q is not a configured component (one of %s)", pr.Component, strings.Join(compNames, ", "))
		}
		for j, b := range pr.Branches {
			if strings.TrimSpace(b) == "" {
				add(fmt.Sprintf("%s.branches[%d]", p, j), "empty branch name")
			}
		}
	}

	// chart
	if c.Chart.Ref == "" {
		add("chart.ref", "required: a local chart folder, oci://registry/chart, or a repository URL ending in the chart name")
	}
	if err := checkTemplate(c.Chart.URLTemplate, sampleEnv); err != nil {
		add("chart.url_template", "%v", err)
	}
	for path, tmpl := range c.Chart.EnvValues {
		if !validPath(path) {
			add("chart.env_values", "%q is not a dotted chart-values path like a.b.c", path)
		}
		if err := checkTemplate(tmpl, sampleEnv); err != nil {
			add("chart.env_values."+path, "%v", err)
		}
	}

	// kubernetes
	k := c.Kubernetes
	if !dnsPrefix.MatchString(strings.TrimSuffix(k.NamespacePrefix, "-")) {
		add("kubernetes.namespace_prefix", "%q must be lower-case letters, digits and '-', at most 20 characters", k.NamespacePrefix)
	}
	if k.MaxParallel < 1 {
		add("kubernetes.max_parallel", "must be at least 1, got %d", k.MaxParallel)
	}
	if k.DeployTimeout.D() < time.Second {
		add("kubernetes.deploy_timeout", "must be at least 1s")
	}
	if k.TestTimeout.D() < time.Second {
		add("kubernetes.test_timeout", "must be at least 1s")
	}
	if k.Retries < 0 {
		add("kubernetes.retries", "must not be negative")
	}
	if err := k.NamespacePolicy().Validate(); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			add("kubernetes."+line[:strings.IndexAny(line+":", "[:")], "%s", line)
		}
	}
	if k.MaxEnvs < 0 {
		add("kubernetes.max_envs", "must not be negative (0 means no cap)")
	}
	if k.MaxSleeping < 0 {
		add("kubernetes.max_sleeping", "must not be negative (0 means no cap)")
	}
	if k.CrashRestarts < 1 {
		add("kubernetes.crash_restarts", "must be at least 1 (default %d), got %d", DefaultCrashRestarts, k.CrashRestarts)
	}
	if k.ReadyTimeout.D() < time.Second {
		add("kubernetes.ready_timeout", "must be at least 1s (default %s)", DefaultReadyTimeout)
	}
	if k.ImageWait.D() < time.Second {
		add("kubernetes.image_wait", "must be at least 1s (default %s)", DefaultImageWait)
	}
	if len(k.Instance) > 63 || !labelValue.MatchString(k.Instance) {
		add("kubernetes.instance", "%q must be a Kubernetes label value: lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters (default %q)", k.Instance, DefaultInstance)
	}

	// web
	if _, _, err := net.SplitHostPort(c.Web.Listen); err != nil {
		add("web.listen", "%q is not host:port (e.g. :8080)", c.Web.Listen)
	}
	if u, err := url.Parse(c.Web.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add("web.public_url", "%q is not an http(s) URL", c.Web.PublicURL)
	}

	validateState(c, add)

	// report
	if !oneOf(c.Report.NotifyOnSuccess, notifyValues) {
		add("report.notify_on_success", "%q is not one of %s", c.Report.NotifyOnSuccess, strings.Join(notifyValues, ", "))
	}
	if !oneOf(c.Report.NotifyOnFailure, notifyValues) {
		add("report.notify_on_failure", "%q is not one of %s", c.Report.NotifyOnFailure, strings.Join(notifyValues, ", "))
	}
	if n := c.Report.MaxLogBytes; n < MinMaxLogBytes || n > MaxMaxLogBytes {
		add("report.max_log_bytes", "%d is out of range: a run's test logs may be limited to %d (4 KiB) to %d (64 MiB) bytes; default %d (1 MiB)", n, MinMaxLogBytes, MaxMaxLogBytes, DefaultMaxLogBytes)
	}

	// chat
	ch := c.Chat
	if strings.ContainsAny(ch.Prefix, " \t") || len(ch.Prefix) > 3 {
		add("chat.prefix", "%q must be 1 to 3 characters without spaces", ch.Prefix)
	}
	if irc := ch.IRC; irc != nil {
		if _, _, err := net.SplitHostPort(irc.Server); err != nil {
			add("chat.irc.server", "%q is not host:port (e.g. irc.libera.chat:6697)", irc.Server)
		}
		if irc.Nick == "" {
			add("chat.irc.nick", "required")
		}
		for i, chn := range irc.Channels {
			if !strings.HasPrefix(chn, "#") && !strings.HasPrefix(chn, "&") {
				add(fmt.Sprintf("chat.irc.channels[%d]", i), "%q must start with # or &", chn)
			}
		}
		if _, err := Secret(irc.PasswordEnv, ""); err != nil {
			add("chat.irc.password_env", "%v", err)
		}
		if _, err := Secret(irc.NickServPasswordEnv, ""); err != nil {
			add("chat.irc.nickserv_password_env", "%v", err)
		}
	}
	if sl := ch.Slack; sl != nil {
		for path, env := range map[string]string{"chat.slack.bot_token_env": sl.BotTokenEnv, "chat.slack.app_token_env": sl.AppTokenEnv} {
			if env == "" {
				add(path, "required: the environment variable holding the token")
			} else if _, err := Secret(env, ""); err != nil {
				add(path, "%v", err)
			}
		}
	}
	if ch.RatePerMinute < 0 {
		add("chat.rate_per_minute", "must not be negative")
	}
	validatePermissions(ch, add)
	validateMore(c, add)

	// cleanup
	if err := ValidateSchedule(c.Cleanup.Schedule); err != nil {
		add("cleanup.schedule", "%v", err)
	}
	if c.Cleanup.TTLDefault > c.Cleanup.TTLMax {
		add("cleanup.ttl_default", "%s is longer than cleanup.ttl_max (%s)", c.Cleanup.TTLDefault.D(), c.Cleanup.TTLMax.D())
	}
	return errs
}

// validateState checks state and ha.
func validateState(c *Config, add func(path, format string, args ...any)) {
	st := c.State
	switch st.Driver {
	case DriverSQLite:
		if st.DSNEnv != "" || st.DSNFile != "" {
			add("state.dsn_env", "a DSN is for state.driver: postgres; SQLite uses state.path")
		}
	case DriverPostgres:
		if st.Path != "" {
			add("state.path", "is the SQLite file; with state.driver: postgres name the DSN with state.dsn_env or state.dsn_file instead")
		}
		switch {
		case st.DSNEnv != "" && st.DSNFile != "":
			add("state.dsn_env", "set dsn_env or dsn_file, not both")
		case st.DSNEnv == "" && st.DSNFile == "":
			add("state.dsn_env", "required with state.driver: postgres: the environment variable (dsn_env) or file (dsn_file) holding the connection URL, e.g. postgres://ductbot:PASSWORD@db:5432/ductbot?sslmode=verify-full")
		default:
			if _, err := st.DSN(); err != nil {
				add("state.dsn_env", "%v", err)
			}
		}
	default:
		add("state.driver", "%q is not %s (an embedded file, the default) or %s (a shared database)", st.Driver, DriverSQLite, DriverPostgres)
	}
	if c.HA.Enabled && st.Driver != DriverPostgres {
		add("ha.enabled", "high availability needs state.driver: postgres: replicas cannot share an SQLite file "+
			"(it lives on one pod's volume and its locks do not reach across nodes), so a replica taking over would start from empty state")
	}
	if n := c.HA.LeaseName; c.HA.Enabled && (len(n) > 253 || !dnsSubdomain.MatchString(n)) {
		add("ha.lease_name", "%q is not a Kubernetes object name: lower-case letters, digits, '-' and '.', at most 253 characters", n)
	}
	if n := c.HA.LeaseNamespace; n != "" && (len(n) > 63 || !labelValue.MatchString(n)) {
		add("ha.lease_namespace", "%q is not a Kubernetes namespace name: lower-case letters, digits and '-', at most 63 characters", n)
	}
	// The rules of core/leader.New, reported with their keys.
	switch ha := c.HA; {
	case ha.LeaseDuration < Duration(2*time.Second) || ha.LeaseDuration.D()%time.Second != 0:
		add("ha.lease_duration", "%s: want whole seconds, at least 2s (the Lease records times to the second)", ha.LeaseDuration.D())
	case ha.LeaseDuration.D()-ha.RenewDeadline.D() < 2*time.Second:
		add("ha.renew_deadline", "%s: want at least 2s shorter than ha.lease_duration (%s), the safety margin before a follower may take over", ha.RenewDeadline.D(), ha.LeaseDuration.D())
	case ha.RetryPeriod <= 0 || ha.RenewDeadline.D() <= time.Duration(1.2*float64(ha.RetryPeriod)):
		add("ha.retry_period", "%s: want more than 0, and ha.renew_deadline (%s) longer than 1.2 times it (client-go's jitter)", ha.RetryPeriod.D(), ha.RenewDeadline.D())
	}
}

// scheduleHelp says what a cron schedule may look like.
const scheduleHelp = `expected five fields (minute hour day-of-month month day-of-week, such as "*/10 * * * *"), ` +
	`optionally after "TZ=Area/City ", or a descriptor such as "@every 10m", "@hourly" or "@daily"`

// ValidateSchedule checks a cron schedule as the cleanup sweep's cron will
// parse it. It never panics, even for specs that make the cron parser panic
// (such as "TZ=UTC" with nothing after it), and says what is expected.
func ValidateSchedule(spec string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%q is not a cron schedule: %s", spec, scheduleHelp)
		}
	}()
	if strings.TrimSpace(spec) == "" {
		return errors.New("the cron schedule is empty: " + scheduleHelp)
	}
	if every, ok := strings.CutPrefix(spec, "@every "); ok {
		if d, derr := time.ParseDuration(strings.TrimSpace(every)); derr == nil && d < time.Second {
			return fmt.Errorf("%q: the interval must be at least 1s; %s", spec, scheduleHelp)
		}
	}
	if _, perr := cron.ParseStandard(spec); perr != nil {
		return fmt.Errorf("%q is not a cron schedule (%v): %s", spec, perr, scheduleHelp)
	}
	return nil
}

// TemplateFuncs are the functions templates in the configuration may call,
// besides text/template's own.
var TemplateFuncs = template.FuncMap{
	"contains":  strings.Contains,
	"hasPrefix": strings.HasPrefix,
	"lower":     strings.ToLower,
}

func validPath(p string) bool {
	if p == "" {
		return false
	}
	for _, seg := range strings.Split(p, ".") {
		if seg == "" {
			return false
		}
	}
	return true
}

func oneOf(s string, set []string) bool {
	for _, v := range set {
		if s == v {
			return true
		}
	}
	return false
}
