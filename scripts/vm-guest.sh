#!/usr/bin/env bash
# Runs inside the virtme-ng guest (see scripts/test-vm.sh): the real-probe tests
# against the guest's kernel. The guest sees the host's files read-only; results
# go to OUT, the shared --rwdir. Usage: vm-guest.sh REPO OUT
set -u
repo=$1
out=$2
cd "$repo" || { echo "guest: no $repo" >"$out/error"; exit 1; }

# tracefs (and debugfs) for BCC, when the guest's init did not mount them.
[ -d /sys/kernel/tracing/events ] || mount -t tracefs nodev /sys/kernel/tracing
mountpoint -q /sys/kernel/debug || mount -t debugfs nodev /sys/kernel/debug

# Nothing may be written into the (read-only) source tree or the venv.
export HOME=/tmp/ktop-home XDG_CACHE_HOME=/tmp/ktop-cache PYTHONDONTWRITEBYTECODE=1
# TCG emulation runs workloads several times slower: the real tests stretch their time limits.
export KTOP_TEST_TIME_SCALE=${KTOP_TEST_TIME_SCALE:-3}
mkdir -p "$HOME" "$XDG_CACHE_HOME"

{ uname -r; "$repo/.venv/bin/ktop" doctor; } >"$out/doctor.txt" 2>&1

"$repo/.venv/bin/python" -m pytest -m real tests/real -p no:cacheprovider -ra \
    --junitxml="$out/junit.xml" ${KTOP_VM_PYTEST_ARGS:-} 2>&1 | tee "$out/pytest.log"
echo "${PIPESTATUS[0]}" >"$out/rc"
