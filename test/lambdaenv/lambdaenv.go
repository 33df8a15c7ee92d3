// Package lambdaenv is the wire tests' world around the Lambda's actions:
// the EC2/SSM stand-in (test/awslocal) served over HTTP for the length of a
// test, the real SDK clients pointed at it, and a scripted hostagent that
// answers the documents the actions send.
package lambdaenv

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/quiesce/quiesce/test/awslocal"
)

// Clients are the real SDK clients talking to one stand-in.
type Clients struct {
	URL string
	EC2 *ec2.Client
	SSM *ssm.Client
}

// Start serves srv until the test ends (then closes it) and returns the SDK
// clients pointed at it with the given retry policy: the Lambda's own
// (handler.Retryer, which lives where test/ cannot import it), so the wire
// tests see the retries production makes.
func Start(t testing.TB, srv *awslocal.Server, retryer func() aws.Retryer) *Clients {
	t.Helper()
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { hs.Close(); srv.Close() })
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""), Retryer: retryer}
	return &Clients{
		URL: hs.URL,
		EC2: ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(hs.URL) }),
		SSM: ssm.NewFromConfig(cfg, func(o *ssm.Options) { o.BaseEndpoint = aws.String(hs.URL) }),
	}
}

// CreatedVolumes are the volumes in the stand-in that CreateVolume made
// (the actions' temporary or clone volumes, not the instances' own).
func CreatedVolumes(srv *awslocal.Server) []awslocal.Volume {
	var out []awslocal.Volume
	for _, v := range srv.Volumes() {
		if v.CreatedBy == "CreateVolume" {
			out = append(out, v)
		}
	}
	return out
}

// Host is a scripted hostagent behind the stand-in's RunCommand: it
// records every invocation, refuses one Check finds wrong (exit 2, as
// hostagent does for a volume it is not given attached), waits for Release
// when set, and answers with Result, else Pass.
type Host struct {
	mu sync.Mutex
	// Check says what is wrong with an invocation ("" when nothing).
	Check func(inv awslocal.Invocation) string
	// Result builds the answer; nil answers Pass.
	Result func(inv awslocal.Invocation) awslocal.CommandResult
	// Pass is the answer of a host that found nothing wrong.
	Pass func(inv awslocal.Invocation) awslocal.CommandResult
	// Release, when set, holds every answer until it is closed.
	Release chan struct{}
	invs    []awslocal.Invocation
	errs    []string
}

// Run is the stand-in's RunCommand.
func (h *Host) Run(ctx context.Context, inv awslocal.Invocation) awslocal.CommandResult {
	h.mu.Lock()
	h.invs = append(h.invs, inv)
	check, release, result := h.Check, h.Release, h.Result
	h.mu.Unlock()
	if check != nil {
		if msg := check(inv); msg != "" {
			h.mu.Lock()
			h.errs = append(h.errs, msg)
			h.mu.Unlock()
			return awslocal.CommandResult{ResponseCode: 2, Stdout: `{"error":"volume not attached","exit_code":2}`}
		}
	}
	if release != nil {
		select {
		case <-release:
		case <-ctx.Done():
			return awslocal.CommandResult{Status: "Cancelled", ResponseCode: -1}
		}
	}
	if result != nil {
		return result(inv)
	}
	return h.Pass(inv)
}

// Invocations are the commands the host ran, in order.
func (h *Host) Invocations() []awslocal.Invocation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]awslocal.Invocation(nil), h.invs...)
}

// Errors are what Check found wrong, in order.
func (h *Host) Errors() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.errs...)
}

// Report is hostagent's answer: the report as one JSON line on stdout and
// the exit code.
func Report(report any, code int) awslocal.CommandResult {
	b, err := json.Marshal(report)
	if err != nil {
		panic(err) // a test's own report type that cannot be encoded
	}
	return awslocal.CommandResult{ResponseCode: code, Stdout: string(b) + "\n"}
}

// SetVolume is one volume of a seeded snapshot set: the source volume, the
// device it is attached at and the mount it holds.
type SetVolume struct{ VolumeID, Device, Mount string }

// AddSet seeds one run's snapshots of an instance's volumes, tagged as the
// snapshot action tags them (stack, run, instance, consistency, device,
// mounts) plus extra, which wins; it returns the snapshot IDs in the order
// of vols.
func AddSet(srv *awslocal.Server, stack, instanceID, runID string, at time.Time, consistency string, vols []SetVolume, extra map[string]string) []string {
	var ids []string
	for _, v := range vols {
		tags := map[string]string{"quiesce:stack": stack, "quiesce:run-id": runID, "quiesce:instance": instanceID, "quiesce:consistency": consistency,
			"quiesce:device": v.Device, "quiesce:mounts": v.Mount}
		for k, val := range extra {
			tags[k] = val
		}
		ids = append(ids, srv.AddSnapshot(awslocal.Snapshot{VolumeID: v.VolumeID, VolumeSize: 20, StartTime: at, Tags: tags}))
	}
	return ids
}
