package beneathtest

import (
	"testing"
	"time"
)

// Within runs f and fails t at once if it has not returned after d (a writer stuck opening
// a fifo, say); f is then left running.
func Within(t testing.TB, d time.Duration, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("still blocked after %v", d)
		return nil
	}
}
