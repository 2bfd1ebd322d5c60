// Command herald-lab runs Herald's network lab (package e2e/lab): a small
// bare-metal site in network namespaces with a real Kubernetes control
// plane, FRR and BIRD routers, and clients.
//
//	herald-lab up      bring the lab up with the samples and a demo Service; Ctrl-C tears it down
//	herald-lab down    remove labs left behind by crashed runs (--all: every run)
//	herald-lab list    list the runs on this machine
//
// It needs root. `make lab` builds the binaries first and runs `herald-lab up`.
package main

import (
	"fmt"
	"os"

	"github.com/heraldlb/herald/e2e/lab/echo"
)

const usage = `usage: herald-lab <command> [flags]

commands:
  up     bring the lab up, apply the samples and a demo Service, print how to
         use it, and keep it running until Ctrl-C (then tear it all down)
  down   remove labs whose owner process died; --all removes every run,
         PREFIX... removes those runs
  list   list lab runs present on this machine
  echo   the pod backend the lab runs inside pod namespaces (internal)

Run "herald-lab up -h" for the flags of up.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "up":
		err = up(args)
	case "down":
		err = down(args)
	case "list":
		err = list()
	case "echo":
		err = echo.Main(args)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "herald-lab: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "herald-lab:", err)
		os.Exit(1)
	}
}
