// Package beneath writes into a directory tree an image controls without ever following,
// opening or writing through anything the image put there: every change is made relative
// to a directory fd resolved with no symlinks, and entries are replaced, never written into.
//
// Paths are resolved with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS)
// where the kernel has it, and otherwise one component at a time, each opened with
// O_NOFOLLOW|O_DIRECTORY relative to its parent's fd. Both give the same answers: a symlink
// on the way (wherever it points) fails with ELOOP, a file, fifo, device or socket on the way
// with ENOTDIR (nothing in the way is ever opened), a missing component with ENOENT, and a
// path that is not plain (absolute, empty, ".", ".." or empty components, NUL) with
// ErrInvalidPath before any system call. Errors from a component are *fs.PathError naming
// that component's path.
package beneath
