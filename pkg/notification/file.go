package notification

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/gofrs/flock"
)

// File is an open notification file. A nil *File is valid and writes
// nothing, like DUCC without -n.
type File struct {
	mu     sync.Mutex // one writer of this process at a time; flock guards the others
	file   *os.File
	lock   *flock.Flock
	now    func() time.Time
	closed bool
}

// Open opens path for appending, creating it (mode 0660, as DUCC) if
// needed; "<path>.lock" serialises writers across processes.
func Open(path string) (*File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o660)
	if err != nil {
		return nil, fmt.Errorf("opening notification file: %w", err)
	}
	return &File{
		file: f,
		lock: flock.New(path+".lock", flock.SetPermissions(0o660)),
		now:  time.Now,
	}, nil
}

// Write appends fields as one JSON line, adding "time" and "pid" unless
// given. The line goes out in a single write(2) on an O_APPEND file while
// holding the lock, so concurrent writers never interleave.
func (f *File) Write(ctx context.Context, fields map[string]string) error {
	if f == nil {
		return nil
	}
	line := make(map[string]string, len(fields)+2)
	for k, v := range fields {
		line[k] = v
	}
	if line[FieldTime] == "" {
		line[FieldTime] = f.now().Format(TimeLayout)
	}
	if line[FieldPID] == "" {
		line[FieldPID] = strconv.Itoa(os.Getpid())
	}
	data, err := json.Marshal(line)
	if err != nil {
		return fmt.Errorf("encoding notification: %w", err)
	}
	data = append(data, '\n')

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errors.New("writing notification: file is closed")
	}
	locked, err := f.lock.TryLockContext(ctx, 5*time.Millisecond)
	if err != nil || !locked {
		return fmt.Errorf("locking %s: %w", f.lock.Path(), errors.Join(err, ctx.Err()))
	}
	defer f.lock.Unlock()
	if _, err := f.file.Write(data); err != nil {
		return fmt.Errorf("writing notification: %w", err)
	}
	return nil
}

// Close closes the file and its lock.
func (f *File) Close() error {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	return errors.Join(f.file.Close(), f.lock.Close())
}
