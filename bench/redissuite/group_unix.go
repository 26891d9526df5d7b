//go:build unix

package main

import (
	"os/exec"
	"syscall"
)

// ownGroup puts runtest in a process group of its own: it starts a test client in the background, and a
// stopped run must not leave that behind.
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// killGroup kills runtest and everything it started.
func killGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
