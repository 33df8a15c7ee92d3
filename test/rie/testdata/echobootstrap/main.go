// Command echobootstrap is a tiny Lambda function for package rie's tests:
// it answers {"echo": <event>, "endpoint": $AWS_ENDPOINT_URL_EC2}, or fails
// with errorType "Boom" when the event is {"fail": true}.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
)

type boom struct{ error }

func main() {
	lambda.Start(func(ctx context.Context, ev json.RawMessage) (map[string]any, error) {
		var probe struct{ Fail bool }
		_ = json.Unmarshal(ev, &probe)
		if probe.Fail {
			return nil, boom{errors.New("asked to fail")}
		}
		return map[string]any{"echo": ev, "endpoint": os.Getenv("AWS_ENDPOINT_URL_EC2")}, nil
	})
}
