package bus

import (
	"fmt"
	"strconv"
	"strings"
)

// MinServerVersion is the oldest NATS server the bus works with: the notifier's consumer
// reads several subjects (ConsumerConfig.FilterSubjects), which JetStream has since 2.10.
const MinServerVersion = "2.10.0"

// CheckServerVersion refuses a NATS server older than MinServerVersion, naming both versions.
// On an older server some stages would start and others could not create their consumer, so
// wishes would wait forever half way; better to stop every process at once.
func CheckServerVersion(version string) error {
	got, err := parseVersion(version)
	if err != nil {
		return fmt.Errorf("NATS server version %q: %w", version, err)
	}
	want, _ := parseVersion(MinServerVersion)
	for i := range got {
		if got[i] != want[i] {
			if got[i] < want[i] {
				return fmt.Errorf("NATS server %s is too old: flatbed needs %s or newer (JetStream consumers filtering several subjects); upgrade the server", version, MinServerVersion)
			}
			break
		}
	}
	return nil
}

// parseVersion reads major.minor.patch, ignoring a leading "v" and any pre-release or build
// suffix ("2.11.0-RC.1", "2.10.4+abc").
func parseVersion(v string) ([3]int, error) {
	var out [3]int
	s := strings.TrimPrefix(v, "v")
	if i := strings.IndexAny(s, "-+"); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return out, fmt.Errorf("not major.minor.patch")
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return out, fmt.Errorf("not major.minor.patch")
		}
		out[i] = n
	}
	return out, nil
}
