package harness

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"flatbed.dev/pkg/treecmp"
)

const toolTimeout = 2 * time.Minute

// CopyToOCILayout copies ref (host:port/repo:tag, plain http) with skopeo
// into a new OCI image layout and returns the image as "<layout dir>:img",
// the form umoci's --image and skopeo's oci: transport take.
func CopyToOCILayout(t testing.TB, ref string) string {
	t.Helper()
	skopeo := requireTool(t, "skopeo", "skopeo")
	image := filepath.Join(t.TempDir(), "layout") + ":img"
	run(t, toolTimeout, skopeo, "--insecure-policy", "copy", "--quiet",
		"--src-tls-verify=false", "docker://"+ref, "oci:"+image)
	return image
}

// SkopeoInspectRaw returns the manifest (or index) of ref exactly as the
// registry serves it.
func SkopeoInspectRaw(t testing.TB, ref string) []byte {
	t.Helper()
	skopeo := requireTool(t, "skopeo", "skopeo")
	return run(t, toolTimeout, skopeo, "--insecure-policy", "inspect", "--raw",
		"--tls-verify=false", "docker://"+ref)
}

// SkopeoInspectConfig returns the image config of ref as served.
func SkopeoInspectConfig(t testing.TB, ref string) []byte {
	t.Helper()
	skopeo := requireTool(t, "skopeo", "skopeo")
	return run(t, toolTimeout, skopeo, "--insecure-policy", "inspect", "--raw", "--config",
		"--tls-verify=false", "docker://"+ref)
}

// UmociUnpack pulls ref (host:port/repo:tag, plain http) with skopeo and
// unpacks it with "umoci raw unpack", the reference implementation of OCI
// layer application; it returns the rootfs directory. As root, owners are
// kept; otherwise umoci runs --rootless. umoci 0.4 cannot read zstd layers:
// unpack the gzip twin instead.
func UmociUnpack(t testing.TB, ref string) string {
	t.Helper()
	umoci := requireTool(t, "umoci", "umoci")
	image := CopyToOCILayout(t, ref)
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	args := []string{"raw", "unpack"}
	if os.Geteuid() != 0 {
		args = append(args, "--rootless")
	}
	args = append(args, "--image", image, rootfs)
	run(t, toolTimeout, umoci, args...)
	t.Cleanup(func() { makeRemovable(rootfs) })
	return rootfs
}

// ReferenceTree unpacks ref with UmociUnpack and walks the rootfs.
func ReferenceTree(t testing.TB, ref string) treecmp.Tree {
	t.Helper()
	root := UmociUnpack(t, ref)
	tr, err := treecmp.Walk(root, nil)
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return tr
}

// makeRemovable gives the owner rwx on every directory (0000 dirs of the
// corpus), so the temp dir cleanup can remove the tree when not root.
func makeRemovable(root string) {
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if d != nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
}
