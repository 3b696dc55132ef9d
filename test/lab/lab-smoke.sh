#!/usr/bin/env bash
# lab-smoke.sh — end-to-end check of a running lab (test/lab/lab-up.sh up first).
#
#   test/lab/lab-smoke.sh        # same LAB_* environment as lab-up.sh; exits 1 on any failure
#
# Checks: SSH users and sudo rules, strict host keys, TPM and EK chain, systemd units across
# stop/start and reboot, filesystem and cgroup isolation, the root-namespace route invariant,
# and the fault-injection commands. Changes hosts (demo unit, files): run `up` afterwards for
# pristine hosts.
# Helpers run through check/check_not:
# shellcheck disable=SC2317
set -euo pipefail

LAB=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lab-up.sh
LAB_DIR=${LAB_DIR:-/var/tmp/omens-lab}
LAB_NET=${LAB_NET:-10.77.0}
LAB_PREFIX=${LAB_PREFIX:-omens}
FAILS=0

ok() { printf '  ok    %s\n' "$1"; }
bad() { printf '  FAIL  %s\n' "$1"; FAILS=$((FAILS + 1)); }
check() { local what=$1; shift; if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what"; fi; }
check_not() { local what=$1; shift; if "$@" >/dev/null 2>&1; then bad "$what"; else ok "$what"; fi; }

addr() { jq -r --arg h "$1" '.hosts[$h].address' "$LAB_DIR/lab.json"; }
as() { # as USER HOST CMD : strict host-key SSH from the root namespace
  local u=$1 a; a=$(addr "$2"); shift 2
  ssh -n -i "$LAB_DIR/id_ed25519" -o UserKnownHostsFile="$LAB_DIR/known_hosts" \
    -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=5 "$u@$a" "$@"
}
sudo_pw() { # sudo_pw USER HOST : sudo with the lab's sudo password on stdin
  local a; a=$(addr "$2")
  ssh -i "$LAB_DIR/id_ed25519" -o UserKnownHostsFile="$LAB_DIR/known_hosts" \
    -o StrictHostKeyChecking=yes -o BatchMode=yes "$1@$a" "sudo -S -p '' true" <"$LAB_DIR/sudo_password"
}

# The methods sshd offers to a client that tries none.
offered_auth() {
  ssh -v -n -o PreferredAuthentications=none -o BatchMode=yes \
    -o UserKnownHostsFile="$LAB_DIR/known_hosts" "root@$(addr "$1")" true 2>&1 |
    tr -d '\r' | sed -n 's/.*Authentications that can continue: //p' | head -1
}

users() {
  echo "users and sudo"
  local h
  for h in $(jq -r '.hosts | keys[]' "$LAB_DIR/lab.json"); do
    check "$h: root, strict host key" as root "$h" true
    check "$h: hostname is $h" test "$(as root "$h" hostname)" = "$h"
    check "$h: deploy sudo -n" as deploy "$h" sudo -n true
  done
  check_not "auth: opspw sudo -n refused" as opspw auth sudo -n true
  check "auth: opspw sudo with password" sudo_pw opspw auth
  check_not "auth: nosudo sudo refused even with password" sudo_pw nosudo auth
  check "auth: sshd offers publickey only" test "$(offered_auth auth)" = publickey
  check "spire resolves ca.lab" as root spire getent hosts ca.lab
}

tpm() {
  echo "TPM"
  check "auth: tpm2_getcap properties-fixed" as root auth tpm2_getcap properties-fixed
  as root auth 'tpm2_nvread 0x01c00002 -C o 2>/dev/null' >/tmp/lab-ek-rsa.der
  as root auth 'tpm2_nvread 0x01c00016 -C o 2>/dev/null' >/tmp/lab-ek-ecc.der
  local f
  for f in rsa ecc; do
    openssl x509 -inform der -in "/tmp/lab-ek-$f.der" -out "/tmp/lab-ek-$f.pem" 2>/dev/null || true
    check "auth: $f EK cert chains to the lab CA bundle" \
      openssl verify -CAfile "$LAB_DIR/tpm-ca/rootca-cert.pem" \
      -untrusted "$LAB_DIR/tpm-ca/issuercert.pem" "/tmp/lab-ek-$f.pem"
  done
  rm -f /tmp/lab-ek-*
  check "EKs differ per host" test "$(as root spire tpm2_readpublic -c 0x81010001 | sha256sum)" != \
    "$(as root ca tpm2_readpublic -c 0x81010001 | sha256sum)"
}

units() {
  echo "systemd units, stop/start, reboot"
  as root auth 'printf "[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n" \
    >/etc/systemd/system/demo.service && systemctl enable --now demo.service' >/dev/null 2>&1
  check "auth: demo active" as root auth systemctl is-active demo
  "$LAB" stop auth >/dev/null 2>&1; "$LAB" start auth >/dev/null 2>&1
  check "auth: demo active after stop/start" as root auth systemctl is-active demo
  as root auth 'tpm2_pcrextend 16:sha256=0000000000000000000000000000000000000000000000000000000000000001' \
    >/dev/null 2>&1
  as root auth 'systemctl reboot' >/dev/null 2>&1 || true
  sleep 1
  local _; for _ in $(seq 50); do as root auth true 2>/dev/null && break; sleep 0.2; done
  check "auth: demo active after reboot" as root auth systemctl is-active demo
  check "auth: PCR16 reset by the reboot" test "$(as root auth tpm2_pcrread sha256:16 | tail -1 |
    awk '{print $2}')" = 0x0000000000000000000000000000000000000000000000000000000000000000
}

isolation() {
  echo "isolation"
  as root auth 'echo x >/lab-smoke-marker; systemctl start demo' >/dev/null
  check "auth's file visible under its root dir" test -f "$(jq -r .hosts.auth.root "$LAB_DIR/lab.json")/lab-smoke-marker"
  check_not "auth's file absent on ca" as root ca test -e /lab-smoke-marker
  check_not "auth's file absent on the machine" test -e /lab-smoke-marker
  as root spire 'printf "[Service]\nExecStart=/bin/sleep infinity\n" >/etc/systemd/system/demo.service &&
    systemctl daemon-reload && systemctl start demo && systemctl stop demo' >/dev/null 2>&1
  check "stopping spire's demo leaves auth's running" as root auth systemctl is-active demo
}

routing() {
  echo "routing (root namespace)"
  check "ip route get $LAB_NET.99 -> $LAB_PREFIX-lab0" \
    bash -c "ip route get $LAB_NET.99 | grep -q 'dev $LAB_PREFIX-lab0 '"
  check "unreachable guard route present" bash -c "ip route | grep -q '^unreachable $LAB_NET.0/24'"
  check_not "nc -z -w 3 $LAB_NET.99 22 fails" nc -z -w 3 "$LAB_NET.99" 22
  check "$LAB_NET.99 was only looked up on the lab veth" \
    bash -c "ip neigh show $LAB_NET.99 | grep -q 'dev $LAB_PREFIX-lab0'"
}

faults() {
  echo "fault injection"
  "$LAB" net-down ca >/dev/null 2>&1
  check_not "net-down ca: ssh fails" as root ca true
  "$LAB" net-up ca >/dev/null 2>&1
  check "net-up ca: ssh works" as root ca true
  "$LAB" tpm-stop auth >/dev/null 2>&1
  check_not "tpm-stop auth: TPM unreachable" as root auth tpm2_getrandom 4
  "$LAB" tpm-start auth >/dev/null 2>&1
  check "tpm-start auth: TPM back" as root auth tpm2_getrandom 4
}

main() {
  [[ -f $LAB_DIR/lab.json ]] || { echo "no lab in $LAB_DIR: run lab-up.sh up" >&2; exit 2; }
  users; tpm; units; isolation; routing; faults
  ((FAILS == 0)) || { echo "$FAILS check(s) failed"; exit 1; }
  echo "all checks passed"
}
main "$@"; exit $?
