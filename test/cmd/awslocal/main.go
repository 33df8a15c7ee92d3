// Command awslocal serves the local EC2/SSM stand-in (test/awslocal) with
// the demo's hooks: SendCommand runs the real "Quiesce" SSM document with bash
// (which runs hostagent from -bin first on PATH), and CreateSnapshot(s) copies
// pool/<volume>.img to pool/<snapshot>.img with FICLONE. Point the Lambda (or
// the aws CLI) at it with AWS_ENDPOINT_URL_EC2 / AWS_ENDPOINT_URL_SSM.
//
//	awslocal -listen 127.0.0.1:4566 -pool /var/tmp/quiesce-demo/pool \
//	  -instance i-0de30000000000001 -volume vol-0de30000000000002 \
//	  -latency SendCommand=200ms -latency CreateSnapshots=300ms
//
// The demo (bin/demo) runs the same stand-in in-process; this program is for
// trying the Lambda by hand. EC2's snapshot rate rules (15 s per volume, ≤5
// pending) are off unless -enforce-limits is given.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/quiesce/quiesce/test/awslocal"
	"github.com/quiesce/quiesce/test/demo/standin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "awslocal:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

type options struct {
	listen        string
	poolDir       string
	binDir        string
	instance      string
	volumes       multiFlag
	tags          multiFlag
	latencies     multiFlag
	commandDelay  time.Duration
	resultDelay   time.Duration
	enforceLimits bool
}

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("awslocal", flag.ContinueOnError)
	fs.SetOutput(stderr)
	exe, _ := os.Executable()
	fs.StringVar(&o.listen, "listen", "127.0.0.1:4566", "address to serve EC2 and SSM on")
	fs.StringVar(&o.poolDir, "pool", "", "directory holding the volume images vol-<hex>.img (required; snapshots are written there)")
	fs.StringVar(&o.binDir, "bin", filepath.Dir(exe), "directory put first on the SSM script's PATH (holds hostagent)")
	fs.StringVar(&o.instance, "instance", "i-0de30000000000001", "instance id to seed (tagged quiesce:enabled=true, SSM Online)")
	fs.Var(&o.volumes, "volume", "data volume id attached to the instance (repeatable; its image is <pool>/<id>.img)")
	fs.Var(&o.tags, "tag", "extra instance tag key=value (repeatable), e.g. quiesce:mounts=/var/lib/mysql")
	fs.Var(&o.latencies, "latency", "inject latency Action=duration (repeatable), e.g. CreateSnapshots=300ms")
	fs.DurationVar(&o.commandDelay, "command-delay", 0, "SSM delivery delay: SendCommand → the script starts")
	fs.DurationVar(&o.resultDelay, "result-delay", 0, "SSM result delay: the script ends → GetCommandInvocation shows it")
	fs.BoolVar(&o.enforceLimits, "enforce-limits", false, "enforce EC2's snapshot limits (token bucket, 15 s per volume, ≤5 pending)")
	if err := fs.Parse(args); err != nil {
		return o, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if o.poolDir == "" || !filepath.IsAbs(o.poolDir) {
		return o, fmt.Errorf("%w: -pool %q: need an absolute directory", errUsage, o.poolDir)
	}
	if len(o.volumes) == 0 {
		return o, fmt.Errorf("%w: at least one -volume vol-<hex> is required", errUsage)
	}
	for _, v := range o.volumes {
		if !strings.HasPrefix(v, "vol-") || strings.ContainsAny(v, "/.") {
			return o, fmt.Errorf("%w: -volume %q: want vol-<hex>", errUsage, v)
		}
	}
	if !strings.HasPrefix(o.instance, "i-") {
		return o, fmt.Errorf("%w: -instance %q: want i-<hex>", errUsage, o.instance)
	}
	for _, t := range o.tags {
		if k, _, ok := strings.Cut(t, "="); !ok || k == "" {
			return o, fmt.Errorf("%w: -tag %q: want key=value", errUsage, t)
		}
	}
	for _, l := range o.latencies {
		a, d, ok := strings.Cut(l, "=")
		if !ok || a == "" {
			return o, fmt.Errorf("%w: -latency %q: want Action=duration", errUsage, l)
		}
		if dur, err := time.ParseDuration(d); err != nil || dur < 0 {
			return o, fmt.Errorf("%w: -latency %q: bad duration %q", errUsage, l, d)
		}
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	hooks, err := standin.NewHooks(o.binDir, o.poolDir)
	if err != nil {
		return err
	}
	hooks.OnCommand = func(r standin.CommandRun) {
		fmt.Fprintf(stderr, "awslocal: %s %s action=%s exit=%d %s (%s)\n", r.Invocation.CommandID, r.Invocation.InstanceID,
			r.Invocation.Param("action"), r.Result.ResponseCode, r.Result.Status, r.Ended.Sub(r.Started).Round(time.Millisecond))
	}
	srv := awslocal.New()
	defer srv.Close()
	hooks.Install(srv)
	srv.CommandDelay, srv.ResultDelay = o.commandDelay, o.resultDelay
	srv.Limits.Enforce = o.enforceLimits
	for _, l := range o.latencies {
		a, d, _ := strings.Cut(l, "=")
		dur, _ := time.ParseDuration(d)
		srv.SetLatency(a, dur)
	}
	tags := map[string]string{}
	for _, t := range o.tags {
		k, v, _ := strings.Cut(t, "=")
		tags[k] = v
	}
	inst := standin.DemoInstance(o.instance, o.volumes[0], tags)
	for i, v := range o.volumes[1:] {
		inst.BlockDevices = append(inst.BlockDevices, awslocal.BlockDevice{DeviceName: fmt.Sprintf("/dev/xvd%c", 'g'+i), VolumeID: v, SizeGiB: 1})
	}
	srv.AddInstance(inst)

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", o.listen, err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	url := "http://" + ln.Addr().String()
	fmt.Fprintf(stdout, "export AWS_ENDPOINT_URL_EC2=%s AWS_ENDPOINT_URL_SSM=%s AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local\n", url, url)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return hs.Shutdown(sctx)
}
