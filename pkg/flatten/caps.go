package flatten

import (
	"bufio"
	"io"
	"os"
	"strconv"
	"strings"
)

// capSysAdmin is the capability that reading trusted.* xattrs needs (opaque markers of the
// overlay whiteout format). Root in a container may lack it: then the markers would read as
// absent, and opaque directories would be silently wrong.
const capSysAdmin = 21

// hasCapability reports whether this process has capability bit c in its effective set.
func hasCapability(c uint) bool {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return os.Geteuid() == 0
	}
	defer f.Close()
	eff, ok := effectiveCaps(f)
	if !ok {
		return os.Geteuid() == 0
	}
	return eff&(1<<c) != 0
}

// effectiveCaps reads the CapEff line of a /proc/<pid>/status file.
func effectiveCaps(r io.Reader) (uint64, bool) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			bits, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return bits, err == nil
		}
	}
	return 0, false
}
