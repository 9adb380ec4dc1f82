# SPDX-License-Identifier: GPL-2.0-or-later
# shellcheck shell=bash
#
# Network-namespace harness for hamgr integration tests. Sourced by every
# tests/integration/test_*.sh (and by contrib/lab/lab.sh).
#
# Topology (lab_create N): one "sw" namespace holding bridge br0; gateway
# namespaces gw1..gwN and one "client", each with eth0 (a veth whose peer is a
# br0 port named after the node). Gateways also get eth1, a veth to eth1p in
# the same namespace, so a test can drop its carrier (track_interfaces).
# gw_direct_link adds a further link between two gateways.
#
#   gwK:    eth0 10.77.0.K/24 fd77::K/64     MAC 02:77:00:00:00:0K
#           eth1 10.78.K.1/24                (peer eth1p)
#   client: eth0 10.77.0.100/24 fd77::100/64 MAC 02:77:00:00:00:64
#
# Everything this file creates is named with $HI_PREFIX and is removed by an
# EXIT/INT/TERM trap, also when a test fails or aborts. Processes are
# tracked by PID (and start time, against PID reuse) and only those, plus
# anything still running inside this run's own namespaces, are killed.
#
# Results: pass/fail count; finish prints "N passed, M failed" and exits
# non-zero when M > 0. A script that dies under set -e is reported as failed.
#
# Daemons: every hamgr started in the background through node_spawn (so
# hamgr_start too) is judged when it goes: a stop the test asked for with
# SIGTERM or SIGINT (stop_pid, hamgr_stop, or kill plus the end of the test)
# must end in exit status 0; only a SIGKILL the test sent through
# stop_pid/hamgr_stop may end otherwise. The sanitizers write each daemon's
# report to $HI_TMP/NODE.hamgr.sanitizer.PID (log_path), and every *.log in
# $HI_TMP is scanned for reports too; any report is a failure that names the
# daemon and shows the report. finish, and the trap of an aborted test, stop
# the daemons still running (SIGTERM) and do these checks.
#
# Call node_start/node_spawn/capture_start/*_start from the test's main shell,
# not inside $( ) or a pipeline: they record PIDs in shell variables, and the
# processes get a parent-death signal tied to the calling shell.

if [ -n "${HI_LIB_SOURCED:-}" ]; then
        return 0
fi
HI_LIB_SOURCED=1

# Namespace names are files in /run/netns, not interfaces, so only their
# uniqueness matters; interface names are fixed and live inside them.
: "${HI_PREFIX:=hi$$}"
HI_PASSED=0
HI_FAILED=0
HI_FAIL_MSGS=()
HI_FINISHED=0
HI_CLEANED=0
HI_KEEP_TMP="${HI_KEEP_TMP:-0}"
HI_TMP=""
HI_NETNS=()             # namespaces we created, in creation order
HI_PIDS=()              # processes we started (holders last to die)
declare -A HI_PID_START=()   # pid -> start time (field 22 of /proc/PID/stat)
declare -A HI_HOLDER=()      # node -> holder pid
declare -A HI_IS_HOLDER=()   # holder pid -> 1
declare -A HI_CAPTURE=()     # capture file -> tcpdump pid
declare -A HAMGR_PID=()      # node -> hamgr pid
declare -A KEEPALIVED_PID=() # node -> keepalived parent pid
declare -A HI_DAEMON_NODE=() # hamgr daemon pid (child of this shell) -> node
declare -A HI_DAEMON_LOG=()  # daemon pid -> its log file
declare -A HI_DAEMON_KILL=() # daemon pid -> 1: the test SIGKILLed it on purpose
declare -A HI_DAEMON_DONE=() # daemon pid -> 1: its end has been judged
declare -A HI_DAEMON_WANT=() # daemon pid -> the exit status the test expects (hi_expect_exit)
declare -A HI_SAN_SEEN=()    # sanitizer report file or log line -> 1: reported
HI_DAEMON_BAD=0              # daemons that ended badly (status, crash)
HI_SAN_REPORTS=0             # sanitizer reports found
HI_GATEWAYS=()
HI_LAST_PID=""

HI_BRIDGE=br0
HI_NET4=10.77.0
HI_NET6=fd77:

hi_log() {
        printf '%s\n' "$*" >&2
}

# ---------------------------------------------------------------- results --

pass() {
        HI_PASSED=$((HI_PASSED + 1))
        printf 'PASS: %s\n' "$*"
}

fail() {
        HI_FAILED=$((HI_FAILED + 1))
        HI_FAIL_MSGS+=("$*")
        printf 'FAIL: %s\n' "$*"
        return 0
}

# Exit now (cleanup runs from the trap) with the failure counted.
die() {
        fail "$*"
        exit 1
}

assert_eq() {
        local got=$1 want=$2 msg=${3:-"value"}
        if [ "$got" = "$want" ]; then
                pass "$msg: '$got'"
        else
                fail "$msg: got '$got', want '$want'"
        fi
}

assert_contains() {
        local haystack=$1 needle=$2 msg=${3:-"contains"}
        if [[ "$haystack" == *"$needle"* ]]; then
                pass "$msg: has '$needle'"
        else
                fail "$msg: '$needle' not found in: $(printf '%s' "$haystack" | head -c 600)"
        fi
}

assert_not_contains() {
        local haystack=$1 needle=$2 msg=${3:-"does not contain"}
        if [[ "$haystack" != *"$needle"* ]]; then
                pass "$msg: no '$needle'"
        else
                fail "$msg: unexpected '$needle' in: $(printf '%s' "$haystack" | head -c 600)"
        fi
}

# assert_true MSG CMD...: pass when CMD succeeds.
assert_true() {
        local msg=$1
        shift
        if "$@"; then
                pass "$msg"
        else
                fail "$msg (command failed: $*)"
        fi
}

assert_false() {
        local msg=$1
        shift
        if "$@"; then
                fail "$msg (command unexpectedly succeeded: $*)"
        else
                pass "$msg"
        fi
}

finish() {
        hi_check_daemons
        HI_FINISHED=1
        printf '%d passed, %d failed\n' "$HI_PASSED" "$HI_FAILED"
        if [ "$HI_FAILED" -gt 0 ]; then
                exit 1
        fi
        exit 0
}

require_root() {
        if [ "$(id -u)" -ne 0 ]; then
                die "this test needs root (network namespaces, raw sockets)"
        fi
}

require_cmd() {
        local c
        for c in "$@"; do
                if ! command -v "$c" >/dev/null 2>&1 && [ ! -x "$c" ]; then
                        die "required command not found: $c"
                fi
        done
}

# require_tool VAR WHAT: environment variable VAR names an executable (WHAT,
# for the message), e.g. require_tool HAMGR_INJECT vrrp_inject.
require_tool() {
        [ -n "${!1:-}" ] || die "$1 is not set (path to $2)"
        require_cmd "${!1}"
}

# require_hamgr: what every hamgr test needs: root, the lab's commands
# (ip nsenter unshare jq awk) and $HAMGR_BIN. More with require_cmd.
require_hamgr() {
        require_root
        require_cmd ip nsenter unshare jq awk
        require_tool HAMGR_BIN "the built hamgr"
}

# ------------------------------------------------------------------ time --

hi_now_ms() {
        local t=${EPOCHREALTIME/[.,]/}
        echo $((t / 1000))
}

# wait_until TIMEOUT_S CMD...: poll CMD every 50 ms until it succeeds.
# Returns 1 with a message on timeout (under set -e that aborts the test).
wait_until() {
        local timeout=$1
        shift
        local deadline=$(($(hi_now_ms) + ${timeout%.*} * 1000))
        if [[ "$timeout" == *.* ]]; then
                local frac=${timeout#*.}000
                deadline=$((deadline + 10#${frac:0:3}))
        fi
        while true; do
                if "$@" >/dev/null 2>&1; then
                        return 0
                fi
                if [ "$(hi_now_ms)" -ge "$deadline" ]; then
                        hi_log "wait_until: timed out after ${timeout}s waiting for: $*"
                        return 1
                fi
                sleep 0.05
        done
}

# holds_for SECONDS CMD...: CMD stays true for the whole period (polled every
# 50 ms). Returns 1 with a message at the first poll where it is false. For
# "nothing happens" checks, which have no event to wait for.
holds_for() {
        local period=$1
        shift
        local ms=$(( ${period%.*} * 1000 ))
        if [[ "$period" == *.* ]]; then
                local frac=${period#*.}000
                ms=$((ms + 10#${frac:0:3}))
        fi
        local deadline=$(($(hi_now_ms) + ms))
        while true; do
                if ! "$@" >/dev/null 2>&1; then
                        hi_log "holds_for: condition broke: $*"
                        return 1
                fi
                if [ "$(hi_now_ms)" -ge "$deadline" ]; then
                        return 0
                fi
                sleep 0.05
        done
}

# --------------------------------------------------------------- processes --

hi_pid_starttime() {
        local stat
        stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
        stat=${stat##*) }
        # fields after "comm)": state is field 3, starttime field 22
        # shellcheck disable=SC2086 # split on purpose
        set -- $stat
        [ "$1" != Z ] || return 1
        echo "${20}"
}

# True while PID runs and is still the process we started.
hi_pid_alive() {
        local pid=$1 st
        st=$(hi_pid_starttime "$pid") || return 1
        if [ -n "${HI_PID_START[$pid]:-}" ] && [ "${HI_PID_START[$pid]}" != "$st" ]; then
                return 1
        fi
        return 0
}

hi_track_pid() {
        local pid=$1 st
        st=$(hi_pid_starttime "$pid") || st=""
        HI_PID_START[$pid]=$st
        HI_PIDS+=("$pid")
}

# First argv word of PID.
hi_pid_argv0() {
        local a0=""
        IFS= read -r -d '' a0 <"/proc/$1/cmdline" 2>/dev/null || true
        printf '%s' "$a0"
}

# Wait until PID has exec'ed ARGV0 (it starts as a fork of this shell and
# passes through nsenter / ip netns exec). Returns 1 if it died first.
hi_wait_exec() {
        local pid=$1 argv0=$2 i
        for ((i = 0; i < 200; i++)); do
                if [ "$(hi_pid_argv0 "$pid")" = "$argv0" ]; then
                        return 0
                fi
                if [ ! -e "/proc/$pid" ]; then
                        return 1
                fi
                sleep 0.025
        done
        hi_log "pid $pid did not exec $argv0 within 5 s (argv0: $(hi_pid_argv0 "$pid"))"
        return 1
}

# Wait up to TIMEOUT_S for PID to be gone; returns 1 if it is still there.
hi_wait_gone() {
        local pid=$1 timeout=${2:-5} i
        for ((i = 0; i < timeout * 40; i++)); do
                hi_pid_alive "$pid" || return 0
                sleep 0.025
        done
        return 1
}

# stop_pid PID [SIGNAL]: signal one tracked process and wait for it to go;
# escalates to SIGKILL after 5 s. Returns 1 if it survives that.
# A hamgr daemon's exit status is judged here (hi_daemon_judge): SIGKILL may
# end it any way, any other signal must end it with status 0.
stop_pid() {
        local pid=$1 sig=${2:-TERM}
        if ! hi_pid_alive "$pid"; then
                hi_daemon_judge "$pid" "$sig"
                return 0
        fi
        [ "$sig" != KILL ] || [ -z "${HI_DAEMON_NODE[$pid]:-}" ] || HI_DAEMON_KILL[$pid]=1
        kill -s "$sig" "$pid" 2>/dev/null || true
        # bash announces a child it reaps that died of a signal ("Killed")
        # on its stderr while waiting here; hi_daemon_judge() says what
        # matters about that exit.
        if ! hi_wait_gone "$pid" 5 2>/dev/null; then
                kill -s KILL "$pid" 2>/dev/null || true
                hi_wait_gone "$pid" 2 2>/dev/null || return 1
        fi
        hi_daemon_judge "$pid" "$sig"
        return 0
}

# ------------------------------------------------------- daemon checking --

# hi_sig_name 9|KILL|SIGKILL: SIGKILL.
hi_sig_name() {
        local n=${1#SIG}
        if [[ "$n" =~ ^[0-9]+$ ]]; then
                n=$(kill -l "$n" 2>/dev/null) || n=$1
        fi
        printf 'SIG%s' "$n"
}

# hi_is_daemon_cmd CMD...: CMD runs hamgr (directly or through a wrapper
# that has $HAMGR_BIN among its arguments). Spawned in the background, that
# is a daemon.
hi_is_daemon_cmd() {
        local a
        [ -n "${HAMGR_BIN:-}" ] || return 1
        for a in "$@"; do
                [ "$a" != "$HAMGR_BIN" ] || return 0
        done
        return 1
}

# hi_san_report FILE WHO: one sanitizer report file, once.
hi_san_report() {
        local f=$1 who=$2
        [ -s "$f" ] && [ -z "${HI_SAN_SEEN[$f]:-}" ] || return 0
        HI_SAN_SEEN[$f]=1
        HI_SAN_REPORTS=$((HI_SAN_REPORTS + 1))
        fail "sanitizer report from $who in $f:"
        sed -n '1,60p' "$f" | sed 's/^/    | /'
}

# hi_daemon_judge PID SIGNAL: PID, a daemon that is gone, after the test
# sent SIGNAL (empty: it went by itself): fail unless its exit status is 0
# or the test SIGKILLed it; fail on its sanitizer report.
hi_daemon_judge() {
        local pid=$1 sig=${2:-} node st=0 why=""
        node=${HI_DAEMON_NODE[$pid]:-}
        [ -n "$node" ] && [ -z "${HI_DAEMON_DONE[$pid]:-}" ] || return 0
        HI_DAEMON_DONE[$pid]=1
        wait "$pid" 2>/dev/null || st=$?
        if [ -n "${HI_DAEMON_WANT[$pid]:-}" ]; then
                if [ "$st" = "${HI_DAEMON_WANT[$pid]}" ]; then
                        pass "hamgr on $node (pid $pid): exit status $st, as expected"
                else
                        why="exit status $st${sig:+ after $(hi_sig_name "$sig")}, want ${HI_DAEMON_WANT[$pid]}"
                fi
        elif [ -n "${HI_DAEMON_KILL[$pid]:-}" ]; then
                [ "$st" = 0 ] || [ "$st" = 137 ] || why="exit status $st after the SIGKILL the test sent"
        elif [ "$st" != 0 ]; then
                if [ "$st" -gt 128 ]; then
                        why="killed by $(hi_sig_name $((st - 128))) (status $st)"
                else
                        why="exit status $st"
                fi
                if [ -n "$sig" ]; then
                        why+=" after $(hi_sig_name "$sig")"
                        [ "$st" != 137 ] || why+=" (no exit within 5 s, SIGKILLed)"
                        why+=", want 0"
                else
                        why+=" (found ended at the end of the test, not stopped through stop_pid), want 0"
                fi
        fi
        if [ -n "$why" ]; then
                HI_DAEMON_BAD=$((HI_DAEMON_BAD + 1))
                fail "hamgr on $node (pid $pid): $why; last lines of ${HI_DAEMON_LOG[$pid]}:"
                tail -n 15 "${HI_DAEMON_LOG[$pid]}" 2>/dev/null | sed 's/^/    | /'
        fi
        hi_san_report "$HI_TMP/$node.hamgr.sanitizer.$pid" "hamgr on $node (pid $pid)"
}

# hi_expect_exit PID STATUS: daemon PID is expected to end with exit status
# STATUS (a number; 128+N for signal N) rather than 0: e.g. hamgr refusing to
# start (1). This is an assertion, not an exemption: a daemon already gone is
# judged now (pass or fail); one still running is judged against STATUS when
# stop_pid/hamgr_stop or finish sees it go, whatever signal ended it. Its
# sanitizer report still fails the test. Also for a daemon the test ended
# without stop_pid (e.g. through a wrapper that does not pass signals on):
# hi_expect_exit PID 0 once it is gone judges it at that point.
hi_expect_exit() {
        local pid=$1 st=$2
        [[ "$st" =~ ^[0-9]+$ ]] || die "hi_expect_exit $pid: status '$st' is not a number"
        [ -n "${HI_DAEMON_NODE[$pid]:-}" ] || die "hi_expect_exit: $pid is not a daemon started by node_spawn"
        [ -z "${HI_DAEMON_DONE[$pid]:-}" ] || die "hi_expect_exit: daemon $pid was already judged"
        HI_DAEMON_WANT[$pid]=$st
        hi_pid_alive "$pid" || hi_daemon_judge "$pid" ""
        return 0
}

# Sanitizer reports (ASan, LSan, UBSan, TSan, MSan) as they start.
HI_SAN_PATTERN='ERROR: (AddressSanitizer|LeakSanitizer|MemorySanitizer)|WARNING: (ThreadSanitizer|MemorySanitizer)|runtime error: |SUMMARY: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|ThreadSanitizer|MemorySanitizer)'

# hi_check_daemons: stop the daemons still running (SIGCONT, then SIGTERM:
# a stop the test asks for), judge every daemon's end, then look for
# sanitizer reports anywhere in $HI_TMP: report files of processes this file
# did not judge, and report lines in every *.log (a daemon started another
# way logs its stderr there).
hi_check_daemons() {
        local pid f line
        for pid in "${!HI_DAEMON_NODE[@]}"; do
                [ -z "${HI_DAEMON_DONE[$pid]:-}" ] || continue
                if hi_pid_alive "$pid"; then
                        kill -s CONT "$pid" 2>/dev/null || true
                        stop_pid "$pid" TERM
                else
                        hi_daemon_judge "$pid" ""
                fi
        done
        [ -n "$HI_TMP" ] && [ -d "$HI_TMP" ] || return 0
        for f in "$HI_TMP"/*.sanitizer.*; do
                [ -e "$f" ] || continue
                hi_san_report "$f" "${f##*/}"
        done
        for f in "$HI_TMP"/*.log; do
                [ -f "$f" ] || continue
                while IFS= read -r line; do
                        [ -z "${HI_SAN_SEEN[$f:$line]:-}" ] || continue
                        HI_SAN_SEEN[$f:$line]=1
                        HI_SAN_REPORTS=$((HI_SAN_REPORTS + 1))
                        fail "sanitizer report in $f, line ${line%%:*}:"
                        sed -n "${line%%:*},$((${line%%:*} + 40))p" "$f" | sed 's/^/    | /'
                done < <(grep -naE -- "$HI_SAN_PATTERN" "$f" | grep -vE '^[0-9]+:SUMMARY' || true)
        done
}

# ------------------------------------------------------------ namespaces --

# Namespace name of logical node NODE (gw1, client, sw).
ns_of() {
        printf '%s-%s' "$HI_PREFIX" "$1"
}

hi_netns_add() {
        local ns=$1
        ip netns add "$ns"
        HI_NETNS+=("$ns")
        ip -n "$ns" link set lo up
}

hi_sysctl() {
        ip netns exec "$1" sysctl -qw "${@:2}" >/dev/null
}

# hi_node_add NODE MAC ADDR4 ADDR6: a namespace with eth0 plugged into br0.
hi_node_add() {
        local node=$1 mac=$2 a4=$3 a6=$4
        local ns sw
        ns=$(ns_of "$node")
        sw=$(ns_of sw)
        hi_netns_add "$ns"
        # Before any interface appears, so eth0/eth1 and their link-local
        # addresses inherit "no DAD": tests never wait for tentative addresses.
        hi_sysctl "$ns" net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
                net.ipv6.conf.all.dad_transmits=0 net.ipv6.conf.default.dad_transmits=0
        ip -n "$sw" link add "$node" type veth peer name eth0 netns "$ns"
        ip -n "$sw" link set "$node" master "$HI_BRIDGE" up
        ip -n "$ns" link set eth0 address "$mac" up
        ip -n "$ns" addr add "$a4/24" dev eth0
        ip -n "$ns" addr add "$a6/64" dev eth0 nodad
}

# lab_create N: bridge namespace, gateways gw1..gwN, client. See the top.
lab_create() {
        local n=${1:-2} i ns sw
        if [ "$n" -lt 1 ] || [ "$n" -gt 99 ]; then
                die "lab_create: bad gateway count $n"
        fi
        sw=$(ns_of sw)
        hi_netns_add "$sw"
        hi_sysctl "$sw" net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
        # Without snooping the bridge floods 224.0.0.18 / ff02::12 to every
        # port, like a dumb switch; no STP so ports forward at once.
        ip -n "$sw" link add "$HI_BRIDGE" type bridge mcast_snooping 0 stp_state 0 forward_delay 0
        ip -n "$sw" link set "$HI_BRIDGE" up
        HI_GATEWAYS=()
        for ((i = 1; i <= n; i++)); do
                hi_node_add "gw$i" "$(printf '02:77:00:00:00:%02x' "$i")" "$HI_NET4.$i" "${HI_NET6}:$(printf '%x' "$i")"
                ns=$(ns_of "gw$i")
                ip -n "$ns" link add eth1 type veth peer name eth1p
                ip -n "$ns" link set eth1p up
                ip -n "$ns" link set eth1 up
                ip -n "$ns" addr add "10.78.$i.1/24" dev eth1
                HI_GATEWAYS+=("gw$i")
        done
        hi_node_add client 02:77:00:00:00:64 "$HI_NET4.100" "${HI_NET6}:100"
        for node in "${HI_GATEWAYS[@]}" client; do
                wait_until 5 node_has_carrier "$node" eth0 || die "lab_create: $node eth0 has no carrier"
        done
}

# lab_start N: lab_create N, then the holder of every node (gateways and
# client) started.
lab_start() {
        local node
        lab_create "$@"
        for node in "${HI_GATEWAYS[@]}" client; do
                node_start "$node"
        done
}

node_has_carrier() {
        [ "$(ip netns exec "$(ns_of "$1")" cat "/sys/class/net/$2/carrier" 2>/dev/null)" = 1 ]
}

# node_link NODE IFACE up|down: admin state of an interface.
node_link() {
        ip -n "$(ns_of "$1")" link set "$2" "$3"
}

# gw_carrier NODE on|off: make eth1 lose/regain carrier (its peer goes down),
# as a pulled cable does; eth1 itself stays administratively up.
gw_carrier() {
        local st=up
        [ "$2" = off ] && st=down
        ip -n "$(ns_of "$1")" link set eth1p "$st"
}

# gw_direct_link NODE1 NODE2 IFACE NET: a second link between two gateways,
# a veth named IFACE in both, NODE1 NET.1/24 and NODE2 NET.2/24 (NET is
# three octets, e.g. 10.79.0), up and with carrier. Removed with the
# namespaces.
gw_direct_link() {
        local a b
        a=$(ns_of "$1")
        b=$(ns_of "$2")
        ip -n "$a" link add "$3" type veth peer name "$3" netns "$b"
        ip -n "$a" addr add "$4.1/24" dev "$3"
        ip -n "$b" addr add "$4.2/24" dev "$3"
        ip -n "$a" link set "$3" up
        ip -n "$b" link set "$3" up
        wait_until 5 node_has_carrier "$1" "$3" || die "gw_direct_link: $1 $3 has no carrier"
}

# --------------------------------------------------------------- holders --

# node_start NODE: the node's holder, a process in the node's network
# namespace and in a private mount namespace with its own tmpfs on
# /run/hamgr and /var/run/wireguard (wireguard-go's UAPI sockets and hamgr's
# control socket are per mount namespace, not per netns).
node_start() {
        local node=$1 ns pid
        ns=$(ns_of "$node")
        [ -z "${HI_HOLDER[$node]:-}" ] || return 0
        mkdir -p /run/hamgr /var/run/wireguard
        # HI_HOLDER_SETSID=1 (lab.sh): the holder outlives the calling
        # terminal. setsid does not fork here: a background job of a
        # non-interactive shell is no process group leader.
        # Otherwise the holder dies with the test shell even when that is
        # SIGKILLed (a ctest timeout), where no trap runs.
        local wrap=(setpriv --pdeathsig KILL)
        [ -z "${HI_HOLDER_SETSID:-}" ] || wrap=(setsid)
        "${wrap[@]}" ip netns exec "$ns" unshare -m --propagation private \
                bash -c 'mount -t tmpfs -o mode=0755 hamgr-run /run/hamgr &&
                         mount -t tmpfs -o mode=0755 hamgr-wg /var/run/wireguard &&
                         exec sleep infinity' </dev/null >/dev/null 2>&1 &
        pid=$!
        disown "$pid" 2>/dev/null || true
        hi_track_pid "$pid"
        # Exec'ing sleep comes after both mounts: then the holder is ready.
        hi_wait_exec "$pid" sleep || die "node_start $node: holder did not come up"
        HI_PID_START[$pid]=$(hi_pid_starttime "$pid")
        HI_HOLDER[$node]=$pid
        HI_IS_HOLDER[$pid]=1
}

# Holder PID of NODE (empty if none).
node_holder() {
        printf '%s' "${HI_HOLDER[$1]:-}"
}

# node_exec NODE CMD...: run CMD in NODE (its holder's namespaces if started,
# else just its network namespace).
node_exec() {
        local node=$1
        shift
        local h=${HI_HOLDER[$node]:-}
        if [ -n "$h" ]; then
                nsenter -t "$h" -m -n --wd="$PWD" -- "$@"
        else
                ip netns exec "$(ns_of "$node")" "$@"
        fi
}

# node_spawn NODE LOGFILE CMD...: start CMD in the background in NODE with
# stdout+stderr to LOGFILE; its PID (CMD's own, verified through
# /proc/PID/cmdline) is in $HI_LAST_PID and tracked for cleanup.
# Extra environment: prefix the call, e.g. FOO=1 node_spawn gw1 log cmd.
node_spawn() {
        local node=$1 log=$2
        shift 2
        local h=${HI_HOLDER[$node]:-} pid daemon=0
        local asan=${ASAN_OPTIONS:-} ubsan=${UBSAN_OPTIONS:-}
        if [ -z "$h" ]; then
                node_start "$node"
                h=${HI_HOLDER[$node]}
        fi
        if hi_is_daemon_cmd "$@"; then
                # Reports to a file of their own (".PID" is appended), not
                # lost in or mixed with the daemon's log; the last log_path
                # in the options wins.
                daemon=1
                asan+="${asan:+:}log_path=$HI_TMP/$node.hamgr.sanitizer"
                ubsan+="${ubsan:+:}log_path=$HI_TMP/$node.hamgr.sanitizer"
        fi
        # SIGTERM on the test shell's death, as the trap would send.
        ASAN_OPTIONS=$asan UBSAN_OPTIONS=$ubsan \
                setpriv --pdeathsig TERM nsenter -t "$h" -m -n --wd="$PWD" -- "$@" </dev/null >>"$log" 2>&1 &
        pid=$!
        if [ "$daemon" = 1 ]; then
                # Stays this shell's child (no disown) so that wait gives its
                # exit status.
                HI_DAEMON_NODE[$pid]=$node
                HI_DAEMON_LOG[$pid]=$log
        else
                disown "$pid" 2>/dev/null || true
        fi
        HI_PIDS+=("$pid")
        HI_PID_START[$pid]=""
        HI_LAST_PID=$pid
        if hi_wait_exec "$pid" "$1"; then
                HI_PID_START[$pid]=$(hi_pid_starttime "$pid" || true)
        else
                hi_log "node_spawn $node: '$*' exited at once (see $log)"
        fi
        return 0
}

# ---------------------------------------------------------- observations --

# IPv4/IPv6 addresses (without prefix) on NODE's IFACE, one a line.
node_addrs() {
        ip -n "$(ns_of "$1")" -o addr show dev "${2:-eth0}" 2>/dev/null |
                awk '{ split($4, a, "/"); print a[1] }'
}

# vip_on NODE ADDR: ADDR is configured on NODE's eth0.
vip_on() {
        node_addrs "$1" eth0 | grep -qxF -- "$2"
}

# vip_owner ADDR: gateways holding ADDR on eth0, space separated ("" if none).
vip_owner() {
        local g out=()
        for g in "${HI_GATEWAYS[@]}"; do
                if vip_on "$g" "$1"; then
                        out+=("$g")
                fi
        done
        printf '%s' "${out[*]}"
}

# vip_owner_is ADDR NODE: exactly NODE holds ADDR (for wait_until/holds_for).
vip_owner_is() {
        [ "$(vip_owner "$1")" = "$2" ]
}

node_mac() {
        ip -n "$(ns_of "$1")" -o link show dev "${2:-eth0}" |
                sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p'
}

# neigh_mac NODE ADDR: the MAC NODE's neighbour table has for ADDR on eth0
# (empty if none), without sending anything.
neigh_mac() {
        ip -n "$(ns_of "$1")" neigh show "$2" dev eth0 |
                sed -n 's/.*lladdr \([0-9a-f:]*\).*/\1/p'
}

# arp_mac_for CLIENT ADDR: ping ADDR once from CLIENT, print the MAC the
# client's neighbour table then has for it.
arp_mac_for() {
        local node=$1 addr=$2
        node_exec "$node" ping -c 1 -W 1 "$addr" >/dev/null 2>&1 || true
        neigh_mac "$node" "$addr"
}

# link_local NODE: the IPv6 link-local address of NODE's eth0.
link_local() {
        ip -n "$(ns_of "$1")" -6 -o addr show dev eth0 scope link | awk '{ split($4, a, "/"); print a[1] }'
}

# ---------------------------------------------------------------- capture --

# capture_start NODE IFACE FILTER FILE: tcpdump -n -e -v in NODE, text to
# FILE (line buffered). Returns once tcpdump says it is listening.
capture_start() {
        local node=$1 iface=$2 filter=$3 file=$4 i
        : >"$file.err"
        : >"$file"
        local expr=()
        [ -z "$filter" ] || expr=("$filter")
        node_start "$node"
        setpriv --pdeathsig TERM nsenter -t "${HI_HOLDER[$node]}" -m -n -- \
                tcpdump --immediate-mode -Z root -n -e -l -U -v -i "$iface" "${expr[@]}" </dev/null >"$file" 2>"$file.err" &
        local pid=$!
        disown "$pid" 2>/dev/null || true
        HI_PIDS+=("$pid")
        HI_PID_START[$pid]=""
        hi_wait_exec "$pid" tcpdump || die "capture_start: tcpdump did not start: $(cat "$file.err")"
        HI_PID_START[$pid]=$(hi_pid_starttime "$pid" || true)
        HI_CAPTURE[$file]=$pid
        for ((i = 0; i < 200; i++)); do
                if grep -q 'listening on' "$file.err"; then
                        return 0
                fi
                hi_pid_alive "$pid" || break
                sleep 0.025
        done
        die "capture_start: tcpdump on $node/$iface not listening: $(cat "$file.err")"
}

# capture_stop [FILE]: stop one capture (or all) and let tcpdump flush.
capture_stop() {
        local f
        if [ $# -eq 0 ]; then
                for f in "${!HI_CAPTURE[@]}"; do
                        capture_stop "$f"
                done
                return 0
        fi
        f=$1
        [ -n "${HI_CAPTURE[$f]:-}" ] || return 0
        stop_pid "${HI_CAPTURE[$f]}" INT
        unset 'HI_CAPTURE[$f]'
}

# capture_records FILE: one line per packet (tcpdump -v continues a packet
# on indented lines; they are joined with a space).
capture_records() {
        awk '/^[ \t]/ { sub(/^[ \t]+/, ""); rec = rec " " $0; next }
             { if (rec != "") print rec; rec = $0 }
             END { if (rec != "") print rec }' "$1"
}

# capture_grep FILE STRING...: packets whose record has every fixed STRING.
capture_grep() {
        local file=$1
        shift
        local out
        out=$(capture_records "$file")
        local s
        for s in "$@"; do
                out=$(printf '%s\n' "$out" | grep -F -- "$s" || true)
        done
        [ -n "$out" ] && printf '%s\n' "$out"
        return 0
}

# capture_count FILE STRING...: how many packets match (see capture_grep).
capture_count() {
        capture_grep "$@" | grep -c . || true
}

# capture_has FILE STRING...: at least one packet matches (for wait_until).
capture_has() {
        [ "$(capture_count "$@")" -gt 0 ]
}

# ------------------------------------------------------------------ hamgr --

: "${HAMGR_SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
export HAMGR_SOURCE_DIR
HAMGR_NOTIFY_SCRIPT="$HAMGR_SOURCE_DIR/contrib/notify/notify-log.sh"

hamgr_log() {
        printf '%s/%s.hamgr.log' "$HI_TMP" "$1"
}

# Notify log the example script writes for NODE's hamgr.
hamgr_notify_log() {
        printf '%s/%s.notify.log' "$HI_TMP" "$1"
}

# hamgr_notify_read NODE: the notify records of NODE so far. hamgr passes
# HAMGR_NOTIFY_LOG through to the script unless it scrubs the environment;
# then the script writes the node's private /run/hamgr/notify.log.
hamgr_notify_read() {
        local f
        f=$(hamgr_notify_log "$1")
        if [ -e "$f" ]; then
                cat "$f"
        else
                node_exec "$1" cat /run/hamgr/notify.log 2>/dev/null || true
        fi
}

# hamgr_start NODE CONFIGFILE: "$HAMGR_BIN run -c CONFIGFILE" in NODE, output
# to $(hamgr_log NODE), PID in HAMGR_PID[NODE]. HAMGR_DEBUG=1 adds -d
# (debug messages: each poll's read and comparison times, for the benches).
hamgr_start() {
        local node=$1 conf=$2
        [ -n "${HAMGR_BIN:-}" ] || die "HAMGR_BIN is not set"
        HAMGR_NOTIFY_LOG=$(hamgr_notify_log "$node") \
                node_spawn "$node" "$(hamgr_log "$node")" "$HAMGR_BIN" run ${HAMGR_DEBUG:+-d} -c "$conf"
        HAMGR_PID[$node]=$HI_LAST_PID
}

# hamgr_hold_syscall NODE SYSCALL USEC TRACE: strace delays every SYSCALL of
# NODE's hamgr (all threads) by USEC from now on, its trace in TRACE, until
# hamgr_release_syscall or the end of that hamgr. A call at the worst
# moment of a protocol (a save's fsync(), say) made to last.
hamgr_hold_syscall() {
        strace -f -qq -o "$4" -p "${HAMGR_PID[$1]}" -e trace="$2" -e inject="$2:delay_enter=$3" &
        HI_STRACE_PID=$!
        HI_PIDS+=("$HI_STRACE_PID")
        sleep 1 # attached
}

# hamgr_release_syscall: strace stops holding (it detaches; a held call
# returns). Also after its hamgr ended, which ends strace by itself.
hamgr_release_syscall() {
        [ -n "${HI_STRACE_PID:-}" ] || return 0
        kill "$HI_STRACE_PID" 2>/dev/null || true
        wait "$HI_STRACE_PID" 2>/dev/null || true
        HI_STRACE_PID=
}

# hamgr_stop NODE [SIGNAL]: signal NODE's hamgr (TERM by default), wait.
hamgr_stop() {
        local node=$1 sig=${2:-TERM}
        [ -n "${HAMGR_PID[$node]:-}" ] || return 0
        stop_pid "${HAMGR_PID[$node]}" "$sig"
        unset 'HAMGR_PID[$node]'
}

hamgr_alive() {
        [ -n "${HAMGR_PID[$1]:-}" ] && hi_pid_alive "${HAMGR_PID[$1]}"
}

# hamgr_status NODE [SOCKET]: status JSON from NODE's hamgr. Status 1 (an
# instance in FAULT) still printed the status: only other failures fail,
# and only their messages reach stderr.
hamgr_status() {
        local rc=0 err
        { err=$(node_exec "$1" "$HAMGR_BIN" status --json -s "${2:-/run/hamgr/control.sock}" 2>&1 1>&3) || rc=$?; } 3>&1
        [ "$rc" -eq 0 ] || [ "$rc" -eq 1 ] || { printf '%s\n' "$err" >&2; return "$rc"; }
}

# hamgr_state NODE INSTANCE: that instance's state (MASTER, BACKUP, ...).
hamgr_state() {
        hamgr_status "$1" | jq -er --arg n "$2" '.instances[] | select(.name == $n) | .state'
}

# hamgr_state_is NODE INSTANCE STATE (for wait_until).
hamgr_state_is() {
        [ "$(hamgr_state "$1" "$2" 2>/dev/null)" = "$3" ]
}

# states_are S1 S2: instance "wan" is in S1 on gw1 and in S2 on gw2.
states_are() {
        hamgr_state_is gw1 wan "$1" && hamgr_state_is gw2 wan "$2"
}

# inst_field NODE INSTANCE JQ: a field of that instance in NODE's status,
# e.g. inst_field gw1 wan .counters.transitions. Fails on null or false.
inst_field() {
        hamgr_status "$1" | jq -er --arg n "$2" ".instances[] | select(.name == \$n) | $3"
}

# inst_field_is NODE INSTANCE JQ VALUE (for wait_until).
inst_field_is() {
        [ "$(inst_field "$1" "$2" "$3" 2>/dev/null)" = "$4" ]
}

# transition_at_ms NODE INSTANCE: wall time (ms) of the instance's last
# state change, from status' ago_ms: independent of how late one polled.
transition_at_ms() {
        local ago now
        now=$(hi_now_ms)
        ago=$(inst_field "$1" "$2" .last_transition.ago_ms) || return 1
        echo $((now - ago))
}

# hamgr_log_count NODE STRING: lines of NODE's hamgr log containing STRING.
hamgr_log_count() {
        grep -cF -- "$2" "$(hamgr_log "$1")" 2>/dev/null || true
}

# hamgr_notify_count NODE STRING: notify records of NODE containing STRING.
hamgr_notify_count() {
        hamgr_notify_read "$1" | grep -cF -- "$2" || true
}

# conf_of NODE: the usual place of NODE's config file.
conf_of() {
        printf '%s/%s.conf' "$HI_TMP" "$1"
}

# crash_node NODE [ADDR/PREFIX...]: NODE "dies": its hamgr is SIGKILLed and
# its cable pulled; the addresses given (what the crashed daemon left on
# eth0) are removed, as a reboot would.
crash_node() {
        local node=$1 a
        shift
        hamgr_stop "$node" KILL
        node_link "$node" eth0 down
        for a in "$@"; do
                ip -n "$(ns_of "$node")" addr del "$a" dev eth0 2>/dev/null || true
        done
}

# revive_node NODE: cable back in after crash_node, with the node's own
# IPv6 address (gone with the link), and wait for carrier.
revive_node() {
        local node=$1 a6
        a6="${HI_NET6}:$(printf '%x' "${node#gw}")"
        node_link "$node" eth0 up
        if ! node_addrs "$node" eth0 | grep -qxF "$a6"; then
                ip -n "$(ns_of "$node")" addr add "$a6/64" dev eth0 nodad
        fi
        wait_until 5 node_has_carrier "$node" eth0 || die "$node eth0 has no carrier"
}

# write_hamgr_conf FILE NODE PRIORITY [EXTRA]: one VRRP instance config.
# Override by prefixing variables to the call, e.g.
#   HC_VRID=52 HC_VIPS='"10.77.0.20/24", "fd77::20/64"' write_hamgr_conf ...
# HC_INSTANCE HC_IFACE HC_VRID HC_VERSION HC_INTERVAL_MS HC_PREEMPT
# HC_VIPS HC_TRACK HC_UNICAST_PEERS (empty: multicast) HC_CHECKSUM
# HC_INSTANCE_EXTRA (lines inside the instance group) HC_NOTIFY_SCRIPT
# (empty: no notify section) HC_NOTIFY_TIMEOUT_MS HC_SOCKET HC_STATE_DIR.
# EXTRA is appended at top level (more instances, groups...).
write_hamgr_conf() {
        local file=$1 node=$2 prio=$3 extra=${4:-}
        local instance=${HC_INSTANCE:-wan} iface=${HC_IFACE:-eth0} vrid=${HC_VRID:-51}
        local version=${HC_VERSION:-3} interval=${HC_INTERVAL_MS:-100}
        local preempt=${HC_PREEMPT:-true} vips=${HC_VIPS:-'"10.77.0.10/24"'}
        local track=${HC_TRACK-'"eth1"'} peers=${HC_UNICAST_PEERS:-}
        local socket=${HC_SOCKET:-/run/hamgr/control.sock}
        local state_dir=${HC_STATE_DIR:-$HI_TMP/$node.state}
        local script=${HC_NOTIFY_SCRIPT-$HAMGR_NOTIFY_SCRIPT}
        local opt=""
        mkdir -p "$state_dir"
        if [ -n "$peers" ]; then
                opt+="    unicast_peers = [ $peers ];"$'\n'
        fi
        if [ -n "${HC_CHECKSUM:-}" ]; then
                opt+="    checksum = \"$HC_CHECKSUM\";"$'\n'
        fi
        if [ -n "$track" ]; then
                opt+="    track_interfaces = [ $track ];"$'\n'
        fi
        if [ -n "${HC_INSTANCE_EXTRA:-}" ]; then
                opt+="    $HC_INSTANCE_EXTRA"$'\n'
        fi
        {
                cat <<EOF
node = {
    name = "$node";
    state_dir = "$state_dir";
    control_socket = "$socket";
};

vrrp = (
  {
    name = "$instance";
    interface = "$iface";
    vrid = $vrid;
    priority = $prio;
    version = $version;
    advert_interval_ms = $interval;
    preempt = $preempt;
    virtual_ips = [ $vips ];
${opt}  }
);
EOF
                if [ -n "$script" ]; then
                        cat <<EOF

notify = {
    script = "$script";
    timeout_ms = ${HC_NOTIFY_TIMEOUT_MS:-5000};
};
EOF
                fi
                if [ -n "$extra" ]; then
                        printf '\n%s\n' "$extra"
                fi
        } >"$file"
}

# ------------------------------------------------------------- keepalived --

keepalived_log() {
        printf '%s/%s.keepalived.log' "$HI_TMP" "$1"
}

# write_keepalived_conf FILE PRIORITY VERSION VIP [PEER...]: one instance,
# interface eth0, vrid 51, advert_int 1, multicast unless peers are given
# (then KC_UNICAST_SRC is required). Overrides: KC_IFACE KC_VRID
# KC_ADVERT_INT KC_NOPREEMPT=1 KC_UNICAST_SRC KC_EXTRA (instance lines)
# KC_VIPS (several lines, replaces VIP).
write_keepalived_conf() {
        local file=$1 prio=$2 version=$3 vip=$4
        shift 4
        local peers="" p extra=""
        if [ $# -gt 0 ]; then
                [ -n "${KC_UNICAST_SRC:-}" ] || die "write_keepalived_conf: unicast peers need KC_UNICAST_SRC"
                extra+="    unicast_src_ip $KC_UNICAST_SRC"$'\n'
                for p in "$@"; do
                        peers+="        $p"$'\n'
                done
                extra+="    unicast_peer {"$'\n'"$peers    }"$'\n'
        fi
        if [ "${KC_NOPREEMPT:-0}" = 1 ]; then
                extra+="    nopreempt"$'\n'
        fi
        if [ -n "${KC_EXTRA:-}" ]; then
                extra+="    $KC_EXTRA"$'\n'
        fi
        cat >"$file" <<EOF
global_defs {
    script_user root
    enable_script_security
    vrrp_version $version
    vrrp_garp_master_delay 1
    vrrp_garp_master_repeat 3
}

vrrp_instance VI_1 {
    state BACKUP
    interface ${KC_IFACE:-eth0}
    virtual_router_id ${KC_VRID:-51}
    priority $prio
    advert_int ${KC_ADVERT_INT:-1}
${extra}    virtual_ipaddress {
        ${KC_VIPS:-$vip}
    }
}
EOF
}

# keepalived_start NODE CONF: keepalived in NODE's holder, in the foreground
# (-n); KEEPALIVED_PID[NODE] is the parent, which forks the VRRP child.
keepalived_start() {
        local node=$1 conf=$2
        node_spawn "$node" "$(keepalived_log "$node")" keepalived -n -l -D -G -P \
                -f "$conf" -p "$HI_TMP/$node.keepalived.pid" -r "$HI_TMP/$node.keepalived_vrrp.pid"
        KEEPALIVED_PID[$node]=$HI_LAST_PID
        hi_pid_alive "$HI_LAST_PID" || die "keepalived on $node died at start: $(tail -n 20 "$(keepalived_log "$node")")"
}

# PID of NODE's keepalived VRRP child (empty if unknown).
keepalived_child() {
        local f="$HI_TMP/$1.keepalived_vrrp.pid" pid
        pid=$(cat "$f" 2>/dev/null) || return 0
        [ -n "$pid" ] && [ "$(hi_pid_argv0 "$pid")" = keepalived ] && printf '%s' "$pid"
}

# keepalived_stop NODE: SIGTERM the parent; it takes the child down (the
# child leaves MASTER with a priority-0 advert and removes the VIPs).
keepalived_stop() {
        local node=$1 child
        [ -n "${KEEPALIVED_PID[$node]:-}" ] || return 0
        child=$(keepalived_child "$node")
        stop_pid "${KEEPALIVED_PID[$node]}" TERM || die "keepalived on $node survived SIGKILL"
        if [ -n "$child" ] && ! hi_wait_gone "$child" 5; then
                die "keepalived VRRP child $child on $node outlived its parent"
        fi
        unset 'KEEPALIVED_PID[$node]'
}

# keepalived_crash NODE: SIGKILL parent and child, with the parent stopped
# first so it neither respawns the child nor lets the child see its death:
# no goodbye advert, VIPs stay on the interface like after a real crash.
keepalived_crash() {
        local node=$1 parent child
        parent=${KEEPALIVED_PID[$node]:-}
        [ -n "$parent" ] || die "keepalived_crash: no keepalived on $node"
        child=$(keepalived_child "$node")
        [ -n "$child" ] || die "keepalived_crash: no VRRP child pid for $node"
        kill -s STOP "$parent"
        kill -s KILL "$child"
        kill -s KILL "$parent"
        hi_wait_gone "$child" 5 || die "keepalived child $child on $node survived SIGKILL"
        hi_wait_gone "$parent" 5 || die "keepalived $parent on $node survived SIGKILL"
        unset 'KEEPALIVED_PID[$node]'
}

# Number of lines in NODE's keepalived log matching a fixed string.
keepalived_count() {
        grep -cF -- "$2" "$(keepalived_log "$1")" 2>/dev/null || true
}

# ---------------------------------------------------------------- cleanup --

hi_dump_logs() {
        local f
        [ -n "$HI_TMP" ] && [ -d "$HI_TMP" ] || return 0
        for f in "$HI_TMP"/*.log; do
                [ -s "$f" ] || continue
                printf -- '---- %s (last 40 lines, each cut at 400 characters) ----\n' "${f##*/}"
                tail -n 40 "$f" | cut -c1-400
        done
}

# The failures again, after the logs: a CI excerpt that keeps only the
# start and the end of the output still shows what failed.
hi_print_failures() {
        [ ${#HI_FAIL_MSGS[@]} -gt 0 ] || return 0
        printf -- '---- failed (%d) ----\n' "${#HI_FAIL_MSGS[@]}"
        printf 'FAIL: %s\n' "${HI_FAIL_MSGS[@]}"
}

hi_cleanup() {
        local status=$1 i pid ns p
        [ "$HI_CLEANED" = 0 ] || return 0
        HI_CLEANED=1
        set +e
        if [ "$HI_FINISHED" = 0 ]; then
                hi_check_daemons
                if [ "$status" -ne 0 ]; then
                        HI_FAILED=$((HI_FAILED + 1))
                        HI_FAIL_MSGS+=("test aborted (exit status $status)")
                        printf 'FAIL: test aborted (exit status %s)\n' "$status"
                fi
                if [ "$status" -ne 0 ] || [ "$HI_FAILED" -gt 0 ]; then
                        printf '%d passed, %d failed\n' "$HI_PASSED" "$HI_FAILED"
                fi
        fi
        if [ "$HI_FAILED" -gt 0 ]; then
                hi_dump_logs
                hi_print_failures
        fi
        # Workers first (newest first), the holders they run in last.
        for ((i = ${#HI_PIDS[@]} - 1; i >= 0; i--)); do
                pid=${HI_PIDS[$i]}
                [ -n "${HI_IS_HOLDER[$pid]:-}" ] && continue
                hi_pid_alive "$pid" && kill -s TERM "$pid" 2>/dev/null
        done
        for pid in "${HI_PIDS[@]}"; do
                [ -n "${HI_IS_HOLDER[$pid]:-}" ] && continue
                stop_pid "$pid" TERM
        done
        for pid in "${HI_PIDS[@]}"; do
                stop_pid "$pid" KILL
        done
        # Anything still inside our namespaces was started by this test
        # (e.g. a daemon's own children).
        for ns in "${HI_NETNS[@]}"; do
                for p in $(ip netns pids "$ns" 2>/dev/null); do
                        kill -s KILL "$p" 2>/dev/null
                done
        done
        for ((i = ${#HI_NETNS[@]} - 1; i >= 0; i--)); do
                ip netns del "${HI_NETNS[$i]}" 2>/dev/null
        done
        if [ -n "$HI_TMP" ] && [ -d "$HI_TMP" ]; then
                if [ "$HI_KEEP_TMP" = 1 ]; then
                        hi_log "keeping $HI_TMP"
                else
                        rm -rf -- "$HI_TMP"
                fi
        fi
        # A script that ended without finish, with status 0, but whose
        # daemons ended badly.
        if [ "$HI_FINISHED" = 0 ] && [ "$status" -eq 0 ] && [ "$HI_FAILED" -gt 0 ]; then
                exit 1
        fi
}

# Forget everything (lab.sh up: the lab outlives the script).
hi_disown_all() {
        HI_PIDS=()
        HI_DAEMON_NODE=()
        HI_NETNS=()
        HI_CAPTURE=()
}

# Namespaces left by earlier runs that were SIGKILLed (no trap ran): named
# hi<PID>-*, their shell PID gone, and nothing running inside any more.
hi_reap_stale() {
        local ns owner
        for ns in $(ip netns list 2>/dev/null | awk '{ print $1 }' | grep -E '^hi[0-9]+-' || true); do
                owner=${ns%%-*}
                owner=${owner#hi}
                [ "$owner" != "$$" ] || continue
                kill -0 "$owner" 2>/dev/null && continue
                [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] || continue
                ip netns del "$ns" 2>/dev/null || true
        done
}

hi_init() {
        hi_reap_stale
        HI_TMP=$(mktemp -d "${TMPDIR:-/tmp}/hamgr-it.XXXXXX")
        trap 'hi_cleanup $?' EXIT
        trap 'hi_cleanup 130; trap - EXIT; exit 130' INT
        trap 'hi_cleanup 143; trap - EXIT; exit 143' TERM
}

hi_init

# pid_gone_at_ms PID [TIMEOUT_S]: poll every 10 ms until PID has exited (a
# zombie counts as exited) and print the wall time (ms, like hi_now_ms) it
# was first seen gone. Returns 1 if it is still there after TIMEOUT_S (5).
pid_gone_at_ms() {
        local pid=$1 deadline=$(($(hi_now_ms) + ${2:-5} * 1000)) st
        while true; do
                st=$(cat "/proc/$pid/stat" 2>/dev/null) || break
                st=${st##*) }
                [ "${st%% *}" != Z ] || break
                [ "$(hi_now_ms)" -lt "$deadline" ] || return 1
                sleep 0.01
        done
        hi_now_ms
}
