#!/usr/bin/env bash
# Real HTCondor pool (condor_master/collector/negotiator/schedd/startd + DAGMan) on a Debian 12 host.
# HTCondor is not in bookworm and PyPI wheels carry no daemons, so Debian trixie's `condor` package
# is installed into a debootstrap'd trixie chroot and the pool runs there, listening on 127.0.0.1:9618.
# Host-side clients (htcondor2 Python bindings from PyPI) authenticate with an IDTOKEN.
set -euo pipefail
R=${HTC_ROOT:-/opt/htcondor-root}           # the chroot
S=${HTC_SHARED:-/srv/htc}                   # bind-mounted into the chroot at the SAME path (job dirs, DAG files)
U=${HTC_USER:-htcuser}; UIDN=${HTC_UID:-2000}   # jobs run as this user (HTCondor refuses root-owned jobs)
# the Debian mirror this machine already uses (first URIs: line of its deb822 sources)
MIRROR=${DEBIAN_MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)}
[ -n "$MIRROR" ] || { echo "htcondor-up: set DEBIAN_MIRROR to a Debian mirror URL" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
# the pool's own tools in the chroot read the chroot's config, never a caller's client config
unset CONDOR_CONFIG
# two callers at once (CI + a test fixture) must not race on debootstrap/apt or start two masters
exec 9>"/tmp/iceprod-htcondor-up.lock"; flock 9
# keep outgoing ephemeral ports away from the collector's fixed port 9618
sysctl -qw net.ipv4.ip_local_port_range="32768 60999" 2>/dev/null || true
if [ ! -x "$R/usr/sbin/condor_master" ]; then
  # other services' scripts may be running apt at the same time: wait for the dpkg lock
  command -v debootstrap >/dev/null || { apt-get -o DPkg::Lock::Timeout=300 update -q >/dev/null
    apt-get -o DPkg::Lock::Timeout=300 install -y -q debootstrap >/dev/null; }
  [ -x "$R/usr/bin/apt-get" ] || debootstrap --variant=minbase trixie "$R" "$MIRROR" >/dev/null
  printf '#!/bin/sh\nexit 101\n' > "$R/usr/sbin/policy-rc.d"; chmod +x "$R/usr/sbin/policy-rc.d"
  mountpoint -q "$R/proc" || mount -t proc proc "$R/proc"
  chroot "$R" /usr/bin/env DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    sh -c 'apt-get update -q && apt-get install -y -q --no-install-recommends condor minicondor' >/dev/null
fi
mountpoint -q "$R/proc" || mount -t proc proc "$R/proc"
grep -q "[[:space:]]$(hostname)\$" "$R/etc/hosts" || echo "127.0.0.1 $(hostname)" >> "$R/etc/hosts"
chroot "$R" sh -c 'mkdir -p /run/condor /var/lock/condor /var/spool/condor /var/lib/condor/execute /var/log/condor &&
  chown condor:condor /run/condor /var/lock/condor /var/spool/condor /var/lib/condor /var/lib/condor/execute /var/log/condor && chmod 1777 /tmp'
# same job user, same uid, on host and in chroot
getent passwd "$U" >/dev/null || useradd -m -u "$UIDN" -s /bin/bash "$U"
chroot "$R" getent passwd "$U" >/dev/null || chroot "$R" useradd -m -u "$UIDN" -s /bin/sh "$U"
cat > "$R/etc/condor/config.d/99-ci.config" <<'EOF'
# unshare(CLONE_NEWNS) fails (EINVAL) inside the chroot -> no per-job /tmp,/var/tmp bind mounts
MOUNT_UNDER_SCRATCH =
# fast turnaround for tests
DAGMAN_USER_LOG_SCAN_INTERVAL = 1
NEGOTIATOR_INTERVAL = 1
NEGOTIATOR_MIN_INTERVAL = 1
NEGOTIATOR_CYCLE_DELAY = 1
SCHEDD_INTERVAL = 1
EOF
mkdir -p "$S/bin" "$S/tokens.d" "$R$S"; chmod 1777 "$S"; chmod 700 "$S/tokens.d"
mountpoint -q "$R$S" || mount --bind "$S" "$R$S"
# DAGMan wrapper: same path on both sides; the DAGMan job inherits the client's CONDOR_CONFIG via getenv
cat > "$S/bin/condor_dagman" <<'EOF'
#!/bin/sh
unset CONDOR_CONFIG
exec /usr/bin/condor_dagman "$@"
EOF
chmod 755 "$S/bin/condor_dagman"
if ! { [ -s "$S/condor_master.pid" ] && kill -0 "$(cat "$S/condor_master.pid")" 2>/dev/null; }; then
  setsid chroot "$R" /usr/sbin/condor_master -f >"$S/condor_master.out" 2>&1 </dev/null 9>&- &  # no lock fd leak
  echo $! > "$S/condor_master.pid"
fi
for i in $(seq 900); do chroot "$R" condor_status -af Name 2>/dev/null | grep -q slot && break; sleep 0.2; done
chroot "$R" condor_status -af Name State
UIDDOM=$(chroot "$R" condor_config_val UID_DOMAIN)
chroot "$R" condor_token_create -identity "$U@$UIDDOM" > "$S/tokens.d/$U.token"; chmod 600 "$S/tokens.d/$U.token"
cat > "$S/condor_config.client" <<EOF
CONDOR_HOST = 127.0.0.1
COLLECTOR_HOST = 127.0.0.1:9618
SEC_CLIENT_AUTHENTICATION_METHODS = IDTOKENS
SEC_TOKEN_DIRECTORY = $S/tokens.d
DAGMAN = $S/bin/condor_dagman
EOF
echo "HTCondor pool up. Host side: export CONDOR_CONFIG=$S/condor_config.client PATH=$S/bin:\$PATH; CLI: chroot $R condor_q"
