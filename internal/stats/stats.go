// Package stats has the one percentile definition every benchmark and report
// in this repository uses, so numbers measured side by side compare.
package stats

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// Percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of v, in
// any order (v is not modified): the smallest value with at least p% of the
// samples at or below it. With fewer than 100 samples p99 is the maximum,
// which is the honest answer. Zero for no samples.
func Percentile[T cmp.Ordered](v []T, p float64) T {
	s := slices.Clone(v)
	slices.Sort(s)
	return PercentileSorted(s, p)
}

// PercentileSorted is Percentile for an already sorted slice.
func PercentileSorted[T cmp.Ordered](sorted []T, p float64) T {
	var zero T
	if len(sorted) == 0 {
		return zero
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// MetricReporter is what testing.B offers for custom benchmark metrics
// (stats itself does not import testing: the demo binary links it).
type MetricReporter interface {
	ReportMetric(n float64, unit string)
}

// ReportPercentiles reports the p-th percentiles of samples (in unit) as
// metrics named "<name>_p<p>_<unit>", e.g. held_p50_ms and held_p99_ms.
func ReportPercentiles(r MetricReporter, name string, samples []float64, unit string, ps ...float64) {
	for _, p := range ps {
		r.ReportMetric(Percentile(samples, p), fmt.Sprintf("%s_p%g_%s", name, p, unit))
	}
}
