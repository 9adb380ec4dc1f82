#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The hamgr command line, and the daemon's life cycle as seen from it:
#  - "hamgr version" prints the project version, exit 0;
#  - an unknown command, an unknown option, an option of another command
#    and a missing option argument: usage on stderr, nothing on stdout,
#    a short usage (not the whole help), exit 2;
#  - "hamgr check": the sample etc/hamgr.conf passes (exit 0); a file with
#    several errors gets one "FILE:LINE: message" per error (bad vrid,
#    unknown key, bad address, each at its own line) and exit 1; a syntax
#    error names its line; a missing file exits 1 with a message; an IPv6
#    instance whose first virtual IP is not link-local gets a
#    "FILE:LINE: warning:" and the check still exits 0;
#  - "hamgr status" without a daemon: exit 3 and a message naming the
#    socket; with a daemon (one gateway, alternative control socket): the
#    text lists the instance and its state, --json parses with jq, both
#    "-s PATH" and "-c FILE" (node.control_socket) reach it, while the
#    default socket path does not; the socket is srw-------;
#  - "hamgr check" prints exactly "FILE: OK (N VRRP instances, M groups)"
#    (singular for 1) for files with known counts, and that form for the
#    sample;
#  - without a sync section "peers" is empty (the header line, or [] with
#    --json), and a refused "peer add" prints the daemon's reason on stderr
#    as "hamgr peer add: REASON" and exits 1;
#  - SIGHUP with one instance added: it starts (MASTER, its VIP up) while
#    the other keeps its state; with it removed again: it stops as on
#    SIGTERM (a priority-0 advert for its vrid, its VIP removed, logged
#    MASTER -> STOP) and the other still has no transition;
#  - SIGTERM: the daemon exits 0 and removes its socket; SIGINT does the
#    same as SIGTERM: priority-0 advert, VIP released, exit 0, socket gone.
# Needs HAMGR_BIN.
# shellcheck disable=SC2317 # small predicates run through wait_until
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_hamgr
require_cmd stat

OUT=""
ERR=""
RC=0

# run CMD...: run CMD, keep its stdout in OUT, stderr in ERR, status in RC.
run() {
        local o="$HI_TMP/run.out" e="$HI_TMP/run.err"
        RC=0
        "$@" >"$o" 2>"$e" || RC=$?
        OUT=$(cat "$o")
        ERR=$(cat "$e")
}

err_matches() {
        printf '%s\n' "$ERR" | grep -qE -- "$1"
}

out_matches() {
        printf '%s\n' "$OUT" | grep -qE -- "$1"
}

out_is_json() {
        printf '%s' "$OUT" | jq -e . >/dev/null
}

# usage_error DESCRIPTION ARGS...: hamgr ARGS is a usage error.
usage_error() {
        local what=$1
        shift
        run "$HAMGR_BIN" "$@"
        assert_eq "$RC" 2 "$what: exit status"
        assert_contains "$ERR" "Usage: hamgr" "$what: short usage on stderr"
        assert_false "$what: not the whole help" err_matches "^Commands:"
        assert_eq "$OUT" "" "$what: nothing on stdout"
}

# line_of FILE TEXT: number of the first line of FILE containing TEXT.
line_of() {
        grep -nF -- "$2" "$1" | head -n 1 | cut -d: -f1
}

# -------------------------------------------------------------- version
run "$HAMGR_BIN" version
want_version=$(sed -n 's/^project(hamgr VERSION \([0-9.]*\).*/\1/p' "$HAMGR_SOURCE_DIR/CMakeLists.txt")
[ -n "$want_version" ] || die "no project version in $HAMGR_SOURCE_DIR/CMakeLists.txt"
assert_eq "$RC" 0 "version: exit status"
assert_eq "$OUT" "hamgr $want_version" "version: output"
assert_eq "$ERR" "" "version: nothing on stderr"

# ---------------------------------------------------------------- usage
usage_error "unknown command" frobnicate
usage_error "no command"
usage_error "unknown option" status --bogus
usage_error "unknown short option" check -x
usage_error "option of another command" version --json
usage_error "missing option argument" status -s
usage_error "stray argument" check extra
run "$HAMGR_BIN" --help
assert_eq "$RC:$ERR" "0:" "--help: exit 0, nothing on stderr"
assert_contains "$OUT" "Usage: hamgr [OPTIONS] COMMAND" "--help: usage on stdout"

# ---------------------------------------------------------------- check
run "$HAMGR_BIN" check -c "$HAMGR_SOURCE_DIR/etc/hamgr.conf"
assert_eq "$RC" 0 "check etc/hamgr.conf: exit status"
assert_true "check etc/hamgr.conf: one line 'FILE: OK (N VRRP instance(s), M group(s))'" \
        out_matches "^${HAMGR_SOURCE_DIR//./\\.}/etc/hamgr\\.conf: OK \\((1 VRRP instance|[02-9][0-9]* VRRP instances|[1-9][0-9]+ VRRP instances), (1 group|[02-9][0-9]* groups|[1-9][0-9]+ groups)\\)\$"
assert_eq "$(printf '%s\n' "$OUT" | wc -l)" 1 "check etc/hamgr.conf: exactly one line"
assert_eq "$ERR" "" "check etc/hamgr.conf: no errors"

# Known counts: 1 instance and no group; 3 instances and 1 group.
ONE="$HI_TMP/one.conf"
HC_NOTIFY_SCRIPT="" HC_STATE_DIR="$HI_TMP/one.state" write_hamgr_conf "$ONE" gw1 100
run "$HAMGR_BIN" check -c "$ONE"
assert_eq "$RC:$OUT" "0:$ONE: OK (1 VRRP instance, 0 groups)" "check one.conf: exact OK line"
THREE="$HI_TMP/three.conf"
more_instances() {
        local name vrid
        for name in lan:52 dmz:53; do
                vrid=${name#*:}
                printf '{ name = "%s"; interface = "eth1"; vrid = %s; priority = 100; virtual_ips = [ "10.78.1.%s/24" ]; },\n' \
                        "${name%%:*}" "$vrid" "$vrid"
        done
}
HC_NOTIFY_SCRIPT="" HC_STATE_DIR="$HI_TMP/three.state" write_hamgr_conf "$THREE" gw1 100 \
        'groups = ( { name = "gateway"; instances = [ "wan", "lan" ]; } );'
# Two more instances into the vrrp list.
awk -v more="$(more_instances)" '/^vrrp = \($/ { print; print more; next } { print }' "$THREE" >"$THREE.new"
mv "$THREE.new" "$THREE"
run "$HAMGR_BIN" check -c "$THREE"
assert_eq "$RC:$OUT" "0:$THREE: OK (3 VRRP instances, 1 group)" "check three.conf: exact OK line"

BAD="$HI_TMP/broken.conf"
cat >"$BAD" <<'EOF'
# three mistakes, each on its own line
node = {
    name = "gw1";
};

vrrp = (
  {
    name = "wan";
    interface = "eth0";
    vrid = 300;
    priority = 100;
    virtual_ips = [ "10.77.0.10/24" ];
    colour = "blue";
  },
  {
    name = "lan";
    interface = "eth1";
    vrid = 52;
    virtual_ips = [ "10.78.1.300/24" ];
  }
);
EOF
L_VRID=$(line_of "$BAD" "vrid = 300")
L_KEY=$(line_of "$BAD" "colour")
L_VIP=$(line_of "$BAD" "10.78.1.300")
run "$HAMGR_BIN" check -c "$BAD"
assert_eq "$RC" 1 "check broken.conf: exit status"
assert_eq "$OUT" "" "check broken.conf: no OK on stdout"
printf '%s\n' "$ERR" | sed 's/^/    stderr: /'
assert_true "check broken.conf: line $L_VRID names the bad vrid" \
        err_matches "^$BAD:$L_VRID: .*vrid"
assert_true "check broken.conf: line $L_KEY names the unknown key" \
        err_matches "^$BAD:$L_KEY: .*colour"
assert_true "check broken.conf: line $L_VIP names the bad address" \
        err_matches "^$BAD:$L_VIP: .*10\.78\.1\.300"
assert_eq "$(printf '%s\n' "$ERR" | grep -cE "^$BAD:[0-9]+: " || true)" 3 \
        "check broken.conf: exactly one FILE:LINE line per error"

SYNTAX="$HI_TMP/syntax.conf"
printf 'node = {\n    name = "gw1";\n    state_dir = ;\n};\n' >"$SYNTAX"
run "$HAMGR_BIN" check -c "$SYNTAX"
assert_eq "$RC" 1 "check syntax error: exit status"
assert_true "check syntax error: FILE:LINE: message" \
        err_matches "^$SYNTAX:3: ."

# An IPv6 instance whose first virtual IP is not link-local: a warning at
# the instance's line, and the check still passes.
WARN="$HI_TMP/v6-global-first.conf"
cat >"$WARN" <<'EOF'
vrrp = (
  { name = "v6ll"; interface = "eth0"; vrid = 60; virtual_ips = [ "fe80::60/64", "fd77::60/64" ]; },
  { name = "v6global";
    interface = "eth0"; vrid = 61; virtual_ips = [ "fd77::61/64", "fe80::61/64" ]; }
);
EOF
L_GLOBAL=$(line_of "$WARN" "v6global")
run "$HAMGR_BIN" check -c "$WARN"
printf '%s\n' "$ERR" | sed 's/^/    stderr: /'
assert_eq "$RC" 0 "check v6-global-first.conf: a warning does not fail the check"
assert_contains "$OUT" "OK" "check v6-global-first.conf: says OK"
assert_true "check v6-global-first.conf: line $L_GLOBAL warns about fd77::61" \
        err_matches "^$WARN:$L_GLOBAL: warning: .*'v6global'.*fd77::61 is not link-local"
assert_eq "$(printf '%s\n' "$ERR" | grep -c "warning:" || true)" 1 \
        "check v6-global-first.conf: one warning (none for the instance listing fe80::60 first)"

run "$HAMGR_BIN" check -c "$HI_TMP/does-not-exist.conf"
assert_eq "$RC" 1 "check missing file: exit status"
assert_contains "$ERR" "$HI_TMP/does-not-exist.conf" "check missing file: message names the file"
assert_contains "$ERR" "No such file" "check missing file: message says why"

# ------------------------------------------------- status, no daemon
run "$HAMGR_BIN" status -s "$HI_TMP/nothing.sock"
assert_eq "$RC" 3 "status without daemon: exit status 3 (unreachable)"
assert_contains "$ERR" "cannot reach the daemon at $HI_TMP/nothing.sock" "status without daemon: message"
assert_eq "$OUT" "" "status without daemon: nothing on stdout"
run "$HAMGR_BIN" status --json -s "$HI_TMP/nothing.sock"
assert_eq "$RC" 3 "status --json without daemon: exit status 3 (unreachable)"

# ---------------------------------------------------- with a daemon
lab_create 1
node_start gw1
SOCK=/run/hamgr/alt.sock
CONF="$HI_TMP/gw1.conf"
HC_SOCKET=$SOCK HC_NOTIFY_SCRIPT="" write_hamgr_conf "$CONF" gw1 150
DLOG=$(hamgr_log gw1)
CAP="$HI_TMP/adverts.cap"
capture_start client eth0 "ip proto 112" "$CAP"
# Started here rather than with hamgr_start: this shell must be its parent
# to collect the exit status.
start_daemon() {
        nsenter -t "$(node_holder gw1)" -m -n -- "$HAMGR_BIN" run -c "$CONF" </dev/null >>"$DLOG" 2>&1 &
        DPID=$!
        hi_track_pid "$DPID"
        hi_wait_exec "$DPID" "$HAMGR_BIN" || die "hamgr did not start: $(cat "$DLOG")"
        HI_PID_START[$DPID]=$(hi_pid_starttime "$DPID")
}
start_daemon

status_says_master() {
        node_exec gw1 "$HAMGR_BIN" status --json -s "$SOCK" | jq -e '.instances[0].state == "MASTER"'
}
wait_until 10 status_says_master || die "gw1 did not become MASTER: $(cat "$DLOG")"

run node_exec gw1 "$HAMGR_BIN" status -s "$SOCK"
assert_eq "$RC" 0 "status -s: exit status"
assert_true "status -s: text lists instance wan as MASTER on eth0, vrid 51" \
        out_matches "^wan +eth0 +51 +MASTER +150 "
assert_contains "$OUT" "node gw1" "status -s: names the node"

run node_exec gw1 "$HAMGR_BIN" status --json -s "$SOCK"
assert_eq "$RC" 0 "status --json: exit status"
assert_true "status --json: parses with jq" out_is_json
assert_eq "$(printf '%s' "$OUT" | jq -r '[.node, (.instances | length), .instances[0].name, .instances[0].state, .instances[0].vrid] | join(" ")')" \
        "gw1 1 wan MASTER 51" "status --json: node, instance, state, vrid"
assert_eq "$(printf '%s' "$OUT" | jq -r '.pid')" "$DPID" "status --json: pid is the daemon's"

# node.control_socket from the config, without -s.
run node_exec gw1 "$HAMGR_BIN" status --json -c "$CONF"
assert_eq "$RC" 0 "status -c: node.control_socket honoured"
assert_eq "$(printf '%s' "$OUT" | jq -r '.instances[0].state')" MASTER "status -c: state"
# The default socket is not where this daemon listens.
run node_exec gw1 "$HAMGR_BIN" status -s /run/hamgr/control.sock
assert_eq "$RC" 3 "status on the default socket: no daemon there"

run node_exec gw1 stat -c '%A %U' "$SOCK"
assert_eq "$OUT" "srw------- root" "control socket mode"

# ------------------------------------------------ peers without sync
run node_exec gw1 "$HAMGR_BIN" peers --json -s "$SOCK"
assert_eq "$RC:$OUT" "0:[]" "peers --json without sync: an empty array"
run node_exec gw1 "$HAMGR_BIN" peers -s "$SOCK"
assert_eq "$RC" 0 "peers without sync: exit status"
assert_eq "$(printf '%s\n' "$OUT" | wc -l)" 1 "peers without sync: the header line only"
assert_true "peers without sync: the header" out_matches "^INTERFACE +PUBLIC KEY +STATE +ORIGIN +ON EVERY NODE\$"
KEY=$("$HAMGR_BIN" genkey | "$HAMGR_BIN" pubkey)
run node_exec gw1 "$HAMGR_BIN" peer add wg0 "$KEY" --allowed-ips 10.99.0.2/32 -s "$SOCK"
assert_eq "$RC" 1 "peer add refused: exit status"
assert_eq "$ERR" "hamgr peer add: wg0 is not in the wireguard section of the configuration" \
        "peer add refused: the daemon's reason on stderr"
assert_eq "$OUT" "" "peer add refused: nothing on stdout"

# ------------------------------------------------ SIGHUP: add, then remove
# adverts_for VRID PRIO: adverts captured for VRID with priority PRIO.
adverts_for() {
        capture_count "$CAP" "10.77.0.1 > 224.0.0.18:" "vrid $1, prio $2,"
}
vip_is_on() {
        vip_on gw1 "$1"
}
wan_transitions() {
        node_exec gw1 "$HAMGR_BIN" status --json -s "$SOCK" | jq -er '.instances[] | select(.name == "wan") | .counters.transitions'
}
state_of() {
        node_exec gw1 "$HAMGR_BIN" status --json -s "$SOCK" | jq -er --arg n "$1" '.instances[] | select(.name == $n) | .state'
}
state_of_is() {
        [ "$(state_of "$1" 2>/dev/null)" = "$2" ]
}
tr0=$(wan_transitions)
cp "$CONF" "$CONF.one"
awk '/^vrrp = \($/ { print; print "{ name = \"extra\"; interface = \"eth0\"; vrid = 52; priority = 150; advert_interval_ms = 100; virtual_ips = [ \"10.77.0.20/24\" ]; },"; next } { print }' \
        "$CONF.one" >"$CONF"
"$HAMGR_BIN" check -c "$CONF" >/dev/null || die "extra instance config: $("$HAMGR_BIN" check -c "$CONF" 2>&1)"
kill -HUP "$DPID"
assert_true "SIGHUP, instance added: it starts and becomes MASTER" wait_until 5 state_of_is extra MASTER
assert_true "SIGHUP, instance added: its VIP is up" wait_until 3 vip_is_on 10.77.0.20
assert_true "SIGHUP, instance added: it advertises vrid 52" wait_until 3 capture_has "$CAP" "vrid 52, prio 150,"
assert_eq "$(state_of wan):$(wan_transitions)" "MASTER:$tr0" "SIGHUP, instance added: wan kept its state, no transition"
cp "$CONF.one" "$CONF"
p0=$(adverts_for 52 0)
kill -HUP "$DPID"
no_extra() {
        node_exec gw1 "$HAMGR_BIN" status --json -s "$SOCK" | jq -e '[.instances[].name] == ["wan"]'
}
assert_true "SIGHUP, instance removed: status lists wan only" wait_until 5 no_extra
assert_true "SIGHUP, instance removed: its VIP is removed" wait_until 3 eval '! vip_is_on 10.77.0.20'
prio0_more() {
        [ "$(adverts_for 52 0)" -gt "$p0" ]
}
assert_true "SIGHUP, instance removed: a priority-0 advert for vrid 52, as on SIGTERM" wait_until 3 prio0_more
assert_contains "$(cat "$DLOG")" "extra: MASTER -> STOP" "SIGHUP, instance removed: logged its stop"
assert_eq "$(state_of wan):$(wan_transitions)" "MASTER:$tr0" "SIGHUP, instance removed: wan kept its state, no transition"
assert_eq "$(adverts_for 51 0)" 0 "SIGHUP: no priority-0 advert for wan"
assert_true "SIGHUP: daemon still running" hi_pid_alive "$DPID"

# stop_daemon SIGNAL: signal the daemon, check it gives up MASTER as
# hamgr(8) says for SIGTERM and SIGINT.
stop_daemon() {
        local sig=$1 rc=0 p0
        p0=$(adverts_for 51 0)
        kill -s "$sig" "$DPID"
        wait "$DPID" || rc=$?
        assert_eq "$rc" 0 "$sig: daemon exit status"
        assert_false "$sig: socket removed" node_exec gw1 test -e "$SOCK"
        assert_contains "$(cat "$DLOG")" "stopped" "$sig: daemon logged its stop"
        assert_contains "$(cat "$DLOG")" "wan: MASTER -> STOP (shutdown)" "$sig: wan logged MASTER -> STOP"
        assert_false "$sig: VIP released" vip_on gw1 10.77.0.10
        wait_until 2 test "$(adverts_for 51 0)" -gt "$p0" || true
        assert_eq "$(($(adverts_for 51 0) - p0))" 1 "$sig: one priority-0 advert for vrid 51"
}
stop_daemon TERM
run node_exec gw1 "$HAMGR_BIN" status -c "$CONF"
assert_eq "$RC" 3 "status after stop: exit status"
assert_contains "$ERR" "cannot reach the daemon at $SOCK" "status after stop: message"

# SIGINT does what SIGTERM does.
: >"$DLOG"
start_daemon
wait_until 10 status_says_master || die "gw1 did not become MASTER again: $(cat "$DLOG")"
stop_daemon INT

finish
