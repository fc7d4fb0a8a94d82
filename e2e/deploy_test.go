package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// deployCIRequiresTools mirrors harness.requireTool: a missing tool skips a test, unless env
// CI is set (and not a false boolean), where it is a failure.
func deployCIRequiresTools() bool {
	v, ok := os.LookupEnv("CI")
	if !ok || v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	return err != nil || b
}

// TestDeployFilesValidate runs scripts/validate-deploy.sh from the repository root: the
// compose file, the kustomizations, the systemd units, the NATS configurations and the
// Grafana dashboard. Without CI it is skipped when a tool the script needs is missing; with
// CI the script installs what is missing (apt-get) and fails when it cannot.
func TestDeployFilesValidate(t *testing.T) {
	for _, tool := range []struct{ bin, pkg string }{
		{"docker-compose", "docker-compose"},
	} {
		if _, err := exec.LookPath(tool.bin); err != nil {
			msg := tool.bin + " is not installed (apt-get install -y " + tool.pkg + ")"
			if !deployCIRequiresTools() {
				t.Skipf("%s; skipping (set CI=true to have scripts/validate-deploy.sh install it)", msg)
			}
			t.Logf("%s; CI is set: scripts/validate-deploy.sh installs it or fails", msg)
		}
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(root, "scripts", "validate-deploy.sh")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Dir = root
	// The binaries TestMain built: the script need not build them again.
	cmd.Env = append(os.Environ(), "FLATBED_BIN="+flatbedBin, "NATS_SERVER_BIN="+natsServerBin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 10 * time.Second
	err = cmd.Run()
	t.Logf("scripts/validate-deploy.sh:\n%s", out.Bytes())
	if ctx.Err() != nil {
		t.Fatalf("scripts/validate-deploy.sh did not finish within the timeout: %v", ctx.Err())
	}
	if err != nil {
		t.Fatalf("scripts/validate-deploy.sh: %v (output above)", err)
	}
}

var (
	// A metric's name where the code registers it: the Name of its options, or NewDesc's first
	// argument (a collector of its own, as the bus' consumer gauges).
	deployMetricNameRE = regexp.MustCompile(`(?:Name:\s*|prometheus\.NewDesc\(\s*)"(flatbed_[A-Za-z0-9_]+)"`)
	deployHistogramRE  = regexp.MustCompile(`HistogramOpts\{\s*Name:\s*"(flatbed_[A-Za-z0-9_]+)"`)
	// Every way to make a metric, to see that each one made has its name found.
	deployMetricMakeRE = regexp.MustCompile(`\bprometheus\.New(?:(?:Counter|Gauge|Histogram|Summary|Untyped)(?:Vec|Func)?|Desc)\(`)
	deployMetricUseRE  = regexp.MustCompile(`\bflatbed_[A-Za-z0-9_]+`)
)

// deployRegisteredMetrics returns the metric names the code registers (every Go file but
// tests under events, services, pkg and cmd), and which of them are histograms. A file that
// makes a metric whose name is not written out where it is made fails the test, so that a
// metric cannot escape the checks by changing form.
func deployRegisteredMetrics(t *testing.T) (names, histograms map[string]bool) {
	t.Helper()
	names, histograms = map[string]bool{}, map[string]bool{}
	for _, top := range []string{"events", "services", "pkg", "cmd"} {
		err := filepath.WalkDir(filepath.Join("..", top), func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			found := deployMetricNameRE.FindAllSubmatch(src, -1)
			if made := len(deployMetricMakeRE.FindAll(src, -1)); made != len(found) {
				t.Errorf("%s makes %d Prometheus metrics but names %d as Name: \"flatbed_…\" or NewDesc(\"flatbed_…\": "+
					"write each name out where the metric is made, so the dashboard and README checks see it", path, made, len(found))
			}
			for _, m := range found {
				names[string(m[1])] = true
			}
			for _, m := range deployHistogramRE.FindAllSubmatch(src, -1) {
				histograms[string(m[1])] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return names, histograms
}

// deployStrings collects every string of a decoded JSON value, with its path.
func deployStrings(v any, path string, out map[string]string) {
	switch x := v.(type) {
	case string:
		out[path] = x
	case []any:
		for i, e := range x {
			deployStrings(e, path+"["+strconv.Itoa(i)+"]", out)
		}
	case map[string]any:
		for k, e := range x {
			deployStrings(e, path+"."+k, out)
		}
	}
}

// TestDeployFilesDashboardMetrics checks that every flatbed_* metric the Grafana dashboard
// names (queries, variables, descriptions) is one the code registers — histogram series
// _bucket/_sum/_count of a registered histogram included — and that the dashboard shows the
// main ones.
func TestDeployFilesDashboardMetrics(t *testing.T) {
	registered, histograms := deployRegisteredMetrics(t)
	for _, want := range []string{"flatbed_events_handled_total", "flatbed_handler_duration_seconds", "flatbed_ingester_layers_total"} {
		if !registered[want] {
			t.Fatalf("did not find %s among the registered metrics %v: has metrics.go changed form?", want, registered)
		}
	}
	if !histograms["flatbed_handler_duration_seconds"] {
		t.Fatalf("flatbed_handler_duration_seconds not recognised as a histogram (found %v)", histograms)
	}

	data, err := os.ReadFile(filepath.Join("..", "deploy", "grafana", "flatbed-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("deploy/grafana/flatbed-dashboard.json: %v", err)
	}
	if v, _ := dash["schemaVersion"].(float64); v < 36 {
		t.Errorf("schemaVersion %v: want a current Grafana dashboard (~39)", dash["schemaVersion"])
	}
	panels, _ := dash["panels"].([]any)
	if len(panels) == 0 {
		t.Fatal("the dashboard has no panels")
	}

	strs := map[string]string{}
	deployStrings(dash, "", strs)
	used := map[string]bool{}
	exprs := 0
	for path, s := range strs {
		if strings.HasSuffix(path, ".expr") {
			exprs++
		}
		for _, name := range deployMetricUseRE.FindAllString(s, -1) {
			base := name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(name, suffix); ok && histograms[b] {
					base = b
				}
			}
			if !registered[base] {
				t.Errorf("%s uses %s, which the code does not register (registered: %v)", path, name, slices.Sorted(maps.Keys(registered)))
				continue
			}
			used[base] = true
		}
	}
	if exprs == 0 {
		t.Fatal("the dashboard has no PromQL expressions")
	}
	for _, want := range []string{
		"flatbed_events_handled_total", "flatbed_handler_duration_seconds", "flatbed_events_dead_total",
		"flatbed_ingester_layers_total", "flatbed_ingester_bytes_fetched_total", "flatbed_resolver_mended_total",
	} {
		if !used[want] {
			t.Errorf("the dashboard shows no panel for %s", want)
		}
	}
	for name := range registered {
		if !used[name] {
			t.Logf("note: %s is registered but not on the dashboard", name)
		}
	}
}

// TestDeployFilesReadmeMetrics checks that deploy/README.md's metrics table has a row for every
// flatbed_* metric the code registers, and names none that it does not: a metric added without
// documenting it fails here.
func TestDeployFilesReadmeMetrics(t *testing.T) {
	registered, _ := deployRegisteredMetrics(t)
	for _, want := range []string{"flatbed_events_handled_total", "flatbed_consumer_pending_messages", "flatbed_resolver_mended_total", "flatbed_ingester_bytes_fetched_total"} {
		if !registered[want] {
			t.Fatalf("did not find %s among the registered metrics %v: has the code changed form?", want, slices.Sorted(maps.Keys(registered)))
		}
	}
	data, err := os.ReadFile(filepath.Join("..", "deploy", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	inTable := false
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "| metric |") {
			inTable = true
			continue
		}
		if !inTable {
			continue
		}
		if !strings.HasPrefix(line, "|") {
			break // the table ends
		}
		cells := strings.Split(line, "|")
		if len(cells) < 3 {
			continue
		}
		for _, name := range deployMetricUseRE.FindAllString(cells[1], -1) {
			documented[name] = true
		}
	}
	if len(documented) == 0 {
		t.Fatal("deploy/README.md has no metrics table (a line starting '| metric |' and its rows)")
	}
	for _, name := range slices.Sorted(maps.Keys(registered)) {
		if !documented[name] {
			t.Errorf("%s is registered but has no row in deploy/README.md's metrics table: add it with its labels", name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(documented)) {
		if !registered[name] {
			t.Errorf("deploy/README.md's metrics table names %s, which the code does not register", name)
		}
	}
}
