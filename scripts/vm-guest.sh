#!/usr/bin/env bash
# Runs inside the virtme-ng guest (see scripts/test-vm.sh): the real-probe tests
# against the guest's kernel. The guest sees the host's files read-only; results
# go to OUT, the shared --rwdir. Usage: vm-guest.sh REPO OUT
set -u
repo=$1
out=$2
log() { printf 'guest: %s\n' "$*"; }

# tracefs (and debugfs) for BCC, when the guest's init did not mount them.
[ -d /sys/kernel/tracing/events ] || mount -t tracefs nodev /sys/kernel/tracing
mountpoint -q /sys/kernel/debug || mount -t debugfs nodev /sys/kernel/debug

# The disk image test-vm.sh built: copies of the files the tests read, mounted
# over their paths (faster than the shared root), and free space for TMPDIR.
hot=/run/ktop-hot
if [ -s "$out/hot.list" ]; then
  modprobe -q virtio_blk 2>/dev/null; modprobe -q ext4 2>/dev/null
  mkdir -p "$hot"
  if mount -L ktophot "$hot" 2>/dev/null || mount -t ext4 /dev/vda "$hot"; then
    while read -r p; do
      mount --bind "$hot$p" "$p" || log "could not bind $p"
    done <"$out/hot.list"
    mkdir -p "$hot/tmp" "$hot/var-tmp" && chmod 1777 "$hot/tmp" "$hot/var-tmp"
    export TMPDIR=$hot/tmp
    mount --bind "$hot/var-tmp" /var/tmp  # a tmpfs in the guest; tests expect a disk there
  else
    log "the disk image did not mount: every file comes from the shared root (slow)"
  fi
fi
cd "$repo" || { echo "guest: no $repo" >"$out/error"; exit 1; }

# Nothing may be written into the (read-only) source tree or the venv.
export HOME=/tmp/ktop-home XDG_CACHE_HOME=/tmp/ktop-cache PYTHONDONTWRITEBYTECODE=1
# TCG emulation runs workloads several times slower: the real tests stretch their
# time limits (waits x3) and how long `ktop snapshot` collects (x2).
export KTOP_TEST_TIME_SCALE=3 KTOP_TEST_DURATION_SCALE=2
# Compiles take 30-60 s under TCG, and the helpers of several probes run at once.
export KTOP_BUILD_TIMEOUT=600
# The compile cache (ktop/probes/bpfcache.py) in the guest's own tmpfs: the host's
# /var/cache is read-only here and keyed to the host's kernel. The first build of each
# probe and option set compiles on 6.1; the tests after it load what it kept.
export KTOP_BPF_CACHE=/tmp/ktop-bpf-cache
# The sampled syscall latency attaches and detaches sys_enter every few seconds, and
# each time the kernel rewrites its jump labels. Under TCG that now and then wedges a
# vCPU for good (a soft lockup at the jump label in syscall_trace_enter, then RCU
# stalls: the whole guest hangs). So latency is `on` by default here; the tests of
# the sampled mode ask for it, a few windows in all.
export KTOP_SYSCALLS_LATENCY=on
mkdir -p "$HOME" "$XDG_CACHE_HOME"
# BCC finds the headers through /lib/modules/$(uname -r)/build, on the shared root (9p,
# uncached): each of the thousands of header lookups of a compile walked that path over
# 9p, and kept QEMU's main thread as busy as the emulated CPUs. The folder is replaced
# by one on tmpfs whose entries link to the original's (build and source to their
# targets on the disk image), so a lookup leaves the guest only for a module.
mods=/lib/modules/$(uname -r)
if [ -L "$mods/build" ] && mkdir -p /run/ktop-mods/orig /run/ktop-mods/fast \
    && mount --bind "$mods" /run/ktop-mods/orig; then
  for f in /run/ktop-mods/orig/*; do
    case ${f##*/} in
      build|source) ln -sfn "$(readlink "$f")" "/run/ktop-mods/fast/${f##*/}" ;;
      *) ln -sfn "$f" "/run/ktop-mods/fast/${f##*/}" ;;
    esac
  done
  mount --bind /run/ktop-mods/fast "$mods" || log "could not mount a fast $mods"
fi

{ uname -r; "$repo/.venv/bin/ktop" doctor; } >"$out/doctor.txt" 2>&1

# Only what a kernel changes runs here: the tests marked `vm` (kprobes, which the
# host lacks; an older kernel's tracepoint layouts, BTF offsets and block paths).
# Under TCG each test costs a BCC compile of 30-60 s; the whole of tests/real
# took over 25 minutes, past CI's budget. What is user-space behaviour (signals,
# not-root, uprobes/USDT targets, recordings, Prometheus, the hardening tests in
# tmux) runs on the host only. A test that hangs fails on its own after
# test-timeout s (pytest-timeout) instead of eating the guest's whole budget.
extra=()
# One of several guests at once (test-vm.sh): every Nth test (tests/real/conftest.py).
[ -s "$out/shard" ] && export KTOP_TEST_SHARD=$(cat "$out/shard")
[ -s "$out/pytest-args" ] && mapfile -t extra < <(xargs -r printf '%s\n' <"$out/pytest-args")
"$repo/.venv/bin/python" -m pytest -m "real and vm" tests/real -p no:cacheprovider -ra -v --durations=10 \
    --timeout="$(cat "$out/test-timeout" 2>/dev/null || echo 300)" \
    --junitxml="$out/junit.xml" "${extra[@]}" 2>&1 | tee "$out/pytest.log"
echo "${PIPESTATUS[0]}" >"$out/rc"
