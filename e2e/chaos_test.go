package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"flatbed.dev/events"
	"flatbed.dev/pkg/imagegen"
)

// chaosImages is the corpus, the demo images and random images with bigger layers, so that
// kills land in the middle of downloads and extractions: at least 10 images.
func chaosImages(t *testing.T) []imagegen.Named {
	t.Helper()
	imgs := append(imagegen.Corpus(), imagegen.Demo()...)
	for i := range 6 {
		img, err := random.Image(2<<20, 3)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, imagegen.Named{Name: fmt.Sprintf("chaos/random%d", i), Tag: "1", Image: img})
	}
	return imgs
}

// watchFinalNames checks, until stop is closed, that every layer and flat tree visible under
// its final name is complete: a published layer has its layer.json, a published flat tree
// its Singularity runscript (both written before the rename that publishes them).
func watchFinalNames(t *testing.T, repo string, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		checks := 0
		for {
			select {
			case <-stop:
				t.Logf("checked final names %d times while running", checks)
				return
			case <-time.After(20 * time.Millisecond):
			}
			checks++
			layers, _ := filepath.Glob(filepath.Join(repo, ".layers", "*", "*"))
			for _, l := range layers {
				if base := filepath.Base(l); len(base) != 64 {
					continue // a temporary or the .metadata of a shard
				}
				if _, err := os.Stat(filepath.Join(l, ".metadata", "layer.json")); os.IsNotExist(err) {
					if _, gone := os.Stat(l); gone == nil {
						t.Errorf("partial layer visible under its final name: %s", l)
					}
				}
			}
			flats, _ := filepath.Glob(filepath.Join(repo, ".flat", "*", "*"))
			for _, f := range flats {
				if base := filepath.Base(f); len(base) != 64 {
					continue
				}
				if _, err := os.Lstat(filepath.Join(f, ".singularity.d", "runscript")); os.IsNotExist(err) {
					t.Errorf("partial flat tree visible under its final name: %s", f)
				}
			}
		}
	}()
	return &wg
}

// killRandomly SIGKILLs a random one of services (their processes in procs) every 0.1-0.8 s
// and restarts it with start, n times, then waits until done says the run under test is over;
// it fails t if that takes longer than limit.
func killRandomly(t *testing.T, procs map[string]*childProcess, services []string, n int, limit time.Duration, done func() bool, start func(service string) *childProcess) {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 42))
	kills := 0
	deadline := time.Now().Add(limit)
	for kills < n || !done() {
		if time.Now().After(deadline) {
			t.Fatalf("no end after %d kills", kills)
		}
		time.Sleep(time.Duration(100+rng.IntN(700)) * time.Millisecond)
		if kills >= n {
			continue // enough chaos: let the run finish
		}
		victim := services[rng.IntN(len(services))]
		p := procs[victim]
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-p.done
		kills++
		t.Logf("kill %d: %s", kills, victim)
		procs[victim] = start(victim)
	}
}

// TestSurvivesRandomSIGKILLs converts at least 10 images with every service as its own
// process while a random service is killed with SIGKILL at random moments (at least 10
// times) and restarted. The store must end up identical to an undisturbed run, nothing
// partial may ever be visible under a final name, and exactly one conversion.completed per
// image must be stored.
func TestSurvivesRandomSIGKILLs(tt *testing.T) {
	t := tt
	imgs := chaosImages(t)
	reg := mpPushImages(t, imgs)
	wl := mpWriteWishlist(t, reg.Host, imgs)

	ref := t.TempDir()
	runFlatbed(t, 0, "convert", wl, "--store-root", ref, "--state-dir", t.TempDir())

	natsURL, _ := startNATSServerProcess(t)
	store := t.TempDir()
	procs := map[string]*childProcess{}
	for _, s := range mpServices {
		procs[s] = startServeProcess(t, s, natsURL, store, t.TempDir())
	}
	stop := make(chan struct{})
	watcher := watchFinalNames(t, filepath.Join(store, mpRepo), stop)
	conv := mpStartConvert(t, "convert", wl, "--nats", natsURL, "--store-root", store)

	killRandomly(t, procs, mpServices, 10, 2*time.Minute, conv.exited, func(s string) *childProcess {
		return startServeProcess(t, s, natsURL, store, t.TempDir())
	})
	close(stop)
	watcher.Wait()
	if !conv.expectExit0(t) {
		t.Fatalf("convert output:\n%s", childLogTail(conv.stdout))
	}
	mpCompareStores(t, ref, store)

	// Exactly one conversion.completed per image in the stream.
	checkOneResultPerWish(t, natsURL, len(imgs))
	for _, s := range mpServices {
		procs[s].stop(t, mpGracefulStop)
	}
}

// checkOneResultPerWish reads every result in the stream on natsURL: there must be no
// conversion.failed and exactly one conversion.completed for each of wishes wishes.
func checkOneResultPerWish(t *testing.T, natsURL string, wishes int) {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, events.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.Subject(events.ConversionCompletedType), events.Subject(events.ConversionFailedType)},
	})
	if err != nil {
		t.Fatal(err)
	}
	perWish := map[string]int{}
	failed := 0
	for {
		batch, err := cons.FetchNoWait(500)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			if m.Subject() == events.Subject(events.ConversionFailedType) {
				failed++
				continue
			}
			perWish[m.Headers().Get("ce-wishid")]++
		}
		if n == 0 {
			break
		}
	}
	if failed != 0 {
		t.Errorf("%d conversion.failed events", failed)
	}
	if len(perWish) != wishes {
		t.Errorf("conversion.completed for %d wishes, want %d", len(perWish), wishes)
	}
	for w, n := range perWish {
		if n != 1 {
			t.Errorf("wish %s completed %d times, want once", w, n)
		}
	}
}
