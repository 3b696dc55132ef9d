#!/usr/bin/env bash
# The whole test run on a fresh Debian 12 machine, as root: installs what is missing, checks
# formatting, lint and types, brings the lab up, runs every test against it, and always takes
# the lab down again. Ends with a line "N passed, N failed".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '\n== %s\n' "$*"; }

need_packages() {
  local missing=()
  for pkg in openssh-client openssl curl ca-certificates tmux; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if ((${#missing[@]} > 0)); then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

need_packages
log "npm ci"
npm ci --no-audit --no-fund --loglevel=error

log "format, lint, types"
npx prettier --check . >/dev/null
npx eslint .
npx tsc --noEmit -p tsconfig.json

log "lint the shipped playbooks (no host contacted)"
node bin/omens-play.js lint playbooks/ -i inventory/lab.yaml -i inventory/production.yaml

log "lab up"
trap 'log "lab down"; bash test/lab/lab-up.sh down || true' EXIT
bash test/lab/lab-up.sh up

log "tests"
report=$(mktemp --suffix=.json)
status=0
# The tests run in a session of their own, so that a stop signal ends all of them before the
# lab is taken down: a test still running could otherwise bring the lab up again.
setsid node_modules/.bin/vitest run --reporter=default --reporter=json \
  --outputFile.json="$report" </dev/null &
tests=$!
trap 'kill -TERM -- "-$tests" 2>/dev/null; wait "$tests" 2>/dev/null; exit 143' TERM INT HUP
wait "$tests" || status=$?
trap - TERM INT HUP
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  console.log(`\n${r.numPassedTests} passed, ${r.numFailedTests} failed`);
' "$report" || echo "0 passed, 1 failed"
exit "$status"
