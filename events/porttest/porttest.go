// Package porttest picks loopback ports for servers a test starts itself.
package porttest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// Free returns a loopback TCP port that was free a moment ago, for a server the test
// starts next. It is picked below the kernel's ephemeral range (32768-60999 by default), so
// that no bind(0) and no outgoing connection of the tests running alongside takes it in the
// meantime; only when the range leaves no room below it does the kernel pick one.
func Free() (int, error) {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	for range 200 {
		if low < 11024 {
			break
		}
		p := 10000 + rand.IntN(low-10000)
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			l.Close()
			return p, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
