package deploy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/ductbot/ductbot/core/k8s/localcluster"
)

const chartDir = "chart/ductbot"

const releaseNamespace = "ductbot-system"

// releaseName is the release render renders (renderRelease changes it).
var releaseName = "ductbot"

// sampleConfig is a ductbot.yaml as an operator would write it in values.
func sampleConfig() map[string]any {
	return map[string]any{
		"gerrit": map[string]any{
			"url": "https://gerrit.example.org", "username": "ductbot",
			"password_env": "GERRIT_PASSWORD", "vote_label": "Verified",
		},
		"projects": []any{map[string]any{
			"name": "mediawiki/extensions/WikiLambda", "branches": []any{"master"},
			"component": "wiki", "channels": []any{"#wikilambda"},
		}},
		"chart":      map[string]any{"ref": "oci://registry.example.org/charts/wikifunctions", "version": "1.2.3"},
		"kubernetes": map[string]any{"namespace_prefix": "wf-", "max_parallel": 2},
		"chat":       map[string]any{"slack": map[string]any{"bot_token_env": "SLACK_BOT_TOKEN", "app_token_env": "SLACK_APP_TOKEN"}},
	}
}

// rendered is a chart rendered to typed objects.
type rendered struct {
	objs []runtime.Object
}

func (r rendered) kinds() []string {
	var out []string
	for _, o := range r.objs {
		out = append(out, o.GetObjectKind().GroupVersionKind().Kind)
	}
	sort.Strings(out)
	return out
}

// only returns the single object of type T, failing the test otherwise.
func only[T runtime.Object](t *testing.T, r rendered) T {
	t.Helper()
	all := all[T](r)
	if len(all) != 1 {
		var zero T
		t.Fatalf("want exactly one %T, got %d (kinds: %v)", zero, len(all), r.kinds())
	}
	return all[0]
}

func all[T runtime.Object](r rendered) []T {
	var out []T
	for _, o := range r.objs {
		if v, ok := o.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// render renders the chart as Helm would for `helm install ductbot` into
// ductbot-system, with caps (nil: what `helm template` assumes).
func render(t *testing.T, vals map[string]any, caps *chartutil.Capabilities) (rendered, error) {
	t.Helper()
	ch := loadChart(t)
	if caps == nil {
		caps = chartutil.DefaultCapabilities
	}
	// As Helm reads a values file: YAML to JSON types (numbers as
	// json.Number, lists as []any), so that the schema sees what it would.
	b, err := sigsyaml.Marshal(vals)
	if err != nil {
		t.Fatal(err)
	}
	vals, err = chartutil.ReadValues(b)
	if err != nil {
		t.Fatal(err)
	}
	rv, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{
		Name: releaseName, Namespace: releaseNamespace, Revision: 1, IsInstall: true,
	}, caps)
	if err != nil {
		return rendered{}, err
	}
	files, err := engine.Render(ch, rv)
	if err != nil {
		return rendered{}, err
	}
	names := slices.Sorted(maps.Keys(files))
	var r rendered
	decode := scheme.Codecs.UniversalDeserializer().Decode
	for _, name := range names {
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		for _, doc := range strings.Split(files[name], "\n---") {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			obj, _, err := decode([]byte(doc), nil, nil)
			if runtime.IsNotRegisteredError(err) {
				// A custom resource (the ServiceMonitor).
				u := &unstructured.Unstructured{}
				if err = sigsyaml.Unmarshal([]byte(doc), &u.Object); err == nil {
					obj = u
				}
			}
			if err != nil {
				t.Fatalf("%s does not decode as a Kubernetes object: %v\n%s", name, err, doc)
			}
			r.objs = append(r.objs, obj)
		}
	}
	return r, nil
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func mustRender(t *testing.T, vals map[string]any) rendered {
	t.Helper()
	r, err := render(t, vals, nil)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return r
}

// TestChartLint runs Helm's linter, strictly: any warning or error fails,
// with the default values and with the optional parts turned on.
func TestChartLint(t *testing.T) {
	for name, vals := range map[string]map[string]any{
		"defaults":      nil,
		"everything on": everythingOn(),
	} {
		t.Run(name, func(t *testing.T) {
			linter := lint.AllWithKubeVersion(chartDir, vals, releaseNamespace, nil)
			for _, m := range linter.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("helm lint: %s", m)
				}
			}
		})
	}
}

func TestChartDeployment(t *testing.T) {
	r := mustRender(t, map[string]any{
		"config":                        sampleConfig(),
		"terminationGracePeriodSeconds": 600,
	})
	d := only[*appsv1.Deployment](t, r)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Errorf("replicas = %v, want exactly 1 (one writer of the SQLite file)", d.Spec.Replicas)
	}
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("strategy = %q, want Recreate (never two pods on the state file)", d.Spec.Strategy.Type)
	}
	pod := d.Spec.Template.Spec
	if pod.TerminationGracePeriodSeconds == nil || *pod.TerminationGracePeriodSeconds != 600 {
		t.Errorf("terminationGracePeriodSeconds = %v, want 600 from values", pod.TerminationGracePeriodSeconds)
	}
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("pod securityContext = %+v, want runAsNonRoot with a non-zero runAsUser", psc)
	}
	if pod.ServiceAccountName != "ductbot" {
		t.Errorf("serviceAccountName = %q, want ductbot", pod.ServiceAccountName)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("container securityContext = %+v, want a read-only root, no privilege escalation, all capabilities dropped", sc)
	}
	if want := "run --config /etc/ductbot/ductbot.yaml --grace 590s --log-format json --log-level info"; strings.Join(c.Args, " ") != want {
		t.Errorf("args = %q, want %s", strings.Join(c.Args, " "), want)
	}
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources = %+v, want memory requests and limits", c.Resources)
	}

	port := map[string]int32{}
	for _, p := range c.Ports {
		port[p.Name] = p.ContainerPort
	}
	if port["http"] != 8080 {
		t.Errorf("container ports = %v, want http on 8080", c.Ports)
	}
	for name, probe := range map[string]struct {
		p    *corev1.Probe
		path string
	}{"liveness": {c.LivenessProbe, "/healthz"}, "readiness": {c.ReadinessProbe, "/readyz"}, "startup": {c.StartupProbe, "/healthz"}} {
		if probe.p == nil || probe.p.HTTPGet == nil {
			t.Errorf("%s probe = %+v, want an HTTP GET", name, probe.p)
			continue
		}
		if probe.p.HTTPGet.Path != probe.path || probe.p.HTTPGet.Port.String() != "http" {
			t.Errorf("%s probe GETs %s on port %s, want %s on http", name, probe.p.HTTPGet.Path, probe.p.HTTPGet.Port.String(), probe.path)
		}
	}

	ann := d.Spec.Template.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != "8080" || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("pod annotations = %v, want Prometheus to scrape :8080/metrics", ann)
	}
	if len(ann["checksum/config"]) != 64 {
		t.Errorf("checksum/config = %q, want a sha256 of the ConfigMap", ann["checksum/config"])
	}

	// Mounts: the config from the ConfigMap, the state on the claim, a
	// writable /tmp, nothing else writable.
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	cm := only[*corev1.ConfigMap](t, r)
	if m := mounts["config"]; m.MountPath != "/etc/ductbot" || !m.ReadOnly || vols["config"].ConfigMap == nil || vols["config"].ConfigMap.Name != cm.Name {
		t.Errorf("config mount %+v from %+v, want the ConfigMap %s read-only at /etc/ductbot", m, vols["config"], cm.Name)
	}
	pvc := only[*corev1.PersistentVolumeClaim](t, r)
	if m := mounts["state"]; m.MountPath != "/var/lib/ductbot" || vols["state"].PersistentVolumeClaim == nil || vols["state"].PersistentVolumeClaim.ClaimName != pvc.Name {
		t.Errorf("state mount %+v from %+v, want the claim %s at /var/lib/ductbot", m, vols["state"], pvc.Name)
	}
	if pvc.Annotations["helm.sh/resource-policy"] != "keep" {
		t.Errorf("PVC annotations = %v, want helm.sh/resource-policy: keep by default", pvc.Annotations)
	}

	svc := only[*corev1.Service](t, r)
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.String() != "http" {
		t.Errorf("service ports = %+v, want one targeting http", svc.Spec.Ports)
	}
	if !reflect.DeepEqual(svc.Spec.Selector, d.Spec.Selector.MatchLabels) || !subset(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
		t.Errorf("service selector %v, deployment selector %v, pod labels %v: want them to match", svc.Spec.Selector, d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
	}
	if got := all[*networkingv1.Ingress](r); len(got) != 0 {
		t.Errorf("an Ingress by default; want none unless ingress.enabled")
	}
}

func subset(a, b map[string]string) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return len(a) > 0
}

// configOf parses the ConfigMap's ductbot.yaml.
func configOf(t *testing.T, r rendered) map[string]any {
	t.Helper()
	cm := only[*corev1.ConfigMap](t, r)
	text, ok := cm.Data["ductbot.yaml"]
	if !ok {
		t.Fatalf("ConfigMap data keys %v, want ductbot.yaml", slices.Collect(maps.Keys(cm.Data)))
	}
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
		t.Fatalf("ductbot.yaml is not YAML: %v\n%s", err, text)
	}
	return cfg
}

func TestChartConfig(t *testing.T) {
	t.Run("values become ductbot.yaml with the chart's defaults", func(t *testing.T) {
		got := configOf(t, mustRender(t, map[string]any{"config": sampleConfig()}))
		want := sampleConfig()
		want["state"] = map[string]any{"path": "/var/lib/ductbot/ductbot.db"}
		want["web"] = map[string]any{"listen": ":8080"}
		want["kubernetes"].(map[string]any)["instance"] = "ductbot"
		if !reflect.DeepEqual(normalize(t, got), normalize(t, want)) {
			t.Errorf("ductbot.yaml =\n%v\nwant\n%v", got, want)
		}
	})
	t.Run("explicit settings are kept", func(t *testing.T) {
		cfg := sampleConfig()
		cfg["state"] = map[string]any{"path": "/var/lib/ductbot/sub/state.sqlite"}
		cfg["web"] = map[string]any{"listen": "0.0.0.0:8080", "public_url": "https://ci.example.org/ductbot"}
		got := configOf(t, mustRender(t, map[string]any{"config": cfg, "ingress": map[string]any{"enabled": true}}))
		if p := dig(got, "state", "path"); p != "/var/lib/ductbot/sub/state.sqlite" {
			t.Errorf("state.path = %v, want the configured one", p)
		}
		if u := dig(got, "web", "public_url"); u != "https://ci.example.org/ductbot" {
			t.Errorf("web.public_url = %v, want the configured one, not the ingress host", u)
		}
	})
	t.Run("public_url from the ingress", func(t *testing.T) {
		got := configOf(t, mustRender(t, map[string]any{"config": sampleConfig(),
			"ingress": map[string]any{"enabled": true, "host": "ductbot.ci.example.org", "tlsSecretName": "tls"}}))
		if u := dig(got, "web", "public_url"); u != "https://ductbot.ci.example.org" {
			t.Errorf("web.public_url = %v, want https://ductbot.ci.example.org", u)
		}
	})
	t.Run("a config change rolls the pod, an unrelated change does not", func(t *testing.T) {
		sum := func(vals map[string]any) string {
			return only[*appsv1.Deployment](t, mustRender(t, vals)).Spec.Template.Annotations["checksum/config"]
		}
		base := sum(map[string]any{"config": sampleConfig()})
		changed := sampleConfig()
		changed["kubernetes"].(map[string]any)["max_parallel"] = 3
		if sum(map[string]any{"config": changed}) == base {
			t.Error("checksum/config did not change with the config")
		}
		if sum(map[string]any{"config": sampleConfig(), "resources": map[string]any{"limits": map[string]any{"memory": "1Gi"}}}) != base {
			t.Error("checksum/config changed with resources, which are not config")
		}
	})
	for name, tc := range map[string]struct {
		vals map[string]any
		want string
	}{
		"state off the volume":     {map[string]any{"config": map[string]any{"state": map[string]any{"path": "/tmp/ductbot.db"}}}, "config.state.path"},
		"state next to the volume": {map[string]any{"config": map[string]any{"state": map[string]any{"path": "/var/lib/ductbot2/x.db"}}}, "config.state.path"},
		"listen on another port":   {map[string]any{"config": map[string]any{"web": map[string]any{"listen": ":9090"}}}, "config.web.listen"},
		"secretEnv without a key":  {map[string]any{"secretEnv": map[string]any{"X": map[string]any{"name": "s"}}}, "secretEnv.X.key"},
		"no rules":                 {map[string]any{"rbac": map[string]any{"environmentRules": []any{}}}, "rbac.environmentRules"},
	} {
		t.Run("refused: "+name, func(t *testing.T) {
			_, err := render(t, tc.vals, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("render error = %v, want one naming %s", err, tc.want)
			}
		})
	}
}

func dig(m map[string]any, keys ...string) any {
	var cur any = m
	for _, k := range keys {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[k]
	}
	return cur
}

// normalize round-trips through YAML so that ints and slices compare equal
// whichever way they were built.
func normalize(t *testing.T, v any) any {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := yaml.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestChartSecrets: tokens reach the pod only as references to existing
// Secrets; the chart renders no Secret and no secret value.
func TestChartSecrets(t *testing.T) {
	r := mustRender(t, map[string]any{
		"config": sampleConfig(),
		"secretEnv": map[string]any{
			"GERRIT_PASSWORD": map[string]any{"name": "ductbot-gerrit", "key": "password"},
			"SLACK_BOT_TOKEN": map[string]any{"name": "ductbot-slack", "key": "bot-token"},
		},
	})
	if s := all[*corev1.Secret](r); len(s) != 0 {
		t.Errorf("the chart rendered %d Secret(s); it must only reference existing ones", len(s))
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range only[*appsv1.Deployment](t, r).Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e
	}
	for name, want := range map[string][2]string{
		"GERRIT_PASSWORD": {"ductbot-gerrit", "password"},
		"SLACK_BOT_TOKEN": {"ductbot-slack", "bot-token"},
	} {
		e, ok := env[name]
		if !ok {
			t.Errorf("no %s in the container's environment", name)
			continue
		}
		if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil ||
			e.ValueFrom.SecretKeyRef.Name != want[0] || e.ValueFrom.SecretKeyRef.Key != want[1] {
			t.Errorf("%s = %+v, want a secretKeyRef to %s/%s", name, e, want[0], want[1])
		}
	}
}

func TestChartPersistence(t *testing.T) {
	volume := func(r rendered) corev1.Volume {
		for _, v := range only[*appsv1.Deployment](t, r).Spec.Template.Spec.Volumes {
			if v.Name == "state" {
				return v
			}
		}
		t.Fatal("no state volume")
		return corev1.Volume{}
	}
	r := mustRender(t, map[string]any{"persistence": map[string]any{"existingClaim": "ductbot-state-old"}})
	if n := len(all[*corev1.PersistentVolumeClaim](r)); n != 0 {
		t.Errorf("%d PVC(s) rendered with existingClaim, want none", n)
	}
	if v := volume(r); v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "ductbot-state-old" {
		t.Errorf("state volume = %+v, want the existing claim", v)
	}

	r = mustRender(t, map[string]any{"persistence": map[string]any{"storageClass": "-", "size": "5Gi"}})
	pvc := only[*corev1.PersistentVolumeClaim](t, r)
	if pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != "" {
		t.Errorf(`storageClassName = %v, want "" for "-"`, pvc.Spec.StorageClassName)
	}
	if q := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; q.String() != "5Gi" {
		t.Errorf("storage request = %s, want 5Gi", q.String())
	}
	if pvc.Spec.AccessModes[0] != corev1.ReadWriteOnce {
		t.Errorf("access modes = %v, want ReadWriteOnce", pvc.Spec.AccessModes)
	}

	r = mustRender(t, map[string]any{"persistence": map[string]any{"enabled": false}})
	if v := volume(r); v.EmptyDir == nil || len(all[*corev1.PersistentVolumeClaim](r)) != 0 {
		t.Errorf("persistence off: state volume = %+v, want an emptyDir and no PVC", v)
	}
}

func TestChartIngress(t *testing.T) {
	r := mustRender(t, map[string]any{"ingress": map[string]any{
		"enabled": true, "host": "ductbot.ci.example.org", "className": "nginx", "tlsSecretName": "ductbot-tls",
	}})
	ing := only[*networkingv1.Ingress](t, r)
	svc := only[*corev1.Service](t, r)
	if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != "nginx" {
		t.Errorf("ingressClassName = %v, want nginx", ing.Spec.IngressClassName)
	}
	if len(ing.Spec.Rules) != 1 || ing.Spec.Rules[0].Host != "ductbot.ci.example.org" {
		t.Fatalf("rules = %+v, want one for the host", ing.Spec.Rules)
	}
	be := ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service
	if be == nil || be.Name != svc.Name || be.Port.Name != "http" {
		t.Errorf("backend = %+v, want service %s port http", be, svc.Name)
	}
	if len(ing.Spec.TLS) != 1 || ing.Spec.TLS[0].SecretName != "ductbot-tls" {
		t.Errorf("tls = %+v, want the ductbot-tls Secret", ing.Spec.TLS)
	}
}

func TestChartRBAC(t *testing.T) {
	extra := rbacv1.PolicyRule{APIGroups: []string{"batch"}, Resources: []string{"cronjobs"}, Verbs: []string{"get", "create"}}
	r := mustRender(t, map[string]any{"rbac": map[string]any{"extraEnvironmentRules": []any{map[string]any{
		"apiGroups": extra.APIGroups, "resources": extra.Resources, "verbs": extra.Verbs,
	}}}})
	roles := map[string]*rbacv1.ClusterRole{}
	for _, cr := range all[*rbacv1.ClusterRole](r) {
		roles[cr.Name] = cr
	}
	ns, env := roles["ductbot-namespaces"], roles["ductbot-environments"]
	if ns == nil || env == nil || len(roles) != 2 {
		t.Fatalf("ClusterRoles %v, want ductbot-namespaces and ductbot-environments", slices.Collect(maps.Keys(roles)))
	}
	want := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "create", "update", "delete"}}}
	if !reflect.DeepEqual(ns.Rules, want) {
		t.Errorf("namespaces rules = %+v, want exactly %+v", ns.Rules, want)
	}
	if !reflect.DeepEqual(env.Rules[len(env.Rules)-1], extra) {
		t.Errorf("last environment rule = %+v, want the extra rule %+v appended", env.Rules[len(env.Rules)-1], extra)
	}
	for _, rule := range env.Rules {
		for _, res := range rule.Resources {
			if res == "*" || res == "namespaces" || res == "clusterroles" || res == "rolebindings" || res == "roles" || res == "clusterrolebindings" {
				t.Errorf("environment rules grant %s: %+v", res, rule)
			}
		}
		if slices.Contains(rule.Verbs, "*") || slices.Contains(rule.Verbs, "escalate") || slices.Contains(rule.Verbs, "bind") || slices.Contains(rule.Verbs, "impersonate") {
			t.Errorf("environment rule with a wildcard or privilege verb: %+v", rule)
		}
	}
	sa := only[*corev1.ServiceAccount](t, r)
	bindings := all[*rbacv1.ClusterRoleBinding](r)
	if len(bindings) != 2 {
		t.Fatalf("%d ClusterRoleBindings, want 2", len(bindings))
	}
	for _, b := range bindings {
		if roles[b.RoleRef.Name] == nil || len(b.Subjects) != 1 || b.Subjects[0].Kind != "ServiceAccount" ||
			b.Subjects[0].Name != sa.Name || b.Subjects[0].Namespace != releaseNamespace {
			t.Errorf("binding %s = %+v → %+v, want the chart's ServiceAccount %s/%s bound to a chart role", b.Name, b.Subjects, b.RoleRef, releaseNamespace, sa.Name)
		}
	}

	r = mustRender(t, map[string]any{"rbac": map[string]any{"create": false}, "serviceAccount": map[string]any{"create": false, "name": "ops-made"}})
	if n := len(all[*rbacv1.ClusterRole](r)) + len(all[*rbacv1.ClusterRoleBinding](r)) + len(all[*corev1.ServiceAccount](r)); n != 0 {
		t.Errorf("rbac.create=false, serviceAccount.create=false: %d RBAC objects rendered, want 0", n)
	}
	if got := only[*appsv1.Deployment](t, r).Spec.Template.Spec.ServiceAccountName; got != "ops-made" {
		t.Errorf("serviceAccountName = %q, want ops-made", got)
	}
}

func TestChartGuard(t *testing.T) {
	r := mustRender(t, nil)
	vap := only[*admissionv1.ValidatingAdmissionPolicy](t, r)
	bind := only[*admissionv1.ValidatingAdmissionPolicyBinding](t, r)
	if bind.Spec.PolicyName != vap.Name || !slices.Contains(bind.Spec.ValidationActions, admissionv1.Deny) {
		t.Errorf("binding %+v, want it to enforce (Deny) %s", bind.Spec, vap.Name)
	}
	wantUser := fmt.Sprintf("%q", "system:serviceaccount:"+releaseNamespace+":ductbot")
	if len(vap.Spec.MatchConditions) != 1 || !strings.Contains(vap.Spec.MatchConditions[0].Expression, wantUser) {
		t.Errorf("match conditions %+v, want them to select %s only", vap.Spec.MatchConditions, wantUser)
	}
	if vap.Spec.FailurePolicy == nil || *vap.Spec.FailurePolicy != admissionv1.Fail {
		t.Errorf("failurePolicy = %v, want Fail", vap.Spec.FailurePolicy)
	}

	if r := mustRender(t, map[string]any{"guard": map[string]any{"enabled": false}}); len(all[*admissionv1.ValidatingAdmissionPolicy](r)) != 0 {
		t.Error("guard.enabled=false still renders the policy")
	}

	// Against a cluster without ValidatingAdmissionPolicy the install fails
	// with a clear message rather than silently running unguarded.
	old := *chartutil.DefaultCapabilities
	old.APIVersions = chartutil.VersionSet{"v1", "v1/Namespace", "apps/v1", "apps/v1/Deployment", "admissionregistration.k8s.io/v1"}
	if _, err := render(t, nil, &old); err == nil || !strings.Contains(err.Error(), "guard.enabled") {
		t.Errorf("render on a cluster without ValidatingAdmissionPolicy: err = %v, want one naming guard.enabled", err)
	}
	newer := old
	newer.APIVersions = append(slices.Clone(old.APIVersions), "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy")
	if _, err := render(t, nil, &newer); err != nil {
		t.Errorf("render on a cluster with ValidatingAdmissionPolicy: %v", err)
	}
}

// haValues is a highly available installation: PostgreSQL state from a
// Secret, leader election, replicas.
func haValues(replicas int) map[string]any {
	cfg := sampleConfig()
	cfg["state"] = map[string]any{"driver": "postgres", "dsn_env": "DUCTBOT_STATE_DSN"}
	cfg["ha"] = map[string]any{"enabled": true}
	return map[string]any{
		"config":    cfg,
		"replicas":  replicas,
		"secretEnv": map[string]any{"DUCTBOT_STATE_DSN": map[string]any{"name": "ductbot-state", "key": "dsn"}},
	}
}

// TestChartHA: with config.ha.enabled the chart runs replicas that roll,
// may hold the leader Lease in the release's namespace (and only that
// Lease: RBAC and the admission guard), survive drains (a
// PodDisruptionBudget) and prefer different nodes; without it, one pod
// replaced with Recreate, as before.
func TestChartHA(t *testing.T) {
	r := mustRender(t, haValues(3))
	d := only[*appsv1.Deployment](t, r)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
		t.Errorf("replicas = %v, want 3", d.Spec.Replicas)
	}
	ru := d.Spec.Strategy.RollingUpdate
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || ru == nil ||
		ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 || ru.MaxSurge == nil || ru.MaxSurge.IntValue() != 1 {
		t.Errorf("strategy = %+v, want RollingUpdate with maxUnavailable 0, maxSurge 1", d.Spec.Strategy)
	}
	pod := d.Spec.Template.Spec
	for _, v := range pod.Volumes {
		if v.Name == "state" {
			t.Errorf("a state volume %+v with PostgreSQL state", v)
		}
	}
	if n := len(all[*corev1.PersistentVolumeClaim](r)); n != 0 {
		t.Errorf("%d PVCs with PostgreSQL state, want none", n)
	}
	aff := pod.Affinity
	if aff == nil || aff.PodAntiAffinity == nil || len(aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 ||
		len(aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) != 0 {
		t.Fatalf("affinity = %+v, want one preferred pod anti-affinity term", aff)
	}
	term := aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm
	if term.TopologyKey != "kubernetes.io/hostname" || !reflect.DeepEqual(term.LabelSelector.MatchLabels, d.Spec.Selector.MatchLabels) {
		t.Errorf("anti-affinity term = %+v, want the pods' selector per host", term)
	}

	pdb := only[*policyv1.PodDisruptionBudget](t, r)
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 ||
		!reflect.DeepEqual(pdb.Spec.Selector.MatchLabels, d.Spec.Selector.MatchLabels) {
		t.Errorf("PDB = %+v, want minAvailable 1 over the pods", pdb.Spec)
	}

	cfg := configOf(t, r)
	if got := dig(cfg, "ha"); !reflect.DeepEqual(got, map[string]any{"enabled": true, "lease_name": "ductbot-leader", "lease_namespace": releaseNamespace}) {
		t.Errorf("config ha = %v, want the lease ductbot-leader in %s", got, releaseNamespace)
	}
	if got := dig(cfg, "state"); !reflect.DeepEqual(got, map[string]any{"driver": "postgres", "dsn_env": "DUCTBOT_STATE_DSN"}) {
		t.Errorf("config state = %v, want postgres from DUCTBOT_STATE_DSN and no path", got)
	}

	role := only[*rbacv1.Role](t, r)
	wantRules := []rbacv1.PolicyRule{
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"create"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, ResourceNames: []string{"ductbot-leader"}, Verbs: []string{"get", "update"}},
	}
	if !reflect.DeepEqual(role.Rules, wantRules) {
		t.Errorf("leader Role rules = %+v, want %+v", role.Rules, wantRules)
	}
	rb := only[*rbacv1.RoleBinding](t, r)
	sa := only[*corev1.ServiceAccount](t, r)
	if rb.RoleRef.Name != role.Name || len(rb.Subjects) != 1 || rb.Subjects[0].Name != sa.Name || rb.Subjects[0].Namespace != releaseNamespace {
		t.Errorf("RoleBinding %+v → %+v, want the ServiceAccount bound to %s", rb.Subjects, rb.RoleRef, role.Name)
	}

	vap := only[*admissionv1.ValidatingAdmissionPolicy](t, r)
	lease := variable(vap, "isLease")
	for _, want := range []string{"'coordination.k8s.io'", "'leases'", "request.namespace == '" + releaseNamespace + "'", "request.name == 'ductbot-leader'"} {
		if !strings.Contains(lease, want) {
			t.Errorf("guard isLease = %q, want it to check %s", lease, want)
		}
	}
	if !strings.HasPrefix(vap.Spec.Validations[0].Expression, "variables.isLease || ") {
		t.Errorf("guard validation %q, want the leader Lease let through", vap.Spec.Validations[0].Expression)
	}

	// A name of one's own, and one's own affinity.
	vals := haValues(2)
	vals["config"].(map[string]any)["ha"] = map[string]any{"enabled": true, "lease_name": "ci-bot-leader"}
	vals["affinity"] = map[string]any{"nodeAffinity": map[string]any{"requiredDuringSchedulingIgnoredDuringExecution": map[string]any{
		"nodeSelectorTerms": []any{map[string]any{"matchExpressions": []any{map[string]any{"key": "pool", "operator": "In", "values": []any{"ci"}}}}},
	}}}
	r = mustRender(t, vals)
	if rules := only[*rbacv1.Role](t, r).Rules; len(rules) != 2 || !slices.Equal(rules[1].ResourceNames, []string{"ci-bot-leader"}) {
		t.Errorf("Role rules %+v, want the named lease", rules)
	}
	if !strings.Contains(variable(only[*admissionv1.ValidatingAdmissionPolicy](t, r), "isLease"), "'ci-bot-leader'") {
		t.Error("the guard does not let the named lease through")
	}
	if aff := only[*appsv1.Deployment](t, r).Spec.Template.Spec.Affinity; aff == nil || aff.NodeAffinity == nil || aff.PodAntiAffinity != nil {
		t.Errorf("affinity = %+v, want the given one instead of the default", aff)
	}

	// Without ha: one pod, Recreate, no Lease, PDB or Role; the guard lets no Lease through.
	r = mustRender(t, map[string]any{"config": sampleConfig()})
	d = only[*appsv1.Deployment](t, r)
	if *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType || d.Spec.Template.Spec.Affinity != nil {
		t.Errorf("without ha: replicas %d, strategy %q, affinity %+v; want 1, Recreate, none", *d.Spec.Replicas, d.Spec.Strategy.Type, d.Spec.Template.Spec.Affinity)
	}
	if n := len(all[*policyv1.PodDisruptionBudget](r)) + len(all[*rbacv1.Role](r)) + len(all[*rbacv1.RoleBinding](r)); n != 0 {
		t.Errorf("without ha: %d PDBs, Roles and RoleBindings, want none", n)
	}
	if got := strings.TrimSpace(variable(only[*admissionv1.ValidatingAdmissionPolicy](t, r), "isLease")); got != "false" {
		t.Errorf("without ha the guard's isLease = %q, want false", got)
	}
	only[*corev1.PersistentVolumeClaim](t, r)

	for name, tc := range map[string]struct {
		vals map[string]any
		want string
	}{
		"replicas without ha": {map[string]any{"config": sampleConfig(), "replicas": 2}, "replicas: 2 needs config.ha.enabled"},
		"ha with sqlite": {map[string]any{"config": map[string]any{"ha": map[string]any{"enabled": true}}, "replicas": 2},
			"config.ha.enabled needs config.state.driver: postgres"},
		"lease elsewhere": {func() map[string]any {
			v := haValues(2)
			v["config"].(map[string]any)["ha"] = map[string]any{"enabled": true, "lease_namespace": "kube-system"}
			return v
		}(), `config.ha.lease_namespace "kube-system"`},
	} {
		t.Run("refused: "+name, func(t *testing.T) {
			_, err := render(t, tc.vals, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("render error = %v, want one saying %s", err, tc.want)
			}
		})
	}

	t.Run("lint", func(t *testing.T) {
		for _, m := range lint.AllWithKubeVersion(chartDir, haValues(3), releaseNamespace, nil).Messages {
			if m.Severity >= support.WarningSev {
				t.Errorf("helm lint: %s", m)
			}
		}
	})
}

// variable returns the expression of the guard's variable name.
func variable(vap *admissionv1.ValidatingAdmissionPolicy, name string) string {
	for _, v := range vap.Spec.Variables {
		if v.Name == name {
			return v.Expression
		}
	}
	return ""
}

// everythingOn turns on every optional part of the chart.
func everythingOn() map[string]any {
	return map[string]any{
		"config":      sampleConfig(),
		"secretEnv":   map[string]any{"GERRIT_PASSWORD": map[string]any{"name": "ductbot-gerrit", "key": "password"}},
		"ingress":     map[string]any{"enabled": true, "className": "traefik", "tlsSecretName": "ductbot-tls"},
		"persistence": map[string]any{"storageClass": "local-path", "accessModes": []any{"ReadWriteOnce"}},
		"rbac": map[string]any{"extraEnvironmentRules": []any{map[string]any{
			"apiGroups": []any{"batch"}, "resources": []any{"cronjobs"}, "verbs": []any{"get", "create"},
		}}},
		"metrics": map[string]any{"port": 9090, "serviceMonitor": map[string]any{
			"enabled": true, "labels": map[string]any{"release": "kube-prometheus-stack"}, "interval": "15s", "scrapeTimeout": "10s",
			"relabelings": []any{map[string]any{"targetLabel": "cluster", "replacement": "ci"}},
		}},
		"log":                           map[string]any{"format": "text", "level": "debug"},
		"instance":                      "ci-bot",
		"terminationGracePeriodSeconds": 300,
		"shutdownMarginSeconds":         20,
		"podDisruptionBudget":           map[string]any{"minAvailable": "50%"},
		"extraArgs":                     []any{"--grace", "200s"},
	}
}

// helmBinary is the helm command the local control plane's tools include
// (`make cluster-bins`).
func helmBinary(t *testing.T) string {
	t.Helper()
	bins, err := localcluster.Install(context.Background(), localcluster.InstallOptions{})
	if err != nil {
		if testing.Short() {
			t.Skipf("no helm binary: %v", err)
		}
		t.Fatal(err)
	}
	return bins.Helm
}

// TestChartHelmLintStrict runs the helm command itself, `helm lint
// --strict`, with the defaults, every option on and high availability:
// each passes; a values file with a typo fails.
func TestChartHelmLintStrict(t *testing.T) {
	helm := helmBinary(t)
	lint := func(t *testing.T, vals map[string]any) (string, error) {
		b, err := sigsyaml.Marshal(vals)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "values.yaml")
		if err := os.WriteFile(file, b, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(helm, "lint", "--strict", "--namespace", releaseNamespace, chartDir, "-f", file).CombinedOutput()
		return string(out), err
	}
	for name, vals := range map[string]map[string]any{
		"defaults":      {},
		"everything on": everythingOn(),
		"ha":            haValues(3),
	} {
		t.Run(name, func(t *testing.T) {
			if out, err := lint(t, vals); err != nil {
				t.Errorf("helm lint --strict: %v\n%s", err, out)
			}
		})
	}
	t.Run("a typo", func(t *testing.T) {
		out, err := lint(t, map[string]any{"persistance": map[string]any{"size": "5Gi"}})
		if err == nil || !strings.Contains(out, "additional properties 'persistance' not allowed") {
			t.Errorf("helm lint --strict with persistance: err %v, want the schema to refuse it\n%s", err, out)
		}
	})
}

// TestChartSchema: values.schema.json accepts the defaults and every value
// the chart documents, and refuses unknown keys (at the top and in the
// chart's own sections) and values of the wrong type, naming them.
func TestChartSchema(t *testing.T) {
	for name, vals := range map[string]map[string]any{
		"defaults":      nil,
		"everything on": everythingOn(),
		"ha":            haValues(3),
		"disabled probes and no persistence": {"startupProbe": nil, "persistence": map[string]any{"enabled": false},
			"log": map[string]any{"format": "", "level": ""}, "podDisruptionBudget": map[string]any{"minAvailable": 0}},
		"a parent chart's globals": {"global": map[string]any{"imageRegistry": "registry.example.org"}},
	} {
		t.Run("accepts "+name, func(t *testing.T) {
			if _, err := render(t, vals, nil); err != nil {
				t.Errorf("render: %v", err)
			}
		})
	}
	for name, tc := range map[string]struct {
		vals map[string]any
		want string
	}{
		"a top-level typo":           {map[string]any{"persistance": map[string]any{"enabled": true}}, "additional properties 'persistance' not allowed"},
		"a nested typo":              {map[string]any{"persistence": map[string]any{"storageclass": "fast"}}, "additional properties 'storageclass' not allowed"},
		"a typo under metrics":       {map[string]any{"metrics": map[string]any{"servicemonitor": map[string]any{"enabled": true}}}, "additional properties 'servicemonitor' not allowed"},
		"a port as text":             {map[string]any{"port": "http"}, "at '/port': got string, want integer"},
		"a grace period as text":     {map[string]any{"terminationGracePeriodSeconds": "120s"}, "at '/terminationGracePeriodSeconds': got string, want integer"},
		"a zero grace period":        {map[string]any{"terminationGracePeriodSeconds": 0}, "at '/terminationGracePeriodSeconds'"},
		"a flag as a boolean":        {map[string]any{"metrics": map[string]any{"serviceMonitor": map[string]any{"enabled": "yes"}}}, "at '/metrics/serviceMonitor/enabled': got string, want boolean"},
		"access modes as one string": {map[string]any{"persistence": map[string]any{"accessModes": "ReadWriteOnce"}}, "at '/persistence/accessModes': got string, want array"},
		"an unknown access mode":     {map[string]any{"persistence": map[string]any{"accessModes": []any{"ReadWriteOnceNode"}}}, "at '/persistence/accessModes/0'"},
		"an unknown log format":      {map[string]any{"log": map[string]any{"format": "xml"}}, "at '/log/format'"},
		"an unknown log level":       {map[string]any{"log": map[string]any{"level": "verbose"}}, "at '/log/level'"},
		"an instance not a label":    {map[string]any{"instance": "CI_bot"}, "at '/instance'"},
		"config not a map":           {map[string]any{"config": "ductbot.yaml"}, "at '/config': got string, want object"},
		"extraArgs not strings":      {map[string]any{"extraArgs": []any{1}}, "at '/extraArgs/0': got number, want string"},
		"a Secret reference typo":    {map[string]any{"secretEnv": map[string]any{"X": map[string]any{"name": "s", "keys": "k"}}}, "additional properties 'keys' not allowed"},
		"a bad scrape interval":      {map[string]any{"metrics": map[string]any{"serviceMonitor": map[string]any{"interval": "30 seconds"}}}, "at '/metrics/serviceMonitor/interval'"},
	} {
		t.Run("refuses "+name, func(t *testing.T) {
			_, err := render(t, tc.vals, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("render error = %v, want one saying %s", err, tc.want)
			}
		})
	}
}

func container(t *testing.T, r rendered) corev1.Container {
	t.Helper()
	return only[*appsv1.Deployment](t, r).Spec.Template.Spec.Containers[0]
}

// flagValue is the value after flag in args ("" when absent), failing when
// it is there twice.
func flagValue(t *testing.T, args []string, flag string) string {
	t.Helper()
	var v string
	n := 0
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			v, n = args[i+1], n+1
		}
	}
	if n > 1 {
		t.Errorf("%s passed %d times in %q", flag, n, args)
	}
	return v
}

// TestChartGrace: `ductbot run --grace` is terminationGracePeriodSeconds
// less shutdownMarginSeconds, so in-flight steps get nearly the whole
// period and ductbot still exits before Kubernetes kills it.
func TestChartGrace(t *testing.T) {
	for _, tc := range []struct {
		period, margin any
		want           time.Duration
	}{
		{nil, nil, 110 * time.Second},
		{600, nil, 590 * time.Second},
		{600, 30, 570 * time.Second},
		{11, 10, time.Second},
		{45, 0, 45 * time.Second},
	} {
		vals := map[string]any{}
		if tc.period != nil {
			vals["terminationGracePeriodSeconds"] = tc.period
		}
		if tc.margin != nil {
			vals["shutdownMarginSeconds"] = tc.margin
		}
		r := mustRender(t, vals)
		pod := only[*appsv1.Deployment](t, r).Spec.Template.Spec
		c := container(t, r)
		grace, err := time.ParseDuration(flagValue(t, c.Args, "--grace"))
		if err != nil || grace != tc.want {
			t.Errorf("period %v, margin %v: args %q, want --grace %s (%v)", tc.period, tc.margin, c.Args, tc.want, err)
		}
		if margin := time.Duration(*pod.TerminationGracePeriodSeconds)*time.Second - grace; margin < 0 {
			t.Errorf("--grace %s is longer than terminationGracePeriodSeconds %d", grace, *pod.TerminationGracePeriodSeconds)
		}
	}
	for _, vals := range []map[string]any{
		{"terminationGracePeriodSeconds": 10},
		{"terminationGracePeriodSeconds": 30, "shutdownMarginSeconds": 45},
	} {
		if _, err := render(t, vals, nil); err == nil || !strings.Contains(err.Error(), "must be more than shutdownMarginSeconds") {
			t.Errorf("%v: err = %v, want a refusal naming shutdownMarginSeconds", vals, err)
		}
	}
}

// TestChartLogAndInstance: the log values become --log-format and
// --log-level; kubernetes.instance in ductbot.yaml is the instance value,
// else config.kubernetes.instance, else the release's full name.
func TestChartLogAndInstance(t *testing.T) {
	args := container(t, mustRender(t, nil)).Args
	if f, l := flagValue(t, args, "--log-format"), flagValue(t, args, "--log-level"); f != "json" || l != "info" {
		t.Errorf("defaults: --log-format %q --log-level %q, want json and info", f, l)
	}
	args = container(t, mustRender(t, map[string]any{"log": map[string]any{"format": "text", "level": "debug"}})).Args
	if f, l := flagValue(t, args, "--log-format"), flagValue(t, args, "--log-level"); f != "text" || l != "debug" {
		t.Errorf("--log-format %q --log-level %q, want text and debug", f, l)
	}
	args = container(t, mustRender(t, map[string]any{"log": map[string]any{"format": "", "level": ""}})).Args
	if slices.Contains(args, "--log-format") || slices.Contains(args, "--log-level") {
		t.Errorf("empty log values: args %q, want neither flag (config.log decides)", args)
	}

	withInstance := func(configured string) map[string]any {
		cfg := sampleConfig()
		if configured != "" {
			cfg["kubernetes"].(map[string]any)["instance"] = configured
		}
		return cfg
	}
	for _, tc := range []struct {
		release, instance, configured, want string
	}{
		{"ductbot", "", "", "ductbot"},
		{"ci", "", "", "ci-ductbot"},
		{"ductbot", "team-a", "", "team-a"},
		{"ductbot", "", "team-b", "team-b"},
		{"ductbot", "team-c", "team-c", "team-c"},
	} {
		vals := map[string]any{"config": withInstance(tc.configured)}
		if tc.instance != "" {
			vals["instance"] = tc.instance
		}
		r, err := renderRelease(t, tc.release, vals, nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg := configOf(t, r)
		if got := dig(cfg, "kubernetes", "instance"); got != tc.want {
			t.Errorf("release %s, instance %q, config.kubernetes.instance %q: kubernetes.instance = %v, want %s", tc.release, tc.instance, tc.configured, got, tc.want)
		}
		if got := dig(cfg, "kubernetes", "namespace_prefix"); got != "wf-" {
			t.Errorf("kubernetes.namespace_prefix = %v, want the configured wf- kept", got)
		}
	}
	for _, vals := range []map[string]any{
		{"instance": "team-a", "config": withInstance("team-b")},
		{"fullnameOverride": "Ductbot"},
	} {
		if _, err := render(t, vals, nil); err == nil || !strings.Contains(err.Error(), "instance") {
			t.Errorf("%v: err = %v, want a refusal naming the instance", vals, err)
		}
	}
}

// TestChartRunFlags builds ductbot and starts `ductbot run` with the
// arguments the chart renders (the config file aside): it must accept
// every flag, failing on the missing config (exit 1), not on usage (exit 2).
func TestChartRunFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ductbot")
	}
	bin := filepath.Join(t.TempDir(), "ductbot")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/ductbot").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for name, vals := range map[string]map[string]any{"defaults": nil, "everything on": everythingOn()} {
		args := container(t, mustRender(t, vals)).Args
		i := slices.Index(args, "/etc/ductbot/ductbot.yaml")
		if i < 0 {
			t.Fatalf("args %q: no config file", args)
		}
		args = slices.Clone(args)
		args[i] = filepath.Join(t.TempDir(), "missing.yaml")
		cmd := exec.Command(bin, args...)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "missing.yaml") {
			t.Errorf("%s: ductbot %q: %v, want exit status 1 about the missing config\n%s", name, args, err, out)
		}
	}
}

// renderRelease is render for a release of another name.
func renderRelease(t *testing.T, release string, vals map[string]any, caps *chartutil.Capabilities) (rendered, error) {
	t.Helper()
	defer func(old string) { releaseName = old }(releaseName)
	releaseName = release
	return render(t, vals, caps)
}

// kube is the default capabilities with another Kubernetes version.
func kube(minor int) *chartutil.Capabilities {
	return kubeVersion(fmt.Sprintf("v1.%d.3", minor), "1", strconv.Itoa(minor))
}

func kubeVersion(version, major, minor string) *chartutil.Capabilities {
	caps := *chartutil.DefaultCapabilities
	caps.KubeVersion = chartutil.KubeVersion{Version: version, Major: major, Minor: minor}
	return &caps
}

// TestChartAccessModes: the state claim is ReadWriteOncePod where the
// cluster has it (1.29 or later), so no second pod, even on the same node,
// opens the SQLite file; ReadWriteOnce before; persistence.accessModes
// decides when set.
func TestChartAccessModes(t *testing.T) {
	for _, tc := range []struct {
		minor int
		modes []any
		want  []corev1.PersistentVolumeAccessMode
	}{
		{28, nil, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}},
		{29, nil, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOncePod}},
		{36, nil, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOncePod}},
		{36, []any{"ReadWriteOnce"}, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}},
		{28, []any{"ReadWriteOncePod"}, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOncePod}},
	} {
		vals := map[string]any{}
		if tc.modes != nil {
			vals["persistence"] = map[string]any{"accessModes": tc.modes}
		}
		r, err := render(t, vals, kube(tc.minor))
		if err != nil {
			t.Fatal(err)
		}
		if got := only[*corev1.PersistentVolumeClaim](t, r).Spec.AccessModes; !slices.Equal(got, tc.want) {
			t.Errorf("Kubernetes 1.%d, accessModes %v: the claim's modes are %v, want %v", tc.minor, tc.modes, got, tc.want)
		}
	}
	// What API servers report: clouds add "+" to the minor version, k3s
	// and EKS a suffix to the version, a development build nothing usable.
	for _, tc := range []struct {
		version, major, minor string
		want                  corev1.PersistentVolumeAccessMode
	}{
		{"v1.30.2-eks-1552ad0", "1", "30+", corev1.ReadWriteOncePod},
		{"v1.28.9-gke.1000000", "1", "28+", corev1.ReadWriteOnce},
		{"v1.29.3+k3s1", "", "", corev1.ReadWriteOncePod},
		{"v2.0.0", "2", "0", corev1.ReadWriteOncePod},
		{"v0.0.0-master+$Format:%H$", "", "", corev1.ReadWriteOnce},
	} {
		r, err := render(t, nil, kubeVersion(tc.version, tc.major, tc.minor))
		if err != nil {
			t.Errorf("Kubernetes %q (%q.%q): %v", tc.version, tc.major, tc.minor, err)
			continue
		}
		if got := only[*corev1.PersistentVolumeClaim](t, r).Spec.AccessModes; !slices.Equal(got, []corev1.PersistentVolumeAccessMode{tc.want}) {
			t.Errorf("Kubernetes %q (%q.%q): the claim's modes are %v, want %s", tc.version, tc.major, tc.minor, got, tc.want)
		}
	}
}

// serviceMonitor is the rendered ServiceMonitor, or nil.
func serviceMonitor(t *testing.T, r rendered) *unstructured.Unstructured {
	t.Helper()
	var out *unstructured.Unstructured
	for _, u := range all[*unstructured.Unstructured](r) {
		if u.GetKind() == "ServiceMonitor" {
			if out != nil {
				t.Fatal("two ServiceMonitors")
			}
			out = u
		}
	}
	return out
}

// TestChartServiceMonitor: off by default; when enabled, it scrapes the
// Service's http port, or its metrics port when metrics.port serves
// /metrics on its own (config.web.metrics_listen), with the labels
// Prometheus selects by.
func TestChartServiceMonitor(t *testing.T) {
	if sm := serviceMonitor(t, mustRender(t, nil)); sm != nil {
		t.Errorf("a ServiceMonitor by default: %v", sm)
	}
	r := mustRender(t, map[string]any{"metrics": map[string]any{"serviceMonitor": map[string]any{
		"enabled": true, "labels": map[string]any{"release": "prom"},
	}}})
	sm := serviceMonitor(t, r)
	if sm == nil {
		t.Fatalf("metrics.serviceMonitor.enabled: no ServiceMonitor (kinds %v)", r.kinds())
	}
	svc := only[*corev1.Service](t, r)
	if sm.GetAPIVersion() != "monitoring.coreos.com/v1" || sm.GetLabels()["release"] != "prom" {
		t.Errorf("ServiceMonitor %s with labels %v, want monitoring.coreos.com/v1 with release: prom", sm.GetAPIVersion(), sm.GetLabels())
	}
	sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	if !subset(sel, svc.Labels) {
		t.Errorf("ServiceMonitor selector %v does not select the Service (labels %v)", sel, svc.Labels)
	}
	if ns, _, _ := unstructured.NestedStringSlice(sm.Object, "spec", "namespaceSelector", "matchNames"); !slices.Equal(ns, []string{releaseNamespace}) {
		t.Errorf("namespaceSelector %v, want the release's namespace", ns)
	}
	endpoint := func(sm *unstructured.Unstructured) map[string]any {
		eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
		if len(eps) != 1 {
			t.Fatalf("endpoints %v, want one", eps)
		}
		return eps[0].(map[string]any)
	}
	if ep := endpoint(sm); ep["port"] != "http" || ep["path"] != "/metrics" || ep["interval"] != "30s" {
		t.Errorf("endpoint %v, want port http, path /metrics, interval 30s", ep)
	}
	if cfg := configOf(t, r); dig(cfg, "web", "metrics_listen") != nil {
		t.Errorf("web.metrics_listen = %v without metrics.port", dig(cfg, "web", "metrics_listen"))
	}

	// /metrics on a port of its own.
	r = mustRender(t, everythingOn())
	ep := endpoint(serviceMonitor(t, r))
	if ep["port"] != "metrics" || ep["interval"] != "15s" || ep["scrapeTimeout"] != "10s" || ep["relabelings"] == nil {
		t.Errorf("endpoint %v, want port metrics, interval 15s, scrapeTimeout 10s, the relabelings", ep)
	}
	if got := dig(configOf(t, r), "web", "metrics_listen"); got != ":9090" {
		t.Errorf("web.metrics_listen = %v, want :9090 from metrics.port", got)
	}
	c := container(t, r)
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["metrics"] != 9090 || ports["http"] != 8080 {
		t.Errorf("container ports %v, want http 8080 and metrics 9090", c.Ports)
	}
	svcPorts := map[string]string{}
	for _, p := range only[*corev1.Service](t, r).Spec.Ports {
		svcPorts[p.Name] = p.TargetPort.String()
	}
	if svcPorts["metrics"] != "metrics" || svcPorts["http"] != "http" {
		t.Errorf("Service ports %v, want http and metrics", svcPorts)
	}
	if ann := only[*appsv1.Deployment](t, r).Spec.Template.Annotations; ann["prometheus.io/port"] != "9090" {
		t.Errorf("prometheus.io/port = %q, want the metrics port 9090", ann["prometheus.io/port"])
	}
	if be := only[*networkingv1.Ingress](t, r).Spec.Rules[0].HTTP.Paths[0].Backend.Service.Port.Name; be != "http" {
		t.Errorf("the ingress routes to port %s, want http only", be)
	}

	for name, tc := range map[string]struct {
		vals map[string]any
		want string
	}{
		"metrics_listen without metrics.port": {map[string]any{"config": map[string]any{"web": map[string]any{"metrics_listen": ":9090"}}}, "set metrics.port"},
		"metrics_listen on another port": {map[string]any{"metrics": map[string]any{"port": 9090},
			"config": map[string]any{"web": map[string]any{"metrics_listen": ":9091"}}}, "does not listen on metrics.port 9090"},
		"metrics.port is port": {map[string]any{"metrics": map[string]any{"port": 8080}}, "metrics.port 8080 is port too"},
	} {
		t.Run("refused: "+name, func(t *testing.T) {
			if _, err := render(t, tc.vals, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("render error = %v, want one saying %s", err, tc.want)
			}
		})
	}

	// Against a cluster without the CRD the install fails with a clear
	// message rather than with Helm's "no matches for kind".
	live := *chartutil.DefaultCapabilities
	live.APIVersions = chartutil.VersionSet{"v1", "v1/Namespace", "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy"}
	on := map[string]any{"metrics": map[string]any{"serviceMonitor": map[string]any{"enabled": true}}}
	if _, err := render(t, on, &live); err == nil || !strings.Contains(err.Error(), "metrics.serviceMonitor.enabled needs the ServiceMonitor CRD") {
		t.Errorf("render on a cluster without the CRD: err = %v, want one naming metrics.serviceMonitor.enabled", err)
	}
	live.APIVersions = append(live.APIVersions, "monitoring.coreos.com/v1", "monitoring.coreos.com/v1/ServiceMonitor")
	if _, err := render(t, on, &live); err != nil {
		t.Errorf("render on a cluster with the CRD: %v", err)
	}
}
