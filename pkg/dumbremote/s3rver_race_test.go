package dumbremote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"flatbed.dev/pkg/dumbremote/s3test"
)

// Blobs written concurrently to a real s3rver all land, and the server lives through it.
// s3rver keeps objects as files and removes a directory a delete leaves empty; a writer's
// temporary deleted after its copy emptied tmp/ just as another writer's upload was about to
// open its file there, and s3rver 3.7 died of the unhandled error (CI, stop 17: every request
// after it was refused). The marker object put keeps in tmp/ means tmp/ is never empty.
func TestConcurrentBlobPutsKeepS3rverAlive(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t, "flatbed")
	r, err := Open(ctx, srv.Remote("race"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for w := range 8 {
		wg.Go(func() {
			for i := range 40 {
				body := []byte(fmt.Sprintf("blob %d of writer %d", i, w))
				sum := sha256.Sum256(body)
				h := v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sum)}
				c, err := newChecked(bytes.NewReader(body), h, int64(len(body)))
				if err == nil {
					err = r.b.put(ctx, "blobs/sha256/"+h.Hex, c, int64(len(body)))
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	keys, err := r.b.list(ctx, "blobs/")
	if err != nil {
		t.Fatalf("listing after the writers: %v (is s3rver still up?)", err)
	}
	if len(keys) != 320 {
		t.Errorf("%d blobs on the remote, want 320", len(keys))
	}
	rep, err := r.Verify(ctx)
	if err != nil || rep.Temporary != 0 {
		t.Errorf("verify: %+v, %v; want no temporaries left (the tmp/ marker is not one)", rep, err)
	}
}
