//go:build linux

package gearmantest

import "syscall"

// sysProcAttr makes the kernel kill gearmand when the test binary dies, so
// that a test killed by its timeout leaves no server behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
