package flatten

import (
	"strings"
	"testing"
)

func TestEffectiveCaps(t *testing.T) {
	for _, tc := range []struct {
		status   string
		sysAdmin bool
		ok       bool
	}{
		{"Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n", true, true}, // root, full set
		{"Name:\tx\nCapEff:\t00000000a80425fb\n", false, true},                           // docker's default set for root
		{"Name:\tx\nCapEff:\t0000000000200000\n", true, true},                            // CAP_SYS_ADMIN alone
		{"Name:\tx\nCapEff:\t0000000000000000\n", false, true},                           // unprivileged
		{"Name:\tx\n", false, false},                                                     // no CapEff line
		{"CapEff:\tzz\n", false, false},                                                  // unreadable
	} {
		eff, ok := effectiveCaps(strings.NewReader(tc.status))
		if ok != tc.ok || (eff&(1<<capSysAdmin) != 0) != tc.sysAdmin {
			t.Errorf("%q: caps %x ok %v, want CAP_SYS_ADMIN %v ok %v", tc.status, eff, ok, tc.sysAdmin, tc.ok)
		}
	}
}
