package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/ductbot/ductbot/internal/suggest"
)

// FieldError is one problem with one field.
type FieldError struct {
	Path string // e.g. "projects[1].component"
	Line int    // 0 when unknown
	Msg  string
}

func (e FieldError) String() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s: line %d: %s", e.Path, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Path, e.Msg)
}

// Errors is every problem found in a configuration.
type Errors []FieldError

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = "  " + e.String()
	}
	noun := "problems"
	if len(es) == 1 {
		noun = "problem"
	}
	return fmt.Sprintf("configuration has %d %s:\n%s", len(es), noun, strings.Join(lines, "\n"))
}

// Load reads, defaults and validates a configuration file. A returned error
// of type Errors lists every problem with its field path.
func Load(path string) (*Config, error) { return LoadWith(path, Options{}) }

// Options change what Load and Parse check.
type Options struct {
	// Offline skips the checks that need the secrets: that each secret's
	// environment variable is set or its file readable. For validating a
	// configuration where it will not run, such as in CI.
	Offline bool
}

// LoadWith is Load with options.
func LoadWith(path string, o Options) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	cfg, err := ParseWith(b, o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Parse is Load on bytes. It is the one check: `ductbot validate` and
// `ductbot run` both come here, so nothing passes one and fails the other.
// Every problem is collected in one pass, each with its key path and, when
// the value is in the file, its line.
func Parse(b []byte) (*Config, error) { return ParseWith(b, Options{}) }

// ParseWith is Parse with options.
func ParseWith(b []byte, o Options) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	if len(root.Content) == 0 {
		return nil, Errors{{Path: "configuration", Msg: "the file is empty; see examples/ductbot.yaml"}}
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return nil, Errors{{Path: "configuration", Line: doc.Line, Msg: "expected a mapping of keys such as gerrit:, projects:, components:"}}
	}
	w := walker{lines: map[string]int{}}
	w.walk(doc, reflect.TypeOf(Config{}), "")
	errs := w.errs
	cfg := new(Config)
	// The walk replaced every value of the wrong type with null, so this
	// decode fills in everything else.
	if err := doc.Decode(cfg); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, msg := range te.Errors {
				errs = append(errs, FieldError{Path: "configuration", Msg: msg})
			}
		} else {
			errs = append(errs, FieldError{Path: "configuration", Msg: err.Error()})
		}
	}
	cfg.applyDefaults()
	// Numbers written in the file stand as written, 0 included: Validate
	// says when one is out of range instead of a default replacing it.
	restoreExplicit(doc, reflect.ValueOf(cfg).Elem())
	for _, e := range cfg.Validate() {
		if w.bad[e.Path] {
			continue // already reported as the wrong type
		}
		if o.Offline && isSecretProblem(e.Msg) {
			continue
		}
		if e.Line == 0 {
			e.Line = w.line(e.Path)
		}
		errs = append(errs, e)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return cfg, nil
}

// isSecretProblem reports whether a problem is one Secret found: a secret
// that is not there where validate runs (see Options.Offline).
func isSecretProblem(msg string) bool {
	return strings.HasPrefix(msg, "environment variable ") && strings.HasSuffix(msg, " is not set") ||
		strings.HasPrefix(msg, "reading secret file: ")
}

// walker goes through the YAML tree beside the Go type: it reports every
// key the type does not have (with a suggestion when it is a likely typo)
// and every value of the wrong type, and remembers each key's line.
type walker struct {
	errs  Errors
	lines map[string]int
	bad   map[string]bool
}

// line is the line of path, or of the nearest enclosing key in the file.
func (w *walker) line(path string) int {
	for path != "" {
		if l, ok := w.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return 0
		}
		path = path[:i]
	}
	return 0
}

var durationType = reflect.TypeOf(Duration(0))

func (w *walker) fail(n *yaml.Node, path, msg string) {
	w.errs = append(w.errs, FieldError{Path: path, Line: n.Line, Msg: msg})
	if w.bad == nil {
		w.bad = map[string]bool{}
	}
	w.bad[path] = true
	// Null leaves the field unset, so decoding the rest goes on.
	*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
}

func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			w.fail(n, path, fmt.Sprintf("expected a mapping of keys, got %s", describe(n)))
			return
		}
		fields := map[string]reflect.Type{}
		var names []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if name == "" || name == "-" {
				continue
			}
			fields[name] = f.Type
			names = append(names, name)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			p := join(path, key.Value)
			w.lines[p] = key.Line
			ft, ok := fields[key.Value]
			if !ok {
				w.errs = append(w.errs, FieldError{Path: p, Line: key.Line, Msg: unknownKeyMsg(key.Value, names)})
				continue
			}
			w.walk(val, ft, p)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.fail(n, path, fmt.Sprintf("expected a list, got %s", describe(n)))
			return
		}
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			w.lines[p] = item.Line
			w.walk(item, t.Elem(), p)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			w.fail(n, path, fmt.Sprintf("expected a mapping, got %s", describe(n)))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			p := join(path, key.Value)
			w.lines[p] = key.Line
			if t.Elem().Kind() != reflect.Interface {
				w.walk(val, t.Elem(), p)
			}
		}
	case reflect.Interface:
	default:
		if n.Kind != yaml.ScalarNode {
			w.fail(n, path, fmt.Sprintf("expected %s, got %s", kindName(t), describe(n)))
			return
		}
		v := reflect.New(t)
		if err := n.Decode(v.Interface()); err != nil {
			if t == durationType {
				w.fail(n, path, err.Error())
			} else {
				w.fail(n, path, fmt.Sprintf("%q is not %s", n.Value, kindName(t)))
			}
			return
		}
		if t == durationType && v.Elem().Int() < 0 {
			w.fail(n, path, fmt.Sprintf("%q is negative; durations are 0 or more", n.Value))
		}
	}
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int64, reflect.Int32:
		if t == durationType {
			return "a duration like 90s, 10m, 2h or 3d"
		}
		return "an integer"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	}
	return "a " + t.Kind().String()
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%q", n.Value)
}

// restoreExplicit sets every integer and duration written in the file back
// to its written value after defaults were applied, so that an explicit 0
// stays 0.
func restoreExplicit(n *yaml.Node, v reflect.Value) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return
		}
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			name := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
			for j := 0; j+1 < len(n.Content); j += 2 {
				if n.Content[j].Value == name && name != "" {
					restoreExplicit(n.Content[j+1], v.Field(i))
				}
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i := 0; i < v.Len() && i < len(n.Content); i++ {
			restoreExplicit(n.Content[i], v.Index(i))
		}
	case reflect.Int, reflect.Int64:
		if n.Kind == yaml.ScalarNode && n.Tag != "!!null" && v.CanSet() {
			_ = n.Decode(v.Addr().Interface())
		}
	}
}

func unknownKeyMsg(key string, known []string) string {
	msg := "unknown key"
	if strings.HasSuffix(key, "password") || strings.HasSuffix(key, "token") || key == "secret" || key == "dsn" {
		return msg + ": secrets are never written in the file; name an environment variable (" + key + "_env) or a file (" + key + "_file)"
	}
	if s := suggest.Closest(key, known); s != "" {
		return msg + "; did you mean " + s + "?"
	}
	sort.Strings(known)
	return msg + "; expected one of " + strings.Join(known, ", ")
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
