#!/usr/bin/env bash
# Stop the pool started by htcondor-up.sh (by its PID) and unmount; never deletes the chroot.
R=${HTC_ROOT:-/opt/htcondor-root}; S=${HTC_SHARED:-/srv/htc}
if [ -s "$S/condor_master.pid" ]; then p=$(cat "$S/condor_master.pid")
  kill -TERM "$p" 2>/dev/null && for i in $(seq 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  rm -f "$S/condor_master.pid"; fi
mountpoint -q "$R$S" && umount "$R$S"
mountpoint -q "$R/proc" && umount "$R/proc"
true
