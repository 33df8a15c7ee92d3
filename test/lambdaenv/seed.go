package lambdaenv

import (
	"time"

	"github.com/quiesce/quiesce/test/awslocal"
)

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
