package metric

import (
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Scrape gathers g as a scrape would and returns each series' value by its name and labels as
// the text format writes them, e.g. `flatbed_x_total{result="ok"}`; a histogram gives its
// _count and _sum. It is for tests that check what /metrics shows after some work.
func Scrape(g prometheus.Gatherer) (map[string]float64, error) {
	mfs, err := g.Gather()
	if err != nil {
		return nil, fmt.Errorf("gathering the metrics: %w", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			ls := ""
			if len(labels) > 0 {
				ls = "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[mf.GetName()+ls] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[mf.GetName()+ls] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[mf.GetName()+"_count"+ls] = float64(m.GetHistogram().GetSampleCount())
				out[mf.GetName()+"_sum"+ls] = m.GetHistogram().GetSampleSum()
			case m.Untyped != nil:
				out[mf.GetName()+ls] = m.GetUntyped().GetValue()
			}
		}
	}
	return out, nil
}
