#!/usr/bin/env bash
# Idempotent host set-up for ktop: BCC from the distribution, kernel headers
# where BCC looks, tracefs/debugfs mounted. Run as root. Fast when done.
set -euo pipefail

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (try: sudo make install)"
command -v apt-get >/dev/null || die "only Debian/Ubuntu (apt) are supported by this script; install BCC (python3-bpfcc) and kernel headers by hand"

export DEBIAN_FRONTEND=noninteractive
rel=$(uname -r)
arch=$(dpkg --print-architecture)

# What ktop needs to run: BCC (its Python module and library) and a venv. `setup-host.sh test`
# adds what the tests and `make bench` use: the peers they compare with (bpfcc-tools, bpftrace,
# htop, btop), the workloads' tools (gcc, fio, nftables for the net probe's lossy link), tmux for
# the terminal tests, rsvg for screenshots, zsh and fish for the completion tests, bpftool,
# Prometheus (its server binary and promtool; the service is not left enabled), and Podman with runc
# for the real-container test (runc: crun refuses a hybrid cgroup hierarchy such as this host's).
# EXTRA_PKGS adds more.
run_pkgs=(python3-bpfcc libbpfcc python3-venv make)
test_pkgs=(bpfcc-tools bpftool bpftrace tmux htop btop fio sudo librsvg2-bin gcc libc6-dev prometheus groff-base zsh fish nftables podman runc)
pkgs=("${run_pkgs[@]}")
[ "${1:-run}" = test ] && pkgs+=("${test_pkgs[@]}")
pkgs+=(${EXTRA_PKGS:-})
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# Kernel headers: the exact ones when the archive has them, else the
# distribution's, linked where BCC looks.
build="/lib/modules/$rel/build"
headers_ok() { [ -e "$build/include/generated/autoconf.h" ] || [ -e "$build/include/linux/kconfig.h" ]; }
need_headers=0
headers_ok || need_headers=1

updated=0
apt_update() { [ $updated -eq 1 ] || { say "apt-get update"; apt-get update -qq; updated=1; }; }

if [ ${#missing[@]} -gt 0 ]; then
  apt_update
  say "installing ${missing[*]}"
  # No service starts from this install (Prometheus's would listen on :9090): policy-rc.d says no.
  policy=/usr/sbin/policy-rc.d
  had_policy=0; [ -e "$policy" ] && had_policy=1
  [ $had_policy -eq 1 ] || { printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; }
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || { [ $had_policy -eq 1 ] || rm -f "$policy"; exit 1; }
  [ $had_policy -eq 1 ] || rm -f "$policy"
fi
# ... nor is enabled at boot: the tests start their own Prometheus on a free port.
if [ -e /etc/systemd/system/multi-user.target.wants/prometheus.service ]; then
  say "disabling the prometheus service the package enabled (the tests run their own)"
  rm -f /etc/systemd/system/multi-user.target.wants/prometheus.service
  command -v systemctl >/dev/null && systemctl stop prometheus 2>/dev/null || true
fi

if [ $need_headers -eq 1 ]; then
  apt_update
  if apt-cache show "linux-headers-$rel" >/dev/null 2>&1; then
    say "installing linux-headers-$rel"
    apt-get install -y -qq --no-install-recommends "linux-headers-$rel" >/dev/null
  fi
fi

if ! headers_ok; then
  meta="linux-headers-$arch"
  if ! apt-cache show "$meta" >/dev/null 2>&1; then meta=linux-headers-generic; fi
  if ! ls -d /usr/src/linux-headers-*-"$arch" >/dev/null 2>&1; then
    apt_update
    say "no headers for $rel in the archive; installing the distribution's ($meta)"
    apt-get install -y -qq --no-install-recommends "$meta" >/dev/null
  fi
  hdr=$(ls -d /usr/src/linux-headers-*-"$arch" 2>/dev/null | sort -V | tail -n 1)
  [ -n "$hdr" ] || die "could not find installed kernel headers under /usr/src"
  common="${hdr%-"$arch"}-common"
  mkdir -p "/lib/modules/$rel"
  ln -sfn "$hdr" "/lib/modules/$rel/build"
  [ -d "$common" ] && ln -sfn "$common" "/lib/modules/$rel/source"
  say "linked $build -> $hdr (headers do not match $rel: ktop reads only tracepoint fields)"
fi

# tracefs and debugfs: BCC and tracepoints need them.
if [ ! -d /sys/kernel/tracing/events ]; then
  mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || say "warning: could not mount tracefs"
fi
if [ ! -d /sys/kernel/debug/tracing ] && ! mountpoint -q /sys/kernel/debug; then
  mount -t debugfs nodev /sys/kernel/debug 2>/dev/null || say "warning: could not mount debugfs"
fi
say "host ready"
