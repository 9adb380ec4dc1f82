#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# A persistent two-gateway lab for trying hamgr by hand: the topology the
# integration tests build (tests/integration/lib.sh, lab_create 2) with fixed
# names hamgr-sw, hamgr-gw1, hamgr-gw2, hamgr-client. See README.md.
#
#   lab.sh up                 create it (fails if it exists)
#   lab.sh down               remove it, killing whatever still runs inside
#   lab.sh status             namespaces, holders, addresses, processes
#   lab.sh exec NODE CMD...   run CMD in NODE (gw1, gw2, client) via its holder
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_STATE=/run/hamgr-lab
LAB_NODES=(gw1 gw2 client)
# shellcheck disable=SC2034 # read by lib.sh
HI_PREFIX=hamgr
# shellcheck disable=SC2034
HI_HOLDER_SETSID=1
# shellcheck source=../../tests/integration/lib.sh
source "$LAB_DIR/../../tests/integration/lib.sh"
# No pass/fail summary: this is not a test. The EXIT trap still removes a
# half-built lab when "up" fails.
# shellcheck disable=SC2034
HI_FINISHED=1

usage() {
        sed -n 's/^#   //p' "${BASH_SOURCE[0]}" >&2
        exit 2
}

lab_exists() {
        ip netns list | awk '{ print $1 }' | grep -qx "$(ns_of sw)"
}

# The holder pid of NODE from the state file, if it is still that holder:
# a "sleep" process in NODE's network namespace.
lab_holder() {
        local node=$1 pid ns_ino pid_ino
        pid=$(cat "$LAB_STATE/$node.pid" 2>/dev/null) || return 1
        [ "$(hi_pid_argv0 "$pid")" = sleep ] || return 1
        ns_ino=$(stat -L -c %i "/run/netns/$(ns_of "$node")" 2>/dev/null) || return 1
        pid_ino=$(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null) || return 1
        [ "$ns_ino" = "$pid_ino" ] || return 1
        printf '%s' "$pid"
}

cmd_up() {
        require_root
        require_cmd ip nsenter unshare setsid
        if lab_exists; then
                hi_log "lab.sh: the lab is already up (lab.sh down first)"
                exit 1
        fi
        lab_create 2
        mkdir -p "$LAB_STATE"
        for node in "${LAB_NODES[@]}"; do
                node_start "$node"
                node_holder "$node" >"$LAB_STATE/$node.pid"
        done
        # From here on the lab is the user's: the EXIT trap must not undo it.
        hi_disown_all
        echo "lab up:"
        cmd_status
}

cmd_down() {
        local node ns pid p
        require_root
        for node in "${LAB_NODES[@]}"; do
                if pid=$(lab_holder "$node"); then
                        kill -s TERM "$pid" 2>/dev/null || true
                fi
        done
        for node in sw "${LAB_NODES[@]}"; do
                ns=$(ns_of "$node")
                [ -e "/run/netns/$ns" ] || continue
                # Whatever still runs in the lab (a hamgr, a keepalived you
                # started) would keep the namespace alive unnamed.
                for p in $(ip netns pids "$ns" 2>/dev/null); do
                        kill -s TERM "$p" 2>/dev/null || true
                done
        done
        for node in sw "${LAB_NODES[@]}"; do
                ns=$(ns_of "$node")
                [ -e "/run/netns/$ns" ] || continue
                for p in $(ip netns pids "$ns" 2>/dev/null); do
                        hi_wait_gone "$p" 3 || kill -s KILL "$p" 2>/dev/null || true
                done
                ip netns del "$ns"
        done
        rm -rf "$LAB_STATE"
        echo "lab down"
}

cmd_status() {
        local node ns pid p
        if ! lab_exists; then
                echo "lab is down"
                return 0
        fi
        for node in sw "${LAB_NODES[@]}"; do
                ns=$(ns_of "$node")
                if [ "$node" = sw ]; then
                        echo "== $ns (bridge $HI_BRIDGE, ports: $(ip -n "$ns" -o link show master "$HI_BRIDGE" |
                                awk -F': ' '{ sub(/@.*/, "", $2); printf "%s ", $2 }'))"
                        continue
                fi
                if pid=$(lab_holder "$node"); then
                        echo "== $ns (holder $pid: nsenter -t $pid -m -n)"
                else
                        echo "== $ns (no holder)"
                fi
                ip -n "$ns" -br addr show | sed 's/^/   /'
                for p in $(ip netns pids "$ns" 2>/dev/null); do
                        [ "$p" = "${pid:-}" ] && continue
                        printf '   pid %s: %s\n' "$p" "$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"
                done
        done
}

cmd_exec() {
        local node=${1:-} pid
        if [ -z "$node" ] || [ $# -lt 2 ]; then
                usage
        fi
        shift
        pid=$(lab_holder "$node") || { hi_log "lab.sh: no holder for $node (is the lab up?)"; exit 1; }
        # exec skips the EXIT trap: drop lib.sh's (empty) temp dir first.
        hi_cleanup 0
        exec nsenter -t "$pid" -m -n --wd="$PWD" -- "$@"
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
exec) shift; cmd_exec "$@" ;;
*) usage ;;
esac
