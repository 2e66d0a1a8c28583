// Command pause is raftlab's stand-in for the Kubernetes "pause" image: the
// process that holds a pod's namespaces open while the pod's containers come
// and go. containerd's sandbox_image points at it (localhost/pause:raftlab,
// built by hack/cluster-up.sh with cmd/mkimage), because the real
// registry.k8s.io/pause cannot be pulled on a machine without a registry.
//
// It only waits for SIGTERM or SIGINT and exits 0. As PID 1 of a pod that
// shares its PID namespace it would also inherit orphans; it reaps them so
// that they do not stay zombies (the only thing the real pause does besides
// waiting).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		// Reap every child that has exited; WNOHANG so that we return to
		// waiting for signals when none is left.
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
