package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"flatbed.dev/pkg/relocate"
	"flatbed.dev/pkg/store"
)

// distinctNames reports whether no two paths share a file name.
func distinctNames(paths []string) bool {
	seen := map[string]bool{}
	for _, p := range paths {
		if seen[filepath.Base(p)] {
			return false
		}
		seen[filepath.Base(p)] = true
	}
	return true
}

// rewriteFiles writes the copy of each --rewrite file to --rewrite-dir with the images of m
// replaced, through a temporary file and a rename. The originals are never written.
func rewriteFiles(o *relocateOpts, m relocate.Mapping, out io.Writer) error {
	if len(o.rewrite) == 0 {
		return nil
	}
	if err := os.MkdirAll(o.rewriteDir, 0o755); err != nil {
		return &exitError{exitSomeFailed, fmt.Errorf("--rewrite-dir: %w", err)}
	}
	for _, p := range o.rewrite {
		in, err := os.ReadFile(p)
		if err != nil {
			return &exitError{exitSomeFailed, fmt.Errorf("--rewrite: %w", err)}
		}
		rewritten, n, err := m.RewriteYAML(in)
		if err != nil {
			return &exitError{exitSomeFailed, fmt.Errorf("--rewrite %s: %w", p, err)}
		}
		dst := filepath.Join(o.rewriteDir, filepath.Base(p))
		if abs, _ := filepath.Abs(p); abs == dst || filepath.Clean(p) == dst {
			return &exitError{exitSomeFailed, fmt.Errorf("--rewrite %s: its copy would replace it; choose another --rewrite-dir", p)}
		}
		if _, err := store.WriteFileAtomic(dst, rewritten, 0o644); err != nil {
			return &exitError{exitSomeFailed, fmt.Errorf("--rewrite %s: %w", p, err)}
		}
		fmt.Fprintf(out, "%-10s %s -> %s (%d image(s) replaced)\n", "rewrote", p, dst, n)
	}
	return nil
}
