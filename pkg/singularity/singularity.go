package singularity

import (
	"fmt"
	"strings"

	"flatbed.dev/pkg/beneath"
)

// Config is what the sandbox files are made from: the image configuration.
type Config struct {
	Env        []string
	Entrypoint []string
	Cmd        []string
	WorkingDir string
}

const header = "#!/bin/sh\n# Written by flatbed from the image configuration.\n"

// sourceEnv loads every env script the way Singularity's own actions do.
const sourceEnv = `for script in /.singularity.d/env/*.sh; do
    if [ -f "$script" ]; then
        . "$script"
    fi
done
`

var actions = map[string]string{
	"exec":  header + sourceEnv + "exec \"$@\"\n",
	"run":   header + sourceEnv + "if [ -x /.singularity.d/runscript ]; then\n    exec /.singularity.d/runscript \"$@\"\nfi\necho \"No runscript found in the container.\" >&2\nexit 1\n",
	"shell": header + sourceEnv + "if [ -n \"${SINGULARITY_SHELL:-}\" ]; then\n    exec $SINGULARITY_SHELL \"$@\"\nfi\nif [ -x /bin/bash ]; then\n    exec /bin/bash --norc \"$@\"\nfi\nexec /bin/sh \"$@\"\n",
	"test":  header + sourceEnv + "if [ -x /.singularity.d/test ]; then\n    exec /.singularity.d/test \"$@\"\nfi\necho \"No test found in the container, exiting.\"\nexit 0\n",
	"start": header + sourceEnv + "if [ -x /.singularity.d/startscript ]; then\n    exec /.singularity.d/startscript \"$@\"\nfi\n",
}

// links are the sandbox symlinks at the root, as `singularity build --sandbox` makes them.
var links = [][2]string{
	{"singularity", ".singularity.d/runscript"},
	{".run", ".singularity.d/actions/run"},
	{".exec", ".singularity.d/actions/exec"},
	{".shell", ".singularity.d/actions/shell"},
	{".test", ".singularity.d/actions/test"},
	{"environment", ".singularity.d/env/90-environment.sh"},
}

// Write adds the Singularity files to root. Paths the image itself has at those names are
// replaced, as Singularity does when it builds a sandbox from a Docker image. root holds an
// image's tree, so nothing in it is followed or written through: a symlink, fifo or device at
// one of those names (or on the way to it) is replaced, never opened.
func Write(root string, c Config) error {
	r, err := beneath.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	for _, d := range []string{".singularity.d", ".singularity.d/actions", ".singularity.d/env", ".singularity.d/libs"} {
		if err := r.MkdirReplace(d, 0o755); err != nil {
			return err
		}
	}
	for name, body := range files(c) {
		if err := r.WriteFile(".singularity.d/"+name, []byte(body), 0o755); err != nil {
			return err
		}
	}
	for _, l := range links {
		if err := r.SymlinkReplace(l[1], l[0]); err != nil {
			return err
		}
	}
	return nil
}

// files are the scripts Write puts in .singularity.d, by their path there.
func files(c Config) map[string]string {
	f := map[string]string{
		"runscript":             runscript(c),
		"env/90-environment.sh": environment(c.Env),
	}
	for name, body := range actions {
		f["actions/"+name] = body
	}
	return f
}

// environment exports the image's Env, the file Singularity's docker bootstrap writes.
func environment(env []string) string {
	var b strings.Builder
	b.WriteString(header)
	b.WriteString("# Custom environment shell code should follow\n")
	for _, e := range env {
		k, v, ok := strings.Cut(e, "=")
		if !ok || !validName(k) {
			continue
		}
		fmt.Fprintf(&b, "export %s=%s\n", k, Quote(v))
	}
	return b.String()
}

func validName(k string) bool {
	if k == "" {
		return false
	}
	for i, r := range k {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// runscript runs the image's Entrypoint and Cmd, like `docker run` would.
func runscript(c Config) string {
	var b strings.Builder
	b.WriteString(header)
	if c.WorkingDir != "" {
		fmt.Fprintf(&b, "cd %s 2>/dev/null || true\n", Quote(c.WorkingDir))
	}
	var words []string
	for _, w := range c.Entrypoint {
		words = append(words, Quote(w))
	}
	b.WriteString("if [ $# -gt 0 ]; then\n")
	if len(words) == 0 {
		b.WriteString("    exec \"$@\"\nfi\n")
	} else {
		fmt.Fprintf(&b, "    exec %s \"$@\"\nfi\n", strings.Join(words, " "))
	}
	for _, w := range c.Cmd {
		words = append(words, Quote(w))
	}
	if len(words) == 0 {
		b.WriteString("exec /bin/sh\n")
	} else {
		fmt.Fprintf(&b, "exec %s\n", strings.Join(words, " "))
	}
	return b.String()
}

// Quote makes s one single-quoted shell word.
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
