package wishlist

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const good = `version: 1
user: cvmfsunpacker
cvmfs_repo: 'unpacked.cern.ch/sub'
output_format: 'https://gitlab-registry.cern.ch/unpacked/sync/$(image)'
input:
  - 'https://registry.hub.docker.com/library/centos:centos7'
  - 'registry.hub.docker.com/atlas/analysisbase:21.2.1*'
ignoreErrors: ['https://registry.hub.docker.com/atlas/*']
`

func TestParse(t *testing.T) {
	w, err := Parse([]byte(good), "w.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := &Wishlist{
		Version:      1,
		User:         "cvmfsunpacker",
		CvmfsRepo:    "unpacked.cern.ch/sub",
		OutputFormat: "https://gitlab-registry.cern.ch/unpacked/sync/$(image)",
		Input: []string{
			"https://registry.hub.docker.com/library/centos:centos7",
			"registry.hub.docker.com/atlas/analysisbase:21.2.1*",
		},
		IgnoreErrors: []string{"https://registry.hub.docker.com/atlas/*"},
		Path:         "w.yaml",
	}
	got := *w
	got.refs, got.inputLines, got.formatLine = nil, nil, 0
	if !reflect.DeepEqual(&got, want) {
		t.Errorf("Parse = %+v\nwant    %+v", got, *want)
	}
	refs := w.Refs()
	if len(refs) != 2 || refs[1].Tag != "21.2.1*" || refs[1].Scheme != "https" {
		t.Errorf("Refs() = %+v", refs)
	}
	out, err := w.Output(refs[0])
	if err != nil || out != "https://gitlab-registry.cern.ch/unpacked/sync/library/centos:centos7" {
		t.Errorf("Output = %q, %v", out, err)
	}
	if repo, sub := w.Repo(); repo != "unpacked.cern.ch" || sub != "sub" {
		t.Errorf("Repo() = %q, %q", repo, sub)
	}
}

func TestDefaultFormat(t *testing.T) {
	w, err := Parse([]byte("version: 1\ncvmfs_repo: unpacked.cern.ch\ninput: ['https://registry.hub.docker.com/library/redis:4']\n"), "w.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := w.Output(w.Refs()[0])
	if err != nil || out != "https://registry.hub.docker.com/library/redis_thin:4" {
		t.Errorf("Output = %q, %v", out, err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"empty", "", []string{"empty"}},
		{"not yaml", "version: [1\n", []string{"not valid YAML"}},
		{"list at top", "- a\n", []string{"w.yaml:1: top level", "found a list"}},
		{"wrong version", "version: 2\ncvmfs_repo: r.cern.ch\ninput: ['r.example.org/a:1']\n",
			[]string{"w.yaml:1: version", "version 2 is not supported", "version: 1"}},
		{"version text", "version: one\ncvmfs_repo: r.cern.ch\ninput: ['r.example.org/a:1']\n",
			[]string{"w.yaml:1: version", `"one"`}},
		{"missing all", "user: x\n", []string{"3 problems", "version: missing", "cvmfs_repo: missing", "input: missing"}},
		{"empty repo", "version: 1\ncvmfs_repo: ''\ninput: ['r.example.org/a:1']\n", []string{"w.yaml:2: cvmfs_repo: empty"}},
		{"cvmfs prefix", "version: 1\ncvmfs_repo: /cvmfs/unpacked.cern.ch\ninput: ['r.example.org/a:1']\n",
			[]string{"w.yaml:2: cvmfs_repo", `"unpacked.cern.ch"`}},
		{"dotdot repo", "version: 1\ncvmfs_repo: unpacked.cern.ch/../x\ninput: ['r.example.org/a:1']\n", []string{"cvmfs_repo", "sub-directory"}},
		{"empty input", "version: 1\ncvmfs_repo: r.cern.ch\ninput: []\n", []string{"w.yaml:3: input: empty"}},
		{"null input", "version: 1\ncvmfs_repo: r.cern.ch\ninput:\n", []string{"input: empty"}},
		{"input string", "version: 1\ncvmfs_repo: r.cern.ch\ninput: r.example.org/a:1\n", []string{"input: expected a list"}},
		{"bad image", "version: 1\ncvmfs_repo: r.cern.ch\ninput:\n  - r.example.org/a:1\n  - ubuntu:22.04\n",
			[]string{"w.yaml:5: input[1]", `"ubuntu:22.04"`, "missing registry"}},
		{"duplicate image", "version: 1\ncvmfs_repo: r.cern.ch\ninput:\n  - r.example.org/a:1\n  - https://r.example.org/a:1\n",
			[]string{"w.yaml:5: input[1]", "same image as input[0] on line 4"}},
		{"unknown key", "version: 1\ncvmfs_repo: r.cern.ch\ninput: ['r.example.org/a:1']\nignore_errors: []\n",
			[]string{"w.yaml:4: ignore_errors: unknown key (did you mean ignoreErrors?)", "version, user, cvmfs_repo"}},
		{"duplicate key", "version: 1\nversion: 1\ncvmfs_repo: r.cern.ch\ninput: ['r.example.org/a:1']\n",
			[]string{"version: defined twice (lines 1 and 2)"}},
		{"bad format", "version: 1\ncvmfs_repo: r.cern.ch\noutput_format: 'x.org/$(img)'\ninput: ['r.example.org/a:1']\n",
			[]string{"w.yaml:3: output_format", "unknown variable $(img)", "$(image)"}},
		{"format not image", "version: 1\ncvmfs_repo: r.cern.ch\noutput_format: '$(tag)'\ninput: ['r.example.org/a:1']\n",
			[]string{"w.yaml:3: output_format", "not an image"}},
		{"bad glob", "version: 1\ncvmfs_repo: r.cern.ch\ninput: ['r.example.org/a:1']\nignoreErrors: ['[']\n",
			[]string{"w.yaml:4: ignoreErrors[0]", "not a valid glob"}},
		{"tab indent", "version: 1\ncvmfs_repo: r.cern.ch\ninput:\n\t- 'r.example.org/a:1'\n",
			[]string{"w.yaml:4: not valid YAML", "line 4 is indented with a tab"}},
		{"number input", "version: 1\ncvmfs_repo: r.cern.ch\ninput:\n  - 42\n", []string{"w.yaml:4: input[0]: expected an image name, found the number 42", "quoted string"}},
		{"mapping input", "version: 1\ncvmfs_repo: r.cern.ch\ninput:\n  - image: r.example.org/a:1\n", []string{"w.yaml:4: input[0]: expected an image name, found a mapping"}},
		{"typo key", "version: 1\ncvmfs_repo: r.cern.ch\ninptu: ['r.example.org/a:1']\n", []string{"w.yaml:3: inptu: unknown key (did you mean input?)"}},
		{"credentials in image", "version: 1\ncvmfs_repo: r.cern.ch\ninput: ['https://u:s3cret@r.example.org/a:1']\n", []string{"w.yaml:3: input[0]", "credentials"}},
		{"glob string", "version: 1\ncvmfs_repo: r.cern.ch\ninput: ['r.example.org/a:1']\nignoreErrors: 'x*'\n",
			[]string{"ignoreErrors: expected a list"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), "w.yaml")
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrParse) || errors.Is(err, ErrRead) {
				t.Errorf("error %v: want ErrParse, not ErrRead", err)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error\n%s\ndoes not contain %q", err, want)
				}
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "wishlist.yaml")
	if err := os.WriteFile(path, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := Load(path)
	if err != nil || w.Path != path {
		t.Fatalf("Load = %+v, %v", w, err)
	}
	_, err = Load(filepath.Join(dir, "missing.yaml"))
	if !errors.Is(err, ErrRead) || errors.Is(err, ErrParse) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want ErrRead wrapping ErrNotExist", err)
	}
	if err := os.WriteFile(path, []byte("version: 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); !errors.Is(err, ErrParse) || !strings.Contains(err.Error(), path) {
		t.Errorf("Load(bad) = %v, want ErrParse naming %s", err, path)
	}
}

func TestOutputs(t *testing.T) {
	w, err := Parse([]byte("version: 1\ncvmfs_repo: r.cern.ch\ninput:\n  - r.example.org/a:1\n  - r.example.org/b@sha256:"+strings.Repeat("a", 64)+"\n"), "w.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.Outputs()
	if err == nil || !errors.Is(err, ErrParse) {
		t.Fatalf("Outputs() = %v, want ErrParse for the digest-only image", err)
	}
	for _, want := range []string{"w.yaml:5: input[1]", "the default output_format", "not an image", "give the image a tag", "--skip-thin-image"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	w.OutputFormat = "r.example.org/thin/$(repository)$(reference)"
	outs, err := w.Outputs()
	if err != nil || len(outs) != 2 || outs[0] != "r.example.org/thin/a:1" {
		t.Errorf("Outputs() = %q, %v", outs, err)
	}
}

func TestCheckRepo(t *testing.T) {
	for repo, want := range map[string]string{"unpacked.cern.ch": "", "unpacked.cern.ch/sub": "", "": "empty", "/cvmfs/x": "without /cvmfs/",
		"x/../y": "'..'", "x//y": "single '/'"} {
		err := CheckRepo(repo)
		if (err == nil) != (want == "") || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("CheckRepo(%q) = %v, want %q", repo, err, want)
		}
	}
}
