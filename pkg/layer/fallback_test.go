package layer

import (
	"testing"

	"flatbed.dev/pkg/beneath"
)

// The same guarantees and the same answers hold on kernels without openat2, where
// pkg/beneath walks every path one component at a time.
func TestWithoutOpenat2(t *testing.T) {
	t.Cleanup(beneath.WithoutOpenat2())
	t.Run("escapes", TestEscapes)
	t.Run("hostile corpus", TestHostileCorpus)
	t.Run("replace", TestReplace)
	t.Run("hardlinks", TestHardlinks)
	t.Run("whiteouts", TestWhiteoutAndSameNameInOneLayer)
	t.Run("dropped", TestDroppedDevices)
}
