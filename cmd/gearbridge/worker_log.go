package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"log/syslog"
	"os"
	"path/filepath"
	"strconv"

	"github.com/gearbridge/gearbridge/internal/logging"
	"github.com/gearbridge/gearbridge/modgearman/classicconf"
)

// workerLog is where the worker logs: the classic logmode and logfile
// decide, with the classic meaning of automatic (the file if one is
// given, otherwise standard error).
type workerLog struct {
	*slog.Logger
	file   *logging.File // set for a log file, which SIGHUP reopens
	closer io.Closer     // the file or the syslog connection
}

// openWorkerLog opens the log the options ask for.
func openWorkerLog(o workerOptions, s streams) (*workerLog, error) {
	var w io.Writer
	l := &workerLog{}
	switch o.LogMode {
	case "", classicconf.LogModeAutomatic, classicconf.LogModeFile:
		if o.LogFile == "" {
			if o.LogMode == classicconf.LogModeFile {
				return nil, usageError(errors.New("logmode=file needs a logfile"))
			}
			w = s.err
			break
		}
		f, err := logging.OpenFile(o.LogFile)
		if err != nil {
			return nil, usageError(err)
		}
		l.file, l.closer, w = f, f, f
	case classicconf.LogModeStdout:
		w = s.out
	case classicconf.LogModeSyslog:
		sl, err := syslog.New(syslog.LOG_INFO|syslog.LOG_DAEMON, "gearbridge-worker")
		if err != nil {
			return nil, fmt.Errorf("logmode=syslog: %w", err)
		}
		l.closer, w = sl, sl
	case classicconf.LogModeCore:
		return nil, usageError(errLogModeCore)
	default:
		return nil, usageError(fmt.Errorf("logmode %q: want automatic, file, stdout or syslog", o.LogMode))
	}
	log, err := logging.New(w, o.LogLevel, o.LogFormat)
	if err != nil {
		if l.closer != nil {
			_ = l.closer.Close()
		}
		return nil, usageError(err)
	}
	l.Logger = log
	return l, nil
}

// reopen reopens a log file, after logrotate moved it.
func (l *workerLog) reopen() {
	if l.file == nil {
		return
	}
	if err := l.file.Reopen(); err != nil {
		l.Error("reopen log file; logging on to the old one", "file", l.file.Path(), "err", err)
		return
	}
	l.Info("reopened log file", "file", l.file.Path())
}

// Close closes a log file or syslog connection.
func (l *workerLog) Close() error {
	if l.closer == nil {
		return nil
	}
	return l.closer.Close()
}

// writePidFile writes the process id to path and returns the function that
// removes the file again at exit.
func writePidFile(path string) (remove func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	path, err = filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("pidfile: %w", err)
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("pidfile: %w", err)
	}
	return func() { _ = os.Remove(path) }, nil
}
