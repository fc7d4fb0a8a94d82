package cvmfs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"flatbed.dev/pkg/cvmfs"
)

// standIn writes a cvmfs_server stand-in that records every call (one line: its arguments;
// for ingest -t -, the bytes it read), and fails the subcommand named in $STANDIN_FAIL.
func standIn(t *testing.T) (bin, log string) {
	t.Helper()
	dir := t.TempDir()
	bin, log = filepath.Join(dir, "cvmfs_server"), filepath.Join(dir, "calls")
	script := `#!/bin/sh
echo "begin $*" >> "` + log + `"
if [ "$1" = ingest ] && [ "$2" != --delete ]; then
  echo "stdin $(cat | od -An -c | tr -s ' ' | tr -d '\n')" >> "` + log + `"
fi
sleep 0.05
echo "end $1" >> "` + log + `"
if [ "$1" = "$STANDIN_FAIL" ]; then echo "stand-in: $1 failed" >&2; exit 3; fi
`
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, log
}

func calls(t *testing.T, log string) []string {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if strings.HasPrefix(l, "begin ") {
			out = append(out, strings.TrimPrefix(l, "begin "))
		}
	}
	return out
}

func TestTransactionPublishes(t *testing.T) {
	bin, log := standIn(t)
	root := t.TempDir()
	p := &cvmfs.Publisher{Repo: "unpacked.example.org", Bin: bin, Root: root}
	err := p.Transaction(context.Background(), func(r string) error {
		if r != root {
			t.Errorf("root %s, want %s", r, root)
		}
		return cvmfs.MarkCatalog(filepath.Join(r, ".flat"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := calls(t, log), []string{"transaction unpacked.example.org", "publish unpacked.example.org"}; !slices.Equal(got, want) {
		t.Errorf("calls %q, want %q", got, want)
	}
	if _, err := os.Stat(filepath.Join(root, ".flat", ".cvmfscatalog")); err != nil {
		t.Error(err)
	}
}

// Whatever goes wrong inside, nothing is published and the transaction is aborted.
func TestTransactionAborts(t *testing.T) {
	for name, tc := range map[string]struct {
		fail string
		fn   func(ctx context.Context, cancel func()) error
		want []string
	}{
		"work fails":         {"", func(context.Context, func()) error { return errors.New("registry failure") }, []string{"transaction r.example", "abort -f r.example"}},
		"signal during work": {"", func(_ context.Context, cancel func()) error { cancel(); return nil }, []string{"transaction r.example", "abort -f r.example"}},
		"transaction fails":  {"transaction", func(context.Context, func()) error { t.Error("work ran without a transaction"); return nil }, []string{"transaction r.example", "abort -f r.example"}},
		"publish fails":      {"publish", func(context.Context, func()) error { return nil }, []string{"transaction r.example", "publish r.example", "abort -f r.example"}},
	} {
		t.Run(name, func(t *testing.T) {
			bin, log := standIn(t)
			t.Setenv("STANDIN_FAIL", tc.fail)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			p := &cvmfs.Publisher{Repo: "r.example", Bin: bin, Root: t.TempDir()}
			err := p.Transaction(ctx, func(string) error { return tc.fn(ctx, cancel) })
			if err == nil {
				t.Fatal("no error")
			}
			if got := calls(t, log); !slices.Equal(got, tc.want) {
				t.Errorf("calls %q, want %q", got, tc.want)
			}
		})
	}
}

func TestIngestStreamsTheTar(t *testing.T) {
	bin, log := standIn(t)
	p := &cvmfs.Publisher{Repo: "r.example", Bin: bin}
	if err := p.Ingest(context.Background(), ".layers/ab/abcd/layerfs", bytes.NewReader([]byte("tar!")), true); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(log)
	if got := calls(t, log); !slices.Equal(got, []string{"ingest --catalog -t - -b .layers/ab/abcd/layerfs r.example"}) {
		t.Errorf("calls %q", got)
	}
	if !strings.Contains(string(b), "t a r !") {
		t.Errorf("the tar was not streamed:\n%s", b)
	}
	if err := p.Ingest(context.Background(), "../etc", bytes.NewReader(nil), false); err == nil {
		t.Error("a base outside the repository was accepted")
	}
}

func TestDeleteInBatches(t *testing.T) {
	bin, log := standIn(t)
	p := &cvmfs.Publisher{Repo: "r.example", Bin: bin}
	var paths []string
	for i := range cvmfs.DeleteBatch + 2 {
		paths = append(paths, fmt.Sprintf(".flat/aa/%d", i))
	}
	if err := p.Delete(context.Background(), paths...); err != nil {
		t.Fatal(err)
	}
	got := calls(t, log)
	if len(got) != 2 || strings.Count(got[0], "--delete") != cvmfs.DeleteBatch || !strings.HasSuffix(got[1], "--delete .flat/aa/51 r.example") {
		t.Errorf("calls %q", got)
	}
}

// Two publishers of one repository never overlap their transactions (here without a lease
// service: the machine-wide flock).
func TestTransactionsNeverOverlap(t *testing.T) {
	bin, log := standIn(t)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := &cvmfs.Publisher{Repo: fmt.Sprintf("overlap-%d.example", os.Getpid()), Bin: bin, Root: t.TempDir()}
			if err := p.Transaction(context.Background(), func(string) error { time.Sleep(20 * time.Millisecond); return nil }); err != nil {
				t.Error(i, err)
			}
		}()
	}
	wg.Wait()
	b, _ := os.ReadFile(log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 16 {
		t.Fatalf("%d lines:\n%s", len(lines), b)
	}
	// Each transaction's four lines (begin/end transaction, begin/end publish) are contiguous.
	for i := 0; i < len(lines); i += 4 {
		if !strings.HasPrefix(lines[i], "begin transaction") || lines[i+1] != "end transaction" ||
			!strings.HasPrefix(lines[i+2], "begin publish") || lines[i+3] != "end publish" {
			t.Fatalf("transactions overlap:\n%s", b)
		}
	}
}

// An image's flat tree may hold .cvmfscatalog itself, as a symlink out of the store or a fifo:
// marking the tree a nested catalog replaces it with an empty file and writes nothing
// elsewhere (nor blocks on the fifo).
func TestMarkCatalogNeverFollowsTheImage(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(outside, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, plant := range map[string]func(string) error{
		"symlink out":      func(p string) error { return os.Symlink(outside, p) },
		"dangling symlink": func(p string) error { return os.Symlink(outside+"-new", p) },
		"fifo":             func(p string) error { return unix.Mkfifo(p, 0o644) },
		"file with data":   func(p string) error { return os.WriteFile(p, []byte("image's"), 0o644) },
	} {
		t.Run(name, func(t *testing.T) {
			tree := t.TempDir()
			if err := plant(filepath.Join(tree, ".cvmfscatalog")); err != nil {
				t.Fatal(err)
			}
			if err := cvmfs.MarkCatalog(tree); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Lstat(filepath.Join(tree, ".cvmfscatalog"))
			if err != nil || !fi.Mode().IsRegular() || fi.Size() != 0 {
				t.Errorf(".cvmfscatalog is %v (%v), want an empty regular file", fi, err)
			}
			if b, err := os.ReadFile(outside); err != nil || string(b) != "keep" {
				t.Errorf("the file outside reads %q, %v", b, err)
			}
			if _, err := os.Lstat(outside + "-new"); err == nil {
				t.Error("a file was created through the dangling symlink")
			}
		})
	}
}
