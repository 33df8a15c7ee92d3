// Package report computes the demo's statistics (percentiles over windows and
// stalls) and renders them as an aligned terminal table or a markdown table.
package report

import (
	"fmt"
	"github.com/quiesce/quiesce/internal/stats"
	"sort"
	"strings"
	"time"
)

// Dist summarizes a set of durations.
type Dist struct {
	N                  int
	Min, P50, P99, Max time.Duration
	Mean               time.Duration
}

// Percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of
// sorted (stats.PercentileSorted: the definition every benchmark shares).
func Percentile(sorted []time.Duration, p float64) time.Duration {
	return stats.PercentileSorted(sorted, p)
}

// Summarize sorts a copy of ds and returns its distribution.
func Summarize(ds []time.Duration) Dist {
	if len(ds) == 0 {
		return Dist{}
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return Dist{
		N:    len(s),
		Min:  s[0],
		P50:  Percentile(s, 50),
		P99:  Percentile(s, 99),
		Max:  s[len(s)-1],
		Mean: sum / time.Duration(len(s)),
	}
}

// Ms formats a duration in milliseconds with one decimal ("12.3").
func Ms(d time.Duration) string {
	return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond))
}

// Ratio formats a/b as "4.2×", or "n/a" when b is zero.
func Ratio(a, b time.Duration) string {
	if b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f×", float64(a)/float64(b))
}

// Text renders an aligned plain-text table with a rule under the header.
func Text(headers []string, rows [][]string) string {
	widths := make([]int, len(headers))
	for i, h := range headers {
		widths[i] = runeLen(h)
	}
	for _, r := range rows {
		for i, c := range r {
			if i < len(widths) && runeLen(c) > widths[i] {
				widths[i] = runeLen(c)
			}
		}
	}
	var b strings.Builder
	line := func(cells []string) {
		for i := range widths {
			c := ""
			if i < len(cells) {
				c = cells[i]
			}
			if i > 0 {
				b.WriteString("  ")
			}
			b.WriteString(c)
			if i < len(widths)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-runeLen(c)))
			}
		}
		b.WriteString("\n")
	}
	line(headers)
	rule := make([]string, len(widths))
	for i, w := range widths {
		rule[i] = strings.Repeat("-", w)
	}
	line(rule)
	for _, r := range rows {
		line(r)
	}
	return b.String()
}

// Markdown renders a GitHub-flavoured markdown table. Pipes in cells are escaped.
func Markdown(headers []string, rows [][]string) string {
	var b strings.Builder
	esc := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	b.WriteString("|")
	for _, h := range headers {
		b.WriteString(" " + esc(h) + " |")
	}
	b.WriteString("\n|")
	for range headers {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range rows {
		b.WriteString("|")
		for i := range headers {
			c := ""
			if i < len(r) {
				c = r[i]
			}
			b.WriteString(" " + esc(c) + " |")
		}
		b.WriteString("\n")
	}
	return b.String()
}

func runeLen(s string) int { return len([]rune(s)) }
