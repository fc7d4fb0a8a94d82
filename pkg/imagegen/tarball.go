package imagegen

import (
	"archive/tar"
	"bytes"
	"fmt"
	"path"
	"strings"
	"time"
)

// Epoch is the fixed modification time of every tar entry, config and history item.
var Epoch = time.Date(2024, time.January, 2, 3, 4, 5, 0, time.UTC)

// ent is one tar entry: a header and, for regular files, its body.
type ent struct {
	hdr  tar.Header
	body string
}

type entOpt func(*ent)

// owner sets uid and gid.
func owner(uid, gid int) entOpt {
	return func(e *ent) { e.hdr.Uid, e.hdr.Gid = uid, gid }
}

// format forces a tar header format (e.g. tar.FormatGNU for a GNU long name).
func format(f tar.Format) entOpt {
	return func(e *ent) { e.hdr.Format = f }
}

func mk(typ byte, name string, mode int64, opts []entOpt) ent {
	e := ent{hdr: tar.Header{Typeflag: typ, Name: name, Mode: mode, ModTime: Epoch}}
	for _, o := range opts {
		o(&e)
	}
	return e
}

// dir is a directory entry; the name gets a trailing slash like docker's tars.
func dir(name string, mode int64, opts ...entOpt) ent {
	if !strings.HasSuffix(name, "/") {
		name += "/"
	}
	return mk(tar.TypeDir, name, mode, opts)
}

// file is a regular file entry.
func file(name, body string, mode int64, opts ...entOpt) ent {
	e := mk(tar.TypeReg, name, mode, opts)
	e.body = body
	e.hdr.Size = int64(len(body))
	return e
}

// symlink is a symbolic link entry; target is stored verbatim.
func symlink(name, target string, opts ...entOpt) ent {
	e := mk(tar.TypeSymlink, name, 0o777, opts)
	e.hdr.Linkname = target
	return e
}

// hardlink is a hard link entry; target is a path inside the image (no leading slash).
func hardlink(name, target string, opts ...entOpt) ent {
	e := mk(tar.TypeLink, name, 0o644, opts)
	e.hdr.Linkname = target
	return e
}

// whiteout hides name (a path) from lower layers: an empty file "<dir>/.wh.<base>".
func whiteout(name string) ent {
	d, b := path.Split(name)
	return file(d+".wh."+b, "", 0o644)
}

// opaque marks dir as opaque: "<dir>/.wh..wh..opq".
func opaque(dir string) ent {
	return file(strings.TrimSuffix(dir, "/")+"/.wh..wh..opq", "", 0o644)
}

// buildTar writes the entries, in order, as an uncompressed tar stream.
func buildTar(entries []ent) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if err := tw.WriteHeader(&h); err != nil {
			return nil, fmt.Errorf("tar header %q: %w", h.Name, err)
		}
		if e.body != "" {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				return nil, fmt.Errorf("tar body %q: %w", h.Name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
