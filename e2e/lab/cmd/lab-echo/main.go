// Command lab-echo is the backend the lab runs inside each pod namespace
// (see package echo). The lab starts it; it is not meant to be run by hand.
package main

import (
	"fmt"
	"os"

	"github.com/heraldlb/herald/e2e/lab/echo"
)

func main() {
	if err := echo.Main(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "lab-echo:", err)
		os.Exit(1)
	}
}
