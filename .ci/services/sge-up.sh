#!/usr/bin/env bash
# Single-node Son of Grid Engine 8.1.9 (Debian bookworm gridengine-*) on this host, as root, no systemd.
# NOTE: conflicts with slurm-wlm-torque (both ship /usr/bin/qsub): apt removes one to install the other.
# Jobs are submitted by a normal user (root is refused: min_uid 1000 by default).
set -euo pipefail
H=$(hostname)
export DEBIAN_FRONTEND=noninteractive
# two callers at once (CI + a test fixture) must not race on apt or start two masters
exec 9>"/tmp/sge-up.lock"; flock 9   # daemons below get 9>&-: they must not hold it
APT_OPTS="-o DPkg::Lock::Timeout=600"
# the normal user jobs are submitted as in tests (same user and uid as the HTCondor recipe)
U=${SGE_TEST_USER:-htcuser}; UIDN=${SGE_TEST_UID:-2000}
getent passwd "$U" >/dev/null || useradd -m -u "$UIDN" -s /bin/bash "$U"
for p in gridengine-common gridengine-master gridengine-client gridengine-exec; do
  printf '%s shared/gridengineconfig boolean true\n%s shared/gridenginecell string default\n%s shared/gridenginemaster string %s\n' "$p" "$p" "$p" "$H"
done | debconf-set-selections
command -v sge_qmaster >/dev/null || [ -x /usr/sbin/sge_qmaster ] || apt-get $APT_OPTS update -q >/dev/null
apt-get $APT_OPTS install -y -q gridengine-master gridengine-exec gridengine-client >/dev/null   # postinst creates cell + spool
. /var/lib/gridengine/default/common/settings.sh
# 127.0.0.1 reverse-resolves to "localhost" but the host calls itself $(hostname): alias them or commlib refuses
echo "$H localhost" > "$SGE_ROOT/$SGE_CELL/common/host_aliases"
install -d -o sgeadmin -g sgeadmin /run/gridengine
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
alive /var/spool/gridengine/qmaster/qmaster.pid || SGE_MASTER_PIDFILE=/run/gridengine/qmaster.pid /usr/sbin/sge_qmaster 9>&-
for i in $(seq 100); do qconf -sh >/dev/null 2>&1 && break; sleep 0.2; done
qconf -as "$H" >/dev/null 2>&1 || true
T=$(mktemp -d)
printf 'hostname %s\nload_scaling NONE\ncomplex_values NONE\nuser_lists NONE\nxuser_lists NONE\nprojects NONE\nxprojects NONE\nusage_scaling NONE\nreport_variables NONE\n' "$H" > "$T/exechost"
qconf -Ae "$T/exechost" >/dev/null 2>&1 || true
printf '#!/bin/sh\nsed -i -e "s/^hostlist .*/hostlist %s/" -e "s/^slots .*/slots %s/" -e "s|^shell .*|shell /bin/sh|" -e "s/^pe_list .*/pe_list NONE/" "$1"\n' "$H" "$(nproc)" > "$T/q.sh"
printf '#!/bin/sh\nsed -i -e "s/^schedule_interval .*/schedule_interval 0:0:1/" -e "s/^flush_submit_sec .*/flush_submit_sec 1/" -e "s/^flush_finish_sec .*/flush_finish_sec 1/" "$1"\n' > "$T/s.sh"
chmod +x "$T"/*.sh
qconf -sq all.q >/dev/null 2>&1 || EDITOR="$T/q.sh" qconf -aq all.q >/dev/null
EDITOR="$T/s.sh" qconf -msconf >/dev/null
# a busy CI machine (load above 1.75 per core) puts the queue in alarm state and nothing starts
qconf -rattr queue load_thresholds NONE all.q >/dev/null 2>&1 || true
rm -rf "$T"
alive /run/gridengine/execd.pid || SGE_EXECD_PIDFILE=/run/gridengine/execd.pid /usr/sbin/sge_execd 9>&-
for i in $(seq 100); do qstat -f 2>/dev/null | grep -q "all.q@$H .*lx-amd64" && break; sleep 0.2; done
qstat -f
