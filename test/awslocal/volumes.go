package awslocal

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Volume is an EBS volume as the stand-in holds it (a copy; see Volumes).
type Volume struct {
	ID               string
	AvailabilityZone string
	SizeGiB          int32
	// SnapshotID is the snapshot the volume was created from ("" for seeded volumes).
	SnapshotID string
	// State is EC2's volume state: creating, available or in-use.
	State string
	Tags  map[string]string
	// InstanceID, Device and AttachState describe the attachment, if any
	// (AttachState attaching, attached or detaching).
	InstanceID  string
	Device      string
	AttachState string
	CreateTime  time.Time
	// CreatedBy is "seed" (AddInstance) or "CreateVolume".
	CreatedBy string
}

// VolumeHooks let a caller make volumes real (the local demo: a FICLONE copy
// of the snapshot image on CreateVolume, a loop device on AttachVolume). Each
// hook runs inside the call after EC2's own checks passed and before the call
// takes effect; an error fails the call — with the error itself when it is
// an *APIError (e.g. IncorrectState for a detach of a mounted volume), else
// with InternalError (HTTP 500) — and changes nothing.
type VolumeHooks struct {
	OnCreateVolume func(ctx context.Context, volumeID, snapshotID string) error
	OnAttachVolume func(ctx context.Context, instanceID, volumeID, device string) error
	OnDetachVolume func(ctx context.Context, instanceID, volumeID, device string, force bool) error
	OnDeleteVolume func(ctx context.Context, volumeID string) error
}

// VolumeDelays are the durations of EBS's asynchronous volume transitions,
// on Server.Clock: creating→available, attaching→attached and
// detaching→available. Zero means the transition is over at once (the
// response still reports the intermediate state, as EC2 does).
type VolumeDelays struct {
	Create, Attach, Detach time.Duration
}

// deviceRe: the device names EC2 accepts for an EBS attachment on Linux.
var deviceRe = regexp.MustCompile(`^/dev/(sd|xvd)[a-z]{1,2}$`)

// attachPoint maps /dev/xvdX and /dev/sdX to one name: EC2 treats them as
// the same attachment point.
func attachPoint(device string) string {
	return strings.Replace(device, "/dev/xvd", "/dev/sd", 1)
}

// volumeState is EC2's state of v (s.mu held, v settled).
func volumeState(v *volume) string {
	switch {
	case v.creating:
		return "creating"
	case v.instanceID != "":
		return "in-use"
	}
	return "available"
}

// settleVolumes completes the transitions whose time has come (s.mu held).
func (s *Server) settleVolumes(now time.Time) {
	for _, v := range s.volumes {
		if now.Before(v.settleAt) {
			continue
		}
		v.creating = false
		switch v.attachState {
		case "attaching":
			v.attachState = "attached"
		case "detaching":
			s.dropBlockDevice(v.instanceID, v.id)
			v.instanceID, v.device, v.attachState = "", "", ""
		}
	}
}

func (s *Server) dropBlockDevice(instanceID, volumeID string) {
	in := s.instances[instanceID]
	if in == nil {
		return
	}
	for i, bd := range in.BlockDevices {
		if bd.VolumeID == volumeID {
			in.BlockDevices = append(in.BlockDevices[:i:i], in.BlockDevices[i+1:]...)
			return
		}
	}
}

// Volumes returns copies of every volume (seeded and created), in creation order.
func (s *Server) Volumes() []Volume {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settleVolumes(s.Clock.Now())
	var out []Volume
	for _, id := range s.volOrder {
		if v := s.volumes[id]; v != nil {
			out = append(out, volumeView(v))
		}
	}
	return out
}

func volumeView(v *volume) Volume {
	return Volume{ID: v.id, AvailabilityZone: v.az, SizeGiB: v.size, SnapshotID: v.snapshotID, State: volumeState(v), Tags: copyTags(v.tags),
		InstanceID: v.instanceID, Device: v.device, AttachState: v.attachState, CreateTime: v.createTime, CreatedBy: v.createdBy}
}

// SetInstanceState changes an instance's EC2 state (e.g. "stopped", "terminated").
func (s *Server) SetInstanceState(instanceID, state string) {
	s.init()
	edit(s, s.instances, instanceID, func(in *Instance) { in.State = state })
}

// putOrdered stores v under id and returns order with id appended if it is new
// (the stand-in lists resources in creation order, like EC2).
func putOrdered[T any](m map[string]T, order []string, id string, v T) []string {
	if _, ok := m[id]; !ok {
		order = append(order, id)
	}
	m[id] = v
	return order
}

// dropOrdered deletes id from m and returns order without it.
func dropOrdered[T any](m map[string]T, order []string, id string) []string {
	delete(m, id)
	for i, o := range order {
		if o == id {
			return append(order[:i], order[i+1:]...)
		}
	}
	return order
}

func (s *Server) putVolume(v *volume) { s.volOrder = putOrdered(s.volumes, s.volOrder, v.id, v) }

// hooked runs an action that has a hook: EC2's checks under s.mu; the hook
// outside it (it may take a while: a file copy, a loop device, a file
// removal); the checks again under s.mu, since the state may have moved
// while the hook ran; then commit, which makes the change and the response
// still under s.mu.
func (s *Server) hooked(check, hook func() *APIError, commit func() ec2Response) (ec2Response, *APIError) {
	s.mu.Lock()
	e := check()
	s.mu.Unlock()
	if e != nil {
		return nil, e
	}
	if e := hook(); e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := check(); e != nil {
		return nil, e
	}
	return commit(), nil
}

// hookError turns a hook's error into the API error the call fails with
// (nil for nil).
func hookError(what string, err error) *APIError {
	if err == nil {
		return nil
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return withDefaults(ae)
	}
	return &APIError{Code: "InternalError", Message: fmt.Sprintf("%s failed: %v", what, err), Status: 500}
}

func volumeNotFound(id string) *APIError {
	return &APIError{Code: "InvalidVolume.NotFound", Message: fmt.Sprintf("The volume '%s' does not exist.", id)}
}

func snapshotNotFound(id string) *APIError {
	return &APIError{Code: "InvalidSnapshot.NotFound", Message: fmt.Sprintf("The snapshot '%s' does not exist.", id)}
}

func instanceNotFound(id string) *APIError {
	return &APIError{Code: "InvalidInstanceID.NotFound", Message: fmt.Sprintf("The instance ID '%s' does not exist", id)}
}

type createVolumeResponse struct {
	XMLName xml.Name `xml:"CreateVolumeResponse"`
	respHeader
	xmlVolume
}

type attachmentResponse struct {
	XMLName xml.Name
	respHeader
	xmlAttachment
}

// createVolume: a volume from a completed snapshot (EC2 refuses a pending
// one), in the given zone, tagged at creation; a repeated ClientToken returns
// the volume the first call created.
func (s *Server) createVolume(ctx context.Context, form url.Values) (ec2Response, *APIError) {
	snapID, az, token := form.Get("SnapshotId"), form.Get("AvailabilityZone"), form.Get("ClientToken")
	if az == "" {
		return nil, &APIError{Code: "MissingParameter", Message: "The request must contain the parameter AvailabilityZone"}
	}
	tags, e := specTags(form, "volume")
	if e != nil {
		return nil, e
	}
	now := s.Clock.Now()
	s.mu.Lock()
	if v := s.volumes[s.volTokens[token]]; v != nil && token != "" {
		defer s.mu.Unlock()
		return &createVolumeResponse{xmlVolume: s.xmlVolume(v)}, nil
	}
	size, e := s.checkVolumeSource(snapID, form.Get("Size"), now)
	s.mu.Unlock()
	if e != nil {
		return nil, e
	}
	v := &volume{id: newID("vol-"), size: size, az: az, snapshotID: snapID, tags: tags, creating: true,
		settleAt: now.Add(s.VolumeDelays.Create), createdBy: "CreateVolume", createTime: now}
	if h := s.VolumeHooks.OnCreateVolume; h != nil {
		if err := h(ctx, v.id, snapID); err != nil {
			return nil, hookError("create volume from "+snapID, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.putVolume(v)
	if token != "" {
		s.volTokens[token] = v.id
	}
	return &createVolumeResponse{xmlVolume: s.xmlVolume(v)}, nil
}

// checkVolumeSource validates the snapshot and size of a CreateVolume (s.mu held).
func (s *Server) checkVolumeSource(snapID, sizeParam string, now time.Time) (int32, *APIError) {
	var size int32
	if sizeParam != "" {
		n, err := strconv.Atoi(sizeParam)
		if err != nil || n < 1 || n > 65536 {
			return 0, &APIError{Code: "InvalidParameterValue", Message: fmt.Sprintf("Value (%s) for parameter size is invalid.", sizeParam)}
		}
		size = int32(n)
	}
	if snapID == "" {
		if size == 0 {
			return 0, &APIError{Code: "MissingParameter", Message: "The request must contain the parameter size or snapshotId"}
		}
		return size, nil
	}
	sn := s.snapshots[snapID]
	if sn == nil {
		return 0, snapshotNotFound(snapID)
	}
	if st := s.snapshotState(sn, now); st != "completed" {
		return 0, &APIError{Code: "IncorrectState", Message: fmt.Sprintf("Snapshot '%s' is in state '%s'", snapID, st)}
	}
	if size == 0 {
		size = sn.VolumeSize
	}
	if size == 0 {
		size = 8
	}
	if size < sn.VolumeSize {
		return 0, &APIError{Code: "InvalidParameterValue", Message: fmt.Sprintf("Volume of %d GiB is smaller than snapshot '%s', %d GiB", size, snapID, sn.VolumeSize)}
	}
	return size, nil
}

func (s *Server) attachVolume(ctx context.Context, form url.Values) (ec2Response, *APIError) {
	volID, instID, device := form.Get("VolumeId"), form.Get("InstanceId"), form.Get("Device")
	var v *volume
	check := func() (e *APIError) {
		v, e = s.checkAttach(volID, instID, device)
		return e
	}
	hook := func() *APIError {
		if h := s.VolumeHooks.OnAttachVolume; h != nil {
			return hookError("attach "+volID, h(ctx, instID, volID, device))
		}
		return nil
	}
	return s.hooked(check, hook, func() ec2Response {
		now := s.Clock.Now()
		v.instanceID, v.device, v.attachState, v.attachTime = instID, device, "attaching", now
		v.settleAt = now.Add(s.VolumeDelays.Attach)
		in := s.instances[instID]
		in.BlockDevices = append(in.BlockDevices, BlockDevice{DeviceName: device, VolumeID: volID, SizeGiB: v.size})
		return &attachmentResponse{XMLName: xml.Name{Local: "AttachVolumeResponse"}, xmlAttachment: xmlAttachmentOf(v)}
	})
}

// checkAttach applies EC2's AttachVolume rules (s.mu held).
func (s *Server) checkAttach(volID, instID, device string) (*volume, *APIError) {
	v := s.volumes[volID]
	if v == nil {
		return nil, volumeNotFound(volID)
	}
	in := s.instances[instID]
	if in == nil || in.State == "terminated" {
		return nil, instanceNotFound(instID)
	}
	if !deviceRe.MatchString(device) {
		return nil, &APIError{Code: "InvalidParameterValue", Message: fmt.Sprintf("Value (%s) for parameter device is invalid. %s is not a valid EBS device name.", device, device)}
	}
	switch {
	case v.creating:
		return nil, &APIError{Code: "IncorrectState", Message: fmt.Sprintf("vol '%s' is not 'available'.", volID)}
	case v.instanceID != "":
		return nil, &APIError{Code: "VolumeInUse", Message: fmt.Sprintf("%s is already attached to an instance", volID)}
	case v.az != in.AvailabilityZone:
		return nil, &APIError{Code: "InvalidVolume.ZoneMismatch", Message: fmt.Sprintf("The volume '%s' is not in the same availability zone as instance '%s'", volID, instID)}
	}
	for _, bd := range in.BlockDevices {
		if attachPoint(bd.DeviceName) == attachPoint(device) {
			return nil, &APIError{Code: "InvalidParameterValue", Message: fmt.Sprintf("Attachment point %s is already in use", device)}
		}
	}
	return v, nil
}

func (s *Server) detachVolume(ctx context.Context, form url.Values) (ec2Response, *APIError) {
	volID, instID, device := form.Get("VolumeId"), form.Get("InstanceId"), form.Get("Device")
	force := form.Get("Force") == "true"
	var v *volume
	var attachedTo, at string // copied under s.mu for the hook
	check := func() (e *APIError) {
		v, e = s.checkDetach(volID, instID, device)
		if v != nil {
			attachedTo, at = v.instanceID, v.device
		}
		return e
	}
	hook := func() *APIError {
		if h := s.VolumeHooks.OnDetachVolume; h != nil {
			return hookError("detach "+volID, h(ctx, attachedTo, volID, at, force))
		}
		return nil
	}
	return s.hooked(check, hook, func() ec2Response {
		v.attachState, v.settleAt = "detaching", s.Clock.Now().Add(s.VolumeDelays.Detach)
		return &attachmentResponse{XMLName: xml.Name{Local: "DetachVolumeResponse"}, xmlAttachment: xmlAttachmentOf(v)}
	})
}

// checkDetach applies EC2's DetachVolume rules (s.mu held).
func (s *Server) checkDetach(volID, instID, device string) (*volume, *APIError) {
	v := s.volumes[volID]
	if v == nil {
		return nil, volumeNotFound(volID)
	}
	switch {
	case v.instanceID == "":
		return nil, &APIError{Code: "IncorrectState", Message: fmt.Sprintf("Volume '%s' is in the '%s' state.", volID, volumeState(v))}
	case v.attachState == "detaching":
		return nil, &APIError{Code: "IncorrectState", Message: fmt.Sprintf("Volume '%s' is in the 'detaching' state.", volID)}
	}
	if (instID != "" && instID != v.instanceID) || (device != "" && attachPoint(device) != attachPoint(v.device)) {
		return nil, &APIError{Code: "InvalidAttachment.NotFound", Message: fmt.Sprintf("Volume '%s' is not attached to '%s' at '%s'", volID, instID, device)}
	}
	return v, nil
}

func (s *Server) deleteVolume(ctx context.Context, form url.Values) (ec2Response, *APIError) {
	id := form.Get("VolumeId")
	check := func() *APIError {
		v := s.volumes[id]
		switch {
		case v == nil:
			return volumeNotFound(id)
		case v.instanceID != "":
			return &APIError{Code: "VolumeInUse", Message: fmt.Sprintf("Volume %s is currently attached to %s", id, v.instanceID)}
		case v.creating:
			return &APIError{Code: "IncorrectState", Message: fmt.Sprintf("The volume '%s' is 'creating'", id)}
		}
		return nil
	}
	hook := func() *APIError {
		if h := s.VolumeHooks.OnDeleteVolume; h != nil {
			return hookError("delete "+id, h(ctx, id))
		}
		return nil
	}
	return s.hooked(check, hook, func() ec2Response {
		s.volOrder = dropOrdered(s.volumes, s.volOrder, id)
		return &returnResponse{XMLName: xml.Name{Local: "DeleteVolumeResponse"}, Return: true}
	})
}

func xmlAttachmentOf(v *volume) xmlAttachment {
	return xmlAttachment{VolumeID: v.id, InstanceID: v.instanceID, Device: v.device, Status: v.attachState, AttachTime: v.attachTime.UTC().Format(ec2TimeFormat)}
}

func (s *Server) xmlVolume(v *volume) xmlVolume {
	x := xmlVolume{VolumeID: v.id, Size: v.size, SnapshotID: v.snapshotID, AvailabilityZone: v.az, Status: volumeState(v),
		CreateTime: v.createTime.UTC().Format(ec2TimeFormat), VolumeType: "gp3", Tags: tagSet(v.tags)}
	if v.instanceID != "" {
		x.Attachments = []xmlAttachment{xmlAttachmentOf(v)}
	}
	return x
}

// volumeFilters are the DescribeVolumes filters besides the tag ones.
var volumeFilters = map[string]func(*volume) string{
	"attachment.instance-id": func(v *volume) string { return v.instanceID },
	"attachment.device":      func(v *volume) string { return v.device },
	"attachment.status":      func(v *volume) string { return v.attachState },
	"volume-id":              func(v *volume) string { return v.id },
	"snapshot-id":            func(v *volume) string { return v.snapshotID },
	"status":                 volumeState,
	"availability-zone":      func(v *volume) string { return v.az },
}
