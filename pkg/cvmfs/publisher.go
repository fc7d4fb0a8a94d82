package cvmfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"flatbed.dev/pkg/beneath"
)

// Locker hands out leases that exclude other processes and nodes (the bus's leases satisfy
// it). A repository takes one transaction at a time, whoever opens it.
type Locker interface {
	Lock(ctx context.Context, key string) (release func(), err error)
}

// Publisher publishes into one repository with cvmfs_server.
type Publisher struct {
	Repo string // the repository, e.g. unpacked.cern.ch
	// Bin is the cvmfs_server command ("" = $FLATBED_CVMFS_SERVER, else "cvmfs_server").
	Bin string
	// Root is where the repository is mounted ("" = /cvmfs/<Repo>).
	Root string
	// Locks, when set, gives one transaction per repository across every process sharing
	// the bus; without it an flock in the temporary directory does so for this machine.
	Locks Locker
	Log   *slog.Logger
	// Mountless publishes everything through cvmfs_server ingest, for a gateway publisher
	// with no writable mount: Transaction refuses, the callers ingest tars instead.
	Mountless bool
	// Stop, when set, is the process's own context (it ends on SIGTERM): an ingest running
	// then is killed and a transaction not yet published is aborted, even though the work
	// inside it may finish (a service drains its handlers).
	Stop context.Context
}

// stopped is the reason to abort: ctx ended, or the process is stopping.
func (p *Publisher) stopped(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.Stop != nil {
		if err := p.Stop.Err(); err != nil {
			return fmt.Errorf("the process is stopping: %w", err)
		}
	}
	return nil
}

// bound is ctx, also ended when the process stops.
func (p *Publisher) bound(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	if p.Stop == nil {
		return ctx, cancel
	}
	stop := context.AfterFunc(p.Stop, cancel)
	return ctx, func() { stop(); cancel() }
}

// ErrMountless is Transaction's error on a mountless publisher.
var ErrMountless = errors.New("mountless publisher: no transaction, publish through ingest")

// Mountpoint is where the repository's files are, writable inside a transaction.
func (p *Publisher) Mountpoint() string {
	if p.Root != "" {
		return p.Root
	}
	return filepath.Join("/cvmfs", p.Repo)
}

// Transaction opens a transaction, runs fn with the repository's root, and publishes; when
// fn fails, or ctx ends (a SIGTERM, a lost lease) before it is published, the transaction
// is aborted (abort -f) and nothing is published.
func (p *Publisher) Transaction(ctx context.Context, fn func(root string) error) (err error) {
	tx, err := p.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Abort()
	if err := fn(p.Mountpoint()); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// Tx is an open transaction: Commit publishes it, Abort (deferred) aborts it unless it was
// published. A nil *Tx (a repository that is a plain directory) does nothing.
type Tx struct {
	p       *Publisher
	release func()
	done    bool
}

// Begin takes the repository's lease and opens a transaction (cvmfs_server transaction).
func (p *Publisher) Begin(ctx context.Context) (*Tx, error) {
	if p.Mountless {
		return nil, ErrMountless
	}
	if err := p.stopped(ctx); err != nil {
		return nil, err
	}
	release, err := p.lock(ctx)
	if err != nil {
		return nil, err
	}
	if err := p.run(ctx, nil, "transaction", p.Repo); err != nil {
		p.abort()
		release()
		return nil, fmt.Errorf("opening a transaction on %s: %w", p.Repo, err)
	}
	return &Tx{p: p, release: release}, nil
}

// Commit makes each of catalogs (absolute directories under the mountpoint) the root of a
// nested catalog and publishes (cvmfs_server publish). When ctx has ended (a SIGTERM, a
// lost lease), or anything fails, the transaction is aborted instead and nothing is
// published.
func (t *Tx) Commit(ctx context.Context, catalogs ...string) error {
	if t == nil || t.done {
		return nil
	}
	p := t.p
	for _, dir := range catalogs {
		if err := MarkCatalog(dir); err != nil {
			t.Abort()
			return fmt.Errorf("marking the nested catalog %s: %w", dir, err)
		}
	}
	if err := p.stopped(ctx); err != nil {
		t.Abort()
		return fmt.Errorf("transaction on %s aborted: %w", p.Repo, err)
	}
	t.done = true
	defer t.release()
	if err := p.run(context.WithoutCancel(ctx), nil, "publish", p.Repo); err != nil {
		p.abort()
		return fmt.Errorf("publishing %s: %w", p.Repo, err)
	}
	return nil
}

// Abort aborts the transaction (abort -f) unless it was published or aborted already.
func (t *Tx) Abort() {
	if t == nil || t.done {
		return
	}
	t.done = true
	t.p.abort()
	t.release()
}

// Ingest streams a tar into the repository under base (relative to its root), as one
// publish: cvmfs_server ingest [--catalog] -t - -b BASE REPO. With catalog, BASE gets a
// nested catalog of its own (SPEC: each layerfs). When reading tar fails (a download cut
// short, a layer that fails its digest) or ctx ends, cvmfs_server is killed before it sees
// the end of its input, so it never publishes a partial tar, and abort -f clears what it
// had open.
func (p *Publisher) Ingest(ctx context.Context, base string, tar io.Reader, catalog bool) error {
	if err := checkRel(base); err != nil {
		return err
	}
	release, err := p.lock(ctx)
	if err != nil {
		return err
	}
	defer release()
	args := []string{"ingest"}
	if catalog {
		args = append(args, "--catalog")
	}
	args = append(args, "-t", "-", "-b", base, p.Repo)
	ctx, cancel := p.bound(ctx)
	defer cancel()
	if err := p.run(ctx, &failFirst{r: tar}, args...); err != nil {
		p.abort()
		return fmt.Errorf("ingesting %s into %s: %w", base, p.Repo, err)
	}
	return nil
}

// failFirst is the stdin of an ingest: when its reader fails, the process is killed before
// its stdin is closed (run sets kill), so it cannot take the failure for the tar's end.
type failFirst struct {
	r    io.Reader
	kill func()
}

func (f *failFirst) Read(b []byte) (int, error) {
	n, err := f.r.Read(b)
	if err != nil && err != io.EOF && f.kill != nil {
		f.kill()
	}
	return n, err
}

// DeleteBatch is how many paths one ingest --delete takes (DUCC's batches).
const DeleteBatch = 50

// Delete removes paths (relative to the repository root) with ingest --delete, in batches.
func (p *Publisher) Delete(ctx context.Context, paths ...string) error {
	for _, path := range paths {
		if err := checkRel(path); err != nil {
			return err
		}
	}
	release, err := p.lock(ctx)
	if err != nil {
		return err
	}
	defer release()
	for len(paths) > 0 {
		n := min(len(paths), DeleteBatch)
		args := []string{"ingest"}
		for _, path := range paths[:n] {
			args = append(args, "--delete", path)
		}
		args = append(args, p.Repo)
		if err := p.run(ctx, nil, args...); err != nil {
			return fmt.Errorf("deleting from %s: %w", p.Repo, err)
		}
		paths = paths[n:]
	}
	return nil
}

// Catalogs are the directories of a repository that get a nested catalog (.cvmfscatalog),
// as DUCC makes them: .layers, each .layers/xx, .flat, each .flat/xx, and each layerfs and
// flat tree (the callers add those).
var Catalogs = []string{".layers", ".flat"}

// MarkCatalog makes dir (inside a transaction) the root of a nested catalog. dir is ours (a
// flat tree's or layer's root), but what is in it came from an image: a .cvmfscatalog the
// image put there as a symlink, fifo or device is replaced, never written through.
func MarkCatalog(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	r, err := beneath.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := r.WriteFile(".cvmfscatalog", nil, 0o644); err != nil {
		return fmt.Errorf("marking %s a nested catalog: %w", dir, err)
	}
	return nil
}

func (p *Publisher) abort() {
	if err := p.run(context.Background(), nil, "abort", "-f", p.Repo); err != nil {
		p.log().Error("aborting the transaction failed: check the repository with cvmfs_server", "repo", p.Repo, "err", err)
	}
}

// run runs cvmfs_server with args, stdin from in; its output goes to the log.
func (p *Publisher) run(ctx context.Context, in io.Reader, args ...string) error {
	bin := p.Bin
	if bin == "" {
		bin = os.Getenv("FLATBED_CVMFS_SERVER")
	}
	if bin == "" {
		bin = "cvmfs_server"
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	p.log().Debug("running", "command", bin+" "+strings.Join(args, " "))
	err := func() error {
		if ff, ok := in.(*failFirst); ok {
			// Copied here, not by exec: a failed read kills the process first.
			stdin, err := cmd.StdinPipe()
			if err != nil {
				return err
			}
			if err := cmd.Start(); err != nil {
				return err
			}
			ff.kill = func() { _ = cmd.Process.Kill() }
			_, cerr := io.Copy(stdin, ff)
			if cerr != nil {
				ff.kill()
			}
			stdin.Close()
			werr := cmd.Wait()
			if cerr != nil {
				return fmt.Errorf("reading what to ingest: %w", cerr)
			}
			return werr
		}
		cmd.Stdin = in
		return cmd.Run()
	}()
	if err != nil {
		msg := strings.TrimSpace(out.String())
		if len(msg) > 2000 {
			msg = msg[len(msg)-2000:]
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("%s %s exited with %d: %s", bin, strings.Join(args, " "), ee.ExitCode(), msg)
		}
		return fmt.Errorf("running %s: %w", bin, err)
	}
	return nil
}

// lock takes the repository's lease, or a machine-wide flock without a Locker.
func (p *Publisher) lock(ctx context.Context) (func(), error) {
	if p.Locks != nil {
		return p.Locks.Lock(ctx, "cvmfs."+p.Repo)
	}
	path := filepath.Join(os.TempDir(), "flatbed-cvmfs-"+strings.ReplaceAll(p.Repo, "/", "_")+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

func (p *Publisher) log() *slog.Logger {
	if p.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Log
}

func checkRel(path string) error {
	if path == "" || strings.HasPrefix(path, "/") {
		return fmt.Errorf("%q is not a path relative to the repository", path)
	}
	for _, c := range strings.Split(path, "/") {
		if c == "" || c == "." || c == ".." {
			return fmt.Errorf("%q has an empty, '.' or '..' component", path)
		}
	}
	return nil
}
