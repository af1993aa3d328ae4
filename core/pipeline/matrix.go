package pipeline

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"text/template"

	"github.com/ductbot/ductbot/config"
	"github.com/ductbot/ductbot/core/run"
)

// MatrixPlan turns configuration into matrices and chart values.
type MatrixPlan struct {
	cfg *config.Config
}

// NewMatrixPlan checks the templates once; config validation already did.
func NewMatrixPlan(cfg *config.Config) *MatrixPlan { return &MatrixPlan{cfg: cfg} }

// Default is the matrix every component at its default ref.
func (p *MatrixPlan) Default() run.Matrix {
	m := run.Matrix{}
	for _, c := range p.cfg.Components {
		m[c.Name] = c.DefaultRef
	}
	return m
}

// RefData is what a component's ref_template sees.
type RefData struct {
	Change   int
	PatchSet int
	Revision string
	Project  string
	Branch   string
	Ref      string // refs/changes/45/12345/3
}

// PatchRef renders a component's ref for a patch set.
func (p *MatrixPlan) PatchRef(component string, d RefData) (string, error) {
	c, ok := p.cfg.Component(component)
	if !ok {
		return "", fmt.Errorf("component %q is not configured", component)
	}
	ref, err := render(c.RefTemplate, d)
	if err != nil {
		return "", fmt.Errorf("components[%s].ref_template: %w", component, err)
	}
	return ref, nil
}

// EnvData is what chart.env_values and chart.url_template see.
type EnvData struct {
	Env       string
	Namespace string
	Release   string
	Change    int
	URL       string
	Subject   string // the commit subject: text from outside, use with care
}

// URL renders an environment's URL.
func (p *MatrixPlan) URL(d EnvData) (string, error) {
	return render(p.cfg.Chart.URLTemplate, d)
}

// Values builds the chart values of an environment: the base values, each
// component's ref at its configured paths, then the per-environment values.
// The result shares nothing with the configuration.
func (p *MatrixPlan) Values(m run.Matrix, d EnvData) (map[string]any, error) {
	vals := deepCopy(p.cfg.Chart.Values)
	for _, c := range p.cfg.Components {
		ref, ok := m[c.Name]
		if !ok {
			ref = c.DefaultRef
		}
		for _, path := range sortedKeys(c.Values) {
			v, err := render(c.Values[path], struct{ Ref, Component string }{ref, c.Name})
			if err != nil {
				return nil, fmt.Errorf("components[%s].values[%s]: %w", c.Name, path, err)
			}
			setPath(vals, path, v)
		}
	}
	for _, path := range sortedKeys(p.cfg.Chart.EnvValues) {
		v, err := render(p.cfg.Chart.EnvValues[path], d)
		if err != nil {
			return nil, fmt.Errorf("chart.env_values[%s]: %w", path, err)
		}
		setPath(vals, path, v)
	}
	return vals, nil
}

func render(tmpl string, data any) (string, error) {
	t, err := template.New("").Funcs(config.TemplateFuncs).Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", err
	}
	return b.String(), nil
}

// setPath sets vals[a][b][c] = v for path "a.b.c", creating maps on the way
// and replacing anything that is not a map.
func setPath(vals map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	cur := vals
	for _, k := range parts[:len(parts)-1] {
		next, ok := cur[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[k] = next
		}
		cur = next
	}
	cur[parts[len(parts)-1]] = v
}

func deepCopy(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		switch t := v.(type) {
		case map[string]any:
			out[k] = deepCopy(t)
		case []any:
			cp := make([]any, len(t))
			copy(cp, t)
			out[k] = cp
		default:
			out[k] = v
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// FormatMatrix is "a=1, b=2" in name order.
func FormatMatrix(m run.Matrix) string {
	parts := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ", ")
}
