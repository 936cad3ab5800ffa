#!/usr/bin/env bash
# Install iceprod-dag with its test extras, start the real services the tests use, run the whole suite.
# Services that cannot start (no root, no network) are skipped by their tests with the reason.
set -uo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -e '.[test]' || exit 1
mkdir -p .ci/logs
if [ "$(id -u)" = 0 ]; then
  # outgoing ports must not take the services' fixed ports (recipes' README)
  sysctl -qw net.ipv4.ip_local_port_range="32768 60999" 2>/dev/null || true
  # HTCondor takes longest (a debootstrap'd chroot): start it first, in the background; the others run one
  # after another, once its own host apt step is over, so no two apt-get runs fight over the lock
  start() {
    [ -f ".ci/services/$1-up.sh" ] || return 0
    timeout 900 bash ".ci/services/$1-up.sh" > ".ci/logs/$1-up.log" 2>&1; echo "$?" > ".ci/logs/$1-up.rc"
  }
  start htcondor &
  for _ in $(seq 120); do command -v debootstrap > /dev/null && break; sleep 1; done
  for svc in pg slurm sge browser; do start "$svc"; done
  wait
  for svc in htcondor slurm sge pg browser; do
    [ -f ".ci/logs/$svc-up.rc" ] && echo "service $svc: exit $(cat ".ci/logs/$svc-up.rc")"
  done
fi
python3 -m pytest "$@"
status=$?
if [ "$(id -u)" = 0 ] && [ -z "${KEEP_SERVICES:-}" ]; then
  for svc in htcondor slurm sge pg; do
    [ -f ".ci/services/$svc-down.sh" ] && bash ".ci/services/$svc-down.sh" > /dev/null 2>&1
  done
fi
exit $status
