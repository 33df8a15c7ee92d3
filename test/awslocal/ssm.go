package awslocal

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// maxOutput is how much stdout/stderr GetCommandInvocation returns, like SSM.
const maxOutput = 24000

func (s *Server) serveSSM(w http.ResponseWriter, r *http.Request, target string) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeSSMError(w, &APIError{Code: "SerializationException", Message: err.Error(), Status: 400})
		return
	}
	action := strings.TrimPrefix(target, "AmazonSSM.")
	call := Call{Service: "ssm", Action: action, JSON: body, At: s.Clock.Now()}
	resp, ok := dispatch(s, w, call, writeSSMError, func() (any, *APIError) {
		return s.ssmAction(action, body)
	})
	if !ok {
		return
	}
	out, err := json.Marshal(resp)
	if err != nil {
		writeSSMError(w, &APIError{Code: "InternalServerError", Message: err.Error(), Status: 500})
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("x-amzn-RequestId", newUUID())
	_, _ = w.Write(out)
}

func writeSSMError(w http.ResponseWriter, e *APIError) {
	e = withDefaults(e)
	if e.Code == "InternalError" {
		e.Code = "InternalServerError"
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("x-amzn-RequestId", newUUID())
	w.WriteHeader(e.Status)
	out, _ := json.Marshal(map[string]string{"__type": e.Code, "message": e.Message})
	_, _ = w.Write(out)
}

func (s *Server) ssmAction(action string, body []byte) (any, *APIError) {
	switch action {
	case "SendCommand":
		return s.sendCommand(body)
	case "GetCommandInvocation":
		return s.getCommandInvocation(body)
	case "DescribeInstanceInformation":
		return s.describeInstanceInformation(body)
	}
	return nil, &APIError{Code: "UnknownOperationException", Message: "unknown operation " + action}
}

func epoch(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

type sendCommandInput struct {
	DocumentName   string
	InstanceIds    []string
	Parameters     map[string][]string
	TimeoutSeconds *int32
	Comment        string
}

func (s *Server) sendCommand(body []byte) (any, *APIError) {
	var in sendCommandInput
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, &APIError{Code: "SerializationException", Message: err.Error()}
	}
	if in.DocumentName == "" {
		return nil, &APIError{Code: "ValidationException", Message: "DocumentName is required"}
	}
	if len(in.InstanceIds) == 0 {
		return nil, &APIError{Code: "ValidationException", Message: "InstanceIds or Targets is required"}
	}
	if e := s.checkDocument(in.DocumentName, in.Parameters); e != nil {
		return nil, e
	}
	now := s.Clock.Now()
	id := newUUID()
	s.mu.Lock()
	for _, iid := range in.InstanceIds {
		inst := s.instances[iid]
		if inst == nil || inst.NotManaged {
			s.mu.Unlock()
			return nil, &APIError{Code: "InvalidInstanceId", Message: fmt.Sprintf("Instances [[%s]] not in a valid state for account %s", iid, s.AccountID)}
		}
	}
	var timeout int32 = 3600
	if in.TimeoutSeconds != nil {
		timeout = *in.TimeoutSeconds
	}
	byInst := map[string]*Command{}
	var started []*Command
	for _, iid := range in.InstanceIds {
		c := &Command{Invocation: Invocation{CommandID: id, InstanceID: iid, DocumentName: in.DocumentName, Parameters: copyParams(in.Parameters), TimeoutSeconds: timeout},
			RequestedAt: now, Status: "Pending"}
		byInst[iid] = c
		// A command to an instance that is not online stays Pending ("Delayed"
		// in the console) until its delivery timeout; it never runs here.
		if s.instances[iid].PingStatus == "Online" {
			started = append(started, c)
		}
	}
	s.commands[id] = byInst
	s.mu.Unlock()
	for _, c := range started {
		s.wg.Add(1)
		go s.runCommand(c)
	}
	return map[string]any{"Command": map[string]any{
		"CommandId":         id,
		"DocumentName":      in.DocumentName,
		"InstanceIds":       in.InstanceIds,
		"Parameters":        in.Parameters,
		"Status":            "Pending",
		"RequestedDateTime": epoch(now),
		"TimeoutSeconds":    timeout,
		"Comment":           in.Comment,
		"TargetCount":       len(in.InstanceIds),
	}}, nil
}

func (s *Server) runCommand(c *Command) {
	defer s.wg.Done()
	if s.Clock.Sleep(s.ctx, s.CommandDelay) != nil {
		return
	}
	s.mu.Lock()
	c.Status = "InProgress"
	c.StartedAt = s.Clock.Now()
	inv := c.Invocation
	inv.Parameters = copyParams(c.Parameters)
	run := s.RunCommand
	s.mu.Unlock()

	res := CommandResult{Status: "Success"}
	if run != nil {
		res = run(s.ctx, inv)
	}
	if res.Status == "" {
		res.Status = "Success"
		if res.ResponseCode != 0 {
			res.Status = "Failed"
		}
	}
	now := s.Clock.Now()
	s.mu.Lock()
	c.Result = res
	c.EndedAt = now
	c.VisibleAt = now.Add(s.ResultDelay)
	c.Status = res.Status
	s.mu.Unlock()
}

type getCommandInvocationInput struct {
	CommandId  string
	InstanceId string
	PluginName string
}

func truncate(s string) string {
	if len(s) > maxOutput {
		return s[:maxOutput]
	}
	return s
}

func (s *Server) getCommandInvocation(body []byte) (any, *APIError) {
	var in getCommandInvocationInput
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, &APIError{Code: "SerializationException", Message: err.Error()}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.commands[in.CommandId][in.InstanceId]
	now := s.Clock.Now()
	if c == nil || now.Before(c.RequestedAt.Add(s.InvocationDelay)) {
		return nil, &APIError{Code: "InvocationDoesNotExist", Message: "An error occurred (InvocationDoesNotExist)"}
	}
	status := c.Status
	code := -1
	var stdout, stderr string
	switch {
	case c.StartedAt.IsZero():
		status = "Pending"
	case c.EndedAt.IsZero() || now.Before(c.VisibleAt):
		status = "InProgress"
	default:
		code = c.Result.ResponseCode
		stdout, stderr = truncate(c.Result.Stdout), truncate(c.Result.Stderr)
	}
	out := map[string]any{
		"CommandId":             c.CommandID,
		"InstanceId":            c.InstanceID,
		"DocumentName":          c.DocumentName,
		"PluginName":            "quiesce",
		"Status":                status,
		"StatusDetails":         status,
		"ResponseCode":          code,
		"StandardOutputContent": stdout,
		"StandardErrorContent":  stderr,
	}
	if !c.StartedAt.IsZero() {
		out["ExecutionStartDateTime"] = c.StartedAt.UTC().Format(time.RFC3339Nano)
	}
	if code != -1 {
		out["ExecutionEndDateTime"] = c.EndedAt.UTC().Format(time.RFC3339Nano)
	}
	return out, nil
}

type instanceInfoFilter struct {
	Key    string `json:"Key"`
	Values []string
}

type instanceInfoFilterLegacy struct {
	Key      string `json:"key"`
	ValueSet []string
}

type describeInstanceInformationInput struct {
	Filters                       []instanceInfoFilter
	InstanceInformationFilterList []instanceInfoFilterLegacy
	MaxResults                    int
	NextToken                     string
}

func (s *Server) describeInstanceInformation(body []byte) (any, *APIError) {
	var in describeInstanceInformationInput
	if len(body) > 0 {
		if err := json.Unmarshal(body, &in); err != nil {
			return nil, &APIError{Code: "SerializationException", Message: err.Error()}
		}
	}
	if in.MaxResults != 0 && (in.MaxResults < 5 || in.MaxResults > 50) {
		return nil, &APIError{Code: "ValidationException", Message: fmt.Sprintf("MaxResults %d must be between 5 and 50", in.MaxResults)}
	}
	fs := map[string][]string{}
	for _, f := range in.Filters {
		fs[f.Key] = append(fs[f.Key], f.Values...)
	}
	for _, f := range in.InstanceInformationFilterList {
		fs[f.Key] = append(fs[f.Key], f.ValueSet...)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var list []map[string]any
	keys := slices.Sorted(maps.Keys(fs))
	now := s.Clock.Now()
	for _, id := range s.order {
		inst := s.instances[id]
		if inst.NotManaged {
			continue
		}
		ok, e := instanceInfoMatches(inst, fs, keys)
		if e != nil {
			return nil, e
		}
		if !ok {
			continue
		}
		list = append(list, map[string]any{
			"InstanceId":       inst.ID,
			"PingStatus":       inst.PingStatus,
			"LastPingDateTime": epoch(now),
			"AgentVersion":     "3.3.0.0",
			"IsLatestVersion":  true,
			"PlatformType":     "Linux",
			"PlatformName":     "Amazon Linux",
			"PlatformVersion":  "2023",
			"ResourceType":     "EC2Instance",
		})
	}
	pageSize := in.MaxResults
	if pageSize == 0 {
		pageSize = 50
	}
	start, end, next := page(len(list), in.NextToken, pageSize)
	out := map[string]any{"InstanceInformationList": list[start:end]}
	if list == nil {
		out["InstanceInformationList"] = []any{}
	}
	if next != "" {
		out["NextToken"] = next
	}
	return out, nil
}

// instanceInfoMatches applies DescribeInstanceInformation's filters fs (in
// the order of keys) to inst; an unknown filter key is an error, as in SSM.
func instanceInfoMatches(inst *Instance, fs map[string][]string, keys []string) (bool, *APIError) {
	ok := true
	for _, k := range keys {
		vals := fs[k]
		switch {
		case k == "InstanceIds":
			ok = ok && contains(vals, inst.ID)
		case k == "PingStatus":
			ok = ok && contains(vals, inst.PingStatus)
		case k == "ResourceType":
			ok = ok && contains(vals, "EC2Instance")
		case k == "PlatformTypes":
			ok = ok && contains(vals, "Linux")
		case strings.HasPrefix(k, "tag:"):
			v, has := inst.Tags[strings.TrimPrefix(k, "tag:")]
			ok = ok && has && contains(vals, v)
		case k == "tag-key":
			found := false
			for _, v := range vals {
				if _, has := inst.Tags[v]; has {
					found = true
				}
			}
			ok = ok && found
		default:
			return false, &APIError{Code: "InvalidInstanceInformationFilterValue", Message: fmt.Sprintf("filter key %q is not supported", k)}
		}
	}
	return ok, nil
}

// WaitCommands blocks until every started command has finished running (or
// ctx ends). Useful in tests before asserting on Commands(); call it when no
// SendCommand is in flight (sync.WaitGroup rules).
func (s *Server) WaitCommands(ctx context.Context) error {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// checkDocument validates a SendCommand against Server.Documents like SSM:
// InvalidDocument for an unknown document, InvalidParameters for a bad
// parameter (the message names it and its value).
func (s *Server) checkDocument(name string, params map[string][]string) *APIError {
	if s.Documents == nil {
		return nil
	}
	doc := s.Documents[name]
	if doc == nil {
		return &APIError{Code: "InvalidDocument", Message: fmt.Sprintf("Document with name %s does not exist.", name)}
	}
	flat := make(map[string]string, len(params))
	for k, v := range params {
		if len(v) != 1 {
			return &APIError{Code: "InvalidParameters", Message: fmt.Sprintf("Parameter %s of type String must have exactly one value, got %d.", k, len(v))}
		}
		flat[k] = v[0]
	}
	if _, _, err := doc.Render(flat); err != nil {
		return &APIError{Code: "InvalidParameters", Message: err.Error()}
	}
	return nil
}
