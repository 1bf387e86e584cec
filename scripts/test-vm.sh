#!/usr/bin/env bash
# `make test-vm`: the real-probe tests (tests/real) inside a second kernel,
# Debian's stock one (kprobes on, older tracepoint layouts), booted under QEMU
# (TCG: KVM hangs on these machines) through virtme-ng. The guest sees this
# machine's files read-only and writes its results into OUT (--rwdir).
# See docs/testing-vm.md. Run as root, after `make install`.
#
# Knobs (environment): KTOP_VM_TIMEOUT (s, default 3600) bounds the boot and
# the whole guest run; KTOP_VM_MEMORY (default 3G); KTOP_VM_CPUS (default 2);
# KTOP_VM_HOT_IMAGE=0 leaves every file on the (slow) shared root;
# KTOP_VM_PYTEST_ARGS adds pytest arguments in the guest (e.g. -k doctor);
# KTOP_VM_TEST_TIMEOUT (s, default 300) fails one test that runs longer;
# KTOP_VM_SHARDS (default: one guest per 2 CPUs, as memory allows) boots that
# many guests at once, each running every Nth test;
# KTOP_VM_TCG_THREAD (default single) is QEMU's TCG threading: multi-threaded TCG
# now and then wedged a vCPU for good while the kernel rewrote a jump label
# (one vCPU looping on the int3 of text_poke_bp, the other in syscall_trace_enter,
# then RCU stalls: the guest hung at test_300_enoent_opens and at
# test_default_attaches_no_syscall_tracepoint); single-threaded TCG runs the
# vCPUs in turn, so a patch is never half-seen.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
t_start=$SECONDS

VM_VENV=$repo/.vm-venv
VIRTME_NG=virtme-ng==1.42
CACHE=$repo/.cache/vm-kernel
OUT=$repo/.cache/vm-run
TIMEOUT=${KTOP_VM_TIMEOUT:-3600}

say() { printf 'test-vm: %s\n' "$*"; }
# One clear line, then a non-zero exit: never a hang.
die() { printf 'test-vm: FAILED: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (the guest runs the real-probe tests as this user)"
command -v apt-get >/dev/null || die "needs Debian's apt-get (QEMU and the guest kernel come from Debian)"
[ -x "$repo/.venv/bin/python" ] || die "no $repo/.venv: run make install first"
export DEBIAN_FRONTEND=noninteractive

updated=0
apt_update() {
  [ $updated -eq 1 ] && return 0
  apt-get update -qq >/dev/null 2>&1 || die "apt-get update failed"
  updated=1
}

# 1. QEMU, depmod (virtme-ng runs it on the unpacked modules), busybox (its initramfs).
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v depmod >/dev/null || [ -x /usr/sbin/depmod ] || need+=(kmod)
command -v busybox >/dev/null || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  apt_update
  say "installing ${need[*]}"
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
    || die "could not install ${need[*]} (apt-get install failed)"
fi
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found after installing qemu-system-x86"

# 2. virtme-ng from PyPI, in its own venv (it has nothing to do with ktop's).
if [ ! -f "$VM_VENV/.installed-$VIRTME_NG" ]; then
  say "installing $VIRTME_NG into $VM_VENV"
  { [ -x "$VM_VENV/bin/python" ] || /usr/bin/python3 -m venv "$VM_VENV"; } \
    || die "could not create $VM_VENV (python3-venv)"
  "$VM_VENV/bin/python" -m pip install -q --disable-pip-version-check "$VIRTME_NG" >/dev/null 2>&1 \
    || die "could not pip-install $VIRTME_NG into $VM_VENV"
  touch "$VM_VENV/.installed-$VIRTME_NG"
fi

# 3. The kernel: the image package Debian's linux-image-amd64 points at
#    (Ubuntu: linux-image-generic's, untested), unpacked into the cache (never
#    installed on this machine).
image_of() { apt-cache depends "$1" 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}'; }
kpkg=${KTOP_VM_KERNEL_PKG:-}
meta=linux-image-amd64
if [ -z "$kpkg" ]; then
  kpkg=$(image_of $meta)
  [ -n "$kpkg" ] || { apt_update; kpkg=$(image_of $meta); }
  [ -n "$kpkg" ] || { meta=linux-image-generic; kpkg=$(image_of $meta); }
fi
[ -n "$kpkg" ] || die "cannot tell which kernel image linux-image-amd64 (or Ubuntu's linux-image-generic) depends on (apt-cache depends); set KTOP_VM_KERNEL_PKG=linux-image-<version>"
kver=${kpkg#linux-image-}
# Ubuntu keeps the modules apart from the image
mods=$(apt-cache show "linux-modules-$kver" >/dev/null 2>&1 && echo "linux-modules-$kver")
kdir=$CACHE/$kver
vmlinuz=$kdir/boot/vmlinuz-$kver
if [ ! -f "$vmlinuz" ]; then
  say "downloading $kpkg into $kdir"
  rm -rf "$kdir.tmp" && mkdir -p "$kdir.tmp/deb" && chmod 755 "$kdir.tmp" "$kdir.tmp/deb"
  (cd "$kdir.tmp/deb" && apt-get download -q "$kpkg" $mods >/dev/null 2>&1) \
    || { apt_update; (cd "$kdir.tmp/deb" && apt-get download -q "$kpkg" $mods >/dev/null 2>&1); } \
    || { rm -rf "$kdir.tmp"; die "could not download $kpkg $mods (apt-get download failed)"; }
  for deb in "$kdir.tmp"/deb/*.deb; do
    dpkg -x "$deb" "$kdir.tmp/root" || { rm -rf "$kdir.tmp"; die "could not unpack $deb (dpkg -x)"; }
  done
  rm -rf "$kdir" && mv "$kdir.tmp/root" "$kdir" && rm -rf "$kdir.tmp"
  [ -f "$vmlinuz" ] || die "$kpkg holds no boot/vmlinuz-$kver"
fi

# 4. The guest kernel's headers, for BCC: Debian's, linked inside the unpacked image.
hdr=/usr/src/linux-headers-$kver
common=/usr/src/linux-headers-${kver%-*}-common
[ -d "$common" ] || common=/usr/src/linux-headers-${kver%-*}  # Ubuntu's name for the shared part
if [ ! -d "$hdr/include" ]; then
  apt_update
  say "installing linux-headers-$kver"
  apt-get install -y -qq --no-install-recommends "linux-headers-$kver" >/dev/null 2>&1 \
    || die "could not install linux-headers-$kver (BCC in the guest needs them)"
fi
ln -sfn "$hdr" "$kdir/lib/modules/$kver/build"
[ -d "$common" ] && ln -sfn "$common" "$kdir/lib/modules/$kver/source"

# 5. A disk for the guest. The shared root (9p, no caching) is slow under TCG:
#    the files every test reads (the tree, the venv, Python, BCC's libraries,
#    the kernel headers) go into an ext4 image that the guest mounts over
#    their paths (a snapshot, thrown away after the run). Its free space is
#    the guest's TMPDIR, so the tests' files sit on a real block device.
rm -rf "$OUT" && mkdir -p "$OUT"
hot_paths() {
  local p
  for p in "$repo"/* "$repo"/.[!.]*; do
    case ${p##*/} in .git|.cache|.vm-venv|'.[!.]*') ;; *) [ -e "$p" ] && echo "$p" ;; esac
  done
  /usr/bin/python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])'
  echo /usr/lib/python3/dist-packages
  echo "$hdr"; echo "$common"; readlink -f "$hdr/scripts" | sed 's,/scripts$,,'
  ldd /usr/lib/x86_64-linux-gnu/libbcc.so.0 "$(readlink -f /usr/bin/python3)" 2>/dev/null \
    | awk '/=> \// {print $3}' | xargs -r readlink -f
}
if [ "${KTOP_VM_HOT_IMAGE:-1}" = 1 ] && command -v mke2fs >/dev/null; then
  stage=$OUT/hot-stage
  mkdir -p "$stage"
  hot_paths | sort -u | while read -r p; do
    [ -e "$p" ] || continue
    mkdir -p "$stage$(dirname "$p")"
    cp -al "$p" "$stage$p" 2>/dev/null || cp -a "$p" "$stage$p" || exit 1
    echo "$p"
  done >"$OUT/hot.list" || die "could not stage the guest's disk image in $stage"
  mb=$(du -sm "$stage" | cut -f1)
  mke2fs -q -F -t ext4 -L ktophot -d "$stage" "$OUT/hot.img" "$((mb + 1024))M" >/dev/null \
    || die "could not build the guest's disk image (mke2fs -d)"
  rm -rf "$stage"
fi

# 6. Boot and run the suite in the guest, bounded by a timeout. A guest keeps
#    about two host CPUs busy (single-threaded TCG, and QEMU's main loop serving
#    9p and the devices: 100 % + 88 % measured), so a machine with 4 CPUs or more
#    runs a guest per 2 CPUs at once, each on every Nth test (tests/real/conftest.py:
#    KTOP_TEST_SHARD), with its own copy of the disk image (the guest writes its
#    TMPDIR there) and its own results folder, OUT/shard-I. Two guests on this
#    2-CPU machine took as long as one.
mem=${KTOP_VM_MEMORY:-3G}
shards=${KTOP_VM_SHARDS:-}
if [ -z "$shards" ]; then
  avail_mb=$(awk '/^MemAvailable:/ {print int($2 / 1024)}' /proc/meminfo)
  mem_mb=$(( ${mem%G} * 1024 ))
  shards=$(( $(nproc) / 2 ))
  while [ "$shards" -gt 1 ] && [ "${avail_mb:-0}" -lt $((shards * mem_mb + 2048)) ]; do shards=$((shards - 1)); done
  [ "$shards" -ge 1 ] || shards=1
fi
[[ "$shards" =~ ^[1-9][0-9]*$ ]] || die "KTOP_VM_SHARDS must be a positive number: $shards"
dirs=()
for ((i = 0; i < shards; i++)); do
  d=$OUT
  if [ "$shards" -gt 1 ]; then
    d=$OUT/shard-$i
    mkdir -p "$d"
    printf '%s/%s' "$i" "$shards" >"$d/shard"
    if [ -f "$OUT/hot.img" ]; then
      cp --sparse=always "$OUT/hot.img" "$d/hot.img" && cp "$OUT/hot.list" "$d/hot.list" \
        || die "could not copy the guest's disk image into $d"
    fi
  fi
  printf '%s' "${KTOP_VM_PYTEST_ARGS:-}" >"$d/pytest-args"
  printf '%s' "${KTOP_VM_TEST_TIMEOUT:-300}" >"$d/test-timeout"
  dirs+=("$d")
done
[ "$shards" -gt 1 ] && rm -f "$OUT/hot.img"
trap 'rm -f "$OUT/hot.img" "$OUT"/shard-*/hot.img' EXIT
t_boot=$SECONDS
boot() {  # boot DIR LABEL: one guest, its console in DIR/console.log, vng's exit code in DIR/vng-rc
  local d=$1 label=$2 img=()
  [ -f "$d/hot.img" ] && img=(--disk "$d/hot.img")
  # Console lines starting with '[' are the kernel's; the rest (pytest's output) is shown.
  PATH=$VM_VENV/bin:$PATH timeout --kill-after=20 "$TIMEOUT" \
    "$VM_VENV/bin/vng" --run "$vmlinuz" --disable-kvm --force-9p "${img[@]}" \
    --memory "$mem" --cpus "${KTOP_VM_CPUS:-2}" --verbose \
    --qemu-opts="-accel tcg,thread=${KTOP_VM_TCG_THREAD:-single}" \
    --rwdir="$d" --exec "bash $(printf '%q' "$repo/scripts/vm-guest.sh") $(printf '%q' "$repo") $(printf '%q' "$d")" \
    </dev/null 2>&1 | tee "$d/console.log" | grep --line-buffered -v '^\[' | sed -u "s|^|$label|"
  echo "${PIPESTATUS[0]}" >"$d/vng-rc"
}
say "booting $kver under QEMU/TCG: $shards guest(s) (timeout ${TIMEOUT} s; console.log beside each result)"
if [ "$shards" -eq 1 ]; then
  boot "$OUT" ""
else
  for ((i = 0; i < shards; i++)); do boot "${dirs[$i]}" "[guest $i/$shards] " & done
  wait
fi
vm_s=$((SECONDS - t_boot))

summary() {
  /usr/bin/python3 - "$@" <<'EOF'
import sys
import xml.etree.ElementTree as ET
n = {"passed": 0, "failed": 0, "skipped": 0}
for path in sys.argv[1:]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        continue
    for tc in root.iter("testcase"):
        kinds = {c.tag for c in tc}
        if kinds & {"failure", "error"}:
            n["failed"] += 1
        elif "skipped" in kinds:
            n["skipped"] += 1
        else:
            n["passed"] += 1
print(f"guest: {n['passed']} passed, {n['failed']} failed, {n['skipped']} skipped")
EOF
}

rc=0
for d in "${dirs[@]}"; do
  if [ ! -f "$d/rc" ]; then
    vng_rc=$(cat "$d/vng-rc" 2>/dev/null || echo 1)
    [ -s "$d/pytest.log" ] && { echo "--- last lines of the guest's pytest log ($d):"; tail -n 15 "$d/pytest.log"; }
    if [ "$vng_rc" -eq 124 ] || [ "$vng_rc" -eq 137 ]; then
      say "FAILED: the guest of $d did not finish within ${TIMEOUT} s (boot or tests hung; see $d/console.log)"
    else
      say "FAILED: the guest of $d wrote no result (vng exit $vng_rc; boot failed? see $d/console.log)"
    fi
    rc=1
    continue
  fi
  r=$(cat "$d/rc")
  [ "$r" = 0 ] || rc=1
done
[ -f "${dirs[0]}/doctor.txt" ] && { echo "--- ktop doctor in the guest:"; cat "${dirs[0]}/doctor.txt"; }
junits=()
for d in "${dirs[@]}"; do junits+=("$d/junit.xml"); done
summary "${junits[@]}"
say "guest kernel $kver: $([ "$rc" -eq 0 ] && echo passed || echo FAILED); results (junit.xml, pytest.log, doctor.txt, console.log) in ${dirs[*]}"
say "elapsed $((SECONDS - t_start)) s (setup $((t_boot - t_start)) s, boot + guest tests ${vm_s} s)"
[ "$rc" -eq 0 ]
