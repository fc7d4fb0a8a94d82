package store

import (
	"io"
	"os"
)

// WriteStreamAtomic writes what write produces to path through a locked temporary file next
// to it and a rename, so readers see the old content or the whole new one, never a part, and
// a writer killed half-way leaves only a temporary the next writer of path removes. When
// write fails, path is left as it was. Nothing is held in memory: write streams into the file.
func WriteStreamAtomic(path string, mode os.FileMode, write func(io.Writer) error) error {
	f, err := lockedTemp(path)
	if err != nil {
		return err
	}
	return replaceFrom(f, path, write, mode)
}
