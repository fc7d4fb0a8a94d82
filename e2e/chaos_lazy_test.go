package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"flatbed.dev/pkg/imagegen"
	"flatbed.dev/pkg/lazy"
)

// chaosLazyServices are the services the lazy output goes through.
var chaosLazyServices = []string{"resolver", "lazy", "notifier"}

// TestLazySurvivesRandomSIGKILLs converts four images to eStargz at once, every service its
// own process, while a random one of them is killed with SIGKILL at random moments (at least
// 6 times) and restarted: every conversion succeeds, and every layer of every converted image
// passes eStargz verification (a kill never leaves a converted image pointing at a missing or
// half-written blob, nor a dedup record that does).
func TestLazySurvivesRandomSIGKILLs(t *testing.T) {
	var imgs []imagegen.Named
	for i := range 4 {
		img, err := random.Image(2<<20, 3)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, imagegen.Named{Name: fmt.Sprintf("lazychaos/img%d", i), Tag: "1", Image: img})
	}
	reg := mpPushImages(t, imgs)
	natsURL, _ := startNATSServerProcess(t)
	store := t.TempDir()
	procs := map[string]*childProcess{}
	for _, s := range chaosLazyServices {
		procs[s] = startServeProcess(t, s, natsURL, store, t.TempDir())
	}
	ctx, cancel := context.WithTimeout(context.Background(), mpConvertTimeout)
	defer cancel()
	var clis []*childProcess
	for _, im := range imgs {
		clis = append(clis, startChild(t, ctx, "lazy "+im.Name, flatbedBin, "lazy", "-r", reg.Host+"/"+im.Name, "-i", im.Tag, "-o", "esgz",
			"--plain", "--nats", natsURL, "--store-root", store, "--timeout", mpConvertOwnTimeout))
	}
	killRandomly(t, procs, chaosLazyServices, 6, 3*time.Minute, func() bool {
		for _, c := range clis {
			if !c.exited() {
				return false
			}
		}
		return true
	}, func(s string) *childProcess { return startServeProcess(t, s, natsURL, store, t.TempDir()) })
	for _, c := range clis {
		if !c.expectExit0(t) {
			t.Errorf("%s output:\n%s", c.name, childLogTail(c.stdout))
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	for _, im := range imgs {
		m, img := manifestOf(t, reg.Host+"/"+im.Name+":esgz")
		if len(m.Layers) != 3 {
			t.Errorf("%s:esgz has %d layers, want 3", im.Name, len(m.Layers))
		}
		for _, l := range m.Layers {
			if l.MediaType != types.DockerLayer {
				t.Errorf("%s layer %s is %s", im.Name, l.Digest, l.MediaType)
			}
			if _, err := lazy.VerifyEstargz(blobFile(t, img, l.Digest), l.Annotations[estargz.TOCJSONDigestAnnotation]); err != nil {
				t.Errorf("%s layer %s: %v", im.Name, l.Digest, err)
			}
		}
	}
	checkOneResultPerWish(t, natsURL, len(imgs))
	for _, s := range chaosLazyServices {
		procs[s].stop(t, mpGracefulStop)
	}
}
