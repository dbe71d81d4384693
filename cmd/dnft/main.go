// Command dnft programs Docker's bridge-network firewall semantics as
// dnft's own nftables tables in one network namespace.
//
//	dnft [--netns NAME|PATH] init [--userland-proxy=true|false] [--ipv6] [--allow-direct-routing] [--ip-forward]
//	dnft network create NAME --bridge IFNAME --subnet CIDR [--subnet CIDR6] [--internal] [-o KEY=VALUE ...]
//	dnft network rm NAME [--force]
//	dnft network ls [--json|-q]
//	dnft port publish NETWORK CONTAINER_IP -p SPEC [-p SPEC ...]
//	dnft port unpublish NETWORK CONTAINER_IP -p SPEC [-p SPEC ...]
//	dnft port ls [--json]
//	dnft ingress publish -p PUB[/PROTO] [-p ...] --target IP [--bridge docker_gwbridge]
//	dnft ingress unpublish -p PUB[/PROTO]
//	dnft ingress ls [--json]
//	dnft status [--json]
//	dnft reset
//	dnft save [-o FILE]
//	dnft restore [FILE|-]
//	dnft apply -f FILE
//	dnft check [--state FILE]        (exit 1 on drift)
//	dnft repair [--state FILE]
//	dnft watch [--state FILE] [--interval D]
//	dnft docker [--host ADDR] [--once] [--userland-proxy=BOOL] [--ip-masq=BOOL] [--ipv6] [--allow-direct-routing] ...
//	dnft demo [--keep] [--ipv6]
//	dnft version
//
// Exit codes: 0 success, 1 failure (kernel or system error), 2 bad input
// (usage errors and invalid values; the kernel is left unchanged).
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// interruptible reports whether the command (see [commandName]) ends
// cleanly on SIGINT and SIGTERM: a watch exits 0, a demo removes its
// namespaces. The others are one batch each, which a signal's default
// action leaves whole or not sent; they do without the signal handling
// (a goroutine blocked on the signal queue, an extra thread and its
// wake-ups at every start).
func interruptible(name string) bool {
	return name == "" || name == "watch" || name == "demo"
}

// run executes the command line args and returns the process exit code.
// Errors are printed to stderr, once, as "dnft: <message>".
func run(args []string, stdout, stderr io.Writer) int {
	if args == nil {
		args = []string{} // nil would make cobra fall back to os.Args
	}
	name := commandName(args)
	ctx := context.Background()
	if interruptible(name) {
		var stop func()
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
	}
	root := newRootCmd(&app{}, name)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil {
		printError(stderr, cmd, err)
	}
	return exitCode(err)
}
