package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseRejectsBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-volume", "vol-01"}, "-pool"},
		{[]string{"-pool", "relative", "-volume", "vol-01"}, "-pool"},
		{[]string{"-pool", "/p"}, "-volume"},
		{[]string{"-pool", "/p", "-volume", "../etc"}, "-volume"},
		{[]string{"-pool", "/p", "-volume", "vol-01", "-instance", "x-1"}, "-instance"},
		{[]string{"-pool", "/p", "-volume", "vol-01", "-tag", "novalue"}, "-tag"},
		{[]string{"-pool", "/p", "-volume", "vol-01", "-latency", "SendCommand=fast"}, "bad duration"},
		{[]string{"-pool", "/p", "-volume", "vol-01", "extra"}, "unexpected argument"},
	}
	for _, tt := range tests {
		_, err := parse(tt.args, io.Discard)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parse(%q) = %v, want a usage error naming %q", tt.args, err, tt.want)
		}
	}
	o, err := parse([]string{"-pool", "/p", "-volume", "vol-01", "-latency", "CreateSnapshots=300ms", "-tag", "quiesce:mounts=/data"}, io.Discard)
	if err != nil || o.latencies[0] != "CreateSnapshots=300ms" || o.tags[0] != "quiesce:mounts=/data" {
		t.Fatalf("good flags: %+v %v", o, err)
	}
}

// The program serves the stand-in until its context ends.
func TestRunServesUntilCancelled(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out strings.Builder
	go func() {
		done <- run(ctx, []string{"-listen", addr, "-pool", t.TempDir(), "-volume", "vol-0abc"}, &out, io.Discard)
	}()
	var resp *http.Response
	for i := 0; i < 100; i++ {
		resp, err = http.Post("http://"+addr+"/", "application/x-www-form-urlencoded", strings.NewReader("Action=DescribeInstances&Version=2016-11-15"))
		if err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "i-0de30000000000001") || !strings.Contains(string(body), "vol-0abc") {
		t.Fatalf("DescribeInstances: %s", body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}
