# SPDX-License-Identifier: GPL-2.0-or-later
# shellcheck shell=bash
#
# PID 1 of the guest that tests/vm/run-in-vm.sh boots, run by bash from the
# host's (read-only) root after the initramfs switched to it. Readies the
# rest of the system the tests need, runs the command from env.sh in the
# shared directory /run/hamgr-vm, leaves its exit status there as "rc" and
# powers off. Nothing here is meant to run outside the guest.

share=/run/hamgr-vm
# shellcheck source=/dev/null
. "$share/env.sh"

vm_log() {
        printf 'run-in-vm(guest): %s\n' "$*"
}

vm_end() {
        printf '%s\n' "$1" >"$share/rc"
        sync
        /bin/busybox poweroff -f
        # poweroff -f does not return; should it, the kernel's panic=-1
        # on PID 1's exit ends qemu too (-no-reboot).
        exit "$1"
}

mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mkdir -p /dev/pts /dev/shm
# What udev would add: bash's <(...) needs /dev/fd.
ln -sfn /proc/self/fd /dev/fd
ln -sfn /proc/self/fd/0 /dev/stdin
ln -sfn /proc/self/fd/1 /dev/stdout
ln -sfn /proc/self/fd/2 /dev/stderr
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null || true
hostname hamgr-vm

# Modules come from the unpacked kernel package, not from /lib/modules
# (the host root has none for this kernel): explicit loads and the
# kernel's own requests (ip link add ... type veth) both go through -d.
cat >/run/hamgr-vm-modprobe <<EOF
#!/bin/sh
exec /sbin/modprobe -d "$KROOT" "\$@"
EOF
chmod 0755 /run/hamgr-vm-modprobe
echo /run/hamgr-vm-modprobe >/proc/sys/kernel/modprobe

for m in wireguard veth bridge tun; do
        /run/hamgr-vm-modprobe "$m" || { vm_log "modprobe $m failed"; vm_end 1; }
done
ip link set lo up
if ! ip link add hamgrprobe0 type wireguard; then
        vm_log "the kernel cannot create a wireguard link"
        vm_end 1
fi
ip link del hamgrprobe0
vm_log "kernel $(uname -r), wireguard module $(cat /sys/module/wireguard/version 2>/dev/null || echo built-in), up $(cut -d' ' -f1 /proc/uptime) s"

# The guest's /tmp goes with it: a test keeps its files (logs, state,
# captures), and they are copied out when it fails.
export HI_KEEP_TMP=1
"${HAMGR_VM_CMD[@]}"
rc=$?
vm_log "exit status $rc, up $(cut -d' ' -f1 /proc/uptime) s"
if [ "$rc" -ne 0 ]; then
        mkdir -p "$share/guest-tmp"
        # Sockets and FIFOs cannot be created on the share; logs are what matters.
        (cd /tmp && find . -type f -size -64M -print0 | cpio -0 -pdm --quiet "$share/guest-tmp") 2>/dev/null || true
fi
vm_end "$rc"
