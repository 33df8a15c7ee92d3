package orchestrate_test

import (
	"encoding/json"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/test/awslocal"
)

func jsonCmd(code contract.ExitCode, v any) awslocal.CommandResult {
	b, _ := json.Marshal(v)
	st := "Success"
	if code != 0 {
		st = "Failed"
	}
	return awslocal.CommandResult{Status: st, ResponseCode: int(code), Stdout: string(b)}
}
