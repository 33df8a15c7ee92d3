// Package lambdaenv is the wire tests' world around the Lambda's actions:
// the EC2/SSM stand-in (test/awslocal) served over HTTP for the length of a
// test, the real SDK clients pointed at it, a scripted hostagent that
// answers the documents the actions send (host.go), and snapshot sets seeded
// in the stand-in as a snapshot run would have tagged them (seed.go).
package lambdaenv

import (
	"net/http/httptest"
	"testing"

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
