// Package treecmp records a directory tree (types, modes, owners, contents, symlink targets, hardlink groups) without following symlinks, and lists the differences between two such records.
package treecmp
