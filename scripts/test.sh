#!/usr/bin/env bash
# Runs every test of the repository: prerequisites, a native-AOT publish that must be free of
# warnings, then the unit tests and the acceptance tests (the AOT binaries against real containerd
# and real etcd, driven by the installed kubectl; the packages and the one-command cluster).
# Usage: sudo scripts/test.sh        (CI: .ci/run calls exactly this)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/prereqs.sh

# Both daemons, native AOT: a warning of any kind fails the run.
publish() { # project output-dir binary
  echo "== publish $3 (native AOT, linux-x64)"
  local log; log=$(mktemp)
  if ! dotnet publish "$1" -c Release -r linux-x64 -o "$2" >"$log" 2>&1; then
    cat "$log"; exit 1
  fi
  if grep -E "warning (IL|CS|NU|AOT)[0-9]+" "$log"; then
    echo "native AOT publish of $3 produced warnings (see above)" >&2; exit 1
  fi
  echo "published $(du -h "$2/$3" | cut -f1) binary, no warnings"
}
publish src/NodeAgent artifacts/publish/node-agent node-agent
publish src/ControlPlane artifacts/publish/control-plane control-plane

echo "== tests"
results=$(mktemp)
status=0
# Packaging last: it installs the .debs on this machine and runs the one-command cluster.
for project in tests/NodeAgent.Tests tests/ControlPlane.Tests tests/NodeAgent.IntegrationTests tests/ControlPlane.IntegrationTests tests/Packaging.IntegrationTests; do
  NODE_AGENT_BIN="$PWD/artifacts/publish/node-agent/node-agent" CONTROL_PLANE_BIN="$PWD/artifacts/publish/control-plane/control-plane" \
    dotnet test "$project" -c Release --logger "console;verbosity=normal" 2>&1 | tee -a "$results" || status=1
done
# One plain summary line over all test assemblies.
# vstest prints "Total tests: N" then "Passed: N" / "Failed: N" / "Skipped: N" per assembly.
count() { sed -nE "s/^ *$1: +([0-9]+).*/\\1/p" "$results" | awk '{s += $1} END {print s + 0}'; }
passed=$(count Passed)
failed=$(count Failed)
skipped=$(count Skipped)
total=$(count "Total tests")
echo "$passed passed, $failed failed, $skipped skipped"
if [ "$passed" -eq 0 ]; then echo "no test ran" >&2; exit 1; fi
if [ "$((passed + failed + skipped))" -ne "$total" ]; then echo "test counts do not add up ($total total)" >&2; status=1; fi
if [ "$skipped" -ne 0 ] && [ "${CI:-}" = "true" ]; then echo "tests were skipped under CI=true" >&2; exit 1; fi
exit $status
