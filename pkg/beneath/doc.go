// Package beneath writes into a directory tree an image controls without ever following,
// opening or writing through anything the image put there: every change is made relative
// to a directory fd resolved with no symlinks, and entries are replaced, never written into.
package beneath
