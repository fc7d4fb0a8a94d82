package e2e

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrape reads a Prometheus text exposition and returns "name{labels}" -> value.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// sum adds every series of metric name whose labels contain all of labels.
func sum(m map[string]float64, name string, labels ...string) float64 {
	total := 0.0
	for k, v := range m {
		n, rest, _ := strings.Cut(k, "{")
		if n != name {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(rest, l)
		}
		if ok {
			total += v
		}
	}
	return total
}

func has(m map[string]float64, name string) bool {
	for k := range m {
		if n, _, _ := strings.Cut(k, "{"); n == name {
			return true
		}
	}
	return false
}

// TestTwoIngestersTwoFlattenersShareWork runs two ingester and two flattener processes on one
// run: both of each kind do some work and none is done twice, as their metrics show. It also
// checks that every service serves the metrics an operator needs, /healthz and /readyz.
func TestTwoIngestersTwoFlattenersShareWork(t *testing.T) {
	imgs := chaosImages(t)
	reg := mpPushImages(t, imgs)
	wl := mpWriteWishlist(t, reg.Host, imgs)
	natsURL, _ := startNATSServerProcess(t)
	store := t.TempDir()
	procs := map[string]*childProcess{}
	for _, s := range []string{"resolver", "ingester", "ingester2", "flattener", "flattener2", "thinpusher", "notifier"} {
		procs[s] = startServeProcess(t, strings.TrimSuffix(s, "2"), natsURL, store, t.TempDir())
	}
	conv := mpStartConvert(t, "convert", wl, "--nats", natsURL, "--store-root", store)
	if !conv.expectExit0(t) {
		t.Fatalf("convert:\n%s", childLogTail(conv.stdout))
	}

	layers, configs := map[string]bool{}, map[string]bool{}
	for _, img := range imgs {
		for d := range digests(t, img.Image) {
			layers[d] = true
		}
		c, _ := img.Image.ConfigName()
		configs[c.String()] = true
	}
	m := map[string]map[string]float64{}
	for name, p := range procs {
		url := serveMetricsURL(p.stderr)
		m[name] = scrape(t, url)
		base := strings.TrimSuffix(url, "/metrics")
		for _, path := range []string{"/healthz", "/readyz"} {
			resp, err := http.Get(base + path)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("%s %s: %v %v", name, path, err, resp)
			} else {
				resp.Body.Close()
			}
		}
		for _, metric := range []string{"flatbed_events_handled_total", "flatbed_handler_duration_seconds_bucket",
			"flatbed_events_published_total", "flatbed_consumer_pending_messages", "flatbed_consumer_redelivered_messages",
			"flatbed_consumer_ack_pending_messages"} {
			if !has(m[name], metric) {
				t.Errorf("%s /metrics lacks %s", name, metric)
			}
		}
	}
	for _, name := range []string{"ingester", "ingester2"} {
		for _, metric := range []string{"flatbed_ingester_layers_total", "flatbed_ingester_bytes_fetched_total", "flatbed_ingester_bytes_written_total"} {
			if !has(m[name], metric) {
				t.Errorf("%s /metrics lacks %s", name, metric)
			}
		}
	}
	i1, i2 := sum(m["ingester"], "flatbed_ingester_layers_total", `result="unpacked"`), sum(m["ingester2"], "flatbed_ingester_layers_total", `result="unpacked"`)
	if i1 == 0 || i2 == 0 {
		t.Errorf("ingesters unpacked %v and %v layers: both must do some", i1, i2)
	}
	if int(i1+i2) != len(layers) {
		t.Errorf("ingesters unpacked %v layers in all, want each of the %d distinct layers exactly once", i1+i2, len(layers))
	}
	f1, f2 := sum(m["flattener"], "flatbed_flattener_images_total", `result="built"`), sum(m["flattener2"], "flatbed_flattener_images_total", `result="built"`)
	if f1 == 0 || f2 == 0 {
		t.Errorf("flatteners built %v and %v flat trees: both must do some", f1, f2)
	}
	if int(f1+f2) != len(configs) {
		t.Errorf("flatteners built %v flat trees in all, want each of the %d distinct images exactly once", f1+f2, len(configs))
	}
	t.Logf("ingesters unpacked %v + %v layers; flatteners built %v + %v trees", i1, i2, f1, f2)
	for _, p := range procs {
		p.stop(t, mpGracefulStop)
	}
}
