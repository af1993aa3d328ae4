package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"helm.sh/helm/v3/pkg/chart/loader"

	"github.com/ductbot/ductbot/core/k8s"
	"github.com/ductbot/ductbot/core/k8s/localcluster"
)

// runDemo brings up the local control plane, deploys the example chart into
// its own namespace and runs its tests, then keeps the cluster up until
// interrupted.
func runDemo(ctx context.Context, _ []string) error {
	bins, err := localcluster.Install(ctx, localcluster.InstallOptions{Build: true, Progress: os.Stderr})
	if err != nil {
		return err
	}
	c, err := localcluster.Start(ctx, localcluster.Options{Binaries: bins, Progress: os.Stderr})
	if err != nil {
		return err
	}
	defer c.Stop()
	kc, err := k8s.New(k8s.Options{Kubeconfig: c.Kubeconfig})
	if err != nil {
		return err
	}
	ch, err := loader.Load("examples/chart/wikifunctions")
	if err != nil {
		return fmt.Errorf("loading the example chart (run the demo from the repository root): %w", err)
	}
	rel := k8s.Release{Name: "demo", Namespace: "ductbot-demo", Chart: ch, Timeout: 2 * time.Minute,
		Labels: map[string]string{k8s.LabelManagedBy: k8s.ManagedBy}}
	fmt.Fprintln(os.Stderr, "==> deploying examples/chart/wikifunctions into namespace ductbot-demo")
	start := time.Now()
	if err := kc.Deploy(ctx, rel); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "==> deployed in %s; running helm test\n", time.Since(start).Round(100*time.Millisecond))
	res, err := kc.Test(ctx, rel.Namespace, rel.Name, 2*time.Minute)
	if err != nil {
		return err
	}
	for _, p := range res.Pods {
		fmt.Fprintf(os.Stderr, "--- %s (%s)\n%s\n", p.Pod, p.Phase, p.Log)
	}
	fmt.Fprintf(os.Stderr, "==> tests passed: %v\n\nThe cluster stays up: export KUBECONFIG=%s\nPress Ctrl-C to stop everything.\n", res.Passed, c.Kubeconfig)
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "==> stopping")
	return nil
}
