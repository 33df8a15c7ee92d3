// Package restore is the machinery shared by `hostagent verify` and
// `hostagent clone`: it takes the volumes of a snapshot set that are attached
// to this instance and brings up a server on them, each step undoable. verify
// mounts under a work dir and starts a throwaway server:
//
//	reg, _ := restore.OpenRegistry(stateDir + "/restore")
//	work, _ := restore.NewWorkDir("")                    // 0700, removed by RemoveWorkDir
//	j, err := reg.Begin(ctx, runID, work, volumeIDs)      // ErrBusy; cleans stale runs first
//	devs, err := restore.FindDevices(ctx, volumeIDs, restore.FindOptions{Wait: 30 * time.Second})
//	set, err := restore.MountSet(ctx, devs, work+"/mnt", restore.MountOptions{Journal: j})
//	defer set.Close(ctx)                                  // unmounts, last first
//	datadir, err := set.FindDataDir(rel)                  // ErrNoDataDir, ErrAmbiguous
//	base, err := set.FindBinlogBase(datadir, relBase, file)
//	check, problems := restore.CheckBinlog(base, file, pos) // before any server opens it
//	restore.RewriteIndex(base)                            // the source's absolute paths → the copy's
//	srv, err := restore.StartServer(ctx, restore.ServerSpec{...}) // ErrServerExited: it cannot start
//	defer srv.Shutdown(ctx)
//
// clone mounts at the source's own mount points instead (MountAt, which
// checks every point first; Keep hands the mounts over), removes the source's
// identity (RemoveSourceState) and starts a server meant to outlive hostagent
// (StartDetached). Both read the operator's option file with ParseOptionFile;
// verify also reads its check statements (SplitStatements) and checks the
// running copy with what is here too (ParseRecovery, CheckTables, ServerGTID,
// RunCheck).
//
// Every constructor undoes what it did itself when it fails, so a caller only
// undoes what it got back, in reverse (Undo is such a stack; run it with a
// fresh bound, since cleanup must also happen after a timeout or a signal).
// Devices are found by EBS volume id: the NVMe serial on Nitro, or the loop
// device whose backing file is vol-<hex>.img (the local stand-in).
// Filesystems are recognised from their superblocks; LVM physical volumes and
// md members are refused, since assembling a second copy of a volume group
// next to the original needs a rename that is not done here.
//
// The Registry keeps runs safe to run concurrently and after a SIGKILL: a
// lock per volume (owner pid + start time), and a journal of every mount and
// server a run made, so the next run removes what a killed one left. A server
// from StartServer dies with the process that started it (parent-death
// signal); a detached one does not.
package restore
