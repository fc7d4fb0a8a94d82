package events

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// ID derives a stable event id from its parts: the same logical event (same wish, stage and
// digests) always gets the same id, so JetStream's duplicate window drops a re-publish after a
// redelivery or restart.
func ID(t string, parts ...string) string {
	h := sha256.Sum256([]byte(t + "\x00" + strings.Join(parts, "\x00")))
	return t + "-" + hex.EncodeToString(h[:12])
}
