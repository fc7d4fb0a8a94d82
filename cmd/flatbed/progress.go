package main

import (
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/lmittmann/tint"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"flatbed.dev/events"
	"flatbed.dev/pkg/imageref"
)

// progressView draws an interactive convert's progress on a terminal (mpb): a bar per image
// counting the compressed bytes of its layers fetched so far against the layers asked for,
// and a bar per layer being fetched, removed once it is in. The in-process ingester reports
// the bytes as they arrive (ingester.Service.Progress); results end the images' bars. Log
// lines and result lines are printed above the bars through it.
type progressView struct {
	p      *mpb.Progress
	mu     sync.Mutex
	images map[string]*imageProgress // by wish id
}

type imageProgress struct {
	bar    *mpb.Bar
	total  int64
	layers map[string]*layerProgress // by layer digest
	ended  bool
}

type layerProgress struct {
	bar        *mpb.Bar
	size, done int64
}

// isTerminal says whether f is a terminal (a character device).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// newProgressView draws on w, a terminal.
func newProgressView(w io.Writer) *progressView {
	return &progressView{p: mpb.New(mpb.WithOutput(w), mpb.WithWidth(32), mpb.WithAutoRefresh()), images: map[string]*imageProgress{}}
}

// Write prints b above the bars.
func (v *progressView) Write(b []byte) (int, error) { return v.p.Write(b) }

// wished adds the bar of one wished image.
func (v *progressView) wished(wishID, image string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.image(wishID, image)
}

func (v *progressView) image(wishID, image string) *imageProgress {
	if ip, ok := v.images[wishID]; ok {
		return ip
	}
	name := imageref.Redact(image)
	ip := &imageProgress{layers: map[string]*layerProgress{}}
	ip.bar = v.p.AddBar(0,
		mpb.PrependDecorators(decor.Name(name, decor.WCSyncSpaceR)),
		mpb.AppendDecorators(
			decor.OnCompleteOrOnAbort(decor.CountersKibiByte("% .1f / % .1f", decor.WCSyncSpace), ""),
			decor.OnAbort(decor.OnComplete(decor.Percentage(decor.WCSyncSpace), "done"), "FAILED"),
		),
	)
	v.images[wishID] = ip
	return ip
}

// layer is the in-process ingester's report of n more bytes of a layer.
func (v *progressView) layer(in events.LayerRequested, n int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	ip := v.image(in.Job.WishID, in.Job.Image)
	if ip.ended {
		return
	}
	lp, ok := ip.layers[in.Layer.Digest]
	if !ok {
		lp = &layerProgress{size: in.Layer.Size}
		ip.total += in.Layer.Size
		ip.bar.SetTotal(ip.total, false)
		short := strings.TrimPrefix(in.Layer.Digest, "sha256:")
		if len(short) > 12 {
			short = short[:12]
		}
		lp.bar = v.p.AddBar(in.Layer.Size, mpb.BarRemoveOnComplete(),
			mpb.PrependDecorators(decor.Name("  layer "+short, decor.WCSyncSpaceR)),
			mpb.AppendDecorators(decor.CountersKibiByte("% .1f / % .1f", decor.WCSyncSpace), decor.Percentage(decor.WCSyncSpace)),
		)
		ip.layers[in.Layer.Digest] = lp
	}
	// A layer fetched again after a fault counts no further than its size.
	n = min(n, lp.size-lp.done)
	if n <= 0 {
		return
	}
	lp.done += n
	lp.bar.IncrInt64(n)
	ip.bar.IncrInt64(n)
}

// ended completes (or, failed, aborts) the image's bar and its layers'.
func (v *progressView) ended(wishID string, ok bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	ip, found := v.images[wishID]
	if !found || ip.ended {
		return
	}
	ip.ended = true
	for _, lp := range ip.layers {
		if !lp.bar.Completed() {
			lp.bar.Abort(true)
		}
	}
	if ok {
		ip.bar.SetTotal(-1, true) // what was fetched is all there was: the other layers were in the store
	} else {
		ip.bar.Abort(false)
	}
}

// stop ends every bar still running and waits for the last drawing.
func (v *progressView) stop() {
	v.mu.Lock()
	for _, ip := range v.images {
		if !ip.ended {
			ip.ended = true
			for _, lp := range ip.layers {
				lp.bar.Abort(true)
			}
			ip.bar.Abort(false)
		}
	}
	v.mu.Unlock()
	v.p.Wait()
}

// layerProgress is the in-process ingester's hook: the view's, or nil without one.
func (g *globals) layerProgress() func(events.LayerRequested, int64) {
	if g.progress == nil {
		return nil
	}
	return g.progress.layer
}

// startProgress draws the bars on w (a terminal) and sends the log lines through them; the
// function it returns ends the bars and puts the logger back.
func (g *globals) startProgress(w io.Writer) func() {
	v := newProgressView(w)
	log := g.log
	g.progress = v
	g.log = progressLogger(v, g.verbose)
	slog.SetDefault(g.log)
	return func() {
		v.stop()
		g.progress, g.log = nil, log
		slog.SetDefault(log)
	}
}

// progressLogger is newLogger's terminal form, printing above the bars.
func progressLogger(w io.Writer, debug bool) *slog.Logger {
	level := slog.LevelInfo
	if debug {
		level = slog.LevelDebug
	}
	return slog.New(tint.NewHandler(w, &tint.Options{Level: level, TimeFormat: time.TimeOnly}))
}

// stdout is where result lines go: above the bars when stdout is the bars' terminal too.
func (g *globals) stdout() io.Writer {
	if g.progress != nil && isTerminal(os.Stdout) {
		return g.progress
	}
	return os.Stdout
}
