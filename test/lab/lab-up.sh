#!/usr/bin/env bash
# lab-up.sh — throw-away lab of Debian 12 hosts (spire, auth, ca) for the Omens test suite.
#
#   test/lab/lab-up.sh [up|down|status|check|start H|stop H|ssh H [CMD..]|exec CMD..|
#                       net-down H|net-up H|tpm-stop H|tpm-start H]
#
# Each host is `systemd-nspawn -b` (real systemd as PID 1) on an overlayfs root whose lower
# layer is a cached debootstrap rootfs, in its own network namespace, with its own swtpm.
# The machine's root namespace reaches the hosts directly through the veth ${LAB_PREFIX}-lab0
# (${LAB_NET}.1/24). See test/lab/README.md and /work/shared/lab-notes.md for the why.
#
# Safety: the root namespace's default route leads off the machine. Before anything else,
# `up` installs `unreachable ${LAB_NET}.0/24` (a high-metric fallback under the connected
# route), so a lab address can never be routed off the machine, even while the veth is
# missing or down. `down` removes it last (LAB_KEEP_GUARD=1 keeps it).
#
# Functions are also called indirectly (for_hosts_parallel, traps), and single-quoted strings
# that look like expansions are scripts run inside the hosts:
# shellcheck disable=SC2317,SC2016

set -euo pipefail
shopt -s nullglob

# ---------------------------------------------------------------- configuration
export LAB_DIR=${LAB_DIR:-/var/tmp/omens-lab}
export LAB_CACHE=${LAB_CACHE:-/var/cache/omens-lab}
export LAB_HOSTS=${LAB_HOSTS:-"spire auth ca"}
export LAB_PREFIX=${LAB_PREFIX:-omens}
export LAB_NET=${LAB_NET:-10.77.0}
export LAB_SUITE=${LAB_SUITE:-bookworm}
export LAB_EXTRA_PKGS=${LAB_EXTRA_PKGS:-}
export LAB_KEEP_GUARD=${LAB_KEEP_GUARD:-0}
export LAB_ARTIFACTS=${LAB_ARTIFACTS:-1} # 0: no stand-in build and no artifact server

SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/../.." && pwd)
STANDINS=$REPO/test/standins    # the lab's release tarballs are built into $STANDINS/dist
ARTIFACT_PORT=8099
ROOTFS_PKGS="systemd systemd-sysv dbus openssh-server sudo tpm2-tools tpm2-openssl
  libtss2-tcti-swtpm0 openssl ca-certificates curl netcat-openbsd iproute2 procps python3
  nginx-light less nodejs $LAB_EXTRA_PKGS"
# dpkg-query name -> what this script runs from it
HOST_PKGS="debootstrap swtpm swtpm-tools systemd-container openssh-client openssl iproute2
  util-linux procps jq python3"
TCTI="swtpm:host=127.0.0.1,port=2321"
GUARD_METRIC=4242               # the unreachable fallback route's metric
CTL_NS=$LAB_PREFIX-ctl          # netns holding the bridge
BRIDGE=br0                      # inside $CTL_NS
ROOT_VETH=$LAB_PREFIX-lab0      # root-namespace end of the lab uplink
CG_TOP=$LAB_PREFIX-lab          # cgroup directory (per hierarchy) holding every lab process
LAB_USERS="deploy opspw nosudo" # all authorized with the lab client key
declare -A T=()                 # phase timings, seconds

# ---------------------------------------------------------------- small helpers
# One word per line: the lists above are whitespace-separated on purpose.
# shellcheck disable=SC2086
words() { printf '%s\n' $1; }
log() { printf '\033[1mlab:\033[0m %s\n' "$*" >&2; }
die() { printf 'lab: ERROR: %s\n' "$*" >&2; exit 1; }
now() { echo "${EPOCHREALTIME/[.,]/.}"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
on_err() { printf 'lab: ERROR: line %s: `%s` exited %s\n' "$1" "$2" "$3" >&2; }
trap 'on_err $LINENO "$BASH_COMMAND" $?' ERR
set -E

host_dir() { echo "$LAB_DIR/hosts/$1"; }
host_ns() { echo "$LAB_PREFIX-$1"; }
host_root() { echo "$LAB_DIR/hosts/$1/root"; }
machine() { echo "$LAB_PREFIX-$1"; }

# Address of a host: .11 for the first in LAB_HOSTS, .12 for the second, ...
host_addr() {
  local i=11 h
  for h in $LAB_HOSTS; do
    [[ $h == "$1" ]] && { echo "$LAB_NET.$i"; return 0; }
    i=$((i + 1))
  done
  die "unknown host '$1' (LAB_HOSTS: $LAB_HOSTS)"
}

# Reads a pid file; prints the pid if that process is alive and has the argument(s) $2.
live_pid() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 0
  [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 0
  local args; args=" $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  if [[ $args == *" $2 "* ]]; then echo "$pid"; fi
}
runner_pid() { live_pid "$(host_dir "$1")/runner.pid" "__runner $1 $LAB_DIR"; }
nspawn_pid() { live_pid "$(host_dir "$1")/nspawn.pid" "--machine=$(machine "$1")"; }
swtpm_pid() { live_pid "$(host_dir "$1")/swtpm.pid" "dir=$(host_dir "$1")/tpm"; }
artifacts_pid() { live_pid "$LAB_DIR/artifacts.pid" "$STANDINS/dist"; }

# True once process $1 has exited. A zombie counts as gone: daemons and setsid'd runners are
# reaped by the machine's PID 1, which here may take a couple of seconds.
gone() {
  local st; st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 0
  [[ $st == Z* || $st == X* ]]
}

# True when something listens on TCP port $2 inside netns $1 (reads sockets, sends nothing).
ns_listening() { [[ -n $(ss -N "$1" -Hltn "sport = :$2" 2>/dev/null) ]]; }

wait_for() { # wait_for SECONDS CMD... : polls CMD every 0.1 s
  local end=$((SECONDS + $1)); shift
  until "$@"; do ((SECONDS < end)) || return 1; sleep 0.1; done
}

# Runs "$1 HOST" for every host in parallel; fails if any failed.
for_hosts_parallel() {
  local fn=$1 h pids=() rc=0
  for h in $LAB_HOSTS; do "$fn" "$h" & pids+=($!); done
  for h in "${pids[@]}"; do wait "$h" || rc=1; done
  return $rc
}

ssh_opts() {
  printf '%s\n' -i "$LAB_DIR/id_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes \
    -o UserKnownHostsFile="$LAB_DIR/known_hosts" -o StrictHostKeyChecking=yes \
    -o ConnectTimeout=5 -o LogLevel=ERROR
}
lab_ssh() { # lab_ssh USER HOST [CMD...]
  local -a o; mapfile -t o < <(ssh_opts)
  local user=$1 addr; addr=$(host_addr "$2"); shift 2
  ssh -n "${o[@]}" "$user@$addr" "$@"
}

# ---------------------------------------------------------------- validation
validate_config() {
  [[ $EUID -eq 0 ]] || die "must run as root"
  [[ $LAB_NET =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] ||
    die "LAB_NET must be three octets such as 10.77.0, got '$LAB_NET'"
  [[ $LAB_NET != 10.10.* ]] || die "LAB_NET 10.10.x.x is forbidden on this machine"
  # The root veth name "$LAB_PREFIX-lab0" must fit in 15 characters.
  [[ $LAB_PREFIX =~ ^[a-z][a-z0-9]{0,9}$ ]] ||
    die "LAB_PREFIX must be 1-10 lowercase letters/digits, got '$LAB_PREFIX'"
  [[ $LAB_DIR =~ ^/[A-Za-z0-9_./-]+$ && $LAB_DIR != / ]] || die "LAB_DIR must be a plain absolute path"
  local h n=0
  for h in $LAB_HOSTS; do
    [[ $h =~ ^[a-z][a-z0-9-]{0,12}$ && $h != ctl ]] || die "bad host name '$h'"
    n=$((n + 1))
  done
  ((n >= 1 && n <= 80)) || die "LAB_HOSTS must list 1-80 hosts"
}

need_lab() { [[ -f $LAB_DIR/lab.json ]] || die "no lab in $LAB_DIR: run up first"; }
need_host() { [[ " $LAB_HOSTS " == *" $1 "* ]] || die "unknown host '${1:-}' (LAB_HOSTS: $LAB_HOSTS)"; }

# ---------------------------------------------------------------- safety route
# The unreachable fallback: with it, a lab address is never routed to the default route.
guard_add() {
  ip route replace unreachable "$LAB_NET.0/24" metric "$GUARD_METRIC" ||
    die "cannot install 'unreachable $LAB_NET.0/24': refusing to build a lab"
}
# Kept while any interface still holds a lab address (say, another lab on the same subnet).
guard_del() {
  ip -4 -o addr show | awk -v n="$LAB_NET." 'index($4, n) == 1 { found = 1 } END { exit !found }' && return 0
  ip route del unreachable "$LAB_NET.0/24" metric "$GUARD_METRIC" 2>/dev/null || true
}

# True when the root namespace sends $1 into the lab veth.
routes_to_lab() { ip -4 route get "$1" 2>/dev/null | grep -qE "dev $ROOT_VETH( |$)"; }

# Fails loudly unless every lab address (used or not) resolves to the lab veth.
assert_routes() {
  local h a
  for a in "$LAB_NET.99" "$LAB_NET.254" $(for h in $LAB_HOSTS; do host_addr "$h"; done); do
    routes_to_lab "$a" || die "route for $a does not go to $ROOT_VETH: $(ip route get "$a" 2>&1)"
  done
}

# Refuses a subnet that some other interface of the machine already uses.
assert_net_free() {
  local other
  other=$(ip -4 -o addr show | awk -v n="$LAB_NET." -v me="$ROOT_VETH" \
    '$2 != me && index($4, n) == 1 { print $2 }')
  [[ -z $other ]] || die "$LAB_NET.0/24 is already used by interface(s): $other"
}

# ---------------------------------------------------------------- host packages
missing_host_pkgs() {
  local p
  for p in $HOST_PKGS; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
  done
}

install_host_pkgs() {
  local missing; missing=$(missing_host_pkgs | xargs)
  [[ -z $missing ]] && return 0
  log "installing host packages: $missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  # shellcheck disable=SC2086
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing >/dev/null
}

# ---------------------------------------------------------------- rootfs cache
# The first URIs: line of the deb822 sources (else the first deb line of sources.list).
apt_mirror() {
  local m=""
  [[ -r /etc/apt/sources.list.d/debian.sources ]] &&
    m=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
  [[ -z $m && -r /etc/apt/sources.list ]] &&
    m=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
      /etc/apt/sources.list)
  echo "${m:-http://deb.debian.org/debian}"
}

# The cache key covers the suite, the package list and the customisation code itself.
rootfs_key() {
  { echo "$LAB_SUITE"; words "$ROOTFS_PKGS" | sort -u; declare -f customize_rootfs; } |
    sha256sum | cut -c1-12
}
rootfs_dir() { echo "$LAB_CACHE/rootfs-$LAB_SUITE-$(rootfs_key)"; }

# Unmounts whatever is mounted below $1, deepest first (debootstrap leaves /proc on errors).
umount_below() {
  local m
  findmnt -rn -o TARGET | awk -v d="$1/" 'index($0 "/", d) == 1' | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" || true; done
}

ensure_rootfs() {
  local dir; dir=$(rootfs_dir)
  [[ -f $dir/.lab-complete ]] && { log "rootfs cache hit: $dir"; return 0; }
  mkdir -p "$LAB_CACHE"
  local tmp="$dir.build"
  umount_below "$tmp"; rm -rf --one-file-system "$tmp"
  log "debootstrap $LAB_SUITE from $(apt_mirror) (cold cache, about 1-2 min)"
  debootstrap --variant=minbase --components=main \
    --include="$(words "$ROOTFS_PKGS" | paste -sd,)" "$LAB_SUITE" "$tmp" "$(apt_mirror)" \
    >"$LAB_CACHE/debootstrap.log" 2>&1 ||
    { tail -20 "$LAB_CACHE/debootstrap.log" >&2; umount_below "$tmp"
      die "debootstrap failed, see $LAB_CACHE/debootstrap.log"; }
  customize_rootfs "$tmp"
  touch "$tmp/.lab-complete"
  mv "$tmp" "$dir"
}

# Everything that is the same on every host and every `up`. Per-host identity (hostname,
# machine-id, SSH host key, keys, passwords) is written at `up` into the overlay instead.
customize_rootfs() {
  local r=$1 u
  chroot "$r" systemctl disable --quiet nginx.service
  # Timers that would only try to reach the network from a host that has none.
  chroot "$r" systemctl disable --quiet apt-daily.timer apt-daily-upgrade.timer 2>/dev/null || true
  for u in $LAB_USERS; do chroot "$r" useradd --create-home --shell /bin/bash "$u"; done
  echo 'deploy ALL=(ALL:ALL) NOPASSWD: ALL' >"$r/etc/sudoers.d/lab-deploy"
  echo 'opspw ALL=(ALL:ALL) ALL' >"$r/etc/sudoers.d/lab-opspw"
  chmod 0440 "$r"/etc/sudoers.d/lab-*
  cat >"$r/etc/ssh/sshd_config.d/00-omens-lab.conf" <<'EOF'
# Omens lab: key-only SSH. The lab key sits in a root-owned file so a test that rewrites
# ~/.ssh/authorized_keys cannot lock the test suite out.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys /etc/ssh/omens_lab_authorized_keys
UsePAM yes
UseDNS no
MaxStartups 100
MaxSessions 64
EOF
  rm -f "$r"/etc/ssh/ssh_host_*
  : >"$r/etc/machine-id"
  ln -sf /etc/machine-id "$r/var/lib/dbus/machine-id"
  : >"$r/etc/resolv.conf"            # no DNS: hosts have no route out
  chroot "$r" apt-get clean
}

# ---------------------------------------------------------------- cgroups
# Hybrid machines (cgroup v1 + name=systemd + unified) get the same path in both systemd
# hierarchies; pure cgroup v2 machines use /sys/fs/cgroup directly.
cg_roots() {
  if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then echo /sys/fs/cgroup
  else
    [[ -d /sys/fs/cgroup/systemd ]] && echo /sys/fs/cgroup/systemd
    [[ -f /sys/fs/cgroup/unified/cgroup.procs ]] && echo /sys/fs/cgroup/unified
  fi
  return 0
}

# Moves the calling (sub)shell into $CG_TOP/$1. Each host's nspawn must start from its own
# cgroup: nspawn --keep-unit puts the container in <own cgroup>/payload, and two hosts
# sharing one would kill each other's services (lab-notes, "shared cgroup trap").
cg_enter() {
  local root
  for root in $(cg_roots); do
    mkdir -p "$root/$CG_TOP/$1"
    echo "$BASHPID" >"$root/$CG_TOP/$1/cgroup.procs"
  done
}

# Pids of every process in the lab's cgroups.
cg_pids() {
  local root
  for root in $(cg_roots); do
    if [[ -d $root/$CG_TOP ]]; then
      find "$root/$CG_TOP" -name cgroup.procs -exec cat {} + 2>/dev/null || true
    fi
  done | sort -un
}

# Kills what is left in the lab's cgroups, then removes every lab cgroup directory.
cg_cleanup() {
  local pids root
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    pids=$(cg_pids | xargs)
    [[ -z $pids ]] && break
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.2
  done
  for root in /sys/fs/cgroup /sys/fs/cgroup/*; do
    [[ ! -d $root/$CG_TOP ]] || find "$root/$CG_TOP" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}

# ---------------------------------------------------------------- network
net_up_ctl() {
  ip netns add "$CTL_NS"
  ip -n "$CTL_NS" link set lo up
  ip -n "$CTL_NS" link add "$BRIDGE" type bridge stp_state 0 forward_delay 0
  ip -n "$CTL_NS" link set "$BRIDGE" up
}

# The root namespace's own leg into the bridge. No IPv6 and no forwarding on it: the lab
# can talk to the machine, never through it.
net_up_root_veth() {
  ip link add "$ROOT_VETH" type veth peer name uplink netns "$CTL_NS"
  echo 1 >"/proc/sys/net/ipv6/conf/$ROOT_VETH/disable_ipv6" 2>/dev/null || true
  echo 0 >"/proc/sys/net/ipv4/conf/$ROOT_VETH/forwarding"
  ip addr add "$LAB_NET.1/24" dev "$ROOT_VETH"
  ip -n "$CTL_NS" link set uplink master "$BRIDGE" up
  ip link set "$ROOT_VETH" up
}

# A host's netns with eth0 on the bridge; no default route, so nothing leaves the lab.
net_up_host() {
  local h=$1 ns; ns=$(host_ns "$1")
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip link add "v-$h" netns "$CTL_NS" type veth peer name eth0 netns "$ns"
  ip -n "$CTL_NS" link set "v-$h" master "$BRIDGE" up
  ip -n "$ns" addr add "$(host_addr "$h")/24" dev eth0
  ip -n "$ns" link set eth0 up
}

# ---------------------------------------------------------------- lab-wide files
ensure_client_key() {
  mkdir -p "$LAB_DIR"; chmod 0755 "$LAB_DIR"
  [[ -f $LAB_DIR/id_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C omens-lab-client -f "$LAB_DIR/id_ed25519"
}

write_sudo_password() {
  (umask 077; openssl rand -hex 12 >"$LAB_DIR/sudo_password")
}

write_hosts_files() {
  local h
  for h in $LAB_HOSTS; do printf '%s %s %s.lab\n' "$(host_addr "$h")" "$h" "$h"; done >"$LAB_DIR/hosts.txt"
  for h in $LAB_HOSTS; do
    printf 'Host %s %s.lab\n  HostName %s\n' "$h" "$h" "$(host_addr "$h")"
  done >"$LAB_DIR/ssh_config"
  cat >>"$LAB_DIR/ssh_config" <<EOF
Host *
  User root
  IdentityFile $LAB_DIR/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $LAB_DIR/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 5
  LogLevel ERROR
EOF
}

# Lab-local swtpm_setup / swtpm_localca configuration (Debian's in /etc point at a tss-owned CA).
write_tpm_config() {
  local d=$LAB_DIR/tpm-ca
  mkdir -p "$d/state"
  cat >"$d/swtpm_setup.conf" <<EOF
create_certs_tool = /usr/bin/swtpm_localca
create_certs_tool_config = $d/swtpm-localca.conf
create_certs_tool_options = $d/swtpm-localca.options
active_pcr_banks = sha256
EOF
  cat >"$d/swtpm-localca.conf" <<EOF
statedir = $d/state
signingkey = $d/state/signkey.pem
issuercert = $d/state/issuercert.pem
certserial = $d/state/certserial
EOF
  printf '%s\n' '--platform-manufacturer OmensLab' '--platform-version 2.1' '--platform-model swtpm' \
    >"$d/swtpm-localca.options"
}

# Copies the EK trust chain (made by the first swtpm_setup) to stable names.
publish_tpm_ca() {
  local d=$LAB_DIR/tpm-ca
  cp "$d/state/issuercert.pem" "$d/issuercert.pem"
  cp "$d/state/swtpm-localca-rootca-cert.pem" "$d/rootca-cert.pem"
  cat "$d/issuercert.pem" "$d/rootca-cert.pem" >"$d/ek-ca-bundle.pem"
}

# known_hosts: "10.77.0.12,auth ssh-ed25519 AAAA..." (address and short name).
write_known_hosts() {
  local h
  for h in $LAB_HOSTS; do
    printf '%s,%s %s\n' "$(host_addr "$h")" "$h" \
      "$(cut -d' ' -f1,2 "$(host_root "$h")/etc/ssh/ssh_host_ed25519_key.pub")"
  done >"$LAB_DIR/known_hosts"
}

write_lab_json() {
  local h hosts='{}'
  for h in $LAB_HOSTS; do
    hosts=$(jq -c --arg h "$h" --arg a "$(host_addr "$h")" --arg n "$(host_ns "$h")" \
      --arg r "$(host_root "$h")" --arg t "$TCTI" \
      '.[$h] = {address: $a, netns: $n, root: $r, tcti: $t}' <<<"$hosts")
  done
  local artifacts=null
  [[ $LAB_ARTIFACTS != 1 ]] || artifacts="\"http://$LAB_NET.1:$ARTIFACT_PORT/\""
  jq -n --argjson hosts "$hosts" --argjson artifacts "$artifacts" --arg d "$LAB_DIR" '{
    hosts: $hosts,
    key: "\($d)/id_ed25519",
    knownHosts: "\($d)/known_hosts",
    tpmCa: {issuer: "\($d)/tpm-ca/issuercert.pem", root: "\($d)/tpm-ca/rootca-cert.pem",
            bundle: "\($d)/tpm-ca/ek-ca-bundle.pem"},
    sudoPasswordFile: "\($d)/sudo_password",
    artifacts: $artifacts,
    users: {passwordlessSudo: "deploy", passwordSudo: "opspw", noSudo: "nosudo"},
    sshConfig: "\($d)/ssh_config",
    hostsFile: "\($d)/hosts.txt"
  }' >"$LAB_DIR/lab.json"
}

# ---------------------------------------------------------------- one host's filesystem
mount_host_root() {
  local h=$1 d; d=$(host_dir "$1")
  mkdir -p "$d/upper" "$d/work" "$d/root" "$d/tpm" "$d/tpm-certs"
  mount -t overlay "$(machine "$h")" \
    -o "lowerdir=$(rootfs_dir),upperdir=$d/upper,workdir=$d/work" "$d/root"
}

# Per-host identity written into the overlay before boot.
write_host_identity() {
  local h=$1 r; r=$(host_root "$1")
  echo "$h" >"$r/etc/hostname"
  tr -d '-' </proc/sys/kernel/random/uuid >"$r/etc/machine-id"
  ssh-keygen -q -t ed25519 -N '' -C "root@$h" -f "$r/etc/ssh/ssh_host_ed25519_key"
  install -m 0644 "$LAB_DIR/id_ed25519.pub" "$r/etc/ssh/omens_lab_authorized_keys"
  printf 'TPM2TOOLS_TCTI="%s"\nTPM2OPENSSL_TCTI="%s"\n' "$TCTI" "$TCTI" >"$r/etc/environment"
  printf 'opspw:%s\n' "$(openssl passwd -6 -stdin <"$LAB_DIR/sudo_password")" | chpasswd -R "$r" -e
  write_etc_hosts "$h" >"$r/etc/hosts"
}

write_etc_hosts() {
  printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n'
  cat "$LAB_DIR/hosts.txt"
}

# Manufactures the host's TPM: EK (RSA + ECC) and platform certificates signed by the lab CA.
tpm_manufacture() {
  local h=$1 d; d=$(host_dir "$1")
  swtpm_setup --tpm2 --tpmstate "$d/tpm" --config "$LAB_DIR/tpm-ca/swtpm_setup.conf" \
    --create-ek-cert --create-platform-cert --lock-nvram --overwrite \
    --write-ek-cert-files "$d/tpm-certs" --runas root --logfile "$d/swtpm_setup.log" >/dev/null ||
    { tail -5 "$d/swtpm_setup.log" >&2; die "swtpm_setup failed for $h"; }
}

prepare_host() {
  net_up_host "$1"
  mount_host_root "$1"
  write_host_identity "$1"
}

# ---------------------------------------------------------------- swtpm
# swtpm listens on 127.0.0.1:2321/2322 inside the host's netns, so every host has the same TCTI.
tpm_start() {
  local h=$1 d ns; d=$(host_dir "$1"); ns=$(host_ns "$1")
  [[ -n $(swtpm_pid "$h") ]] && return 0
  (cg_enter "$h/tpm"
   exec nsenter --net="/run/netns/$ns" swtpm socket --tpm2 --tpmstate "dir=$d/tpm" \
     --server type=tcp,bindaddr=127.0.0.1,port=2321 --ctrl type=tcp,bindaddr=127.0.0.1,port=2322 \
     --flags not-need-init,startup-clear --pid "file=$d/swtpm.pid" --log "file=$d/swtpm.log" --daemon) 9>&-
  wait_for 10 ns_listening "$ns" 2321 || die "swtpm of $h did not start (see $d/swtpm.log)"
}

tpm_stop() {
  local h=$1 pid; pid=$(swtpm_pid "$1")
  [[ -z $pid ]] && return 0
  kill -TERM "$pid" 2>/dev/null || true
  wait_for 5 gone "$pid" || kill -KILL "$pid" 2>/dev/null || true
  rm -f "$(host_dir "$h")/swtpm.pid"
}

# ---------------------------------------------------------------- per-host runner
# `__runner HOST LAB_DIR` is this script re-run under setsid (LAB_DIR only tags the process
# so that `down` can tell labs apart). It keeps one host alive: nspawn exits 133 when the host
# reboots; then the TPM is power-cycled and the host booted again. Any other exit (poweroff,
# `stop`, `down`) ends the runner and the host's swtpm.
runner_main() {
  local h=$1 d rc; d=$(host_dir "$1")
  cg_enter "$h"
  echo "$BASHPID" >"$d/runner.pid"
  trap 'touch "$d/stop"; p=$(nspawn_pid "$h"); [[ -z $p ]] || kill -TERM "$p" || true' TERM INT
  while [[ ! -e $d/stop ]]; do
    [[ -e $d/tpm.stopped ]] || tpm_start "$h"
    rc=0; runner_boot "$h" || rc=$?
    echo "$(date -Is) nspawn exited $rc"
    [[ $rc -eq 133 && ! -e $d/stop ]] || break
    tpm_stop "$h"
  done
  tpm_stop "$h"
  rm -f "$d/runner.pid" "$d/nspawn.pid" "$d/stop"
}

# One boot of the host: nspawn in its own cgroup ($CG_TOP/HOST/host); returns its exit code.
runner_boot() {
  local h=$1 d p rc=0; d=$(host_dir "$1")
  (cg_enter "$h/host"
   exec systemd-nspawn --boot --quiet --directory="$d/root" --machine="$(machine "$h")" \
     --hostname="$h" --uuid="$(cat "$d/root/etc/machine-id")" \
     --network-namespace-path="/run/netns/$(host_ns "$h")" --register=no --keep-unit \
     --console=passive --resolv-conf=off --timezone=off --link-journal=no) </dev/null &
  p=$!
  echo "$p" >"$d/nspawn.pid"
  # `wait` returns early when the TERM trap fires; keep waiting for the real exit code.
  while kill -0 "$p" 2>/dev/null; do rc=0; wait "$p" || rc=$?; done
  return "$rc"
}

start_runner() {
  local h=$1 d; d=$(host_dir "$1")
  [[ -z $(runner_pid "$h") ]] || { log "$h is already running"; return 0; }
  rm -f "$d/stop"
  setsid "$SELF" __runner "$h" "$LAB_DIR" </dev/null >>"$d/console.log" 2>&1 9>&- &
  wait_for 60 ns_listening "$(host_ns "$h")" 22 ||
    die "$h: sshd not listening after 60 s (see $d/console.log)"
}

# Clean poweroff: SIGTERM makes nspawn halt the container; the runner then exits.
stop_host() {
  local h=$1 d p r; d=$(host_dir "$1")
  r=$(runner_pid "$h"); p=$(nspawn_pid "$h")
  [[ -z $r ]] || touch "$d/stop"
  [[ -z $p ]] || kill -TERM "$p" 2>/dev/null || true
  [[ -z $r ]] || wait_for 30 gone "$r" || log "$h: runner $r still alive after 30 s"
}

# ---------------------------------------------------------------- artifact server
# The stand-in release tarballs (test/standins/README.md) over plain HTTP at
# http://$LAB_NET.1:8099/, bound to the lab veth's address only, so only this lab's hosts
# (and the machine) reach it. Its process lives in the lab cgroup $CG_TOP/artifacts and is
# tracked by $LAB_DIR/artifacts.pid; `down` stops it.

# Runs the build when dist/ is missing or older than any stand-in source or the lock file.
standins_build() {
  local sums=$STANDINS/dist/SHA256SUMS
  if [[ -f $sums && -z $(find "$STANDINS/src" "$STANDINS/build.ts" "$REPO/package-lock.json" \
    -newer "$sums" -print -quit) ]]; then
    return 0
  fi
  [[ -x $REPO/node_modules/.bin/tsx ]] ||
    die "cannot build the stand-ins: no $REPO/node_modules (run npm ci), or set LAB_ARTIFACTS=0"
  log "building the stand-in release tarballs (test/standins/dist is missing or stale)"
  (cd "$REPO" && node_modules/.bin/tsx test/standins/build.ts) >&2 ||
    die "npm run standins:build failed (LAB_ARTIFACTS=0 skips the stand-ins)"
}

artifacts_listening() { [[ -n $(ss -Hltn "src $LAB_NET.1 and sport = :$ARTIFACT_PORT" 2>/dev/null) ]]; }

artifacts_start() {
  [[ -z $(artifacts_pid) ]] || return 0
  # setsid -f: not a child of this script, whose bare `wait`s would otherwise wait for it.
  setsid -f "$SELF" __artifacts "$LAB_DIR" </dev/null >>"$LAB_DIR/artifacts.log" 2>&1 9>&-
  wait_for 10 artifacts_listening ||
    die "artifact server not listening on $LAB_NET.1:$ARTIFACT_PORT (see $LAB_DIR/artifacts.log)"
}

# `__artifacts LAB_DIR`: this script under setsid, turned into the server in the lab cgroup.
artifacts_main() {
  cg_enter artifacts
  echo "$BASHPID" >"$LAB_DIR/artifacts.pid"
  exec python3 -m http.server --bind "$LAB_NET.1" --directory "$STANDINS/dist" "$ARTIFACT_PORT"
}

artifacts_stop() {
  local pid; pid=$(artifacts_pid)
  if [[ -n $pid ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    wait_for 5 gone "$pid" || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$LAB_DIR/artifacts.pid"
}

# ---------------------------------------------------------------- up
cmd_up() {
  local t0 t; t0=$(now)
  guard_add                                 # before anything else
  if [[ $LAB_ARTIFACTS == 1 ]]; then t=$(now); standins_build; T[standins]=$(since "$t"); fi
  lab_lock
  trap 'log "up failed: the guard route stays; run \"$SELF down\" to remove the rest"' EXIT
  t=$(now); lab_down rebuild; T[cleanup]=$(since "$t")
  assert_net_free
  t=$(now); install_host_pkgs; T[host-packages]=$(since "$t")
  t=$(now); ensure_rootfs; T[rootfs]=$(since "$t")
  raise_inotify_limits
  t=$(now); build_lab; T[build]=$(since "$t")
  t=$(now); for_hosts_parallel start_runner; T[boot-to-sshd]=$(since "$t")
  t=$(now); self_check; T[self-check]=$(since "$t")
  trap - EXIT
  T[total]=$(since "$t0")
  print_timings
  log "lab is up: $LAB_DIR/lab.json"
}

# Every host's systemd, journald and sshd take inotify instances from root's shared budget
# (128 by default): past a few labs, new hosts boot without sshd. Raise the budget if low.
raise_inotify_limits() {
  local key want
  for key in fs.inotify.max_user_instances=1024 fs.inotify.max_user_watches=524288; do
    want=${key#*=}
    (($(sysctl -n "${key%=*}") >= want)) || sysctl -qw "$key"
  done
}

# Serialises up/down of all labs on this machine (and rootfs builds). Background children
# are started with 9>&- so they do not inherit the lock.
lab_lock() {
  mkdir -p "$LAB_CACHE"
  exec 9>>"$LAB_CACHE/.lock"
  flock -w 900 9 || die "another lab up/down holds $LAB_CACHE/.lock"
}

build_lab() {
  local h first
  ensure_client_key; write_sudo_password; write_hosts_files; write_tpm_config
  net_up_ctl; net_up_root_veth; assert_routes
  if [[ $LAB_ARTIFACTS == 1 ]]; then artifacts_start; fi
  for_hosts_parallel prepare_host
  write_known_hosts
  for h in $LAB_HOSTS; do # host-to-host SSH verifies keys too
    install -m 0644 "$LAB_DIR/known_hosts" "$(host_root "$h")/etc/ssh/ssh_known_hosts"
  done
  # The first swtpm_setup creates the shared CA; the others can then run in parallel.
  read -r first _ <<<"$LAB_HOSTS"
  tpm_manufacture "$first"
  for_hosts_parallel tpm_manufacture_if_not
  publish_tpm_ca
  write_lab_json
}
tpm_manufacture_if_not() { [[ -s $(host_dir "$1")/tpm/tpm2-00.permall ]] || tpm_manufacture "$1"; }

print_timings() {
  local k
  for k in standins cleanup host-packages rootfs build boot-to-sshd self-check total; do
    printf '  %-14s %6ss\n' "$k" "${T[$k]:-0}"
  done >&2
}

# ---------------------------------------------------------------- self-check
# What each host reports over SSH as root: system state, failed units, TPM, EK cert issuer.
HOST_PROBE='st=$(timeout 60 systemctl is-system-running --wait 2>/dev/null || true)
echo "state=$st"
echo "failed=$(systemctl --failed --plain --no-legend 2>/dev/null | awk "{print \$1}" | xargs)"
tpm2_getcap properties-fixed 2>/dev/null | grep -A2 TPM2_PT_FAMILY_INDICATOR | grep -q "2.0" && echo tpm=ok
ek=$(tpm2_nvread 0x01c00002 -C o 2>/dev/null | openssl x509 -inform der -noout -issuer -nameopt RFC2253)
echo "ek_$ek"'

check_host() {
  local h=$1 out want err=""
  want=$(openssl x509 -in "$LAB_DIR/tpm-ca/issuercert.pem" -noout -subject -nameopt RFC2253 |
    sed 's/^subject=/issuer=/')
  out=$(lab_ssh root "$h" "$HOST_PROBE") || { echo "$h: FAIL ssh root@$(host_addr "$h")"; return 1; }
  lab_ssh deploy "$h" sudo -n true || err+=" deploy-sudo"
  if [[ $LAB_ARTIFACTS == 1 ]]; then
    lab_ssh root "$h" curl -fsS -o /dev/null "http://$LAB_NET.1:$ARTIFACT_PORT/SHA256SUMS" ||
      err+=" artifacts(http://$LAB_NET.1:$ARTIFACT_PORT/)"
  fi
  grep -q '^tpm=ok$' <<<"$out" || err+=" tpm2_getcap"
  grep -qxF "ek_$want" <<<"$out" || err+=" ek-cert-issuer($(sed -n 's/^ek_//p' <<<"$out"))"
  local st fl; st=$(sed -n 's/^state=//p' <<<"$out"); fl=$(sed -n 's/^failed=//p' <<<"$out")
  [[ $st == running || $st == degraded ]] || err+=" state=$st"
  [[ -z $err ]] || { echo "$h: FAIL:$err${fl:+ (failed units: $fl)}"; return 1; }
  printf '%s: %s %s, ssh root+deploy ok, tpm ok, EK cert %s%s\n' "$h" "$(host_addr "$h")" \
    "$st" "${want#issuer=}" "${fl:+, failed units: $fl}"
}

self_check() {
  local h out rc=0
  assert_routes
  for h in $LAB_HOSTS; do check_host "$h" >"$(host_dir "$h")/check.out" 2>&1 & done
  wait || true
  for h in $LAB_HOSTS; do
    out=$(cat "$(host_dir "$h")/check.out"); echo "  $out" >&2
    grep -q FAIL <<<"$out" && rc=1
  done
  ((rc == 0)) || die "self-check failed"
}

# ---------------------------------------------------------------- down
# Hosts known to this lab: LAB_HOSTS plus any leftover host dirs or namespaces.
lab_host_names() {
  local d
  {
    words "$LAB_HOSTS"
    for d in "$LAB_DIR"/hosts/*/; do basename "$d"; done
    ip netns list 2>/dev/null |
      awk -v p="$LAB_PREFIX-" 'index($1, p) == 1 { print substr($1, length(p) + 1) }'
  } | grep -vx -e ctl -e '' | sort -u || true
}

# lab_down clean: halts hosts cleanly (in parallel), removes everything, guard route last.
# lab_down rebuild: for `up`, which throws the hosts away: kills them at once, keeps the guard.
lab_down() {
  local mode=$1 h d hosts; hosts=$(lab_host_names | xargs)
  artifacts_stop
  if [[ $mode == clean ]]; then
    for h in $hosts; do stop_host_quiet "$h" & done
    wait || true
    for h in $hosts; do tpm_stop "$h" 2>/dev/null || true; done # started by tpm-start
  fi
  cg_cleanup
  for h in $hosts; do
    d=$LAB_DIR/hosts/$h
    drop_image_lock "$d/root"
    umount_below "$d"
    ip netns pids "$(host_ns "$h")" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    ip netns del "$(host_ns "$h")" 2>/dev/null || true
    rm -rf "/run/systemd/nspawn/propagate/$(machine "$h")"
  done
  ip netns del "$CTL_NS" 2>/dev/null || true
  ip link del "$ROOT_VETH" 2>/dev/null || true
  # nspawn's own scratch dirs, only if no other container uses them
  rmdir /run/systemd/nspawn/propagate /run/systemd/nspawn/locks /run/systemd/nspawn 2>/dev/null || true
  [[ -d $LAB_DIR/hosts ]] && umount_below "$LAB_DIR/hosts" && rm -rf --one-file-system "$LAB_DIR/hosts"
  rm -rf "$LAB_DIR/tpm-ca"
  rm -f "$LAB_DIR"/{lab.json,known_hosts,sudo_password,hosts.txt,ssh_config,artifacts.log}
  [[ $mode == rebuild || $LAB_KEEP_GUARD == 1 ]] || guard_del
  return 0
}
# nspawn locks its image in /run/systemd/nspawn/locks/inode-DEV:INO; a killed nspawn leaves
# the file behind.
drop_image_lock() {
  mountpoint -q "$1" || return 0
  rm -f "/run/systemd/nspawn/locks/inode-$(stat -c %d:%i "$1")"
}
stop_host_quiet() { [[ -d $(host_dir "$1") ]] && stop_host "$1" >/dev/null 2>&1; return 0; }

# Lists whatever the lab could have left behind; empty output means clean.
leftovers() {
  ip netns list | awk -v p="$LAB_PREFIX-" 'index($1, p) == 1 { print "netns " $1 }'
  { ip -o link show "$ROOT_VETH" 2>/dev/null || true; } | awk '{ print "link " $2 }'
  findmnt -rn -o TARGET | awk -v d="$LAB_DIR/" 'index($0, d) == 1 { print "mount " $0 }'
  local root
  for root in /sys/fs/cgroup /sys/fs/cgroup/*; do
    if [[ -d $root/$CG_TOP ]]; then echo "cgroup $root/$CG_TOP"; fi
  done
  { pgrep -f -- " __runner [a-z0-9-]+ $LAB_DIR\$" || true; } | sed 's/^/runner pid /'
  { pgrep -f -- "dir=$LAB_DIR/hosts/" || true; } | sed 's/^/swtpm pid /'
  { artifacts_pid || true; } | sed 's/^/artifact server pid /'
  if [[ -e $LAB_DIR/hosts ]]; then echo "dir $LAB_DIR/hosts"; fi
}

cmd_down() {
  local t0 left; t0=$(now)
  lab_lock
  lab_down clean
  # What the demo and the tests write beside the lab belongs to this lab's CA and hosts.
  rm -f "$LAB_DIR"/{devid-ca.pem,lab-migrated.yaml,drift.json,health.json}
  left=$(leftovers)
  [[ -z $left ]] || die "down left something behind:"$'\n'"$left"
  log "lab is down ($(since "$t0")s); kept: $(rootfs_dir) and $LAB_DIR/id_ed25519 (if present)"
}

# ---------------------------------------------------------------- other commands
cmd_status() {
  [[ -f $LAB_DIR/lab.json ]] || { echo "no lab in $LAB_DIR"; return 3; }
  local h ns link
  printf '%-8s %-12s %-8s %-6s %-5s %-5s\n' HOST ADDRESS STATE TPM LINK SSHD
  for h in $LAB_HOSTS; do
    ns=$(host_ns "$h")
    link=$(ip -n "$CTL_NS" -o link show "v-$h" 2>/dev/null | grep -q '[<,]UP[,>]' && echo up || echo down)
    printf '%-8s %-12s %-8s %-6s %-5s %-5s\n' "$h" "$(host_addr "$h")" \
      "$(host_state "$h")" \
      "$([[ -n $(swtpm_pid "$h") ]] && echo up || echo down)" "$link" \
      "$(ns_listening "$ns" 22 && echo open || echo -)"
  done
  if artifacts_listening; then echo "artifacts http://$LAB_NET.1:$ARTIFACT_PORT/ (pid $(artifacts_pid))"
  else echo "artifacts: not served"; fi
  if routes_to_lab "$LAB_NET.99"; then echo "route $LAB_NET.0/24 -> $ROOT_VETH (ok)"
  else echo "route $LAB_NET.0/24: $(ip route get "$LAB_NET.99" 2>&1 | head -1)"; fi
}

# running, off, or stray: the host's processes outlived its nspawn (`down` or `up` clears it).
host_state() {
  if [[ -n $(nspawn_pid "$1") ]]; then echo running
  elif ns_listening "$(host_ns "$1")" 22; then echo stray
  else echo off; fi
}

cmd_start() {
  need_host "${1:-}"
  need_lab
  start_runner "$1"; log "$1 started"
}
cmd_stop() { need_host "${1:-}"; stop_host "$1"; log "$1 powered off"; }

cmd_ssh() {
  need_host "${1:-}"
  local -a o; mapfile -t o < <(ssh_opts)
  local addr; addr=$(host_addr "$1"); shift
  exec ssh "${o[@]}" "root@$addr" "$@"
}

cmd_exec() {
  (($#)) || die "usage: exec CMD..."
  export LAB_JSON=$LAB_DIR/lab.json LAB_KEY=$LAB_DIR/id_ed25519 LAB_KNOWN_HOSTS=$LAB_DIR/known_hosts
  export LAB_SSH_CONFIG=$LAB_DIR/ssh_config
  exec "$@"
}

# Fault injection: the bridge side of the host's cable, out of the host's reach.
cmd_net() { need_host "${2:-}"; need_lab; ip -n "$CTL_NS" link set "v-$2" "$1"; log "$2 link $1"; }

# The TPM's state is kept; tpm.stopped also keeps it off across reboots of the host.
cmd_tpm_stop() {
  need_host "${1:-}"; need_lab
  touch "$(host_dir "$1")/tpm.stopped"; tpm_stop "$1"; log "$1 TPM stopped"
}
cmd_tpm_start() {
  need_host "${1:-}"; need_lab
  rm -f "$(host_dir "$1")/tpm.stopped"; tpm_start "$1"; log "$1 TPM started"
}

usage() {
  sed -n '3,4p' "$SELF" | sed 's/^# *//' >&2
  exit 2
}

main() {
  local cmd=${1:-up}; (($#)) && shift
  validate_config
  case $cmd in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status || exit $? ;;
    check) need_lab; self_check ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    ssh) cmd_ssh "$@" ;;
    exec) cmd_exec "$@" ;;
    net-down) cmd_net down "$@" ;;
    net-up) cmd_net up "$@" ;;
    tpm-stop) cmd_tpm_stop "$@" ;;
    tpm-start) cmd_tpm_start "$@" ;;
    __runner) runner_main "$1" ;;
    __artifacts) artifacts_main ;;
    *) usage ;;
  esac
}

# On one line on purpose: runners are long-lived bash processes reading this file, and
# bash would otherwise read past `main` from a file edited meanwhile.
main "$@"; exit $?
