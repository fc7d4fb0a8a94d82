package bus

import (
	"strings"
	"testing"
)

func TestCheckServerVersion(t *testing.T) {
	for _, tc := range []struct {
		version string
		ok      bool
	}{
		{"2.15.2", true},
		{"2.10.0", true},
		{"v2.10.22", true},
		{"2.11.0-RC.1", true},
		{"3.0.0", true},
		{"2.9.10", false}, // Debian 12's
		{"2.9.25", false},
		{"2.2.0", false},
		{"1.99.99", false},
		{"", false},
		{"2.10", false},
		{"two.ten.zero", false},
	} {
		err := CheckServerVersion(tc.version)
		if got := err == nil; got != tc.ok {
			t.Errorf("CheckServerVersion(%q) = %v, want ok=%v", tc.version, err, tc.ok)
			continue
		}
		if err != nil && tc.version != "" && !strings.Contains(err.Error(), tc.version) {
			t.Errorf("CheckServerVersion(%q) = %q: does not name the version found", tc.version, err)
		}
		if err != nil && strings.HasPrefix(tc.version, "2.9") && !strings.Contains(err.Error(), MinServerVersion) {
			t.Errorf("CheckServerVersion(%q) = %q: does not name the version needed", tc.version, err)
		}
	}
}
