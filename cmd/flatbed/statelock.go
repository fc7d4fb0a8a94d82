package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stateLockName is the file in --state-dir that the process running the embedded NATS
// server holds an exclusive flock(2) on, its pid written in it.
const stateLockName = "flatbed.lock"

// stateLock is a held lock on a state directory; the kernel drops it when the process
// ends, however it ends.
type stateLock struct {
	f *os.File
}

// lockStateDir takes the state directory for this process, or fails at once when another
// process holds it: two embedded NATS servers on the same JetStream files break each other
// (failed renames of the stream files, one process acting on the other's wishes).
func lockStateDir(dir string) (*stateLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the state directory: %w", err)
	}
	path := filepath.Join(dir, stateLockName)
	// No O_TRUNC: the file may hold the pid of the process holding the lock.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the state directory lock: %w", err)
	}
	if err := flockNB(f); err != nil {
		f.Close()
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		return nil, &exitError{exitSomeFailed, stateDirBusy(dir, path)}
	}
	l := &stateLock{f: f}
	l.write("")
	return l, nil
}

// listening records the client URL of the embedded server next to the pid, for the message
// of a process refused the lock.
func (l *stateLock) listening(url string) { l.write(url) }

func (l *stateLock) write(url string) {
	content := strconv.Itoa(os.Getpid()) + "\n"
	if url != "" {
		content += url + "\n"
	}
	// Best effort: the lock is what counts, the content only helps the message.
	if err := l.f.Truncate(0); err == nil {
		_, _ = l.f.WriteAt([]byte(content), 0)
	}
}

// release drops the lock. The file stays: removing it would let a process that opened it
// before the removal lock a file nobody else sees.
func (l *stateLock) release() { _ = l.f.Close() }

func flockNB(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// stateDirBusy says who holds the state directory and what to do.
func stateDirBusy(dir, path string) error {
	pid, url := "", ""
	// The holder writes its pid just after taking the lock: give it a moment.
	for range 20 {
		if b, err := os.ReadFile(path); err == nil {
			fields := strings.Fields(string(b))
			if len(fields) > 0 {
				pid = fields[0]
			}
			if len(fields) > 1 {
				url = fields[1]
			}
		}
		if pid != "" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	who := "another flatbed process"
	if pid != "" {
		who += " (pid " + pid + ")"
	}
	join := "or, if that process listens for NATS clients (flatbed serve), join it with --nats URL"
	if url != "" {
		join = "or join its NATS server with --nats " + url
	}
	return fmt.Errorf("state directory %s is in use by %s, which runs an embedded NATS server on it (%s): "+
		"wait for it to finish, give this run its own --state-dir, %s", dir, who, path, join)
}
