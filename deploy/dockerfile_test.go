package deploy

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction with its continuation lines
// joined and its comments dropped.
type instruction struct {
	cmd  string // upper case: FROM, RUN, USER...
	args string
}

// parseDockerfile is just enough of the Dockerfile grammar for the checks
// below: comments, line continuations, and instructions grouped by stage.
func parseDockerfile(t *testing.T, text string) [][]instruction {
	t.Helper()
	var stages [][]instruction
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		cmd, args, _ := strings.Cut(line, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("Dockerfile: %s before the first FROM", in.cmd)
			}
			return
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	for _, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		if strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	flush()
	return stages
}

var versionFlag = regexp.MustCompile(`-X [\w./-]+\.[Vv]ersion=\$\{?VERSION\}?`)

func last(stage []instruction, cmd string) (instruction, bool) {
	for i := len(stage) - 1; i >= 0; i-- {
		if stage[i].cmd == cmd {
			return stage[i], true
		}
	}
	return instruction{}, false
}

// TestDockerfile checks what can be checked without a Docker engine: a
// static, trimmed build of ./cmd/ductbot with the version stamped in, and a
// final stage that runs it as a non-root user with `run` as the default.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	stages := parseDockerfile(t, string(b))
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stage(s), want a build stage and a final one", len(stages))
	}

	var build []instruction
	for _, st := range stages[:len(stages)-1] {
		for _, in := range st {
			if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
				build = st
				for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/ductbot"} {
					if !strings.Contains(in.args, want) {
						t.Errorf("the go build step lacks %q: %s", want, in.args)
					}
				}
				// The version variable, wherever the binary keeps it
				// (main.version, or a build-info package's Version).
				if !versionFlag.MatchString(in.args) {
					t.Errorf("the go build step does not set the version with -X <package>.version=${VERSION}: %s", in.args)
				}
			}
		}
	}
	if build == nil {
		t.Fatal("no build stage runs `go build`")
	}
	if from := build[0].args; !strings.Contains(from, "golang:") {
		t.Errorf("build stage FROM %s, want a golang image", from)
	}

	final := stages[len(stages)-1]
	if from := final[0].args; !strings.HasPrefix(from, "gcr.io/distroless/static") && from != "scratch" {
		t.Errorf("final stage FROM %s, want distroless/static or scratch", from)
	}
	user, ok := last(final, "USER")
	if !ok {
		t.Fatal("the final stage sets no USER: the image would run as root")
	}
	name, _, _ := strings.Cut(user.args, ":")
	if name == "" || name == "root" || regexp.MustCompile(`^0+$`).MatchString(name) {
		t.Errorf("USER %s: want a non-root user", user.args)
	}
	if ep, _ := last(final, "ENTRYPOINT"); ep.args != `["/ductbot"]` {
		t.Errorf(`ENTRYPOINT %s, want ["/ductbot"] (exec form)`, ep.args)
	}
	if cmd, _ := last(final, "CMD"); !strings.HasPrefix(cmd.args, `["run"`) {
		t.Errorf(`CMD %s, want ["run", ...]`, cmd.args)
	}
	if exp, _ := last(final, "EXPOSE"); !slices.Contains(strings.Fields(exp.args), "8080") {
		t.Errorf("EXPOSE %q, want 8080 (web.listen's default)", exp.args)
	}
	stateDir := false
	for _, in := range final {
		if in.cmd == "COPY" && strings.HasSuffix(in.args, " /var/lib/ductbot") && strings.Contains(in.args, "--chown=65532") {
			stateDir = true
		}
	}
	if !stateDir {
		t.Error("the final stage does not create /var/lib/ductbot owned by the nonroot user (65532)")
	}
}

// TestDockerignore: the build context leaves out history and local state.
func TestDockerignore(t *testing.T) {
	b, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(b))
	for _, want := range []string{".git", "**/*.db"} {
		if !slices.Contains(lines, want) {
			t.Errorf(".dockerignore lacks %s", want)
		}
	}
	for _, never := range []string{"go.mod", "go.sum", "cmd", "*.go", "**/*.go"} {
		if slices.Contains(lines, never) {
			t.Errorf(".dockerignore excludes %s, which the build needs", never)
		}
	}
}
