package k8s

import (
	"context"
	"fmt"
	"os"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/cli"
	"helm.sh/helm/v3/pkg/registry"
)

// LoadChart loads the chart environments are built from. ref is one of:
//   - a local folder or .tgz file;
//   - oci://registry/path/chart (version required or the latest tag);
//   - https://charts.example.org/path/chart: a chart repository URL followed
//     by the chart's name.
//
// Remote charts are downloaded into Helm's cache. The chart is loaded once at
// start-up and reused for every environment.
func LoadChart(ctx context.Context, ref, version string) (*chart.Chart, error) {
	if ref == "" {
		return nil, fmt.Errorf("chart.ref is empty: expected a local path, oci://... or a repository URL ending in the chart name")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(ref); err == nil {
		ch, err := loader.Load(ref)
		if err != nil {
			return nil, fmt.Errorf("loading chart %s: %w", ref, err)
		}
		return ch, nil
	}
	settings := cli.New()
	opts := action.ChartPathOptions{Version: version}
	name := ref
	switch {
	case strings.HasPrefix(ref, "oci://"):
		rc, err := registry.NewClient()
		if err != nil {
			return nil, fmt.Errorf("creating an OCI registry client: %w", err)
		}
		install := action.NewInstall(&action.Configuration{RegistryClient: rc})
		install.ChartPathOptions = opts
		install.SetRegistryClient(rc)
		path, err := install.LocateChart(ref, settings)
		if err != nil {
			return nil, fmt.Errorf("pulling chart %s: %w", ref, err)
		}
		return loader.Load(path)
	case strings.HasPrefix(ref, "https://"), strings.HasPrefix(ref, "http://"):
		i := strings.LastIndex(strings.TrimSuffix(ref, "/"), "/")
		opts.RepoURL, name = ref[:i], strings.TrimSuffix(ref[i+1:], "/")
	default:
		return nil, fmt.Errorf("chart.ref %q: no such file or folder, and not an oci:// or http(s):// reference", ref)
	}
	path, err := opts.LocateChart(name, settings)
	if err != nil {
		return nil, fmt.Errorf("downloading chart %s from %s: %w", name, opts.RepoURL, err)
	}
	return loader.Load(path)
}
