// Package metrics holds ductbot's Prometheus collectors. One *Metrics is made
// at start-up and handed to every part that counts something; web serves its
// Registry on /metrics.
package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// OtherProject is the project label of a run whose project is not one
// configured (see Metrics.SetProjects), so that the label's values are
// bounded by the configuration, not by what Gerrit or chat send.
const OtherProject = "other"

// RunResults are the results ductbot_runs_total counts (run.Result's
// values); SetProjects starts each project's count of each at zero, so
// that increase() sees a project's first run of a result.
var RunResults = []string{"passed", "failed", "error", "superseded", "canceled"}

// Metrics is the set of collectors ductbot exports. All fields are non-nil
// after New.
type Metrics struct {
	Registry *prometheus.Registry

	// The run metrics. Their project label is Project(run.Project): a
	// configured project's name or OtherProject.
	RunsTotal          *prometheus.CounterVec   // labels: project, result
	DeployDuration     *prometheus.HistogramVec // seconds; label: project
	TestDuration       *prometheus.HistogramVec // seconds; label: project
	QueueDepth         prometheus.Gauge         // runs waiting for a deploy slot
	LiveEnvs           prometheus.Gauge         // environments not gone
	GerritPollDuration prometheus.Histogram     // seconds per poll cycle
	GerritPollErrors   prometheus.Counter
	ChatMessages       *prometheus.CounterVec // labels: network, outcome (sent|dropped|retried)
	SweepRemovals      *prometheus.CounterVec // label: policy
	SweepSkips         *prometheus.CounterVec // label: reason

	GerritStreamConnected   prometheus.Gauge       // 1 while the SSH event stream runs
	GerritStreamEvents      *prometheus.CounterVec // label: type (Gerrit's, or other, invalid)
	GerritStreamReconnects  prometheus.Counter
	GerritReconcileDuration *prometheus.HistogramVec // seconds per poll cycle; label: reason

	BuildInfo          *prometheus.GaugeVec   // 1; labels: version, revision, goversion
	LastSuccessfulPoll prometheus.Gauge       // Unix time of the last Gerrit poll cycle without error
	LastSweep          prometheus.Gauge       // Unix time of the last cleanup sweep that finished without error
	ChatConnected      *prometheus.GaugeVec   // label: network; 1 while its adapter runs, 0 once it stopped
	Reviews            *prometheus.CounterVec // labels: label (e.g. Verified), result (+1, -1, error)

	// Projects are the configured projects, the values of the project
	// label besides OtherProject (an exported field: tools reflect over
	// Metrics).
	Projects *ProjectSet
}

// ProjectSet is a set of project names, safe for concurrent use. The zero
// value is empty.
type ProjectSet struct {
	names atomic.Pointer[map[string]bool]
}

// Has reports whether name is in the set.
func (s *ProjectSet) Has(name string) bool {
	known := s.names.Load()
	return known != nil && (*known)[name]
}

// SetProjects names the configured projects: the values the project label
// of the run metrics may take besides OtherProject. It starts their run
// series at zero. Before it is called every run counts as OtherProject.
func (m *Metrics) SetProjects(names []string) {
	known := make(map[string]bool, len(names))
	for _, n := range names {
		if n != "" && n != OtherProject {
			known[n] = true
		}
	}
	m.Projects.names.Store(&known)
	for p := range known {
		m.zero(p)
	}
	m.zero(OtherProject)
}

// zero makes project's run series, so that they are exported before its
// first run.
func (m *Metrics) zero(project string) {
	for _, r := range RunResults {
		m.RunsTotal.WithLabelValues(project, r)
	}
	m.DeployDuration.WithLabelValues(project)
	m.TestDuration.WithLabelValues(project)
}

// Project is the project label of a run of project: its name when it is
// configured, else OtherProject.
func (m *Metrics) Project(project string) string {
	if m.Projects.Has(project) {
		return project
	}
	return OtherProject
}

// New makes the collectors and registers them, with the Go and process
// collectors, on a fresh registry.
func New() *Metrics {
	durations := []float64{1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800}
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Projects: &ProjectSet{},
		RunsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ductbot_runs_total", Help: "Finished runs by project (a configured one, or other) and result.",
		}, []string{"project", "result"}),
		DeployDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ductbot_deploy_duration_seconds", Help: "Time to deploy an environment, by project (a configured one, or other).", Buckets: durations,
		}, []string{"project"}),
		TestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ductbot_test_duration_seconds", Help: "Time to run an environment's tests, by project (a configured one, or other).", Buckets: durations,
		}, []string{"project"}),
		QueueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ductbot_queue_depth", Help: "Runs waiting for a deploy slot.",
		}),
		LiveEnvs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ductbot_live_environments", Help: "Environments that exist now.",
		}),
		GerritPollDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ductbot_gerrit_poll_duration_seconds", Help: "Time of one Gerrit poll cycle.", Buckets: prometheus.DefBuckets,
		}),
		GerritPollErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ductbot_gerrit_poll_errors_total", Help: "Gerrit poll cycles that failed.",
		}),
		ChatMessages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ductbot_chat_messages_total", Help: "Chat messages by network and outcome (sent, dropped, retried).",
		}, []string{"network", "outcome"}),
		SweepRemovals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ductbot_sweep_removals_total", Help: "Environments removed by cleanup, by policy.",
		}, []string{"policy"}),
		SweepSkips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ductbot_sweep_skips_total", Help: "Environments a sweep skipped, by reason.",
		}, []string{"reason"}),
		GerritStreamConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ductbot_gerrit_stream_connected", Help: "1 while the Gerrit stream-events connection runs, else 0.",
		}),
		GerritStreamEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ductbot_gerrit_stream_events_total", Help: "Lines read from Gerrit's event stream, by event type (other: a type ductbot ignores; invalid: unreadable).",
		}, []string{"type"}),
		GerritStreamReconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ductbot_gerrit_stream_reconnects_total", Help: "Connection attempts to Gerrit's event stream after the first.",
		}),
		GerritReconcileDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ductbot_gerrit_reconcile_duration_seconds", Help: "Time of one REST reconcile (poll cycle: query and handling), by why it ran.",
			Buckets: prometheus.DefBuckets,
		}, []string{"reason"}),
		BuildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ductbot_build_info", Help: "Always 1; the labels say which ductbot runs.",
		}, []string{"version", "revision", "goversion"}),
		LastSuccessfulPoll: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ductbot_last_successful_poll_timestamp_seconds", Help: "Unix time of the last Gerrit poll cycle that succeeded.",
		}),
		LastSweep: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ductbot_last_sweep_timestamp_seconds", Help: "Unix time of the last cleanup sweep that finished without error.",
		}),
		ChatConnected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ductbot_chat_connected", Help: "1 while a chat network's adapter runs, 0 once it stopped (see /readyz for why).",
		}, []string{"network"}),
		Reviews: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ductbot_reviews_total", Help: "Reviews posted to Gerrit, by label and result (+1, -1, or error when posting failed).",
		}, []string{"label", "result"}),
	}
	m.Registry.MustRegister(
		prometheus.NewGoCollector(),
		prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}),
		m.RunsTotal, m.DeployDuration, m.TestDuration, m.QueueDepth, m.LiveEnvs,
		m.GerritPollDuration, m.GerritPollErrors, m.ChatMessages, m.SweepRemovals, m.SweepSkips,
		m.GerritStreamConnected, m.GerritStreamEvents, m.GerritStreamReconnects, m.GerritReconcileDuration,
		m.BuildInfo, m.LastSuccessfulPoll, m.LastSweep, m.ChatConnected, m.Reviews,
	)
	return m
}
