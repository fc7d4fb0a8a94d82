package flattener

import (
	"os"
	"syscall"
	"time"

	"flatbed.dev/events"
)

// rebuild says a -g (--convert-again) wish wants the flat tree at final built again, as
// DUCC's -g redoes images already converted, even when the tree is there (it may have been
// damaged). Every layer.ingested of the wish ends in the flattener: only the first rebuilds.
// A tree whose inode changed after the wish was submitted is that rebuild (its temporary
// directory was made after), or a newer one.
func rebuild(final string, job events.Job) bool {
	if !job.ConvertAgain {
		return false
	}
	fi, err := os.Stat(final)
	if err != nil {
		return true
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || job.SubmittedAt.IsZero() {
		return true
	}
	// The kernel stamps ctime from a clock that lags by up to a tick.
	return time.Unix(st.Ctim.Unix()).Add(ctimeLag).Before(job.SubmittedAt)
}

// ctimeLag bounds how far behind the clock an inode's ctime may be stamped (one kernel tick).
const ctimeLag = 20 * time.Millisecond
