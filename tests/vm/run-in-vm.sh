#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# run-in-vm.sh [-t SECONDS] CMD [ARG...]: run CMD inside a qemu guest that
# boots Debian 12's own kernel, so that WireGuard is the kernel module
# (this host's kernel has none), and exit with CMD's exit status.
#
# The guest has no disk image: its root is this host's root filesystem,
# shared read-only over 9p, with tmpfs on /tmp, /run (so /var/run) and
# /root. The build and source trees are therefore at the same paths inside,
# and so are the binaries the tests use; a tree under one of those (a clone
# in /tmp) is shared again on its own and mounted back at its path. A second, writable 9p share (a
# temporary directory here) carries CMD, its environment, its output and
# its exit status; the output is also printed as it comes, through the
# serial console.
#
# The environment CMD sees: every HAMGR_*, ASAN_OPTIONS, UBSAN_OPTIONS and
# HI_* variable of the caller, PATH, and HAMGR_WG_BACKEND=kernel (what
# tests/integration/wg_lab.sh switches on).
#
# The kernel package (linux-image-amd64's dependency) is fetched with
# apt-get download into $HAMGR_VM_CACHE (default: build/vm-cache in the
# source tree), unpacked and indexed with depmod once, and reused.
#
# Bounded: qemu is killed after SECONDS (default 900), and that is a
# failure (exit 124). TCG, not KVM: -enable-kvm hangs at boot on the
# machines this runs on.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd -P)
case $src in
*[[:space:]]*) echo "run-in-vm: the tree's path must not contain spaces: $src" >&2; exit 2 ;;
esac
timeout_s=900
while getopts t: opt; do
        case $opt in
        t) timeout_s=$OPTARG ;;
        *) echo "usage: run-in-vm.sh [-t SECONDS] CMD [ARG...]" >&2; exit 2 ;;
        esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || { echo "usage: run-in-vm.sh [-t SECONDS] CMD [ARG...]" >&2; exit 2; }

die() {
        echo "run-in-vm: $*" >&2
        exit 1
}

for c in qemu-system-x86_64 busybox cpio depmod modprobe apt-get apt-cache dpkg-deb flock timeout; do
        command -v "$c" >/dev/null 2>&1 || die "required command not found: $c (bash contrib/setup.sh)"
done
[ -x /bin/busybox ] || die "/bin/busybox missing (busybox-static)"
file_is_static() { ! LC_ALL=C ldd "$1" >/dev/null 2>&1; }
file_is_static /bin/busybox || die "/bin/busybox is not static (install busybox-static)"

cache=${HAMGR_VM_CACHE:-$src/build/vm-cache}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

# ---- the kernel: fetched, unpacked and indexed once, under a lock so that
# parallel runs do not race on the cache.
prepare_kernel() {
        local pkg deb
        pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
        if [ -z "$pkg" ]; then
                flock /tmp/apt.lock apt-get update -qq >/dev/null
                pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
        fi
        [ -n "$pkg" ] || die "cannot tell which kernel linux-image-amd64 depends on"
        KVER=${pkg#linux-image-}
        if [ ! -f "$cache/$KVER/ready" ]; then
                rm -rf "${cache:?}/$KVER" "${cache:?}/dl"
                mkdir -p "$cache/dl"
                # _apt cannot write into a root-owned build tree.
                chmod 0777 "$cache/dl"
                (cd "$cache/dl" && flock /tmp/apt.lock apt-get download -qq "$pkg") ||
                        die "apt-get download $pkg failed"
                deb=$(ls "$cache/dl/${pkg}"_*.deb)
                mkdir -p "$cache/$KVER"
                dpkg-deb -x "$deb" "$cache/$KVER/root"
                depmod -b "$cache/$KVER/root" "$KVER"
                rm -rf "$cache/dl"
                touch "$cache/$KVER/ready"
        fi
        KROOT=$cache/$KVER/root
        [ -f "$KROOT/boot/vmlinuz-$KVER" ] || die "no vmlinuz-$KVER in $KROOT"
}

exec 9>"$cache/.lock"
flock 9
prepare_kernel

# ---- the initramfs: busybox, the 9p and virtio modules, /init.
initrd=$cache/$KVER/initrd.img
if [ ! -f "$initrd" ] || [ "$here/run-in-vm.sh" -nt "$initrd" ]; then
        work=$(mktemp -d)
        mkdir -p "$work"/{bin,dev,proc,sys,newroot,modules}
        cp /bin/busybox "$work/bin/busybox"
        : >"$work/modules/order"
        for m in virtio_pci 9pnet_virtio 9p; do
                modprobe -d "$KROOT" -S "$KVER" --show-depends "$m" | awk '$1 == "insmod" { print $2 }'
        done | awk '!seen[$0]++' | while read -r ko; do
                cp "$ko" "$work/modules/"
                basename "$ko" >>"$work/modules/order"
        done
        cat >"$work/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
while read -r ko; do
        /bin/busybox insmod "/modules/$ko" || echo "initramfs: insmod $ko failed"
done </modules/order
if ! /bin/busybox mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /newroot; then
        echo "initramfs: cannot mount the host root"
        /bin/busybox poweroff -f
fi
for d in tmp run root; do
        /bin/busybox mount -t tmpfs -o mode=0755 tmpfs "/newroot/$d"
done
/bin/busybox chmod 1777 /newroot/tmp
# The tree under test (sources, builds, the kernel cache) lives in a
# directory the tmpfs above may hide (a clone in /tmp): mount it again.
top=$(/bin/busybox sed -n 's/.*hamgr_top=\([^ ]*\).*/\1/p' /proc/cmdline)
case $top in
/tmp/*|/run/*|/root/*)
        /bin/busybox mkdir -p "/newroot$top"
        /bin/busybox mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hamgrtop "/newroot$top" ||
                echo "initramfs: cannot mount $top"
        ;;
esac
/bin/busybox mkdir -p /newroot/run/hamgr-vm
/bin/busybox mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 vmshare /newroot/run/hamgr-vm
/bin/busybox mount --move /dev /newroot/dev
/bin/busybox umount /proc /sys
exec /bin/busybox switch_root /newroot /bin/bash /run/hamgr-vm/guest-init.sh
EOF
        chmod 0755 "$work/init"
        (cd "$work" && find . | cpio -o -H newc --quiet | gzip -1) >"$initrd.tmp"
        mv "$initrd.tmp" "$initrd"
        rm -rf "$work"
fi
flock -u 9

# ---- the shared directory: what to run, and where its results go.
share=$(mktemp -d /tmp/hamgr-vm.XXXXXX)
qemu_pid=""
keep_share=0
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
        [ -z "$qemu_pid" ] || kill "$qemu_pid" 2>/dev/null || true
        if [ "$keep_share" = 1 ]; then
                echo "run-in-vm: the guest's /tmp (test logs) is in $share/guest-tmp" >&2
        else
                rm -rf "$share"
        fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cp "$here/guest-init.sh" "$share/guest-init.sh"
{
        printf 'export KVER=%q KROOT=%q\n' "$KVER" "$KROOT"
        printf 'export PATH=%q\n' "$PATH"
        printf 'export HAMGR_WG_BACKEND=kernel\n'
        while IFS='=' read -r name _; do
                case $name in
                HAMGR_*|ASAN_OPTIONS|UBSAN_OPTIONS|HI_*) printf 'export %s=%q\n' "$name" "${!name}" ;;
                esac
        done < <(env)
        printf 'cd %q\n' "$PWD"
        printf 'HAMGR_VM_CMD=('
        printf '%q ' "$@"
        printf ')\n'
} >"$share/env.sh"

# Memory: the guest's tmpfs holds test logs and captures; ASan wants room.
mem=${HAMGR_VM_MEM:-2048}
timeout --signal=KILL "$timeout_s" qemu-system-x86_64 -accel tcg -smp 2 -m "$mem" \
        -nographic -no-reboot -nodefaults -serial stdio -monitor none \
        -kernel "$KROOT/boot/vmlinuz-$KVER" -initrd "$initrd" \
        -append "console=ttyS0 panic=-1 quiet loglevel=3 hamgr_top=$src" \
        -fsdev local,id=r,path=/,security_model=none,readonly=on,multidevs=remap \
        -device virtio-9p-pci,fsdev=r,mount_tag=hostroot \
        -fsdev local,id=s,path="$share",security_model=none \
        -device virtio-9p-pci,fsdev=s,mount_tag=vmshare \
        -fsdev local,id=t,path="$src",security_model=none,readonly=on,multidevs=remap \
        -device virtio-9p-pci,fsdev=t,mount_tag=hamgrtop \
        </dev/null &
qemu_pid=$!
set +e
wait "$qemu_pid"
qrc=$?
set -e
qemu_pid=""
if [ ! -f "$share/rc" ]; then
        if [ "$qrc" -eq 137 ]; then
                echo "run-in-vm: the guest did not finish within ${timeout_s} s; qemu killed" >&2
                exit 124
        fi
        echo "run-in-vm: the guest ended (qemu status $qrc) without an exit status" >&2
        exit 1
fi
rc=$(cat "$share/rc")
[ "$rc" = 0 ] || [ ! -d "$share/guest-tmp" ] || keep_share=1
exit "$rc"
