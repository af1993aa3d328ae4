// Command ductbot gives every Gerrit patch set its own Kubernetes test
// environment, votes on it, and talks about it in chat.
package main

import (
	"fmt"
	"os"
)

func main() {
	ctx, stop := signalContext()
	defer stop()
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: ductbot run|validate|version|dev ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "demo":
		err = runDemo(ctx, os.Args[2:])
	case "dev":
		err = runDev(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ductbot:", err)
		os.Exit(1)
	}
}
