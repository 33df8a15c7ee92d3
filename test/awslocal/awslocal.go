// Package awslocal is an in-memory stand-in for the parts of Amazon EC2 and AWS
// Systems Manager that quiesce uses, served over the real wire protocols so
// the real aws-sdk-go-v2 clients can talk to it:
//
//   - EC2 Query (form POST, Action=…&Version=2016-11-15, XML responses in the
//     EC2 namespace, errors as <Response><Errors><Error><Code>…):
//     DescribeInstances, DescribeVolumes, CreateSnapshot, CreateSnapshots,
//     CreateTags, DescribeSnapshots, DeleteSnapshot, CreateVolume,
//     AttachVolume, DetachVolume, DeleteVolume.
//   - SSM JSON 1.1 (Content-Type application/x-amz-json-1.1,
//     X-Amz-Target: AmazonSSM.<Op>, errors as {"__type":…}):
//     SendCommand, GetCommandInvocation, DescribeInstanceInformation.
//
// A Server is an http.Handler; mount it on an httptest.Server (or any
// listener) and point the SDK at it with BaseEndpoint or the standard
// AWS_ENDPOINT_URL_EC2 / AWS_ENDPOINT_URL_SSM variables. Requests are not
// authenticated (any SigV4 signature is accepted).
//
// State: instances (tags, block device mappings, SSM ping status), volumes
// (seeded attached, or created from a snapshot: states, attachments, tags),
// snapshots (tags, pending→completed after Server.SnapshotCompleteAfter) and
// SSM commands. Seed it with AddInstance / AddSnapshot.
//
// Hooks (how tests and the demo give the stand-in a host and EBS storage):
//   - RunCommand runs asynchronously after SendCommand, once per instance,
//     after CommandDelay; its CommandResult becomes visible to
//     GetCommandInvocation ResultDelay later. Tests set a scripted fake
//     hostagent; test/cmd/awslocal runs the real SSM document.
//   - OnSnapshot is called synchronously inside CreateSnapshot(s), once per
//     volume, before the call returns (EBS fixes the point in time at the
//     call). An error fails the call with InternalError (HTTP 500).
//   - OnDeleteSnapshot is called inside DeleteSnapshot once EC2's checks
//     passed, before the snapshot goes (the demo removes its image file).
//   - VolumeHooks (OnCreateVolume, OnAttachVolume, OnDetachVolume,
//     OnDeleteVolume) run inside the volume calls after EC2's checks: the
//     demo makes a volume a FICLONE copy of the snapshot image and an
//     attachment a loop device (and refuses to detach a mounted one).
//     VolumeDelays time creating→available, attaching→attached and
//     detaching→available on Server.Clock.
//   - Documents (optional): SendCommand validates the document name and
//     parameters like SSM (InvalidDocument, InvalidParameters) using the
//     ssmdoc rules, e.g. Documents: {"Quiesce": doc} with doc, _ :=
//     ssmdoc.Quiesce().
//
// Test controls:
//   - SetFault(action, Fault): fail an action with an error code and HTTP
//     status, N times, after M successes, only for matching calls, or after
//     the action took effect (a "lost response").
//   - SetLatency(action, d): delay every request of an action.
//   - CommandDelay, ResultDelay, InvocationDelay: SSM delivery, result
//     visibility and the eventual consistency of GetCommandInvocation.
//   - Limits: the EC2 snapshot rules (CreateSnapshot token bucket 100 refilled
//     5/s — charged one token per volume snapshot, also for CreateSnapshots —,
//     15 s between snapshots of one volume, ≤5 pending per volume), enforced
//     when Limits.Enforce is set, against Server.Clock so a scaled clock can
//     simulate a fleet quickly.
//   - SetInstanceState, SetPingStatus: a verifier that stops or goes offline.
//   - Calls(): a record of every request (action, parameters, error code) for
//     assertions; Snapshots(), Volumes(), Commands() expose the state.
//
// All methods are safe for concurrent use. Close stops command goroutines.
package awslocal

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/quiesce/quiesce/internal/clock"
	"github.com/quiesce/quiesce/ssmdoc"
)

// Clock is the time source of the stand-in (internal/clock). The zero Server
// uses real time; a scaled clock lets a simulation run minutes of EC2 rate
// limits in seconds, on the same time base as the Lambda under test.
type Clock = clock.Clock

// RealClock is the wall clock.
var RealClock Clock = clock.Real{}

// Invocation is one instance's share of a SendCommand, as given to RunCommand.
type Invocation struct {
	CommandID    string
	InstanceID   string
	DocumentName string
	// Parameters exactly as sent (SSM parameters are lists of strings).
	Parameters     map[string][]string
	TimeoutSeconds int32
}

// Param returns the first value of a parameter, or "".
func (inv Invocation) Param(name string) string {
	if v := inv.Parameters[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// CommandResult is what a command produced on the instance.
type CommandResult struct {
	// Status: "Success", "Failed", "TimedOut" or "Cancelled". Empty means
	// Success when ResponseCode is 0, else Failed.
	Status       string
	ResponseCode int
	Stdout       string
	Stderr       string
}

// BlockDevice is one EBS volume attached to an instance.
type BlockDevice struct {
	DeviceName string // e.g. /dev/xvdf
	VolumeID   string // vol-…
	SizeGiB    int32
}

// Instance seeds an EC2 instance (and its volumes) into the stand-in.
type Instance struct {
	ID               string
	State            string // default "running"
	Tags             map[string]string
	RootDeviceName   string // default: the first block device's name
	BlockDevices     []BlockDevice
	PingStatus       string // SSM: default "Online"; "ConnectionLost", "Inactive"
	AvailabilityZone string // default "us-east-1a"
	// NotManaged: the instance is unknown to SSM (no DescribeInstanceInformation entry).
	NotManaged bool
}

// Snapshot is a stored EBS snapshot.
type Snapshot struct {
	ID          string
	VolumeID    string
	VolumeSize  int32
	OwnerID     string
	Description string
	StartTime   time.Time
	// State is computed: "pending" until StartTime+Server.SnapshotCompleteAfter,
	// then "completed" (unless ForceState is set).
	State      string
	ForceState string
	Tags       map[string]string
	// InUse makes DeleteSnapshot fail with InvalidSnapshot.InUse (e.g. an AMI uses it).
	InUse bool
	// CreatedBy is "CreateSnapshot", "CreateSnapshots" or "seed".
	CreatedBy string
	// InstanceID is set for snapshots made by CreateSnapshots or of an attached volume.
	InstanceID string
}

// Command is one SSM command invocation (one instance) as stored.
type Command struct {
	Invocation
	RequestedAt time.Time
	Status      string // Pending, InProgress, Success, Failed, TimedOut, Cancelled
	Result      CommandResult
	StartedAt   time.Time
	EndedAt     time.Time
	VisibleAt   time.Time // when GetCommandInvocation starts showing the final status
}

// Call records one request the stand-in received.
type Call struct {
	Service string // "ec2" or "ssm"
	Action  string
	// Form holds EC2 Query parameters; JSON holds the raw SSM request body.
	Form url.Values
	JSON []byte
	At   time.Time
	// ErrorCode is the API error returned, "" on success.
	ErrorCode string
}

// Tags returns the tags of an EC2 call (TagSpecification.N.Tag.M or Tag.N).
func (c Call) Tags() map[string]string {
	tags := map[string]string{}
	for _, spec := range members(c.Form, "TagSpecification") {
		for k, v := range tagList(c.Form, spec+".Tag") {
			tags[k] = v
		}
	}
	for k, v := range tagList(c.Form, "Tag") {
		tags[k] = v
	}
	return tags
}

// Fault makes an action fail.
type Fault struct {
	Code    string // API error code, e.g. RequestLimitExceeded
	Message string
	Status  int // HTTP status; default 400 (503 for RequestLimitExceeded, 500 for InternalError)
	// Skip lets this many matching requests succeed before the fault applies.
	Skip int
	// Times is how many requests fail; 0 means every request while set.
	Times int
	// Match restricts the fault to some calls (nil: all calls of the action).
	Match func(Call) bool
	// AfterEffect applies the action first and then returns the error, like a
	// response lost after the server did the work.
	AfterEffect bool
	// Func, when set, decides per call: a non-nil *APIError fails it.
	Func func(Call) *APIError
}

// APIError is an error as the stand-in returns it on the wire.
type APIError struct {
	Code    string
	Message string
	Status  int
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }

type faultState struct {
	Fault
	seen, fired int
}

// Limits are the EC2 snapshot rate rules.
type Limits struct {
	Enforce bool
	// Bucket and Refill (tokens per second) model the CreateSnapshot resource
	// rate limit; defaults 100 and 5. One token per volume snapshot.
	Bucket float64
	Refill float64
	// PerVolumeInterval is the minimum spacing of snapshots of one volume (default 15 s).
	PerVolumeInterval time.Duration
	// MaxPendingPerVolume (default 5).
	MaxPendingPerVolume int
}

// Stats counts what the limits did.
type Stats struct {
	Throttled          int // RequestLimitExceeded returned by the token bucket
	PerVolumeRate      int // SnapshotCreationPerVolumeRateExceeded
	ConcurrentSnapshot int // ConcurrentSnapshotLimitExceeded (pending per volume)
	SnapshotsCreated   int
}

// Server is the stand-in. Set the exported fields before serving requests.
type Server struct {
	Clock     Clock
	AccountID string // default 123456789012
	// SnapshotCompleteAfter: how long a snapshot stays "pending" (default 0: completed at once).
	SnapshotCompleteAfter time.Duration
	// CommandDelay: SendCommand → RunCommand starts (SSM delivery).
	// ResultDelay: RunCommand returns → GetCommandInvocation shows the result.
	CommandDelay time.Duration
	ResultDelay  time.Duration
	// InvocationDelay: GetCommandInvocation answers InvocationDoesNotExist
	// for this long after SendCommand (SSM is eventually consistent).
	InvocationDelay time.Duration
	// RunCommand runs one invocation; nil answers Success with empty output.
	RunCommand func(ctx context.Context, inv Invocation) CommandResult
	// OnSnapshot is called inside CreateSnapshot(s) for each volume.
	OnSnapshot func(ctx context.Context, instanceID, volumeID, snapshotID string) error
	// OnDeleteSnapshot is called inside DeleteSnapshot after EC2's own
	// checks (exists, not in use) and before the snapshot is removed (e.g.
	// the demo deletes the image file). An error fails the call with
	// InternalError (HTTP 500) and keeps the snapshot.
	OnDeleteSnapshot func(ctx context.Context, snapshotID, volumeID string) error
	// Documents, when set, makes SendCommand check its request like SSM
	// does: a document not listed is InvalidDocument; an undeclared
	// parameter, a parameter with other than one value, or a value outside
	// the document's allowedValues/allowedPattern (ssmdoc's Render rules) is
	// InvalidParameters, and nothing runs. nil accepts anything.
	Documents map[string]*ssmdoc.Document
	Limits    Limits
	// VolumeHooks make CreateVolume/AttachVolume/DetachVolume/DeleteVolume
	// real for a caller (the demo); VolumeDelays time their transitions.
	VolumeHooks  VolumeHooks
	VolumeDelays VolumeDelays

	mu        sync.Mutex
	instances map[string]*Instance
	order     []string // instance IDs in insertion order
	volumes   map[string]*volume
	volOrder  []string          // volume IDs in creation order
	volTokens map[string]string // CreateVolume ClientToken → volume ID
	snapshots map[string]*Snapshot
	snapOrder []string
	commands  map[string]map[string]*Command // command ID → instance ID → command
	faults    map[string][]*faultState
	latency   map[string]time.Duration
	calls     []Call
	stats     Stats
	tokens    float64
	tokensAt  time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

type volume struct {
	id         string
	size       int32
	instanceID string // attached to ("" when available)
	device     string
	az         string
	lastSnap   time.Time
	// attachState: attaching, attached, detaching ("" when not attached).
	attachState string
	attachTime  time.Time
	creating    bool
	// settleAt: when the pending transition (creating, attaching,
	// detaching) is over; see settleVolumes.
	settleAt   time.Time
	snapshotID string
	tags       map[string]string
	createdBy  string
	createTime time.Time
}

// New returns an empty stand-in using the real clock.
func New() *Server {
	s := &Server{}
	s.init()
	return s
}

func (s *Server) init() {
	s.once.Do(func() {
		if s.Clock == nil {
			s.Clock = RealClock
		}
		if s.AccountID == "" {
			s.AccountID = "123456789012"
		}
		s.instances = map[string]*Instance{}
		s.volumes = map[string]*volume{}
		s.volTokens = map[string]string{}
		s.snapshots = map[string]*Snapshot{}
		s.commands = map[string]map[string]*Command{}
		s.faults = map[string][]*faultState{}
		s.latency = map[string]time.Duration{}
		s.ctx, s.cancel = context.WithCancel(context.Background())
	})
}

// Close cancels running commands and waits for their goroutines.
func (s *Server) Close() {
	s.init()
	s.cancel()
	s.wg.Wait()
}

// AddInstance adds (or replaces) an instance and its volumes.
func (s *Server) AddInstance(in Instance) {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	inst := in
	if inst.State == "" {
		inst.State = "running"
	}
	if inst.PingStatus == "" {
		inst.PingStatus = "Online"
	}
	if inst.AvailabilityZone == "" {
		inst.AvailabilityZone = "us-east-1a"
	}
	if inst.RootDeviceName == "" && len(inst.BlockDevices) > 0 {
		inst.RootDeviceName = inst.BlockDevices[0].DeviceName
	}
	inst.Tags = copyTags(in.Tags)
	inst.BlockDevices = append([]BlockDevice(nil), in.BlockDevices...)
	s.order = putOrdered(s.instances, s.order, inst.ID, &inst)
	for _, bd := range inst.BlockDevices {
		size := bd.SizeGiB
		if size == 0 {
			size = 8
		}
		s.putVolume(&volume{id: bd.VolumeID, size: size, instanceID: inst.ID, device: bd.DeviceName, az: inst.AvailabilityZone,
			attachState: "attached", tags: map[string]string{}, createdBy: "seed", createTime: seededAt, attachTime: seededAt})
	}
}

// SetPingStatus changes an instance's SSM ping status.
func (s *Server) SetPingStatus(instanceID, status string) {
	s.init()
	edit(s, s.instances, instanceID, func(in *Instance) { in.PingStatus = status })
}

// edit applies change to the resource id of m under s.mu, if there is one.
func edit[T any](s *Server, m map[string]*T, id string, change func(*T)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := m[id]; r != nil {
		change(r)
	}
}

// AddSnapshot seeds a snapshot (e.g. old ones for retention tests). ID,
// OwnerID and StartTime get defaults when empty.
func (s *Server) AddSnapshot(snap Snapshot) string {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	sn := snap
	if sn.ID == "" {
		sn.ID = newID("snap-")
	}
	if sn.OwnerID == "" {
		sn.OwnerID = s.AccountID
	}
	if sn.StartTime.IsZero() {
		sn.StartTime = s.Clock.Now()
	}
	if sn.CreatedBy == "" {
		sn.CreatedBy = "seed"
	}
	sn.Tags = copyTags(snap.Tags)
	s.putSnapshot(&sn)
	return sn.ID
}

func (s *Server) putSnapshot(sn *Snapshot) {
	s.snapOrder = putOrdered(s.snapshots, s.snapOrder, sn.ID, sn)
}

// SetSnapshotInUse marks a snapshot as used by an AMI (DeleteSnapshot fails).
func (s *Server) SetSnapshotInUse(id string, inUse bool) {
	s.init()
	edit(s, s.snapshots, id, func(sn *Snapshot) { sn.InUse = inUse })
}

// Snapshots returns copies of all snapshots (state computed now), oldest first.
func (s *Server) Snapshots() []Snapshot {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.Clock.Now()
	out := make([]Snapshot, 0, len(s.snapOrder))
	for _, id := range s.snapOrder {
		if sn := s.snapshots[id]; sn != nil {
			out = append(out, s.snapshotView(sn, now))
		}
	}
	return out
}

// Snapshot returns one snapshot by ID.
func (s *Server) Snapshot(id string) (Snapshot, bool) {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	sn := s.snapshots[id]
	if sn == nil {
		return Snapshot{}, false
	}
	return s.snapshotView(sn, s.Clock.Now()), true
}

func (s *Server) snapshotView(sn *Snapshot, now time.Time) Snapshot {
	c := *sn
	c.Tags = copyTags(sn.Tags)
	c.State = s.snapshotState(sn, now)
	return c
}

func (s *Server) snapshotState(sn *Snapshot, now time.Time) string {
	if sn.ForceState != "" {
		return sn.ForceState
	}
	if now.Before(sn.StartTime.Add(s.SnapshotCompleteAfter)) {
		return "pending"
	}
	return "completed"
}

// Commands returns copies of every command invocation, in request order.
func (s *Server) Commands() []Command {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Command
	for _, byInst := range s.commands {
		for _, c := range byInst {
			cc := *c
			cc.Parameters = copyParams(c.Parameters)
			out = append(out, cc)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].RequestedAt.Before(out[j].RequestedAt) })
	return out
}

// SetFault adds a fault for an action (e.g. "CreateSnapshots", "GetCommandInvocation").
// Several faults per action are checked in the order they were added.
func (s *Server) SetFault(action string, f Fault) {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[action] = append(s.faults[action], &faultState{Fault: f})
}

// ClearFaults removes every fault of an action ("" clears all).
func (s *Server) ClearFaults(action string) {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	if action == "" {
		s.faults = map[string][]*faultState{}
		return
	}
	delete(s.faults, action)
}

// SetLatency delays every request of an action by d (on the server's clock).
func (s *Server) SetLatency(action string, d time.Duration) {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency[action] = d
}

// Calls returns the record of every request so far.
func (s *Server) Calls() []Call {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// CallsOf returns the recorded requests of one action.
func (s *Server) CallsOf(action string) []Call {
	var out []Call
	for _, c := range s.Calls() {
		if c.Action == action {
			out = append(out, c)
		}
	}
	return out
}

// Stats returns what the snapshot limits did so far.
func (s *Server) Stats() Stats {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// ServeHTTP routes SSM JSON 1.1 requests by X-Amz-Target and everything else
// as EC2 Query.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.init()
	if target := r.Header.Get("X-Amz-Target"); target != "" || strings.Contains(r.Header.Get("Content-Type"), "x-amz-json") {
		s.serveSSM(w, r, target)
		return
	}
	s.serveEC2(w, r)
}

// record appends a call and returns its index.
func (s *Server) record(c Call) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
	return len(s.calls) - 1
}

func (s *Server) setCallError(idx int, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if idx >= 0 && idx < len(s.calls) {
		s.calls[idx].ErrorCode = code
	}
}

// dispatch is what both protocols do around an action: record the call,
// apply its latency, and honour an injected fault — before the action
// (nothing happens) or after it ("took effect, then the response was lost").
// On an error it writes it with writeErr and returns ok=false.
func dispatch[R any](s *Server, w http.ResponseWriter, call Call, writeErr func(http.ResponseWriter, *APIError), run func() (R, *APIError)) (resp R, ok bool) {
	idx := s.record(call)
	s.sleepLatency(call.Action)
	fault, after := s.checkFault(call)
	if fault != nil && !after {
		s.setCallError(idx, fault.Code)
		writeErr(w, fault)
		return resp, false
	}
	resp, apiErr := run()
	if apiErr == nil && fault != nil {
		apiErr = fault
	}
	if apiErr != nil {
		s.setCallError(idx, apiErr.Code)
		writeErr(w, apiErr)
		return resp, false
	}
	return resp, true
}

// checkFault returns the fault that applies to this call, if any, and
// whether it should be raised after the action took effect.
func (s *Server) checkFault(c Call) (*APIError, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.faults[c.Action] {
		if f.Match != nil && !f.Match(c) {
			continue
		}
		if f.Func != nil {
			if e := f.Func(c); e != nil {
				return withDefaults(e), f.AfterEffect
			}
			continue
		}
		f.seen++
		if f.seen <= f.Skip {
			continue
		}
		if f.Times > 0 && f.fired >= f.Times {
			continue
		}
		f.fired++
		return withDefaults(&APIError{Code: f.Code, Message: f.Message, Status: f.Status}), f.AfterEffect
	}
	return nil, false
}

func withDefaults(e *APIError) *APIError {
	c := *e
	if c.Code == "" {
		c.Code = "InternalError"
	}
	if c.Message == "" {
		c.Message = "injected fault " + c.Code
	}
	if c.Status == 0 {
		switch c.Code {
		case "RequestLimitExceeded", "ServiceUnavailable", "Unavailable":
			c.Status = http.StatusServiceUnavailable
		case "InternalError", "InternalFailure", "InternalServerError":
			c.Status = http.StatusInternalServerError
		default:
			c.Status = http.StatusBadRequest
		}
	}
	return &c
}

// sleepLatency waits an action's injected latency on the server's own
// context, not the request's: like AWS, a request whose caller gave up is
// still processed when its time comes (only Close cuts the wait short).
func (s *Server) sleepLatency(action string) {
	s.mu.Lock()
	d := s.latency[action]
	s.mu.Unlock()
	if d > 0 {
		_ = s.Clock.Sleep(s.ctx, d)
	}
}

func newID(prefix string) string {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])[:17]
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return fmt.Sprintf("%s-%s-%s-%s-%s", h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])
}

func copyTags(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func copyParams(m map[string][]string) map[string][]string {
	out := make(map[string][]string, len(m))
	for k, v := range m {
		out[k] = append([]string(nil), v...)
	}
	return out
}
