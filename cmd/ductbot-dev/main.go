// Command ductbot-dev is ductbot's development command: the local
// Kubernetes control plane and the demo. The production binary,
// cmd/ductbot, links none of it.
//
//	ductbot-dev install                 build the local control plane's binaries into the cache
//	ductbot-dev cluster up|down|env     run a local Kubernetes control plane
//	ductbot-dev demo                    the whole loop on this machine
//	ductbot-dev version
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ductbot/ductbot/cmd/internal/buildinfo"
	"github.com/ductbot/ductbot/cmd/internal/cli"
)

// version overrides the module version when set at build time:
// go build -ldflags "-X main.version=v1.2.3".
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := realMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// realMain is main without the exit: it returns the exit status.
func realMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if version != "" {
		buildinfo.Version = version
	}
	return cli.Execute(ctx, newRoot(), args, stdout, stderr)
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "ductbot-dev",
		Short: "ductbot's development command: the local control plane and the demo",
		Long: `ductbot-dev is ductbot's development command: a local Kubernetes control plane
(etcd, kube-apiserver, controller-manager, scheduler and kwok simulating nodes
and pods) and the demo. Production runs ductbot, which links none of it.

exit status: 0 done, 1 failed, 2 called wrongly (unknown command or flag)`,
		Version: buildinfo.Line("ductbot-dev"),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.AddCommand(installCmd(), clusterCmd(), demoCmd(), cli.VersionCommand("ductbot-dev"))
	return cli.Root(root)
}
