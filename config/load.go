package config

import (
	"bytes"
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
		return fmt.Sprintf("%s (line %d): %s", e.Path, e.Line, e.Msg)
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
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	cfg, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Parse is Load on bytes.
func Parse(b []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	if len(root.Content) == 0 {
		return nil, Errors{{Path: "(file)", Msg: "the file is empty; see examples/ductbot.yaml"}}
	}
	var errs Errors
	checkKeys(root.Content[0], reflect.TypeOf(Config{}), "", &errs)
	cfg := new(Config)
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(cfg); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, msg := range te.Errors {
				errs = append(errs, FieldError{Path: "(value)", Msg: msg})
			}
		} else {
			errs = append(errs, FieldError{Path: "(file)", Msg: err.Error()})
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	cfg.applyDefaults()
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, errs
	}
	return cfg, nil
}

// checkKeys walks the YAML tree beside the Go type and reports every key the
// type does not have, with a suggestion when it is a likely typo.
func checkKeys(n *yaml.Node, t reflect.Type, path string, errs *Errors) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return // the decoder reports the type mismatch
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
			ft, ok := fields[key.Value]
			if !ok {
				*errs = append(*errs, FieldError{Path: p, Line: key.Line, Msg: unknownKeyMsg(key.Value, names)})
				continue
			}
			checkKeys(val, ft, p, errs)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, item := range n.Content {
			checkKeys(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs)
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
