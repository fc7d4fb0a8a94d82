package bus

import (
	"fmt"
	"io/fs"
	"math"
	"path/filepath"
	"syscall"
)

// StoreFraction is the share of its file system the embedded server may fill: of the space
// free when it starts plus what its store already holds (the same share nats-server takes by
// default of free space alone; counting its own files keeps a restart from finding its
// streams over the limit).
const StoreFraction = 0.75

// MinStoreBytes is the least room the embedded server starts with.
const MinStoreBytes = 16 << 20

// sizeStore is the JetStream max store for an embedded server keeping its files in dir.
func sizeStore(dir string) (limit, free, used int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, 0, fmt.Errorf("reading the free space of %s: %w", dir, err)
	}
	free = int64(st.Bavail) * int64(st.Bsize)
	used, err = diskUsage(dir)
	if err != nil {
		return 0, 0, 0, err
	}
	limit = int64(float64(free+used) * StoreFraction)
	if limit < MinStoreBytes {
		return 0, free, used, fmt.Errorf("the file system of %s has %s free; the embedded NATS server needs at least %s: "+
			"free some space or choose another --state-dir", dir, FormatBytes(free), FormatBytes(int64(math.Ceil(MinStoreBytes/StoreFraction))))
	}
	return limit, free, used, nil
}

// diskUsage is what the files under dir take on disk.
func diskUsage(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		} else {
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("measuring %s: %w", dir, err)
	}
	return n, nil
}

// StreamShare is the pipeline stream's limit within a store limit: half of it, at most
// DefaultStreamMaxBytes; the rest is for the dead letters, image descriptions and leases.
func StreamShare(maxStore int64) int64 {
	return min(DefaultStreamMaxBytes, maxStore/2)
}

// FormatBytes writes n in binary units, e.g. "150 MiB".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
