package porttest

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Free gives ports a server can listen on, below the kernel's ephemeral range when there is
// room, and not the same one each time.
func TestFree(t *testing.T) {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		low, _ = strconv.Atoi(strings.Fields(string(b))[0])
	}
	seen := map[int]bool{}
	for range 20 {
		p, err := Free()
		if err != nil {
			t.Fatal(err)
		}
		if low >= 11024 && (p < 10000 || p >= low) {
			t.Errorf("port %d is not below the ephemeral range starting at %d", p, low)
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Fatalf("port %d: %v", p, err)
		}
		l.Close()
		seen[p] = true
	}
	if len(seen) < 15 {
		t.Errorf("20 calls gave only %d different ports", len(seen))
	}
}
