package notifier

import (
	"context"
	"io"
	"log/slog"
	"sync"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fakeLines records notification lines.
type fakeLines struct {
	mu    sync.Mutex
	lines []map[string]string
	err   error
}

func (f *fakeLines) Write(_ context.Context, fields map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	c := make(map[string]string, len(fields))
	for k, v := range fields {
		c[k] = v
	}
	f.lines = append(f.lines, c)
	return nil
}
