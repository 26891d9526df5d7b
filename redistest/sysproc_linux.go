package redistest

import "syscall"

// sysProcAttr makes the kernel kill a child when the test binary dies, so a crashed test leaves no
// redis-server behind holding ports.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
