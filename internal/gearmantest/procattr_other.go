//go:build !linux

package gearmantest

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }
