package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// interrupt records the signal that ends a run (main's context ends on the same signals), so
// that convert reports it as an interrupt with the shell's status, 128 + the signal number.
type interrupt struct {
	c   chan os.Signal
	got os.Signal
}

func notifyInterrupt() *interrupt {
	i := &interrupt{c: make(chan os.Signal, 1)}
	signal.Notify(i.c, os.Interrupt, syscall.SIGTERM)
	return i
}

func (i *interrupt) stop() { signal.Stop(i.c) }

// signal is the signal received; it waits a moment for it, since main's context may end
// before the signal reaches this channel.
func (i *interrupt) signal() os.Signal {
	if i.got == nil {
		select {
		case i.got = <-i.c:
		case <-time.After(100 * time.Millisecond):
		}
	}
	return i.got
}

// interrupted is the error of a run whose context ended before its images did: an
// interrupt, with status 130 (SIGINT) or 143 (SIGTERM), not a timeout.
func (i *interrupt) interrupted(unfinished int) error {
	code := exitSomeFailed // ended by the caller, not a signal
	name := "interrupted"
	if s, ok := i.signal().(syscall.Signal); ok {
		code = 128 + int(s)
		name = "interrupted (" + signalName(s) + ")"
	}
	return &exitError{code, fmt.Errorf("%s: %d image(s) unfinished", name, unfinished)}
}

func signalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return s.String()
}
