// Command bootstrap is the quiesce Lambda (provided.al2023): it resolves the
// target instances, freezes each through the SSM document, snapshots the
// volumes, always thaws, tags honestly and prunes. See DESIGN.md "lambda".
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/quiesce/quiesce/internal/buildinfo"
	"github.com/quiesce/quiesce/lambda/internal/clock"
	"github.com/quiesce/quiesce/lambda/internal/handler"
	"github.com/quiesce/quiesce/lambda/internal/metrics"
	"github.com/quiesce/quiesce/lambda/internal/orchestrate"
)

func main() {
	// Logs as JSON on stderr; EMF metric lines on stdout (both reach CloudWatch Logs).
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("version", buildinfo.Version)
	ec2c, ssmc, err := handler.LoadClients(context.Background())
	if err != nil {
		log.Error("load AWS config", "error", err)
		os.Exit(1)
	}
	m := &metrics.Emitter{W: os.Stdout, Stack: os.Getenv("QUIESCE_STACK")}
	h := &handler.Handler{Runner: orchestrate.NewRunner(ec2c, ssmc, clock.Real{}, log, m), Log: log}
	lambda.Start(h.Handle)
}
