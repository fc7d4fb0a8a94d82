package store

import (
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Temporary names are locked (flock) by the process writing them for as long as it writes.
// A temporary whose lock can be taken belongs to a process that died (SIGKILL, power loss)
// and is removed by the next writer of the same final name, so crashes leave no litter.
var held sync.Map // temporary path -> *os.File holding its lock

func lockTemp(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return err
	}
	held.Store(path, f)
	return nil
}

func releaseTemp(path string) {
	if f, ok := held.LoadAndDelete(path); ok {
		f.(*os.File).Close() // closing drops the lock
	}
}

// cleanStale removes the temporaries in dir whose names start with prefix and whose writer
// is gone. Temporaries of live writers (this process or another) keep their lock.
func cleanStale(dir, prefix string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if _, mine := held.Load(p); mine {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			_ = RemoveAll(p)
		}
		f.Close()
	}
}

// withDirLock runs fn holding an exclusive flock on dir. Creating a temporary and taking its
// lock happen under it, and so does cleanStale: a temporary another writer has just created
// but not yet locked can never be mistaken for a dead writer's.
func withDirLock(dir string, fn func() error) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX); err != nil {
		return err
	}
	defer unix.Flock(int(d.Fd()), unix.LOCK_UN)
	return fn()
}
