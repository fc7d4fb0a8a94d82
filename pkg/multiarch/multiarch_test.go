package multiarch

import (
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func entry(os, arch, variant string) v1.Descriptor {
	return v1.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Platform: &v1.Platform{OS: os, Architecture: arch, Variant: variant}}
}

// DUCC's alias names (cvmfs/cvmfs#4170) link to the platform directories present, and a
// directory never gets an alias of its own name.
func TestAliases(t *testing.T) {
	got := Aliases([]string{"amd64", "arm64:v8", "arm:v6", "386", "ppc64le"})
	want := map[string]string{"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64:v8", "arm64": "arm64:v8",
		"armel": "arm:v6", "armv6l": "arm:v6", "i386": "386", "i686": "386"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Aliases = %v, want %v", got, want)
	}
	if got := Aliases([]string{"arm64"}); !reflect.DeepEqual(got, map[string]string{"aarch64": "arm64"}) {
		t.Errorf("with arm64 without a variant: %v, want aarch64 -> arm64 alone", got)
	}
}

func TestSelect(t *testing.T) {
	idx := &v1.IndexManifest{Manifests: []v1.Descriptor{
		entry("linux", "amd64", ""), entry("linux", "arm64", "v8"), entry("linux", "arm", "v7"),
		entry("windows", "amd64", ""), entry("unknown", "unknown", ""), entry("linux", "amd64", ""),
	}}
	all, skipped, err := Select(idx, true, v1.Platform{OS: "linux", Architecture: "amd64"})
	if err != nil || len(skipped) != 0 {
		t.Fatal(err, skipped)
	}
	var dirs []string
	for _, d := range all {
		dirs = append(dirs, Dir(*d.Platform))
	}
	if strings.Join(dirs, " ") != "amd64 arm64:v8 arm:v7" {
		t.Errorf("all: %v, want the linux platforms once each", dirs)
	}
	for _, c := range []struct {
		host v1.Platform
		want string
	}{
		{v1.Platform{OS: "linux", Architecture: "amd64"}, "linux/amd64"},
		{v1.Platform{OS: "linux", Architecture: "arm64"}, "linux/arm64/v8"},
		{v1.Platform{OS: "linux", Architecture: "arm", Variant: "v8"}, "linux/arm/v7"},
	} {
		got, skipped, err := Select(idx, false, c.host)
		if err != nil || len(got) != 1 || String(*got[0].Platform) != c.want || len(skipped) != 2 {
			t.Errorf("host %s: %v skipped %v (%v), want %s and two skipped", String(c.host), got, skipped, err, c.want)
		}
	}
	_, _, err = Select(idx, false, v1.Platform{OS: "linux", Architecture: "riscv64"})
	if err == nil || !strings.Contains(err.Error(), "linux/amd64, linux/arm64/v8") || !strings.Contains(err.Error(), "-m/--multi-arch") {
		t.Errorf("no host platform: %v", err)
	}
}

// An index is the image's own: a platform whose architecture or variant would not name one
// directory under .multiarch ("..", ".", a slash, a leading dot, upper case) is not converted.
func TestHostilePlatformsAreNotConvertible(t *testing.T) {
	for _, p := range []struct{ arch, variant string }{
		{"..", ""}, {".", ""}, {"arm64", ".."}, {"arm64", "."}, {"a/b", ""}, {".hidden", ""}, {"arm64", "v8/../.."}, {"AMD64", ""}, {"", ""},
	} {
		if Convertible(entry("linux", p.arch, p.variant)) {
			t.Errorf("linux/%s/%s is convertible", p.arch, p.variant)
		}
	}
	for _, p := range []struct{ arch, variant string }{{"amd64", ""}, {"arm64", "v8"}, {"ppc64le", ""}, {"386", ""}, {"riscv64", ""}} {
		if !Convertible(entry("linux", p.arch, p.variant)) {
			t.Errorf("linux/%s/%s is not convertible", p.arch, p.variant)
		}
	}
	idx := &v1.IndexManifest{Manifests: []v1.Descriptor{entry("linux", "..", ""), entry("linux", "amd64", "")}}
	all, _, err := Select(idx, true, v1.Platform{OS: "linux", Architecture: "amd64"})
	if err != nil || len(all) != 1 || all[0].Platform.Architecture != "amd64" {
		t.Errorf("Select = %v, %v; want amd64 alone", all, err)
	}
}
