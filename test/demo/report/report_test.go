package report

import (
	"strings"
	"testing"
	"time"
)

func ms(v ...int) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, x := range v {
		out[i] = time.Duration(x) * time.Millisecond
	}
	return out
}

func TestPercentileNearestRank(t *testing.T) {
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one sample", ms(7), 50, 7 * time.Millisecond},
		{"one sample p99", ms(7), 99, 7 * time.Millisecond},
		{"median of odd", ms(1, 2, 3, 4, 5), 50, 3 * time.Millisecond},
		{"median of even takes lower", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p99 of 100", ms(hundred...), 99, 99 * time.Millisecond},
		{"p100 is max", ms(hundred...), 100, 100 * time.Millisecond},
		{"p99 of 5 is max", ms(1, 2, 3, 4, 50), 99, 50 * time.Millisecond},
		{"p1 of 100", ms(hundred...), 1, 1 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}

func TestSummarizeDoesNotReorderInput(t *testing.T) {
	in := ms(30, 10, 20)
	d := Summarize(in)
	if d.N != 3 || d.Min != 10*time.Millisecond || d.P50 != 20*time.Millisecond || d.Max != 30*time.Millisecond || d.Mean != 20*time.Millisecond {
		t.Fatalf("Summarize = %+v", d)
	}
	if in[0] != 30*time.Millisecond {
		t.Fatalf("input was sorted in place: %v", in)
	}
	if (Summarize(nil) != Dist{}) {
		t.Fatal("Summarize(nil) not zero")
	}
}

func TestRatioAndMs(t *testing.T) {
	if got := Ratio(500*time.Millisecond, 100*time.Millisecond); got != "5.0×" {
		t.Errorf("Ratio = %q", got)
	}
	if got := Ratio(time.Second, 0); got != "n/a" {
		t.Errorf("Ratio by zero = %q", got)
	}
	if got := Ms(12345 * time.Microsecond); got != "12.3" {
		t.Errorf("Ms = %q", got)
	}
}

func TestTextAlignsColumns(t *testing.T) {
	got := Text([]string{"a", "long header"}, [][]string{{"xyz", "1"}, {"p50 ≤", "22"}})
	want := "" +
		"a      long header\n" +
		"-----  -----------\n" +
		"xyz    1\n" +
		"p50 ≤  22\n"
	if got != want {
		t.Fatalf("Text =\n%s\nwant\n%s", got, want)
	}
}

func TestMarkdownEscapesPipes(t *testing.T) {
	got := Markdown([]string{"x", "y"}, [][]string{{"a|b", "c"}, {"short"}})
	want := "| x | y |\n|---|---|\n| a\\|b | c |\n| short |  |\n"
	if got != want {
		t.Fatalf("Markdown =\n%q\nwant\n%q", got, want)
	}
	if strings.Count(got, "\n") != 4 {
		t.Fatal("wrong line count")
	}
}
