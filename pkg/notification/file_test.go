package notification

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofrs/flock"
)

func readLines(t *testing.T, path string) []Line {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []Line
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l, err := Parse(sc.Bytes())
		if err != nil {
			t.Fatalf("line %d: %v", len(lines)+1, err)
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

func TestWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notifications.json")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	f.now = func() time.Time { return time.Date(2024, 3, 5, 14, 7, 9, 123456789, time.UTC) }
	ctx := context.Background()
	if err := f.Write(ctx, Line{FieldImage: "r/x:1"}.Action(ActionStartLayerConversion)); err != nil {
		t.Fatal(err)
	}
	if err := f.Write(ctx, map[string]string{FieldAction: ActionEndDucc, FieldTime: "given", FieldPID: "42"}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Write(ctx, Line{}); err == nil {
		t.Error("Write after Close: no error")
	}
	got := readLines(t, path)
	want := []Line{
		{FieldAction: "start_layer_conversion", FieldImage: "r/x:1", FieldTime: " 5 Mar 2024 - 14:07:09.123", FieldPID: strconv.Itoa(os.Getpid())},
		{FieldAction: "end_ducc", FieldTime: "given", FieldPID: "42"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("lines = %v\nwant    %v", got, want)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm()&0o007 != 0 {
		t.Errorf("mode = %v, %v; want no access for others", info.Mode(), err)
	}
}

func TestNilFile(t *testing.T) {
	var f *File
	if err := f.Write(context.Background(), Line{FieldAction: ActionStartDucc}); err != nil {
		t.Error(err)
	}
	if err := f.Close(); err != nil {
		t.Error(err)
	}
}

func TestOpenError(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "missing", "n.json")); err == nil {
		t.Error("Open in a missing directory: no error")
	}
}

func TestWriteWaitsForLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n.json")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	other := flock.New(path + ".lock")
	if err := other.Lock(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := f.Write(ctx, Line{FieldAction: ActionStartDucc}); err == nil {
		t.Error("Write while another holds the lock and the context ends: no error")
	}
	if err := other.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := f.Write(context.Background(), Line{FieldAction: ActionStartDucc}); err != nil {
		t.Fatal(err)
	}
	if n := len(readLines(t, path)); n != 1 {
		t.Errorf("%d lines, want 1", n)
	}
}

// TestConcurrentWriters writes 1000 large lines from 10 goroutines, half
// through one shared File and half through Files of their own.
func TestConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n.json")
	shared, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close()
	const writers, each = 10, 100
	payload := strings.Repeat("x", 16<<10) // far above PIPE_BUF
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := shared
			if w%2 == 1 {
				own, err := Open(path)
				if err != nil {
					errs <- err
					return
				}
				defer own.Close()
				f = own
			}
			for i := range each {
				l := Line{"writer": strconv.Itoa(w), "n": strconv.Itoa(i), "payload": payload}
				if err := f.Write(context.Background(), l); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	checkLines(t, path, writers, each, payload)
}

func checkLines(t *testing.T, path string, writers, each int, payload string) {
	t.Helper()
	lines := readLines(t, path)
	if len(lines) != writers*each {
		t.Fatalf("%d lines, want %d", len(lines), writers*each)
	}
	seen := map[string]bool{}
	for _, l := range lines {
		if l["payload"] != payload {
			t.Fatalf("damaged line: writer %s n %s", l["writer"], l["n"])
		}
		seen[l["writer"]+"/"+l["n"]] = true
	}
	if len(seen) != writers*each {
		t.Errorf("%d distinct lines, want %d", len(seen), writers*each)
	}
}

// TestConcurrentProcesses runs this test binary several times as writer
// processes on one file.
func TestConcurrentProcesses(t *testing.T) {
	if path := os.Getenv("NOTIFICATION_HELPER_PATH"); path != "" {
		helperProcess(path, os.Getenv("NOTIFICATION_HELPER_WRITER"))
		return
	}
	path := filepath.Join(t.TempDir(), "n.json")
	const procs, each = 4, 100
	payload := strings.Repeat("y", 16<<10)
	var cmds []*exec.Cmd
	for p := range procs {
		cmd := exec.Command(os.Args[0], "-test.run=^TestConcurrentProcesses$")
		cmd.Env = append(os.Environ(), "NOTIFICATION_HELPER_PATH="+path, "NOTIFICATION_HELPER_WRITER="+strconv.Itoa(p))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	checkLines(t, path, procs, each, payload)
}

func helperProcess(path, writer string) {
	f, err := Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer f.Close()
	payload := strings.Repeat("y", 16<<10)
	for i := range 100 {
		if err := f.Write(context.Background(), Line{"writer": writer, "n": strconv.Itoa(i), "payload": payload}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
