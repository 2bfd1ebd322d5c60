// Command lab-pause is the pod sandbox ("pause") image of the lab's real
// kubelet nodes: it holds the pod's namespaces, reaps the zombies of
// processes that share its PID namespace, and exits on SIGTERM or SIGINT.
// No sandbox image can be pulled here, so the lab builds this one.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
