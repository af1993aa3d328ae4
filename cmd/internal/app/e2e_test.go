package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ductbot/ductbot/cmd/internal/demo"
	"github.com/ductbot/ductbot/config"
	"github.com/ductbot/ductbot/core/gerrit/gerrittest"
	"github.com/ductbot/ductbot/core/k8s/localcluster"
)

// syncBuffer is the console's output, read while ductbot writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestChatEnvEndToEnd is issue 4's end-to-end check on the assembled
// binary: `!env <change> orchestrator=abc` typed on the console deploys that
// matrix (the chart's values carry abc for the orchestrator), tests it, and
// replies with the URL and the result; `!destroy` removes it.
func TestChatEnvEndToEnd(t *testing.T) {
	cluster := localcluster.Shared(t)
	g := gerrittest.NewWithOptions(gerrittest.Options{Username: "ductbot", Password: "pw"})
	defer g.Close()
	g.AddAccount("mallory", "Mallory", "mallory@example.org")
	// An untrusted upload: nothing is deployed until someone asks in chat.
	change := g.CreateChange(demo.Project, "master", "Speed up the echo builtin", "mallory")
	t.Setenv("DUCTBOT_DEMO_GERRIT_PASSWORD", "pw")

	chartPath, _ := filepath.Abs("../../../examples/chart/wikifunctions")
	cfg, err := config.Parse([]byte(demo.Config(g.URL(), chartPath, cluster.Kubeconfig,
		"127.0.0.1:0", filepath.Join(t.TempDir(), "ductbot.db"))))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Kubernetes.NamespacePrefix = "e2e-"

	in, typeLine := io.Pipe()
	out := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := New(context.Background(), cfg, Options{Logger: log, ConsoleIn: in, ConsoleOut: out})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, 10*time.Second) }()
	defer func() {
		cancel()
		typeLine.Close()
		if err := <-done; err != nil {
			t.Errorf("ductbot stopped with %v", err)
		}
	}()

	waitOutput := func(what string, re *regexp.Regexp) []string {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) {
			if m := re.FindStringSubmatch(out.String()); m != nil {
				return m
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("timed out waiting for %s; console so far:\n%s", what, out.String())
		return nil
	}

	fmt.Fprintf(typeLine, "!env %d orchestrator=abc\n", change)
	m := waitOutput("the !env reply", regexp.MustCompile(`Building environment (change-\d+-[0-9a-f]{8}) for change`))
	env := m[1]
	waitOutput("the deployed message", regexp.MustCompile(regexp.QuoteMeta(env)+` is deployed: http://`+regexp.QuoteMeta(env)+`\.envs\.localhost/`))
	waitOutput("the result", regexp.MustCompile(`PASSED: change `+fmt.Sprint(change)))
	if !strings.Contains(out.String(), "orchestrator=abc") {
		t.Errorf("the result does not show the custom matrix:\n%s", out.String())
	}

	ns := "e2e-" + env
	dep, err := cluster.Client.AppsV1().Deployments(ns).Get(ctx, env+"-orchestrator", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := dep.Spec.Template.Spec.Containers[0].Image; !strings.HasSuffix(img, ":abc") {
		t.Errorf("orchestrator image = %q, want tag abc", img)
	}
	wiki, err := cluster.Client.AppsV1().Deployments(ns).Get(ctx, env+"-wiki", metav1.GetOptions{})
	if err != nil || !strings.HasSuffix(wiki.Spec.Template.Spec.Containers[0].Image, ":1.45.0") {
		t.Errorf("wiki should run its default ref 1.45.0: %v", err)
	}
	if votes := g.Reviews(); len(votes) > 1 {
		t.Errorf("a custom-matrix environment must not vote on Gerrit; reviews: %+v", votes)
	}

	fmt.Fprintf(typeLine, "!destroy %s\n", env)
	waitOutput("the destroy confirmation", regexp.MustCompile(`Destroyed environment `+regexp.QuoteMeta(env)))
	if _, err := cluster.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace %s after !destroy: %v, want it gone", ns, err)
	}
}
