#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 machine (as root) and runs the Tower of Omens
# playbooks on the lab: a dry run limited to one host, the real run, then a second run that
# must change nothing. The lab stays up afterwards; `npm run lab:down` removes it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "npm ci"
npm ci --no-audit --no-fund --loglevel=error

step "lab up (three systemd-nspawn hosts with their own TPMs; about 70 s the first time)"
bash test/lab/lab-up.sh up

play() { ./bin/omens-play.js "$@" -i inventory/lab.yaml; }

for playbook in playbooks/sprint*.ts; do
  if [[ $playbook == *sprint3* ]]; then
    # The SPIRE server trusts DevIDs issued by the lab's step-ca, whose root sprint 1 made on ca.
    step "the DevID trust root for sprint 3: the lab step-ca's root, from ca"
    bash test/lab/lab-up.sh ssh ca cat /etc/step-ca/certs/root_ca.crt >/var/tmp/omens-lab/devid-ca.pem
  fi
  step "$playbook --limit auth --check --diff"
  # Sprint 4 ends with health checks, which see what it is about to fix (exit 3: unhealthy).
  rc=0
  play "$playbook" --limit auth --check --diff || rc=$?
  [[ $rc -eq 0 || ($rc -eq 3 && $playbook == *sprint4*) ]] || exit "$rc"
  step "$playbook (all hosts)"
  play "$playbook"
  step "$playbook again: nothing may change (--fail-on-change: exit 6 if a task does)"
  play "$playbook" --fail-on-change
done

# After sprint 3 the inventory must say that the agents moved; the lab's copy says so here.
migrated=/var/tmp/omens-lab/lab-migrated.yaml
sed -e 's/^\( *\)spireAgentAttestor: join_token$/\1spireAgentAttestor: tpm_devid/' \
  -e 's/^\( *\)spireNodeAttestors: \[join_token\]$/\1spireNodeAttestors: [tpm_devid]/' \
  inventory/lab.yaml >"$migrated"

step "drift report: the whole stack under --check (exit 6 if anything drifted)"
./bin/omens-play.js playbooks/site.ts -i "$migrated" --check --fail-on-change \
  --report /var/tmp/omens-lab/drift.json

step "health report (also as JSON in /var/tmp/omens-lab/health.json)"
play playbooks/health.ts --report /var/tmp/omens-lab/health.json

step "done: the lab is still up (npm run lab:down removes it)"
