package rie

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func buildEchoBootstrap(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go toolchain not on PATH")
	}
	out := filepath.Join(t.TempDir(), "bootstrap")
	cmd := exec.Command(goBin, "build", "-tags", "lambda.norpc", "-o", out, "./testdata/echobootstrap")
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build echo bootstrap: %v\n%s", err, b)
	}
	return out
}

// The real bootstrap protocol in both modes: through aws-lambda-rie when it
// is installed (CI installs it) and through the built-in Runtime API.
func TestLambdaInvokeModes(t *testing.T) {
	boot := buildEchoBootstrap(t)
	modes := []struct{ name, rie string }{{"runtime-api", ""}}
	if rie := Find(); rie != "" {
		modes = append(modes, struct{ name, rie string }{"rie", rie})
	} else {
		t.Log("aws-lambda-rie not installed: only the built-in Runtime API is tested (scripts/install-deps.sh installs it)")
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			l, err := Start(ctx, Config{Bootstrap: boot, RIE: m.rie, Env: []string{"AWS_ENDPOINT_URL_EC2=http://127.0.0.1:9"}, Timeout: 20 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := l.Stop(); err != nil {
					t.Error(err)
				}
				select {
				case <-l.exited:
				default:
					t.Error("process still running after Stop")
				}
			}()
			if l.Mode != m.name {
				t.Fatalf("mode %s, want %s", l.Mode, m.name)
			}
			for i := 0; i < 2; i++ { // warm invoke reuses the process
				out, err := l.Invoke(ctx, []byte(`{"n":1}`))
				if err != nil {
					t.Fatalf("invoke: %v (logs: %s)", err, l.Logs())
				}
				var got struct {
					Echo     json.RawMessage
					Endpoint string
				}
				if err := json.Unmarshal(out, &got); err != nil || string(got.Echo) != `{"n":1}` || got.Endpoint != "http://127.0.0.1:9" {
					t.Fatalf("response %s (%v)", out, err)
				}
			}
			out, err := l.Invoke(ctx, []byte(`{"fail":true}`))
			var fe *FunctionError
			if !errors.As(err, &fe) || fe.Type != "boom" || !strings.Contains(fe.Message, "asked to fail") {
				t.Fatalf("function error not surfaced: %v, %s", err, out)
			}
		})
	}
}
