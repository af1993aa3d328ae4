package localcluster_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ductbot/ductbot/core/k8s/localcluster"
)

// A missing binary that may not be built is an error naming it and how to
// get it.
func TestInstallMissingBinaryNamesIt(t *testing.T) {
	_, err := localcluster.Install(context.Background(), localcluster.InstallOptions{CacheDir: t.TempDir()})
	if !errors.Is(err, localcluster.ErrMissingBinary) {
		t.Fatalf("Install into an empty cache = %v, want ErrMissingBinary", err)
	}
	for _, want := range []string{"kube-apiserver", localcluster.KubernetesVersion, "ductbot-dev install", localcluster.CacheDirEnv} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}

	t.Setenv(localcluster.EtcdEnv, "/nonexistent/etcd")
	_, err = localcluster.Install(context.Background(), localcluster.InstallOptions{CacheDir: t.TempDir()})
	if !errors.Is(err, localcluster.ErrMissingBinary) || !strings.Contains(err.Error(), "/nonexistent/etcd") {
		t.Errorf("Install with a bad %s = %v, want an error naming it", localcluster.EtcdEnv, err)
	}
}

func TestCacheDirIsOverridable(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(localcluster.CacheDirEnv, dir)
	got, err := localcluster.CacheDir()
	if err != nil || got != dir {
		t.Errorf("CacheDir() = %q, %v; want %q", got, err, dir)
	}
}
