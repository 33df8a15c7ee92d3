// Package restore is the machinery shared by `hostagent verify` and clone:
// it takes the volumes of a snapshot set that are attached to this instance
// and brings up a throwaway server on them, each step undoable:
//
//	devs, err := restore.FindDevices(ctx, volumeIDs, restore.FindOptions{})
//	set, err := restore.MountSet(ctx, devs, dir, restore.MountOptions{})
//	defer set.Close(ctx)
//	datadir, err := set.FindDataDir(rel)
//	srv, err := restore.StartServer(ctx, restore.ServerSpec{...})
//	defer srv.Shutdown(ctx)
//
// Every constructor undoes what it did itself when it fails, so a caller only
// undoes what it got back, in reverse (Undo helps). Devices are found by EBS
// volume id: the NVMe serial on Nitro, or the loop device whose backing file is
// vol-<hex>.img (the local stand-in). Filesystems are recognised from their
// superblocks; LVM physical volumes and md members are refused, since
// assembling a second copy of a volume group next to the original needs a
// rename that is not done here.
//
// Journal and VolumeLock keep verify safe to run concurrently and after a
// SIGKILL: a lock per volume (owner pid + start time), and a record of every
// mount and server a run made, so the next run removes what a killed one left.
package restore
