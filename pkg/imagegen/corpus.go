package imagegen

import (
	"archive/tar"
	"strings"
)

// Corpus image names. Every gzip image has tag CorpusTag; the zstd twins too.
const (
	CorpusTag       = "v1"
	BasicName       = "corpus/basic"          // Docker media types, gzip
	WhiteoutsName   = "corpus/whiteouts"      // OCI, gzip
	WhiteoutsZstd   = "corpus/whiteouts-zstd" // OCI, zstd twin of WhiteoutsName
	HardlinksName   = "corpus/hardlinks"      // OCI, gzip
	HardlinksZstd   = "corpus/hardlinks-zstd" // OCI, zstd twin of HardlinksName
	corpusPATH      = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	compressionLbl  = "dev.flatbed.corpus.compression"
	descriptionLbl  = "dev.flatbed.corpus.description"
	longDirSegment  = "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd" // 60 chars
	unicodeDir      = "données"
	unicodeFileName = "日本語.txt"
)

// Long and unicode paths of corpus/basic (relative, no leading slash).
var (
	// LongPath is > 256 bytes in total (needs PAX): long/<60 d>/<60 d>/<60 d>/<80 f>.txt.
	LongPath = "long/" + longDirs + "/" + strings.Repeat("f", 80) + ".txt"
	// SplitPath is > 100 bytes but fits USTAR's prefix+name split.
	SplitPath = "long/" + longDirSegment + "/" + strings.Repeat("s", 80) + ".txt"
	longDirs  = longDirSegment + "/" + longDirSegment + "/" + longDirSegment
	// LongNamePath has a single 150-byte file name.
	LongNamePath = "long/" + strings.Repeat("n", 150)
	// GNULongPath is a > 100 byte name written with a GNU long-name header.
	GNULongPath = "long/gnu-" + strings.Repeat("g", 110)
	// LongTarget is a symlink target > 100 bytes (PAX linkpath).
	LongTarget = "/" + LongPath
	// UnicodePath is a file with a non-ASCII name (PAX path).
	UnicodePath = unicodeDir + "/" + unicodeFileName
)

// Corpus returns the test images (deterministic: same digests on every call).
//
//   - corpus/basic:v1 (Docker media types, gzip, 3 layers): files replaced in
//     every layer (etc/config), setuid/setgid/sticky and 0000 modes (a file and
//     a dir), uid/gid 1000 and 65534, empty dirs, PAX long names and link
//     targets, a GNU long name, unicode names, absolute/relative/dangling/
//     escaping symlinks, implicit parent dirs, "./"-prefixed names.
//   - corpus/whiteouts:v1 (OCI, gzip, 3 layers) and its zstd twin
//     corpus/whiteouts-zstd:v1: file and dir whiteouts, opaque dirs (marker
//     first and after its siblings), whiteout + re-created file in one layer
//     (both orders), file→dir, dir→file, file→symlink, symlink→file,
//     dir→symlink, deleted then re-created paths, whiteout of a missing path.
//   - corpus/hardlinks:v1 (OCI, gzip, 3 layers) and its zstd twin
//     corpus/hardlinks-zstd:v1: hardlink groups within a layer, links to files
//     of earlier layers, a link whose target a later layer whites out.
func Corpus() []Named {
	specs := []imageSpec{
		basicSpec(),
		whiteoutsSpec(WhiteoutsName, gz),
		whiteoutsSpec(WhiteoutsZstd, zst),
		hardlinksSpec(HardlinksName, gz),
		hardlinksSpec(HardlinksZstd, zst),
	}
	return mustBuild(specs, map[string]string{
		WhiteoutsZstd: WhiteoutsName,
		HardlinksZstd: HardlinksName,
	})
}

func compLabel(c compressionKind) string {
	if c == zst {
		return "zstd"
	}
	return "gzip"
}

func basicSpec() imageSpec {
	return imageSpec{
		name: BasicName, tag: CorpusTag, docker: true, comp: gz,
		env:    []string{corpusPATH, "FOO=bar"},
		cmd:    []string{"/bin/sh", "-c", "cat /etc/os-release"},
		labels: map[string]string{compressionLbl: "gzip", descriptionLbl: "modes, owners, names, symlinks"},
		layers: []layerSpec{
			{comment: "base tree: modes, owners, empty dirs", entries: []ent{
				dir("bin", 0o755),
				file("bin/busybox", "#!busybox v1\n", 0o755),
				file("bin/su-tool", "setuid tool\n", 0o4755),
				file("bin/sg-tool", "setgid tool\n", 0o2755),
				dir("etc", 0o755),
				file("etc/os-release", "NAME=\"flatbed corpus\"\nID=corpus\nVERSION_ID=1\n", 0o644),
				file("etc/config", "config v1\n", 0o644),
				dir("tmp", 0o1777),
				dir("srv", 0o755),
				dir("srv/shared", 0o3775, owner(0, 1000)),
				dir("empty", 0o755),
				dir("empty-nested", 0o755),
				dir("empty-nested/a", 0o700),
				dir("empty-nested/a/b", 0o755),
				file("secret", "top secret\n", 0o000),
				dir("locked", 0o000),
				file("locked/inside", "inside a 0000 dir\n", 0o644),
				dir("home", 0o755),
				dir("home/user", 0o750, owner(1000, 1000)),
				file("home/user/.profile", "export EDITOR=vi\n", 0o644, owner(1000, 1000)),
				file("home/user/notes.txt", "private notes\n", 0o600, owner(1000, 1000)),
				dir("nobody", 0o755, owner(65534, 65534)),
				file("nobody/file", "owned by nobody\n", 0o644, owner(65534, 65534)),
				file("mixed-owner", "uid 1000 gid 65534\n", 0o640, owner(1000, 65534)),
			}},
			{comment: "replacements, long and unicode names, symlinks", entries: []ent{
				dir("etc", 0o755),
				file("etc/config", "config v2 -- a longer replacement\n", 0o600),
				dir("bin", 0o755),
				file("bin/busybox", "#!busybox v2\n", 0o755),
				symlink("bin/sh", "/bin/busybox"),
				dir("long", 0o755),
				dir("long/"+longDirSegment, 0o755),
				dir("long/"+longDirSegment+"/"+longDirSegment, 0o755),
				dir("long/"+longDirs, 0o755),
				file(LongPath, "a long path\n", 0o644),
				file(SplitPath, "a USTAR prefix/name split path\n", 0o644),
				file(LongNamePath, "a long file name\n", 0o644),
				file(GNULongPath, "a GNU long name\n", 0o644, format(tar.FormatGNU)),
				symlink("long/link-to-long", LongTarget),
				dir(unicodeDir, 0o755),
				file(UnicodePath, "こんにちは\n", 0o644),
				file(unicodeDir+"/naïve café.txt", "spaces and accents\n", 0o644),
				dir("usr", 0o755),
				dir("usr/lib", 0o755),
				file("usr/lib/libfoo.so.1", "ELF? no, text\n", 0o755),
				symlink("usr/lib/libfoo.so", "libfoo.so.1"),
				symlink("usr/lib/escape", "../../../../../../etc/shadow"),
				dir("usr/share", 0o755),
				symlink("usr/share/etc-link", "../../etc"),
				symlink("abs-dir", "/etc"),
				symlink("dangling", "/does/not/exist"),
				symlink("escape", "../../../../etc/passwd"),
				file("implicit/parent/child.txt", "parents not in the tar\n", 0o644),
			}},
			{comment: "./-prefixed names, third replacement", entries: []ent{
				dir("./", 0o755),
				dir("./etc", 0o755),
				file("./etc/config", "config v3\n", 0o644),
				file("./etc/motd", "welcome\n", 0o644),
				symlink("./usr/bin-link", "../bin"),
			}},
		},
	}
}

func whiteoutsSpec(name string, c compressionKind) imageSpec {
	return imageSpec{
		name: name, tag: CorpusTag, comp: c,
		env:    []string{corpusPATH, "FOO=bar"},
		cmd:    []string{"/bin/true"},
		labels: map[string]string{compressionLbl: compLabel(c), descriptionLbl: "whiteouts, opaque dirs, type changes"},
		layers: []layerSpec{
			{comment: "lower tree", entries: []ent{
				dir("a", 0o755),
				file("a/1", "one\n", 0o644),
				file("a/2", "two\n", 0o644),
				file("a/3", "three\n", 0o644),
				dir("gone-dir", 0o755),
				file("gone-dir/file", "gone\n", 0o644),
				dir("gone-dir/sub", 0o755),
				file("gone-dir/sub/file", "gone too\n", 0o644),
				dir("opq-first", 0o755),
				file("opq-first/old1", "old\n", 0o644),
				dir("opq-first/oldsub", 0o755),
				file("opq-first/oldsub/deep", "old deep\n", 0o644),
				dir("opq-after", 0o755),
				file("opq-after/old", "old\n", 0o644),
				file("opq-after/keep-name", "old keep-name\n", 0o644),
				dir("opq-empty", 0o755),
				file("opq-empty/old", "old\n", 0o644),
				dir("wr", 0o755),
				file("wr/before", "old before\n", 0o644),
				file("wr/after", "old after\n", 0o644),
				file("file-to-dir", "i am a file\n", 0o644),
				dir("dir-to-file", 0o755),
				file("dir-to-file/child", "child\n", 0o644),
				dir("dir-to-file/sub", 0o755),
				file("dir-to-file/sub/x", "x\n", 0o644),
				file("file-to-symlink", "file\n", 0o644),
				symlink("symlink-to-file", "a/1"),
				dir("dir-to-symlink", 0o755),
				file("dir-to-symlink/c", "c\n", 0o644),
				dir("recreated-later", 0o755),
				file("recreated-later/old", "old\n", 0o644),
			}},
			{comment: "whiteouts, opaque dirs, type changes", entries: []ent{
				dir("a", 0o755),
				whiteout("a/2"),
				whiteout("gone-dir"),
				dir("opq-first", 0o755),
				opaque("opq-first"),
				file("opq-first/new1", "new1\n", 0o644),
				file("opq-first/new2", "new2\n", 0o644),
				dir("opq-after", 0o755),
				file("opq-after/new", "new\n", 0o644),
				file("opq-after/keep-name", "new keep-name\n", 0o644),
				opaque("opq-after"), // marker AFTER its siblings
				dir("wr", 0o755),
				whiteout("wr/before"),
				file("wr/before", "new before\n", 0o644), // whiteout then file
				file("wr/after", "new after\n", 0o644),
				whiteout("wr/after"), // file then whiteout, same layer
				dir("file-to-dir", 0o755),
				file("file-to-dir/inner", "inner\n", 0o644),
				file("dir-to-file", "now a file\n", 0o644),
				symlink("file-to-symlink", "a/3"),
				file("symlink-to-file", "now a file\n", 0o644),
				symlink("dir-to-symlink", "a"),
				whiteout("recreated-later"),
				whiteout("never-existed"),
			}},
			{comment: "re-creations, whiteout in an opaque dir, empty opaque dir", entries: []ent{
				dir("a", 0o755),
				file("a/2", "two is back\n", 0o644),
				dir("recreated-later", 0o755),
				file("recreated-later/new", "new\n", 0o644),
				dir("opq-first", 0o755),
				whiteout("opq-first/new2"),
				dir("opq-empty", 0o755),
				opaque("opq-empty"),
			}},
		},
	}
}

func hardlinksSpec(name string, c compressionKind) imageSpec {
	return imageSpec{
		name: name, tag: CorpusTag, comp: c,
		env:    []string{corpusPATH, "FOO=bar"},
		cmd:    []string{"/bin/true"},
		labels: map[string]string{compressionLbl: compLabel(c), descriptionLbl: "hardlinks"},
		layers: []layerSpec{
			{comment: "hardlinks within a layer", entries: []ent{
				dir("data", 0o755),
				file("data/orig", "original\n", 0o644),
				hardlink("data/link-same", "data/orig"),
				hardlink("data/link-same2", "data/orig"),
				file("data/victim", "victim content\n", 0o644),
				file("data/keep", "keep content\n", 0o640, owner(1000, 1000)),
				file("data/replaced", "replaced v1\n", 0o644),
				dir("bin", 0o755),
				file("bin/suid", "setuid and linked\n", 0o4755),
				hardlink("bin/suid-link", "bin/suid"),
				dir("other", 0o755),
				hardlink("other/keep-link", "data/keep"),
			}},
			{comment: "hardlinks to files of the earlier layer", entries: []ent{
				dir("data", 0o755),
				hardlink("data/link-earlier", "data/keep"),
				hardlink("data/link-victim", "data/victim"),
				file("data/replaced", "replaced v2\n", 0o644),
				hardlink("data/link-replaced", "data/replaced"),
			}},
			{comment: "whiteout of link targets", entries: []ent{
				dir("data", 0o755),
				whiteout("data/victim"),
				whiteout("data/orig"),
			}},
		},
	}
}
