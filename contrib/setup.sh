#!/usr/bin/env bash
# Install every build, test and lab dependency of hamgr from Debian packages.
# Idempotent: prints nothing and touches nothing when all is present.
set -euo pipefail

packages=(
  build-essential cmake pkg-config clang llvm
  libnl-3-dev libnl-route-3-dev libnl-genl-3-dev
  libsodium-dev libconfig-dev libsystemd-dev libcmocka-dev libjson-c-dev
  debhelper lintian fakeroot dpkg-dev
  iproute2 wireguard-go wireguard-tools keepalived iputils-ping tcpdump
  procps util-linux psmisc jq systemd netcat-openbsd
  nftables frr python3 strace
  # tests/vm: Debian's kernel (WireGuard module) booted under qemu
  qemu-system-x86 busybox-static kmod cpio
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing packages: ${missing[*]} (run as root to install them)" >&2
  exit 1
fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# keepalived is an interop peer for the tests, never a service on this host.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now keepalived >/dev/null 2>&1 || true
fi
# Likewise FRR (zebra + vrrpd, started by tests/integration/test_interop_frr.sh
# inside its namespaces): the package's service would run zebra on the host.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now frr >/dev/null 2>&1 || true
elif [ -x /etc/init.d/frr ]; then
  /etc/init.d/frr stop >/dev/null 2>&1 || true
fi
