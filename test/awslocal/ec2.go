package awslocal

import (
	"context"
	"encoding/xml"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

const ec2Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"

// ec2TimeFormat is the ISO 8601 form EC2 uses in XML.
const ec2TimeFormat = "2006-01-02T15:04:05.000Z"

// seededAt is the creation and attach time of seeded volumes.
var seededAt = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type respHeader struct {
	Xmlns     string `xml:"xmlns,attr"`
	RequestID string `xml:"requestId"`
}

func (h *respHeader) header() *respHeader { return h }

type ec2Response interface{ header() *respHeader }

type xmlTag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

func tagSet(m map[string]string) []xmlTag {
	out := make([]xmlTag, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, xmlTag{Key: k, Value: m[k]})
	}
	return out
}

type xmlSnapshot struct {
	SnapshotID  string   `xml:"snapshotId"`
	VolumeID    string   `xml:"volumeId"`
	Status      string   `xml:"status"`
	StartTime   string   `xml:"startTime"`
	Progress    string   `xml:"progress"`
	OwnerID     string   `xml:"ownerId"`
	VolumeSize  int32    `xml:"volumeSize"`
	Description string   `xml:"description"`
	Encrypted   bool     `xml:"encrypted"`
	StorageTier string   `xml:"storageTier"`
	Tags        []xmlTag `xml:"tagSet>item,omitempty"`
}

type xmlSnapshotInfo struct {
	SnapshotID  string   `xml:"snapshotId"`
	VolumeID    string   `xml:"volumeId"`
	State       string   `xml:"state"`
	StartTime   string   `xml:"startTime"`
	Progress    string   `xml:"progress"`
	OwnerID     string   `xml:"ownerId"`
	VolumeSize  int32    `xml:"volumeSize"`
	Description string   `xml:"description"`
	Encrypted   bool     `xml:"encrypted"`
	Tags        []xmlTag `xml:"tagSet>item,omitempty"`
}

type xmlEbs struct {
	VolumeID            string `xml:"volumeId"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type xmlBlockDevice struct {
	DeviceName string `xml:"deviceName"`
	Ebs        xmlEbs `xml:"ebs"`
}

type xmlInstance struct {
	InstanceID string `xml:"instanceId"`
	ImageID    string `xml:"imageId"`
	State      struct {
		Code int    `xml:"code"`
		Name string `xml:"name"`
	} `xml:"instanceState"`
	InstanceType string `xml:"instanceType"`
	Placement    struct {
		AvailabilityZone string `xml:"availabilityZone"`
	} `xml:"placement"`
	RootDeviceType string           `xml:"rootDeviceType"`
	RootDeviceName string           `xml:"rootDeviceName"`
	BlockDevices   []xmlBlockDevice `xml:"blockDeviceMapping>item"`
	Tags           []xmlTag         `xml:"tagSet>item,omitempty"`
}

type xmlReservation struct {
	ReservationID string        `xml:"reservationId"`
	OwnerID       string        `xml:"ownerId"`
	Instances     []xmlInstance `xml:"instancesSet>item"`
}

type xmlAttachment struct {
	VolumeID            string `xml:"volumeId"`
	InstanceID          string `xml:"instanceId"`
	Device              string `xml:"device"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type xmlVolume struct {
	VolumeID         string          `xml:"volumeId"`
	Size             int32           `xml:"size"`
	SnapshotID       string          `xml:"snapshotId"`
	AvailabilityZone string          `xml:"availabilityZone"`
	Status           string          `xml:"status"`
	CreateTime       string          `xml:"createTime"`
	VolumeType       string          `xml:"volumeType"`
	Attachments      []xmlAttachment `xml:"attachmentSet>item"`
	Tags             []xmlTag        `xml:"tagSet>item,omitempty"`
}

type describeInstancesResponse struct {
	XMLName xml.Name `xml:"DescribeInstancesResponse"`
	respHeader
	Reservations []xmlReservation `xml:"reservationSet>item"`
	NextToken    string           `xml:"nextToken,omitempty"`
}

type describeVolumesResponse struct {
	XMLName xml.Name `xml:"DescribeVolumesResponse"`
	respHeader
	Volumes   []xmlVolume `xml:"volumeSet>item"`
	NextToken string      `xml:"nextToken,omitempty"`
}

type createSnapshotResponse struct {
	XMLName xml.Name `xml:"CreateSnapshotResponse"`
	respHeader
	xmlSnapshot
}

type createSnapshotsResponse struct {
	XMLName xml.Name `xml:"CreateSnapshotsResponse"`
	respHeader
	Snapshots []xmlSnapshotInfo `xml:"snapshotSet>item"`
}

type describeSnapshotsResponse struct {
	XMLName xml.Name `xml:"DescribeSnapshotsResponse"`
	respHeader
	Snapshots []xmlSnapshot `xml:"snapshotSet>item"`
	NextToken string        `xml:"nextToken,omitempty"`
}

type returnResponse struct {
	XMLName xml.Name
	respHeader
	Return bool `xml:"return"`
}

type ec2ErrorResponse struct {
	XMLName xml.Name `xml:"Response"`
	Errors  []struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Errors>Error"`
	RequestID string `xml:"RequestID"`
}

func (s *Server) serveEC2(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeEC2Error(w, &APIError{Code: "MalformedQueryString", Message: err.Error(), Status: 400})
		return
	}
	form := r.Form
	action := form.Get("Action")
	call := Call{Service: "ec2", Action: action, Form: form, At: s.Clock.Now()}
	resp, ok := dispatch(s, w, call, writeEC2Error, func() (ec2Response, *APIError) {
		return s.ec2Action(r.Context(), action, form)
	})
	if !ok {
		return
	}
	h := resp.header()
	h.Xmlns = ec2Namespace
	h.RequestID = newUUID()
	body, err := xml.Marshal(resp)
	if err != nil {
		writeEC2Error(w, &APIError{Code: "InternalError", Message: err.Error(), Status: 500})
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(body)
}

func writeEC2Error(w http.ResponseWriter, e *APIError) {
	e = withDefaults(e)
	var resp ec2ErrorResponse
	resp.Errors = append(resp.Errors, struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}{e.Code, e.Message})
	resp.RequestID = newUUID()
	body, _ := xml.Marshal(resp)
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(e.Status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(body)
}

// ec2Actions are the EC2 Query actions the stand-in serves, by Action.
var ec2Actions = map[string]func(*Server, context.Context, url.Values) (ec2Response, *APIError){
	"CreateVolume":      (*Server).createVolume,
	"AttachVolume":      (*Server).attachVolume,
	"DetachVolume":      (*Server).detachVolume,
	"DeleteVolume":      (*Server).deleteVolume,
	"DescribeInstances": (*Server).describeInstances,
	"DescribeVolumes":   (*Server).describeVolumes,
	"CreateSnapshot":    (*Server).createSnapshot,
	"CreateSnapshots":   (*Server).createSnapshots,
	"CreateTags":        (*Server).createTags,
	"DescribeSnapshots": (*Server).describeSnapshots,
	"DeleteSnapshot":    (*Server).deleteSnapshot,
}

func (s *Server) ec2Action(ctx context.Context, action string, form url.Values) (ec2Response, *APIError) {
	s.mu.Lock()
	s.settleVolumes(s.Clock.Now())
	s.mu.Unlock()
	if run := ec2Actions[action]; run != nil {
		return run(s, ctx, form)
	}
	return nil, &APIError{Code: "InvalidAction", Message: fmt.Sprintf("The action %q is not valid for this web service.", action), Status: 400}
}

func maxResults(form url.Values) int {
	n, _ := strconv.Atoi(form.Get("MaxResults"))
	return n
}

// checkMaxResults applies EC2's page size rule (5–1000) and its refusal to
// combine MaxResults with an explicit ID list.
func checkMaxResults(form url.Values, idParam string) *APIError {
	v := form.Get("MaxResults")
	if v == "" {
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 5 || n > 1000 {
		return &APIError{Code: "InvalidParameterValue", Message: fmt.Sprintf("MaxResults %q must be between 5 and 1000", v)}
	}
	if len(list(form, idParam)) > 0 {
		return &APIError{Code: "InvalidParameterCombination", Message: "The parameter " + idParam + "s cannot be used with the parameter maxResults"}
	}
	return nil
}

// instanceFilters are the DescribeInstances filters besides the tag ones.
var instanceFilters = map[string]func(*Instance) string{
	"instance-state-name": func(in *Instance) string { return in.State },
	"instance-id":         func(in *Instance) string { return in.ID },
	"availability-zone":   func(in *Instance) string { return in.AvailabilityZone },
}

func (s *Server) describeInstances(_ context.Context, form url.Values) (ec2Response, *APIError) {
	reservations, next, e := describe(s, form, describeSpec[*Instance, xmlReservation]{idParam: "InstanceId", notFound: instanceNotFound,
		order: func() []string { return s.order }, lookup: func(id string) *Instance { return s.instances[id] },
		tags: func(in *Instance) map[string]string { return in.Tags }, fields: instanceFilters, render: s.xmlReservation})
	if e != nil {
		return nil, e
	}
	return &describeInstancesResponse{Reservations: reservations, NextToken: next}, nil
}

// xmlReservation is in's reservation: one instance each (s.mu held).
func (s *Server) xmlReservation(in *Instance) xmlReservation {
	return xmlReservation{ReservationID: "r-" + strings.TrimPrefix(in.ID, "i-"), OwnerID: s.AccountID, Instances: []xmlInstance{s.xmlInstance(in)}}
}

func (s *Server) xmlInstance(in *Instance) xmlInstance {
	x := xmlInstance{InstanceID: in.ID, ImageID: "ami-0123456789abcdef0", InstanceType: "m7g.large", RootDeviceType: "ebs", RootDeviceName: in.RootDeviceName}
	x.State.Name = in.State
	x.State.Code = stateCode(in.State)
	x.Placement.AvailabilityZone = in.AvailabilityZone
	for _, bd := range in.BlockDevices {
		ebs := xmlEbs{VolumeID: bd.VolumeID, Status: "attached", AttachTime: seededAt.Format(ec2TimeFormat), DeleteOnTermination: bd.DeviceName == in.RootDeviceName}
		if v := s.volumes[bd.VolumeID]; v != nil && v.instanceID == in.ID {
			ebs.Status, ebs.AttachTime = v.attachState, v.attachTime.UTC().Format(ec2TimeFormat)
		}
		x.BlockDevices = append(x.BlockDevices, xmlBlockDevice{DeviceName: bd.DeviceName, Ebs: ebs})
	}
	x.Tags = tagSet(in.Tags)
	return x
}

func stateCode(state string) int {
	switch state {
	case "pending":
		return 0
	case "running":
		return 16
	case "shutting-down":
		return 32
	case "terminated":
		return 48
	case "stopping":
		return 64
	case "stopped":
		return 80
	}
	return 16
}

func (s *Server) describeVolumes(_ context.Context, form url.Values) (ec2Response, *APIError) {
	vols, next, e := describe(s, form, describeSpec[*volume, xmlVolume]{idParam: "VolumeId", notFound: volumeNotFound,
		order: func() []string { return s.volOrder }, lookup: func(id string) *volume { return s.volumes[id] },
		tags: func(v *volume) map[string]string { return v.tags }, fields: volumeFilters, render: s.xmlVolume})
	if e != nil {
		return nil, e
	}
	return &describeVolumesResponse{Volumes: vols, NextToken: next}, nil
}

// validateTags applies EC2's tag rules: ≤50 per resource, key 1–128 chars,
// value ≤256 chars, no "aws:" prefix.
func validateTags(tags map[string]string) *APIError {
	if len(tags) > 50 {
		return &APIError{Code: "TagLimitExceeded", Message: fmt.Sprintf("The maximum number of tags per resource is 50 (got %d)", len(tags))}
	}
	for k, v := range tags {
		switch {
		case k == "" || len([]rune(k)) > 128:
			return &APIError{Code: "InvalidParameterValue", Message: fmt.Sprintf("Tag key %q must be 1-128 characters", k)}
		case len([]rune(v)) > 256:
			return &APIError{Code: "InvalidParameterValue", Message: fmt.Sprintf("Tag value for key %q exceeds 256 characters", k)}
		case strings.HasPrefix(strings.ToLower(k), "aws:"):
			return &APIError{Code: "InvalidParameterValue", Message: fmt.Sprintf("Tag key %q may not start with aws:", k)}
		}
	}
	return nil
}

// specTags reads TagSpecification.N, which must all be for resourceType
// (EC2 refuses any other type on the call).
func specTags(form url.Values, resourceType string) (map[string]string, *APIError) {
	tags := map[string]string{}
	for _, spec := range members(form, "TagSpecification") {
		if rt := form.Get(spec + ".ResourceType"); rt != resourceType {
			return nil, &APIError{Code: "InvalidParameterValue", Message: fmt.Sprintf("TagSpecification resource type %q is not valid here; use %s", rt, resourceType)}
		}
		for k, v := range tagList(form, spec+".Tag") {
			tags[k] = v
		}
	}
	if e := validateTags(tags); e != nil {
		return nil, e
	}
	return tags, nil
}

// admitSnapshots applies the EC2 snapshot limits to a set of volumes (all or
// nothing) and charges the token bucket. Called with s.mu held.
func (s *Server) admitSnapshots(vols []*volume, now time.Time) *APIError {
	l := s.Limits
	if !l.Enforce {
		return nil
	}
	bucket, refill := l.Bucket, l.Refill
	if bucket == 0 {
		bucket = 100
	}
	if refill == 0 {
		refill = 5
	}
	interval := l.PerVolumeInterval
	if interval == 0 {
		interval = 15 * time.Second
	}
	maxPending := l.MaxPendingPerVolume
	if maxPending == 0 {
		maxPending = 5
	}
	if s.tokensAt.IsZero() {
		s.tokens, s.tokensAt = bucket, now
	}
	if el := now.Sub(s.tokensAt).Seconds(); el > 0 {
		s.tokens += el * refill
		if s.tokens > bucket {
			s.tokens = bucket
		}
		s.tokensAt = now
	}
	for _, v := range vols {
		if !v.lastSnap.IsZero() && now.Sub(v.lastSnap) < interval {
			s.stats.PerVolumeRate++
			return &APIError{Code: "SnapshotCreationPerVolumeRateExceeded", Message: fmt.Sprintf("The maximum per volume CreateSnapshot request rate has been exceeded for %s. Use an increasing or variable sleep interval between requests.", v.id)}
		}
		pending := 0
		for _, sn := range s.snapshots {
			if sn.VolumeID == v.id && s.snapshotState(sn, now) == "pending" {
				pending++
			}
		}
		if pending >= maxPending {
			s.stats.ConcurrentSnapshot++
			return &APIError{Code: "ConcurrentSnapshotLimitExceeded", Message: fmt.Sprintf("Maximum number of pending snapshots (%d) reached for %s", maxPending, v.id)}
		}
	}
	need := float64(len(vols))
	if s.tokens < need {
		s.stats.Throttled++
		return &APIError{Code: "RequestLimitExceeded", Message: "Request limit exceeded.", Status: http.StatusServiceUnavailable}
	}
	s.tokens -= need
	return nil
}

// makeSnapshots creates snapshots of vols after OnSnapshot accepted each.
func (s *Server) makeSnapshots(ctx context.Context, vols []*volume, tags map[string]string, description, createdBy string) ([]*Snapshot, *APIError) {
	now := s.Clock.Now()
	s.mu.Lock()
	if e := s.admitSnapshots(vols, now); e != nil {
		s.mu.Unlock()
		return nil, e
	}
	for _, v := range vols {
		v.lastSnap = now
	}
	s.mu.Unlock()

	snaps := make([]*Snapshot, 0, len(vols))
	for _, v := range vols {
		sn := &Snapshot{ID: newID("snap-"), VolumeID: v.id, VolumeSize: v.size, OwnerID: s.AccountID, Description: description,
			StartTime: now, Tags: copyTags(tags), CreatedBy: createdBy, InstanceID: v.instanceID}
		if s.OnSnapshot != nil {
			if err := s.OnSnapshot(ctx, v.instanceID, v.id, sn.ID); err != nil {
				// Snapshots already taken in this call stay (like EBS would keep them).
				s.mu.Lock()
				for _, done := range snaps {
					s.putSnapshot(done)
				}
				s.mu.Unlock()
				return nil, &APIError{Code: "InternalError", Message: fmt.Sprintf("snapshot of %s failed: %v", v.id, err), Status: 500}
			}
		}
		snaps = append(snaps, sn)
	}
	s.mu.Lock()
	for _, sn := range snaps {
		s.putSnapshot(sn)
		s.stats.SnapshotsCreated++
	}
	s.mu.Unlock()
	return snaps, nil
}

func (s *Server) createSnapshot(ctx context.Context, form url.Values) (ec2Response, *APIError) {
	volID := form.Get("VolumeId")
	tags, e := specTags(form, "snapshot")
	if e != nil {
		return nil, e
	}
	s.mu.Lock()
	v := s.volumes[volID]
	s.mu.Unlock()
	if v == nil {
		return nil, volumeNotFound(volID)
	}
	snaps, e := s.makeSnapshots(ctx, []*volume{v}, tags, form.Get("Description"), "CreateSnapshot")
	if e != nil {
		return nil, e
	}
	sn := snaps[0]
	return &createSnapshotResponse{xmlSnapshot: s.xmlSnapshot(sn, s.Clock.Now())}, nil
}

func (s *Server) createSnapshots(ctx context.Context, form url.Values) (ec2Response, *APIError) {
	instID := form.Get("InstanceSpecification.InstanceId")
	excludeBoot := form.Get("InstanceSpecification.ExcludeBootVolume") == "true"
	excluded := list(form, "InstanceSpecification.ExcludeDataVolumeId")
	tags, e := specTags(form, "snapshot")
	if e != nil {
		return nil, e
	}
	copyFrom := form.Get("CopyTagsFromSource")
	if copyFrom != "" && copyFrom != "volume" {
		return nil, &APIError{Code: "InvalidParameterValue", Message: fmt.Sprintf("CopyTagsFromSource %q is not valid", copyFrom)}
	}
	s.mu.Lock()
	in := s.instances[instID]
	if in == nil {
		s.mu.Unlock()
		return nil, instanceNotFound(instID)
	}
	attached := map[string]bool{}
	for _, bd := range in.BlockDevices {
		attached[bd.VolumeID] = true
	}
	for _, id := range excluded {
		if !attached[id] {
			s.mu.Unlock()
			return nil, &APIError{Code: "InvalidParameterValue", Message: fmt.Sprintf("Volume %s in ExcludeDataVolumeIds is not attached to %s", id, instID)}
		}
		for _, bd := range in.BlockDevices {
			if bd.VolumeID == id && bd.DeviceName == in.RootDeviceName {
				s.mu.Unlock()
				return nil, &APIError{Code: "InvalidParameterValue", Message: fmt.Sprintf("ExcludeDataVolumeIds cannot contain the root volume %s; use ExcludeBootVolume", id)}
			}
		}
	}
	var vols []*volume
	for _, bd := range in.BlockDevices {
		if excludeBoot && bd.DeviceName == in.RootDeviceName {
			continue
		}
		if contains(excluded, bd.VolumeID) {
			continue
		}
		if v := s.volumes[bd.VolumeID]; v != nil {
			vols = append(vols, v)
		}
	}
	s.mu.Unlock()
	if len(vols) == 0 {
		return nil, &APIError{Code: "InvalidParameterCombination", Message: "No volumes left to snapshot after exclusions"}
	}
	snaps, e := s.makeSnapshots(ctx, vols, tags, form.Get("Description"), "CreateSnapshots")
	if e != nil {
		return nil, e
	}
	resp := &createSnapshotsResponse{}
	now := s.Clock.Now()
	for _, sn := range snaps {
		x := s.xmlSnapshot(sn, now)
		resp.Snapshots = append(resp.Snapshots, xmlSnapshotInfo{SnapshotID: x.SnapshotID, VolumeID: x.VolumeID, State: x.Status, StartTime: x.StartTime,
			Progress: x.Progress, OwnerID: x.OwnerID, VolumeSize: x.VolumeSize, Description: x.Description, Tags: x.Tags})
	}
	return resp, nil
}

func (s *Server) xmlSnapshot(sn *Snapshot, now time.Time) xmlSnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.xmlSnapshotLocked(sn, now)
}

func (s *Server) xmlSnapshotLocked(sn *Snapshot, now time.Time) xmlSnapshot {
	state := s.snapshotState(sn, now)
	progress := "100%"
	if state == "pending" {
		progress = "0%"
	}
	return xmlSnapshot{SnapshotID: sn.ID, VolumeID: sn.VolumeID, Status: state, StartTime: sn.StartTime.UTC().Format(ec2TimeFormat), Progress: progress,
		OwnerID: sn.OwnerID, VolumeSize: sn.VolumeSize, Description: sn.Description, StorageTier: "standard", Tags: tagSet(sn.Tags)}
}

func (s *Server) createTags(_ context.Context, form url.Values) (ec2Response, *APIError) {
	ids := list(form, "ResourceId")
	tags := tagList(form, "Tag")
	if len(ids) == 0 {
		return nil, &APIError{Code: "MissingParameter", Message: "The request must contain the parameter ResourceId"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		var cur map[string]string
		switch {
		case s.snapshots[id] != nil:
			cur = s.snapshots[id].Tags
		case s.instances[id] != nil:
			cur = s.instances[id].Tags
		case s.volumes[id] != nil:
			cur = s.volumes[id].tags
		case strings.HasPrefix(id, "vol-"):
			return nil, volumeNotFound(id)
		case strings.HasPrefix(id, "snap-"):
			return nil, snapshotNotFound(id)
		default:
			return nil, &APIError{Code: "InvalidID", Message: fmt.Sprintf("The ID '%s' is not valid", id)}
		}
		merged := copyTags(cur)
		for k, v := range tags {
			merged[k] = v
		}
		if e := validateTags(merged); e != nil {
			return nil, e
		}
	}
	for _, id := range ids {
		target := map[string]string(nil)
		if sn := s.snapshots[id]; sn != nil {
			target = sn.Tags
		} else if in := s.instances[id]; in != nil {
			target = in.Tags
		} else if v := s.volumes[id]; v != nil {
			target = v.tags
		}
		for k, v := range tags {
			target[k] = v
		}
	}
	return &returnResponse{XMLName: xml.Name{Local: "CreateTagsResponse"}, Return: true}, nil
}

func (s *Server) describeSnapshots(_ context.Context, form url.Values) (ec2Response, *APIError) {
	now := s.Clock.Now()
	owners := list(form, "Owner")
	snaps, next, e := describe(s, form, describeSpec[*Snapshot, xmlSnapshot]{idParam: "SnapshotId", notFound: snapshotNotFound,
		order: func() []string { return s.snapOrder }, lookup: func(id string) *Snapshot { return s.snapshots[id] },
		tags: func(sn *Snapshot) map[string]string { return sn.Tags }, fields: s.snapshotFilters(now),
		keep: func(sn *Snapshot) bool { return s.ownedBy(sn, owners) }, render: func(sn *Snapshot) xmlSnapshot { return s.xmlSnapshotLocked(sn, now) }})
	if e != nil {
		return nil, e
	}
	return &describeSnapshotsResponse{Snapshots: snaps, NextToken: next}, nil
}

// snapshotFilters are the DescribeSnapshots filters besides the tag ones
// (status as of now).
func (s *Server) snapshotFilters(now time.Time) map[string]func(*Snapshot) string {
	return map[string]func(*Snapshot) string{
		"volume-id":   func(sn *Snapshot) string { return sn.VolumeID },
		"status":      func(sn *Snapshot) string { return s.snapshotState(sn, now) },
		"snapshot-id": func(sn *Snapshot) string { return sn.ID },
		"owner-id":    func(sn *Snapshot) string { return sn.OwnerID },
		"description": func(sn *Snapshot) string { return sn.Description },
	}
}

// ownedBy applies DescribeSnapshots' Owner list ("self" is the account);
// an empty list keeps every snapshot.
func (s *Server) ownedBy(sn *Snapshot, owners []string) bool {
	if len(owners) == 0 {
		return true
	}
	for _, o := range owners {
		if o == sn.OwnerID || (o == "self" && sn.OwnerID == s.AccountID) {
			return true
		}
	}
	return false
}

func (s *Server) deleteSnapshot(ctx context.Context, form url.Values) (ec2Response, *APIError) {
	id := form.Get("SnapshotId")
	var sn *Snapshot
	check := func() *APIError {
		sn = s.snapshots[id]
		if sn == nil {
			return snapshotNotFound(id)
		}
		if sn.InUse {
			return &APIError{Code: "InvalidSnapshot.InUse", Message: fmt.Sprintf("The snapshot %s is currently in use by ami-0123456789abcdef0", id)}
		}
		return nil
	}
	hook := func() *APIError {
		if h := s.OnDeleteSnapshot; h != nil {
			if err := h(ctx, id, sn.VolumeID); err != nil {
				return &APIError{Code: "InternalError", Message: fmt.Sprintf("delete %s failed: %v", id, err), Status: 500}
			}
		}
		return nil
	}
	return s.hooked(check, hook, func() ec2Response {
		s.snapOrder = dropOrdered(s.snapshots, s.snapOrder, id)
		return &returnResponse{XMLName: xml.Name{Local: "DeleteSnapshotResponse"}, Return: true}
	})
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
