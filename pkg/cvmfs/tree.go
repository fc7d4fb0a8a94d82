package cvmfs

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// IngestTree publishes the local directory dir under base with one ingest, its tar streamed
// as it is written (a mountless publisher's way to publish a tree built elsewhere): owners,
// modes, times, symlinks, hard links within the tree, devices and xattrs kept.
func (p *Publisher) IngestTree(ctx context.Context, base, dir string, catalog bool) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(WriteTree(ctx, pw, dir)) }()
	err := p.Ingest(ctx, base, pr, catalog)
	pr.Close()
	return err
}

// WriteTree writes the tree below dir (dir itself left out) to w as a tar stream, never
// following a symlink.
func WriteTree(ctx context.Context, w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	links := map[[2]uint64]string{} // (dev, ino) of a file with several names -> its first name
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if path == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		rel = filepath.ToSlash(rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		target := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if target, err = os.Readlink(path); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(fi, target)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		h.Name, h.Uname, h.Gname = rel, "", ""
		h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
		if fi.IsDir() {
			h.Name += "/"
		}
		h.Format = tar.FormatPAX
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode().IsRegular() && st.Nlink > 1 {
			key := [2]uint64{st.Dev, st.Ino}
			if first, seen := links[key]; seen {
				h.Typeflag, h.Linkname, h.Size = tar.TypeLink, first, 0
			} else {
				links[key] = rel
			}
		}
		if err := xattrs(path, h); err != nil {
			return err
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if h.Typeflag == tar.TypeReg {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// xattrs adds the extended attributes of path to h.
func xattrs(path string, h *tar.Header) error {
	size, err := unix.Llistxattr(path, nil)
	if err != nil || size == 0 {
		return nil // none, or a file system without them
	}
	buf := make([]byte, size)
	n, err := unix.Llistxattr(path, buf)
	if err != nil {
		return nil
	}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		vsize, err := unix.Lgetxattr(path, name, nil)
		if err != nil {
			continue
		}
		v := make([]byte, vsize)
		if vsize, err = unix.Lgetxattr(path, name, v); err != nil {
			continue
		}
		if h.PAXRecords == nil {
			h.PAXRecords = map[string]string{}
		}
		h.PAXRecords["SCHILY.xattr."+name] = string(v[:vsize])
	}
	return nil
}
