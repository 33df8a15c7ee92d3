package stats

import (
	"reflect"
	"testing"
)

func TestPercentileNearestRank(t *testing.T) {
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[99-i] = float64(i + 1) // reversed: Percentile must sort
	}
	tests := []struct {
		name string
		v    []float64
		p    float64
		want float64
	}{
		{"empty", nil, 50, 0},
		{"one", []float64{7}, 99, 7},
		{"p50 of 1..100", hundred, 50, 50},
		{"p99 of 1..100", hundred, 99, 99},
		{"p100 is the max", hundred, 100, 100},
		{"p99 of 10 is the max", []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 99, 10},
		{"p50 of 4 is the 2nd", []float64{4, 1, 3, 2}, 50, 2},
		{"tiny p is the min", []float64{3, 1, 2}, 0.1, 1},
	}
	for _, tt := range tests {
		if got := Percentile(tt.v, tt.p); got != tt.want {
			t.Errorf("%s: Percentile(p%v) = %v, want %v", tt.name, tt.p, got, tt.want)
		}
	}
	if hundred[0] != 100 {
		t.Fatal("Percentile reordered its input")
	}
}

type metrics map[string]float64

func (m metrics) ReportMetric(n float64, unit string) { m[unit] = n }

func TestReportPercentilesNamesEachMetric(t *testing.T) {
	got := metrics{}
	ReportPercentiles(got, "held", []float64{4, 1, 3, 2}, "ms", 50, 99, 99.9)
	want := metrics{"held_p50_ms": 2, "held_p99_ms": 4, "held_p99.9_ms": 4}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("reported %v, want %v", got, want)
	}
}
