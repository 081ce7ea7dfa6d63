package logging

import (
	"fmt"
	"os"
	"sync"
)

// File is a log file that can be reopened at the same path, so that
// logrotate may move it away: after Reopen, lines go to a new file at the
// old path. It is safe for concurrent use.
type File struct {
	path string

	mu sync.Mutex
	f  *os.File
}

// OpenFile opens path for appending, creating it (0644) if needed.
func OpenFile(path string) (*File, error) {
	f, err := openAppend(path)
	if err != nil {
		return nil, err
	}
	return &File{path: path, f: f}, nil
}

func openAppend(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log file: %w", err)
	}
	return f, nil
}

// Path is the file's path.
func (l *File) Path() string { return l.path }

// Write appends p to the file.
func (l *File) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Write(p)
}

// Reopen closes the file and opens its path again. When the path cannot be
// opened, the old file stays in use and the error is returned.
func (l *File) Reopen() error {
	f, err := openAppend(l.path)
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.f
	l.f = f
	l.mu.Unlock()
	return old.Close()
}

// Close closes the file.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}
