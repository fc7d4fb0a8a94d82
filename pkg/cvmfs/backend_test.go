package cvmfs_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"flatbed.dev/pkg/cvmfs"
)

func TestParseBackends(t *testing.T) {
	got, err := cvmfs.ParseBackends([]string{"unpacked.cern.ch=cvmfs", "gw.example=cvmfs-ingest", "local.example=dir"})
	if err != nil {
		t.Fatal(err)
	}
	b := &cvmfs.Backends{Kinds: got, StoreRoot: "/cvmfs"}
	if p := b.Publisher("unpacked.cern.ch/sub/dir"); p == nil || p.Repo != "unpacked.cern.ch" || p.Mountpoint() != "/cvmfs/unpacked.cern.ch" || p.Mountless {
		t.Errorf("publisher of unpacked.cern.ch/sub/dir: %+v", p)
	}
	if p := b.Publisher("gw.example"); p == nil || !p.Mountless {
		t.Errorf("publisher of gw.example: %+v", p)
	}
	if b.Publisher("local.example") != nil || b.Publisher("other.example") != nil {
		t.Error("a dir repository has a publisher")
	}
	if rel, err := b.Publisher("unpacked.cern.ch/sub").Rel("/cvmfs/unpacked.cern.ch/sub/.layers/ab/abc/layerfs"); err != nil || rel != "sub/.layers/ab/abc/layerfs" {
		t.Errorf("Rel = %q, %v", rel, err)
	}
	if _, err := b.Publisher("unpacked.cern.ch").Rel("/cvmfs/other/x"); err == nil {
		t.Error("a path outside the repository was made relative")
	}
	for _, bad := range []string{"unpacked.cern.ch", "unpacked.cern.ch=zfs", "=cvmfs", "a/b=cvmfs"} {
		if _, err := cvmfs.ParseBackends([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := cvmfs.ParseBackends([]string{"r.example=cvmfs", "r.example=dir"}); err == nil {
		t.Error("two backends for one repository accepted")
	}
}

type failingReader struct{ n int }

func (f *failingReader) Read(b []byte) (int, error) {
	if f.n > 0 {
		f.n--
		return copy(b, strings.Repeat("x", 512)), nil
	}
	return 0, errors.New("download cut off")
}

// A tar that fails part way never reaches a clean end: the ingest is killed first, and the
// repository aborted.
func TestIngestKilledOnAFailingTar(t *testing.T) {
	bin, log := standIn(t)
	p := &cvmfs.Publisher{Repo: "r.example", Bin: bin}
	err := p.Ingest(context.Background(), ".layers/ab/abcd/layerfs", &failingReader{n: 200}, true)
	if err == nil || !strings.Contains(err.Error(), "download cut off") {
		t.Fatalf("error %v", err)
	}
	if got := calls(t, log); len(got) < 1 || got[len(got)-1] != "abort -f r.example" {
		t.Errorf("calls %q, want the ingest then abort -f", got)
	}
	b, _ := os.ReadFile(log)
	if strings.Contains(string(b), "end ingest") {
		t.Errorf("the ingest ran to its end:\n%s", b)
	}
}

// A transaction open when the process is told to stop is aborted, though its work finished.
func TestTransactionAbortedOnStop(t *testing.T) {
	bin, log := standIn(t)
	stop, cancel := context.WithCancel(context.Background())
	p := &cvmfs.Publisher{Repo: "r.example", Bin: bin, Root: t.TempDir(), Stop: stop}
	tx, err := p.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := tx.Commit(context.Background()); err == nil {
		t.Error("published after the stop")
	}
	tx.Abort() // a second abort does nothing
	if got, want := calls(t, log), []string{"transaction r.example", "abort -f r.example"}; !slices.Equal(got, want) {
		t.Errorf("calls %q, want %q", got, want)
	}
	if err := (&cvmfs.Publisher{Repo: "r.example", Bin: bin, Mountless: true}).Transaction(context.Background(), func(string) error { return nil }); !errors.Is(err, cvmfs.ErrMountless) {
		t.Errorf("a mountless transaction: %v", err)
	}
}

func TestIngestFiles(t *testing.T) {
	bin, log := standIn(t)
	p := &cvmfs.Publisher{Repo: "r.example", Bin: bin}
	if err := p.IngestFiles(context.Background(), ".layers/ab/abcd/.metadata", cvmfs.File{Name: "origin.json", Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if got := calls(t, log); !slices.Equal(got, []string{"ingest -t - -b .layers/ab/abcd/.metadata r.example"}) {
		t.Errorf("calls %q", got)
	}
	if err := p.IngestFiles(context.Background(), "x", cvmfs.File{Name: "../y"}); err == nil {
		t.Error("a name outside the base accepted")
	}
}
