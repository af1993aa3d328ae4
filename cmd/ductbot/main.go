// Command ductbot gives every Gerrit patch set its own Kubernetes test
// environment, votes on it, and talks about it in chat.
//
//	ductbot run      --config FILE   run the bot
//	ductbot validate --config FILE   check a configuration and exit
//	ductbot sweep    --config FILE   run one cleanup sweep now
//	ductbot state migrate --from sqlite:PATH --to postgres
//	ductbot version
//
// This is the production binary: the local control plane, the Gerrit test
// server and the demo live in the development command, cmd/ductbot-dev.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// version overrides the module version ductbot reports when set at build
// time: go build -ldflags "-X main.version=v1.2.3".
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := realMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
