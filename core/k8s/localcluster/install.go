package localcluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ductbot/ductbot/internal/text"
)

// The pinned versions of everything the local control plane runs. All
// Kubernetes binaries come from one version: a scheduler from one release
// against an API server from another hangs waiting for APIs.
const (
	KubernetesVersion = "v1.36.3"
	KwokVersion       = "v0.8.0"
	HelmVersion       = "v3.22.0" // the same as helm.sh/helm/v3 in go.mod
)

// CacheDirEnv names the environment variable that overrides where the
// binaries are installed.
const CacheDirEnv = "DUCTBOT_CACHE_DIR"

// EtcdEnv names the environment variable that points at an etcd binary when
// it is not on PATH.
const EtcdEnv = "DUCTBOT_ETCD"

// ErrMissingBinary is returned (wrapped, with the binary's name and how to get
// it) when a binary is not installed and installing was not allowed or failed.
var ErrMissingBinary = errors.New("binary missing")

// Binaries are the absolute paths of the programs the local control plane runs.
type Binaries struct {
	Etcd              string
	APIServer         string
	ControllerManager string
	Scheduler         string
	Kwok              string
	Helm              string // the helm CLI, only for side-by-side comparisons
}

// CacheDir is where binaries are installed: $DUCTBOT_CACHE_DIR, else the
// user cache directory's "ductbot" folder. It is never inside the repository.
func CacheDir() (string, error) {
	if d := os.Getenv(CacheDirEnv); d != "" {
		return filepath.Abs(d)
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding a cache folder (set %s): %w", CacheDirEnv, err)
	}
	return filepath.Join(d, "ductbot"), nil
}

// InstallOptions controls Install.
type InstallOptions struct {
	// CacheDir overrides CacheDir().
	CacheDir string
	// Build allows building missing binaries with the Go toolchain. Without
	// it, a missing binary is an error saying how to install it.
	Build bool
	// Progress receives human-readable progress lines; nil discards them.
	Progress io.Writer
}

// Install finds the binaries, building the missing ones into the cache when
// opts.Build is set. A cold build takes several minutes; progress lines are
// written while it runs. It is safe to call again: what exists is reused.
func Install(ctx context.Context, opts InstallOptions) (*Binaries, error) {
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	cache := opts.CacheDir
	if cache == "" {
		var err error
		if cache, err = CacheDir(); err != nil {
			return nil, err
		}
	}
	bin := filepath.Join(cache, "bin")
	k8sDir := filepath.Join(bin, "k8s-"+KubernetesVersion)
	b := &Binaries{
		APIServer:         filepath.Join(k8sDir, "kube-apiserver"),
		ControllerManager: filepath.Join(k8sDir, "kube-controller-manager"),
		Scheduler:         filepath.Join(k8sDir, "kube-scheduler"),
		Kwok:              filepath.Join(bin, "kwok-"+KwokVersion, "kwok"),
		Helm:              filepath.Join(bin, "helm-"+HelmVersion, "helm"),
	}

	etcd, err := findEtcd()
	if err != nil {
		return nil, err
	}
	b.Etcd = etcd

	if !allExist(b.APIServer, b.ControllerManager, b.Scheduler) {
		if !opts.Build {
			return nil, missing("kube-apiserver, kube-controller-manager and kube-scheduler "+KubernetesVersion, k8sDir)
		}
		if err := buildKubernetes(ctx, cache, k8sDir, progress); err != nil {
			return nil, err
		}
	}
	for _, tool := range []struct{ path, pkg, name string }{
		{b.Kwok, "sigs.k8s.io/kwok/cmd/kwok@" + KwokVersion, "kwok " + KwokVersion},
		{b.Helm, "helm.sh/helm/v3/cmd/helm@" + HelmVersion, "helm " + HelmVersion},
	} {
		if allExist(tool.path) {
			continue
		}
		if !opts.Build {
			return nil, missing(tool.name, filepath.Dir(tool.path))
		}
		if err := goInstall(ctx, tool.pkg, tool.name, filepath.Dir(tool.path), progress); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func missing(what, dir string) error {
	return fmt.Errorf("%w: %s not found in %s: run `go run ./cmd/ductbot-dev install` (or `make cluster-bins`) to build it, "+
		"or set %s to a folder that has it", ErrMissingBinary, what, dir, CacheDirEnv)
}

func findEtcd() (string, error) {
	if p := os.Getenv(EtcdEnv); p != "" {
		if allExist(p) {
			return p, nil
		}
		return "", fmt.Errorf("%w: %s=%s does not exist", ErrMissingBinary, EtcdEnv, p)
	}
	if p, err := exec.LookPath("etcd"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/bin/etcd", "/usr/local/bin/etcd"} {
		if allExist(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: etcd not found on PATH: install Debian's etcd-server (`apt-get install etcd-server`) "+
		"or point %s at an etcd binary", ErrMissingBinary, EtcdEnv)
}

func allExist(paths ...string) bool {
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// buildKubernetes builds the three control-plane binaries from the
// k8s.io/kubernetes module. That module cannot be `go install`ed (its go.mod
// replaces the staging modules with local folders), so a small wrapper module
// requires it and replaces every staging module with the published one of the
// same version.
func buildKubernetes(ctx context.Context, cache, dest string, progress io.Writer) error {
	src := filepath.Join(cache, "src", "k8s-"+KubernetesVersion)
	if err := os.MkdirAll(src, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", src, err)
	}
	fmt.Fprintf(progress, "==> preparing the Kubernetes %s build in %s\n", KubernetesVersion, src)
	staging, err := stagingModules(ctx, src)
	if err != nil {
		return err
	}
	var mod strings.Builder
	fmt.Fprintf(&mod, "module ductbot.local/k8sbins\n\ngo 1.26\n\nrequire k8s.io/kubernetes %s\n\n", KubernetesVersion)
	stagingVersion := "v0" + strings.TrimPrefix(KubernetesVersion, "v1")
	for _, m := range staging {
		fmt.Fprintf(&mod, "replace %s => %s %s\n", m, m, stagingVersion)
	}
	tools := "//go:build tools\n\npackage tools\n\nimport (\n" +
		"\t_ \"k8s.io/kubernetes/cmd/kube-apiserver\"\n" +
		"\t_ \"k8s.io/kubernetes/cmd/kube-controller-manager\"\n" +
		"\t_ \"k8s.io/kubernetes/cmd/kube-scheduler\"\n)\n"
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte(mod.String()), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(src, "tools.go"), []byte(tools), 0o644); err != nil {
		return err
	}
	if err := runGo(ctx, src, progress, "resolving modules", "mod", "tidy"); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(cache, ".build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fmt.Fprintf(progress, "==> building kube-apiserver, kube-controller-manager, kube-scheduler %s (first time only: about 5-10 minutes on 2 cores)\n", KubernetesVersion)
	if err := runGo(ctx, src, progress, "building Kubernetes "+KubernetesVersion,
		"build", "-trimpath", "-ldflags=-s -w", "-o", tmp+string(filepath.Separator),
		"k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kube-controller-manager", "k8s.io/kubernetes/cmd/kube-scheduler"); err != nil {
		return err
	}
	return moveInto(tmp, dest)
}

// stagingModules lists the modules k8s.io/kubernetes replaces with its own
// staging folders, read from its go.mod.
func stagingModules(ctx context.Context, dir string) ([]string, error) {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", "k8s.io/kubernetes@"+KubernetesVersion)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("downloading k8s.io/kubernetes@%s (needs the Go module proxy): %w%s", KubernetesVersion, err, stderrOf(err))
	}
	var gomod string
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, `"GoMod": "`); ok {
			gomod = strings.TrimSuffix(strings.TrimSuffix(v, ","), `"`)
		}
	}
	if gomod == "" {
		return nil, fmt.Errorf("go mod download k8s.io/kubernetes@%s did not report its go.mod", KubernetesVersion)
	}
	f, err := os.Open(gomod)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var mods []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 3 && fields[len(fields)-2] == "=>" && strings.HasPrefix(fields[len(fields)-1], "./staging/") {
			mods = append(mods, fields[len(fields)-3])
		}
	}
	if len(mods) == 0 {
		return nil, fmt.Errorf("no staging replacements found in %s", gomod)
	}
	return mods, sc.Err()
}

func goInstall(ctx context.Context, pkg, name, dest string, progress io.Writer) error {
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dest), ".build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fmt.Fprintf(progress, "==> building %s (first time only: about 2 minutes)\n", name)
	cmd := []string{"install", "-trimpath", "-ldflags=-s -w", pkg}
	if err := runGoEnv(ctx, os.TempDir(), progress, "building "+name, []string{"GOBIN=" + tmp}, cmd...); err != nil {
		return err
	}
	return moveInto(tmp, dest)
}

func runGo(ctx context.Context, dir string, progress io.Writer, what string, args ...string) error {
	return runGoEnv(ctx, dir, progress, what, nil, args...)
}

// runGoEnv runs the go command, printing a line every 30 seconds so that a
// long build never looks hung, and returns the command's own output on failure.
func runGoEnv(ctx context.Context, dir string, progress io.Writer, what string, env []string, args ...string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("%w: %s needs the Go toolchain on PATH: %v", ErrMissingBinary, what, err)
	}
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off"), env...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(progress, "    ... still %s (%s)\n", what, time.Since(start).Round(time.Second))
			}
		}
	}()
	err = cmd.Run()
	close(done)
	if err != nil {
		return fmt.Errorf("%s failed: go %s: %w\n%s", what, strings.Join(args, " "), err, text.LastLines(out.String(), 30))
	}
	fmt.Fprintf(progress, "    %s done in %s\n", what, time.Since(start).Round(time.Second))
	return nil
}

// moveInto renames every file of src into dest, so a build that is killed
// half way never leaves a partial binary where Install looks.
func moveInto(src, dest string) error {
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.Rename(filepath.Join(src, e.Name()), filepath.Join(dest, e.Name())); err != nil {
			return fmt.Errorf("installing %s: %w", e.Name(), err)
		}
	}
	return nil
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return "\n" + text.LastLines(string(ee.Stderr), 20)
	}
	return ""
}
