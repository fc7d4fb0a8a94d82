package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const hexDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// okHead is the part of a wishlist that is right, for cases about the input list.
const okHead = "version: 1\ncvmfs_repo: 'r.cern.ch'\ninput:\n"

// malformedCase is one malformed input given to the real binary: the exit status DUCC users
// script against and pieces of the message that name the entry and say the fix.
type malformedCase struct {
	name     string
	wishlist *string  // written to DIR/wishlist.yaml when set
	args     []string // "{WL}" is the wishlist path, "{DIR}" a temp dir
	env      []string
	code     int
	want     []string // each must be in stderr (stdout for exit 0)
	notWant  []string // none may be in stdout or stderr
	skip     func() string
}

func wl(s string) *string { return &s }

func convertWL(content string, code int, want ...string) malformedCase {
	return malformedCase{wishlist: wl(content), args: []string{"convert", "{WL}"}, code: code, want: want}
}

func input(entries ...string) string {
	var b strings.Builder
	b.WriteString(okHead)
	for _, e := range entries {
		b.WriteString("  - " + e + "\n")
	}
	return b.String()
}

func syntaxCase(ref string, want ...string) malformedCase {
	return malformedCase{args: []string{"check-image-syntax", ref}, code: 1, want: append([]string{"invalid image"}, want...)}
}

func named(name string, c malformedCase) malformedCase { c.name = name; return c }

func malformedCases() []malformedCase {
	return []malformedCase{
		// Files that are not wishlists: 103, naming the file (and line) and the fix.
		named("empty file", convertWL("", 103, "cannot parse wishlist", "wishlist.yaml: the file is empty", "version: 1, cvmfs_repo and input")),
		named("not YAML", convertWL("version: [1\ncvmfs_repo: x\n", 103, "wishlist.yaml", "not valid YAML", "check the indentation")),
		named("YAML list instead of map", convertWL("- version: 1\n- cvmfs_repo: x\n", 103, "wishlist.yaml:1: top level", "found a list", "starts with `version: 1`")),
		named("tab indentation", convertWL(okHead+"\t- 'r.example.org/a:1'\n", 103, "wishlist.yaml:4: not valid YAML", "line 4 is indented with a tab", "only spaces")),
		named("version 2", convertWL("version: 2\ncvmfs_repo: r.cern.ch\ninput: ['r.example.org/a:1']\n", 103, "wishlist.yaml:1: version", "version 2 is not supported", "only `version: 1` exists")),
		named("version one", convertWL("version: one\ncvmfs_repo: r.cern.ch\ninput: ['r.example.org/a:1']\n", 103, "wishlist.yaml:1: version", `found the value "one"`, "write `version: 1`")),
		named("missing version", convertWL("cvmfs_repo: r.cern.ch\ninput: ['r.example.org/a:1']\n", 103, "wishlist.yaml:1: version: missing", "add `version: 1`")),
		named("missing cvmfs_repo", convertWL("version: 1\ninput: ['r.example.org/a:1']\n", 103, "wishlist.yaml:1: cvmfs_repo: missing", "`cvmfs_repo: unpacked.cern.ch`")),
		named("missing everything", convertWL("user: me\n", 103, "3 problems", "version: missing", "cvmfs_repo: missing", "input: missing")),
		named("cvmfs_repo with ..", convertWL("version: 1\ncvmfs_repo: 'r.cern.ch/../etc'\ninput: ['r.example.org/a:1']\n", 103, "wishlist.yaml:2: cvmfs_repo", "'..' path component", "'unpacked.cern.ch/sub/dir'")),
		named("cvmfs_repo /cvmfs/x", convertWL("version: 1\ncvmfs_repo: /cvmfs/x.cern.ch\ninput: ['r.example.org/a:1']\n", 103, "wishlist.yaml:2: cvmfs_repo", `without /cvmfs/, e.g. "x.cern.ch"`)),
		named("empty input", convertWL("version: 1\ncvmfs_repo: r.cern.ch\ninput: []\n", 103, "wishlist.yaml:3: input: empty", "list at least one image")),
		named("input not a list", convertWL("version: 1\ncvmfs_repo: r.cern.ch\ninput: r.example.org/a:1\n", 103, "wishlist.yaml:3: input: expected a list of images", "found the value", "input: ['https://")),
		named("input entry a number", convertWL(input("42"), 103, "wishlist.yaml:4: input[0]: expected an image name, found the number 42", "quoted string")),
		named("input entry a mapping", convertWL(input("image: r.example.org/a:1"), 103, "wishlist.yaml:4: input[0]: expected an image name, found a mapping")),
		named("duplicate input exact", convertWL(input("'r.example.org/a:1'", "'r.example.org/b:1'", "'r.example.org/a:1'"), 103,
			"wishlist.yaml:6: input[2]", `"r.example.org/a:1" is the same image as input[0] on line 4`, "remove one")),
		named("duplicate input normalised", convertWL(input("'r.example.org/a'", "'https://r.example.org/a:latest'"), 103,
			"wishlist.yaml:5: input[1]", "as https://r.example.org/a:latest, the same image as input[0] on line 4")),
		named("input without registry", convertWL(input("'library/ubuntu'"), 103, "wishlist.yaml:4: input[0]", `invalid image "library/ubuntu": missing registry`, "registry.hub.docker.com/library/ubuntu")),
		named("input upper-case repository", convertWL(input("'r.example.org/Library/Ubuntu:1'"), 103, "wishlist.yaml:4: input[0]", "must be lower case", `write "library/ubuntu"`)),
		named("input empty tag", convertWL(input("'r.example.org/a:'"), 103, "wishlist.yaml:4: input[0]", "tag after ':' is empty", "or drop the ':'")),
		named("input bad digest", convertWL(input("'r.example.org/a@sha256:xyz'"), 103, "wishlist.yaml:4: input[0]", `digest "sha256:xyz"`, "sha256:<64 lower-case hex digits>")),
		named("input ftp scheme", convertWL(input("'ftp://r.example.org/a:1'"), 103, "wishlist.yaml:4: input[0]", `scheme "ftp" is not supported`, "use https://")),
		named("input with spaces", convertWL(input("'r.example.org/my image:1'"), 103, "wishlist.yaml:4: input[0]", `component "my image"`, "lower-case letters and digits")),
		named("input double slash", convertWL(input("'r.example.org//double:1'"), 103, "wishlist.yaml:4: input[0]", "empty path component", "single '/'")),
		named("input wildcard with digest", convertWL(input("'r.example.org/a:1.*@"+hexDigest+"'"), 103, "wishlist.yaml:4: input[0]", "wildcard tag cannot be combined with a digest", "drop one")),
		func() malformedCase {
			c := named("input with credentials", convertWL(input("'https://robot:Hunter2-pw@r.example.org/a:1'"), 103, "wishlist.yaml:4: input[0]",
				"credentials in the image name are not supported", "https://***@r.example.org/a:1", "DUCC_AUTH_REGISTRIES"))
			c.notWant = []string{"Hunter2-pw"}
			return c
		}(),
		named("output_format unknown variable", convertWL("version: 1\ncvmfs_repo: r.cern.ch\noutput_format: 'r.example.org/thin/$(foo)'\ninput: ['r.example.org/a:1']\n", 103,
			"wishlist.yaml:3: output_format", "unknown variable $(foo)", "known variables are $(scheme)", "$(image)")),
		named("output_format unclosed", convertWL("version: 1\ncvmfs_repo: r.cern.ch\noutput_format: 'r.example.org/thin/$(image'\ninput: ['r.example.org/a:1']\n", 103,
			"wishlist.yaml:3: output_format", "is not closed", "write $(name)")),
		named("output_format not an image", convertWL("version: 1\ncvmfs_repo: r.cern.ch\noutput_format: '$(tag)'\ninput: ['r.example.org/a:1']\n", 103,
			"wishlist.yaml:3: output_format", `for the image https://r.example.org/a:1 it gives "1", which is not an image`)),
		named("default output_format for a digest-only input", convertWL(input("'r.example.org/a@"+hexDigest+"'"), 103,
			"wishlist.yaml:4: input[0]", `the default output_format "$(scheme)://$(registry)/$(repository)_thin:$(tag)"`, "not an image",
			"give the image a tag", "--skip-thin-image")),
		named("unknown key typo", convertWL("version: 1\ncvmfs_repo: r.cern.ch\ninput: ['r.example.org/a:1']\nignore_errors: ['x']\n", 103,
			"wishlist.yaml:4: ignore_errors: unknown key (did you mean ignoreErrors?)", "known keys are version, user, cvmfs_repo")),
		named("unknown key misspelt", convertWL("version: 1\ncvmfs_repo: r.cern.ch\ninptu: ['r.example.org/a:1']\n", 103,
			"wishlist.yaml:3: inptu: unknown key (did you mean input?)", "wishlist.yaml:1: input: missing")),
		named("ignoreErrors bad glob", convertWL("version: 1\ncvmfs_repo: r.cern.ch\ninput: ['r.example.org/a:1']\nignoreErrors: ['[']\n", 103,
			"wishlist.yaml:4: ignoreErrors[0]", `"[" is not a valid glob`, "filepath.Match syntax")),
		named("ignoreErrors not a list", convertWL("version: 1\ncvmfs_repo: r.cern.ch\ninput: ['r.example.org/a:1']\nignoreErrors: 'x*'\n", 103,
			"wishlist.yaml:4: ignoreErrors: expected a list of patterns", "ignoreErrors: ['https://")),
		named("duplicate key", convertWL("version: 1\nversion: 1\ncvmfs_repo: r.cern.ch\ninput: ['r.example.org/a:1']\n", 103,
			"wishlist.yaml:2: version: defined twice (lines 1 and 2); keep one")),
		{name: "DUCC_IGNORE_ERRORS_FILE bad glob", wishlist: wl(input("'r.example.org/a:1'")), args: []string{"convert", "{WL}"},
			env: []string{"DUCC_IGNORE_ERRORS_FILE={DIR}/ignore.yaml"}, code: 103,
			want: []string{"DUCC_IGNORE_ERRORS_FILE=", "ignore.yaml:1: ignoreErrors[0]", "not a valid glob"}},
		{name: "DUCC_IGNORE_ERRORS_FILE missing", wishlist: wl(input("'r.example.org/a:1'")), args: []string{"convert", "{WL}"},
			env: []string{"DUCC_IGNORE_ERRORS_FILE={DIR}/no-such.yaml"}, code: 102,
			want: []string{"DUCC_IGNORE_ERRORS_FILE=", "cannot read wishlist", "no-such.yaml: no such file or directory"}},

		// Files that cannot be read: 102.
		{name: "wishlist is a directory", args: []string{"convert", "{DIR}"}, code: 102, want: []string{"cannot read wishlist", "is a directory"}},
		{name: "wishlist missing", args: []string{"convert", "{DIR}/no-such.yaml"}, code: 102, want: []string{"cannot read wishlist", "no-such.yaml: no such file or directory"}},
		{name: "wishlist unreadable", wishlist: wl(input("'r.example.org/a:1'")), args: []string{"convert", "{WL}"}, code: 102,
			want: []string{"cannot read wishlist", "permission denied"},
			skip: func() string {
				if os.Geteuid() == 0 {
					return "root reads files without read permission"
				}
				return ""
			}},

		// The repository does not exist: 104.
		{name: "repository does not exist", wishlist: wl(input("'http://127.0.0.1:1/a:1'")), args: []string{"convert", "{WL}", "--store-root", "/cvmfs"}, code: 104,
			want: []string{"repository /cvmfs/r.cern.ch does not exist", "cvmfs_server mkfs"}},

		// check-image-syntax: 1 for a bad reference.
		named("syntax: no registry", syntaxCase("library/ubuntu", "missing registry", "registry.hub.docker.com/library/ubuntu")),
		named("syntax: upper case", syntaxCase("r.example.org/Foo:1", "must be lower case", `write "foo"`)),
		named("syntax: empty tag", syntaxCase("r.example.org/a:", "tag after ':' is empty")),
		named("syntax: bad digest", syntaxCase("r.example.org/a@sha256:xyz", `digest "sha256:xyz"`)),
		named("syntax: ftp scheme", syntaxCase("ftp://r.example.org/a:1", `scheme "ftp"`, "use https://")),
		named("syntax: spaces", syntaxCase("r.example.org/a b:1", `component "a b"`)),
		named("syntax: double slash", syntaxCase("reg//double", "empty path component")),
		named("syntax: wildcard with digest", syntaxCase("r.example.org/a:*@"+hexDigest, "wildcard tag cannot be combined with a digest")),
		func() malformedCase {
			c := named("syntax: credentials", syntaxCase("robot:Hunter2-pw@r.example.org/a:1", "credentials in the image name are not supported", `"***@r.example.org/a:1"`))
			c.notWant = []string{"Hunter2-pw"}
			return c
		}(),
		{name: "syntax: valid reference", args: []string{"check-image-syntax", "r.example.org/a:1"}, code: 0,
			want: []string{"name:       https://r.example.org/a:1", "registry:   r.example.org"}},

		// convert-single-image: its arguments are a one-image wishlist (103), named as arguments.
		{name: "single: bad image", args: []string{"convert-single-image", "library/ubuntu", "r.cern.ch"}, code: 103,
			want: []string{"IMAGE argument", "missing registry", "registry.hub.docker.com/library/ubuntu"}},
		{name: "single: bad repository", args: []string{"convert-single-image", "r.example.org/a:1", "/cvmfs/r.cern.ch"}, code: 103,
			want: []string{"REPO argument", `without /cvmfs/, e.g. "r.cern.ch"`}},
		{name: "single: bad output format", args: []string{"convert-single-image", "r.example.org/a:1", "r.cern.ch", "--output-format", "r.example.org/$(foo)"}, code: 103,
			want: []string{"--output-format", "unknown variable $(foo)"}},

		// Usage errors: 2, with the usage line.
		{name: "usage: convert without wishlist", args: []string{"convert"}, code: 2,
			want: []string{"accepts 1 arg(s), received 0", "usage: flatbed convert WISHLIST", "flatbed convert --help"}},
		{name: "usage: convert-single-image with one argument", args: []string{"convert-single-image", "r.example.org/a:1"}, code: 2,
			want: []string{"accepts 2 arg(s), received 1", "usage: flatbed convert-single-image IMAGE REPO"}},
		{name: "usage: check-image-syntax with two arguments", args: []string{"check-image-syntax", "a", "b"}, code: 2,
			want: []string{"accepts 1 arg(s), received 2", "usage: flatbed check-image-syntax IMAGE"}},
		{name: "usage: serve unknown service", args: []string{"serve", "resolvr"}, code: 2,
			want: []string{`unknown service "resolvr"`, "choose from resolver, ingester, flattener, thinpusher, relocator, lazy, exporter, notifier"}},
		{name: "usage: unknown command", args: []string{"convrt", "x"}, code: 2, want: []string{`unknown command "convrt"`, "Did you mean this?", "convert"}},
		{name: "usage: unknown flag", args: []string{"convert", "x.yaml", "--no-such-flag"}, code: 2, want: []string{"unknown flag: --no-such-flag", "usage: flatbed convert WISHLIST"}},
	}
}

// TestMalformedInputs runs the binary on each malformed wishlist, image reference and command
// line, checking the exit status and that the message names the entry and the fix.
func TestMalformedInputs(t *testing.T) {
	cases := malformedCases()
	if len(cases) < 30 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if c.skip != nil {
				if why := c.skip(); why != "" {
					t.Skip(why)
				}
			}
			dir := t.TempDir()
			path := filepath.Join(dir, "wishlist.yaml")
			if c.wishlist != nil {
				if err := os.WriteFile(path, []byte(*c.wishlist), 0o644); err != nil {
					t.Fatal(err)
				}
				if c.skip != nil { // the unreadable case
					if err := os.Chmod(path, 0); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := os.WriteFile(filepath.Join(dir, "ignore.yaml"), []byte("ignoreErrors: ['[']\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			subst := strings.NewReplacer("{WL}", path, "{DIR}", dir)
			args := []string{}
			for _, a := range c.args {
				args = append(args, subst.Replace(a))
			}
			args = append(args, "--store-root", filepath.Join(dir, "store"), "--state-dir", filepath.Join(dir, "state"))
			if c.name == "repository does not exist" {
				args = append(args, "--store-root", "/cvmfs") // last one wins
			}
			var env []string
			for _, e := range c.env {
				env = append(env, subst.Replace(e))
			}
			code, stdout, stderr := runFlatbedEnv(t, env, args...)
			if code != c.code {
				t.Fatalf("flatbed %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, c.code, stdout, stderr)
			}
			msg := stderr
			if c.code == 0 {
				msg = stdout
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message lacks %q:\n%s", w, msg)
				}
			}
			for _, w := range c.notWant {
				if strings.Contains(stdout+stderr, w) {
					t.Errorf("output shows %q:\n%s%s", w, stdout, stderr)
				}
			}
			if c.code == 102 || c.code == 103 || c.code == 104 {
				if _, err := os.Stat(filepath.Join(dir, "state", "jetstream")); err == nil {
					t.Errorf("a wishlist error started the pipeline")
				}
			}
		})
	}
}
