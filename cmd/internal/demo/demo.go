// Package demo is what `ductbot-dev demo` and the end-to-end tests share:
// the configuration ductbot runs with against the local control plane, the
// Gerrit test server and the example chart, and helpers that follow the
// reviews ductbot posts. It is a development package: the production
// binary must not link it (cmd/ductbot's TestProductionBinaryHasNoDevPackages).
package demo

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ductbot/ductbot/core/gerrit/gerrittest"
)

// Project is the Gerrit project the demo uploads to; its patch sets
// replace the orchestrator.
const Project = "wikifunctions/function-orchestrator"

// WikiProject is the demo's second project, the wiki extension: a change
// there and one in Project that names it in a Depends-On footer are tested
// together.
const WikiProject = "mediawiki/extensions/WikiLambda"

// configTemplate is the configuration the demo runs ductbot with. The chart's
// simulation knobs follow the commit subject: "FAIL" fails the tests,
// "SLOW" makes them take 20 seconds (time enough to supersede), "CRASH"
// makes the patch's orchestrator crash-loop.
const configTemplate = `
gerrit:
  url: %q
  username: ductbot
  password_env: DUCTBOT_DEMO_GERRIT_PASSWORD
  poll_interval: 2s
projects:
  - name: %s
    component: orchestrator
    channels: ["#wikifunctions"]
    trusted: {accounts: [alice]}
  - name: %s
    component: wiki
    channels: ["#wikifunctions"]
    trusted: {accounts: [alice]}
components:
  - {name: wiki, default_ref: "1.45.0", values: {wiki.image.tag: "{{.Ref}}"}}
  - {name: orchestrator, default_ref: "2026-11-20", ref_template: "{{printf \"%%.12s\" .Revision}}", values: {orchestrator.image.tag: "{{.Ref}}"}}
  - {name: evaluator, default_ref: "2026-11-20", values: {evaluator.image.tag: "{{.Ref}}"}}
chart:
  ref: %q
  env_values:
    ingress.host: "{{.Env}}.envs.localhost"
    orchestrator.simulate.mode: '{{if contains .Subject "CRASH"}}crash{{end}}'
    e2e.simulate.outcome: '{{if contains .Subject "FAIL"}}fail{{else}}pass{{end}}'
    e2e.simulate.duration: '{{if contains .Subject "SLOW"}}20s{{else}}2s{{end}}'
    e2e.simulate.log: |-
      e2e: testing {{.Env}} at {{.URL}}
      e2e: wiki answers /w/api.php
      e2e: orchestrator answers /_info
      {{if contains .Subject "FAIL"}}e2e: Z801 (echo) returned nothing; expected "hello"
      e2e: 1 failing, 3 passing{{else}}e2e: Z801 (echo) returned "hello"
      e2e: 4 passing{{end}}
  url_template: "http://{{.Env}}.envs.localhost/"
kubernetes: {kubeconfig: %q, deploy_timeout: 2m, test_timeout: 2m, retries: 1, retry_backoff: 2s, max_envs: 10, quota: {pods: "20", requests.cpu: "4"}, default_requests: {cpu: 50m, memory: 64Mi}, isolate: true}
web: {listen: %q}
state: {path: %q}
chat:
  console: true
  default_allow: ["*"]
  # The person at this terminal runs the demo: they may vouch for the
  # drive-by uploader's patch sets with !env.
  permissions: {vouch: ["console:*"]}
cleanup: {schedule: "@every 1m", ttl_default: 2h}
`

// Config is the demo's configuration (YAML) for a Gerrit test server at
// gerritURL (user ductbot, password in $DUCTBOT_DEMO_GERRIT_PASSWORD), the
// example chart at chartPath, a cluster reached through kubeconfig, the
// dashboard on listen and the state file statePath. The console chat is on.
func Config(gerritURL, chartPath, kubeconfig, listen, statePath string) string {
	return fmt.Sprintf(configTemplate, gerritURL, Project, WikiProject, chartPath, kubeconfig, listen, statePath)
}

// WatchVotes prints every review ductbot posts on the Gerrit test server.
func WatchVotes(ctx context.Context, g *gerrittest.Server, say func(string)) {
	seen := 0
	for {
		reviews := g.Reviews()
		for _, r := range reviews[seen:] {
			vote := "comment"
			for label, v := range r.Labels {
				vote = fmt.Sprintf("%s %+d", label, v)
			}
			first, _, _ := strings.Cut(r.Message, "\n")
			for _, l := range strings.Split(r.Message, "\n") {
				if strings.HasPrefix(l, "Depends-On: ") {
					first += " [" + l + "]"
				}
			}
			say(fmt.Sprintf("Gerrit: %s on change %d patch set %d (notify %s): %s", vote, r.Change, r.PatchSet, r.Notify, first))
		}
		seen = len(reviews)
		select {
		case <-ctx.Done():
			return
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// WaitVotes waits until a change has n reviews with a vote.
func WaitVotes(ctx context.Context, g *gerrittest.Server, change, n int) {
	for ctx.Err() == nil {
		got := 0
		for _, r := range g.Reviews() {
			if r.Change == change && len(r.Labels) > 0 {
				got++
			}
		}
		if got >= n {
			time.Sleep(500 * time.Millisecond) // let the announcement print
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
}
