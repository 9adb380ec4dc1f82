#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# "hamgr check" as ExecStartPre=, and the command line around it:
#  - a configuration path that is a FIFO or a device is refused at once
#    (no hang, exit 1, says what it is); "-c -" reads standard input
#    ("<stdin>:LINE:" in messages) and is refused for run (exit 2);
#  - options before or after the command, --config=FILE, "help COMMAND"
#    and "COMMAND --help", --version; a usage error prints a short usage;
#  - check finds in one pass what run would refuse or ignore: VIPs that
#    cannot be right, a peer that is our VIP, notify with arguments,
#    sync.listen on a VIP (errors, FILE:LINE each), a weight on an address
#    owner and preempt_delay_ms without preempt (warnings, exit 0); a
#    keepalived.conf gets the import-keepalived hint;
#  - the sync key file: missing, two keys, mode 0640, owned by nobody, a
#    FIFO: exit 1 with FILE:LINE and the reason; a good key: exit 0;
#  - write errors are errors (genkey, pubkey, version, help > /dev/full:
#    non-zero); pubkey takes CRLF; genkey warns about a readable file;
#  - status (and peers, peer): exit 3 and, with --json, an error object
#    on stdout when no daemon answers; 0 while the instance is MASTER, with the effective
#    priority and the VIPs held in the text; 1 while it is FAULT (its
#    tracked interface lost carrier), naming it on stderr, the JSON still
#    printed; the status JSON matches tests/integration/status-schema.txt.
# Needs HAMGR_BIN.
# shellcheck disable=SC2317 # small predicates run through wait_until
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/json_schema.sh"

require_hamgr
require_cmd jq
require_cmd mkfifo
require_cmd timeout

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

err_has_line() {
        printf '%s\n' "$ERR" | grep -qxF -- "$1"
}

out_has_line() {
        printf '%s\n' "$OUT" | grep -qxF -- "$1"
}

out_matches() {
        printf '%s\n' "$OUT" | grep -qE -- "$1"
}

line_of() {
        grep -nF -- "$2" "$1" | head -n 1 | cut -d: -f1
}

SAMPLE="$HAMGR_SOURCE_DIR/etc/hamgr.conf"

# ------------------------------------------------ what the path names
FIFO="$HI_TMP/config.fifo"
mkfifo "$FIFO"
run timeout 10 "$HAMGR_BIN" check -c "$FIFO"
assert_eq "$RC" 1 "check on a FIFO: exit 1, not a hang (124)"
assert_eq "$ERR" "$FIFO: is a FIFO, not a regular file: give the path of the configuration file (or - for standard input)" \
        "check on a FIFO: says what it is"
run timeout 10 "$HAMGR_BIN" check -c /dev/zero
assert_eq "$RC:$ERR" "1:/dev/zero: is a character device, not a regular file: give the path of the configuration file (or - for standard input)" \
        "check on a device"
run timeout 10 "$HAMGR_BIN" run -c "$FIFO"
assert_eq "$RC" 1 "run on a FIFO: exit 1, not a hang"

run "$HAMGR_BIN" check -c - <"$SAMPLE"
assert_eq "$RC:$ERR" "0:" "check -c - with the sample on stdin"
assert_contains "$OUT" "<stdin>: OK (" "check -c -: names <stdin>"
run "$HAMGR_BIN" check -c - < <(printf 'node = { name = "gw1"; };\nvrrp = 3;\n')
assert_eq "$RC" 1 "check -c - with an error: exit 1"
assert_true "check -c -: <stdin>:LINE: message" err_has_line "<stdin>:2: vrrp must be a list of instances: vrrp = ( { ... }, { ... } );"
run "$HAMGR_BIN" run -c - <"$SAMPLE"
assert_eq "$RC" 2 "run -c -: a usage error (a daemon cannot reload stdin)"

# --------------------------------------------------- options anywhere
for args in "-c $SAMPLE check" "check -c $SAMPLE" "--config=$SAMPLE check" "check --config $SAMPLE"; do
        # shellcheck disable=SC2086 # word splitting is the point
        run "$HAMGR_BIN" $args
        assert_eq "$RC:$ERR" "0:" "hamgr $args"
done
run "$HAMGR_BIN" help status
assert_eq "$RC:$ERR" "0:" "help status: exit 0"
assert_contains "$OUT" "Usage: hamgr status [-c FILE] [-s PATH] [--json]" "help status: its usage"
assert_contains "$OUT" "3 the daemon is unreachable" "help status: its exit codes"
run "$HAMGR_BIN" status --help
assert_contains "$RC:$OUT" "0:Usage: hamgr status" "status --help: the command's help"
run "$HAMGR_BIN" help frobnicate
assert_eq "$RC" 2 "help of an unknown command: exit 2"
run "$HAMGR_BIN" --version
assert_eq "$RC:$OUT" "0:hamgr $(sed -n 's/^project(hamgr VERSION \([0-9.]*\).*/\1/p' "$HAMGR_SOURCE_DIR/CMakeLists.txt")" "--version"
run "$HAMGR_BIN" check --json
assert_eq "$RC" 2 "check --json: option of another command"
assert_eq "$(printf '%s\n' "$ERR" | wc -l)" 3 "check --json: three lines (what, usage, where help is), not the whole help"
assert_contains "$ERR" "Usage: hamgr check [-c FILE]" "check --json: the command's usage"

# ------------------------------------------ one pass, errors and warnings
BAD="$HI_TMP/bad.conf"
cat >"$BAD" <<'EOF'
notify = {
    master = "/etc/hamgr/notify.sh MASTER";
};
vrrp = (
  {
    name = "wan";
    interface = "eth0";
    vrid = 51;
    virtual_ips = [ "10.77.0.0/24",
                    "224.0.0.18",
                    "10.77.0.10/33",
                    "10.77.0.11/24" ];
    unicast_peers = [ "10.77.0.11" ];
  }
);
EOF
run "$HAMGR_BIN" check -c "$BAD"
printf '%s\n' "$ERR" | sed 's/^/    stderr: /'
assert_eq "$RC:$OUT" "1:" "bad.conf: exit 1, no OK"
assert_true "bad.conf: notify with arguments" \
        err_has_line "$BAD:2: notify master '/etc/hamgr/notify.sh MASTER' has arguments: hamgr runs a path, without a shell, and passes the state itself; put the command line in a script and give its path"
assert_true "bad.conf: a network address" \
        err_has_line "$BAD:9: virtual IP '10.77.0.0/24' is the network address of its /24 network, not a host address (give the address the router answers on, with the prefix of the subnet)"
assert_true "bad.conf: a multicast VIP" \
        err_has_line "$BAD:10: virtual IP '224.0.0.18' is a multicast address, which cannot be a virtual router's address"
assert_true "bad.conf: a prefix too long" \
        err_has_line "$BAD:11: virtual IP '10.77.0.10/33': prefix /33 is too long for IPv4 (at most /32)"
assert_true "bad.conf: a peer that is our VIP" \
        err_has_line "$BAD:13: unicast peer '10.77.0.11' is a virtual IP of this instance; list the other router's own address"
assert_eq "$(printf '%s\n' "$ERR" | wc -l)" 5 "bad.conf: all five errors, nothing else"

WARN="$HI_TMP/warn.conf"
cat >"$WARN" <<'EOF'
checks = ( { name = "uplink"; type = "link"; interface = "eth1"; } );
vrrp = (
  {
    name = "owner";
    interface = "eth0";
    vrid = 51;
    priority = 255;
    preempt = false;
    preempt_delay_ms = 3000;
    virtual_ips = [ "10.77.0.10/24" ];
    track_checks = ( { check = "uplink"; weight = -50; } );
  }
);
EOF
run "$HAMGR_BIN" check -c "$WARN"
printf '%s\n' "$ERR" | sed 's/^/    stderr: /'
assert_eq "$RC" 0 "warn.conf: warnings keep exit 0"
assert_true "warn.conf: weight on the owner" \
        err_has_line "$WARN:11: warning: vrrp instance 'owner': weight -50 of check 'uplink' does nothing: the address owner (priority 255) is never adjusted; lower the priority or use weight 0 (FAULT while the check is down)"
assert_true "warn.conf: preempt_delay_ms without preempt" \
        err_has_line "$WARN:3: warning: vrrp instance 'owner': preempt_delay_ms does nothing with preempt = false; remove one of them"

KA="$HI_TMP/keepalived.conf"
printf 'vrrp_instance VI_1 {\n    state MASTER\n    virtual_router_id 51\n}\n' >"$KA"
run "$HAMGR_BIN" check -c "$KA"
assert_eq "$RC" 1 "keepalived.conf: exit 1"
assert_contains "$ERR" "this looks like a keepalived.conf, which hamgr does not read; convert it with 'hamgr import-keepalived FILE'" \
        "keepalived.conf: the import hint"

# ------------------------------------------------------- the sync key
KEY="$HI_TMP/sync.key"
PEERKEY=$("$HAMGR_BIN" genkey | "$HAMGR_BIN" pubkey)
SYNC="$HI_TMP/sync.conf"
cat >"$SYNC" <<EOF
vrrp = ( { name = "wan"; interface = "eth0"; vrid = 51; virtual_ips = [ "10.77.0.10/24" ]; } );
wireguard = ( { interface = "hitestwg0"; follow = "wan"; } );
sync = {
    listen = "10.77.0.1:7789";
    private_key_file = "$KEY";
    peers = ( { name = "gw2"; address = "10.77.0.2:7789"; public_key = "$PEERKEY"; } );
};
EOF
L_KEY=$(line_of "$SYNC" private_key_file)
key_error() {
        run timeout 10 "$HAMGR_BIN" check -c "$SYNC"
        assert_eq "$RC:$OUT" "1:" "$1: exit 1"
        assert_true "$1: $SYNC:$L_KEY: ... $2" err_has_line "$SYNC:$L_KEY: private_key_file $KEY: $2"
}
key_error "no key file" "cannot open key file: No such file or directory (create it: umask 077; hamgr genkey > $KEY)"
(umask 077; "$HAMGR_BIN" genkey >"$KEY"; "$HAMGR_BIN" genkey >>"$KEY")
key_error "two keys" "key file must hold exactly one line with a base64 key"
(umask 077; "$HAMGR_BIN" genkey >"$KEY")
chmod 640 "$KEY"
key_error "mode 0640" "key file is accessible by group or others (chmod 600 it)"
chmod 600 "$KEY"
chown nobody "$KEY"
key_error "owned by nobody" "key file is not owned by root (chown root: it)"
chown root "$KEY"
run "$HAMGR_BIN" check -c "$SYNC"
assert_eq "$RC:$ERR" "0:" "a good key file"
rm "$KEY"
mkfifo -m 600 "$KEY"
key_error "a FIFO key file" "key file is not a regular file"
rm "$KEY"
(umask 077; "$HAMGR_BIN" genkey >"$KEY")
sed -i 's/listen = "10.77.0.1:7789"/listen = "10.77.0.10:7789"/' "$SYNC"
run "$HAMGR_BIN" check -c "$SYNC"
assert_eq "$RC" 1 "sync.listen on a VIP: exit 1"
assert_true "sync.listen on a VIP: FILE:LINE" \
        err_has_line "$SYNC:$(line_of "$SYNC" listen): listen '10.77.0.10:7789' is a virtual IP of vrrp instance 'wan': only the MASTER holds it, so the BACKUP could not replicate; listen on the node's own address"

# -------------------------------------------------- output and keys
for cmd in genkey version help; do
        run "$HAMGR_BIN" "$cmd" </dev/null
        assert_eq "$RC" 0 "$cmd to a file: exit 0"
        RC=0
        "$HAMGR_BIN" "$cmd" >/dev/full 2>"$HI_TMP/full.err" || RC=$?
        assert_eq "$RC" 1 "$cmd > /dev/full: exit 1"
        assert_contains "$(cat "$HI_TMP/full.err")" "cannot write to standard output: No space left on device" "$cmd > /dev/full: says so"
done
RC=0
"$HAMGR_BIN" pubkey <"$KEY" >/dev/full 2>/dev/null || RC=$?
assert_eq "$RC" 1 "pubkey > /dev/full: exit 1"

LF=$("$HAMGR_BIN" pubkey <"$KEY")
CRLF=$(printf '%s\r\n' "$(cat "$KEY")" | "$HAMGR_BIN" pubkey)
assert_eq "$CRLF" "$LF" "pubkey: a CRLF line gives the same key"
assert_eq "${#LF}" 44 "pubkey: a base64 key"
run "$HAMGR_BIN" pubkey < <(printf '%s\r\n\r\n' "$(cat "$KEY")")
assert_eq "$RC" 1 "pubkey: two line ends are not one key"

(umask 022; "$HAMGR_BIN" genkey >"$HI_TMP/open.key" 2>"$HI_TMP/open.err")
assert_contains "$(cat "$HI_TMP/open.err")" "hamgr genkey: warning: the output file is accessible by group or others (mode 0644)" \
        "genkey to a 0644 file: warns"
(umask 077; "$HAMGR_BIN" genkey >"$HI_TMP/closed.key" 2>"$HI_TMP/closed.err")
assert_eq "$(cat "$HI_TMP/closed.err")" "" "genkey to a 0600 file: no warning"

# ------------------------------------------------ status: unreachable
run "$HAMGR_BIN" status -s "$HI_TMP/nothing.sock"
assert_eq "$RC:$OUT" "3:" "status, no daemon: exit 3, nothing on stdout"
run "$HAMGR_BIN" --json status -s "$HI_TMP/nothing.sock"
assert_eq "$RC" 3 "status --json, no daemon: exit 3"
assert_eq "$(jq -r '[.error, .socket, .reason] | join("|")' <<<"$OUT")" \
        "daemon unreachable|$HI_TMP/nothing.sock|No such file or directory" "status --json, no daemon: the error object"

run "$HAMGR_BIN" peers --json -s "$HI_TMP/nothing.sock"
assert_eq "$RC:$(jq -r .error <<<"$OUT")" "3:daemon unreachable" "peers --json, no daemon: exit 3, the error object"
run "$HAMGR_BIN" peer remove wg0 "$PEERKEY" -s "$HI_TMP/nothing.sock"
assert_eq "$RC:$OUT" "3:" "peer remove, no daemon: exit 3"

# --------------------------------------------- status: MASTER, FAULT
lab_create 1
node_start gw1
CONF=$(conf_of gw1)
HC_NOTIFY_SCRIPT="" write_hamgr_conf "$CONF" gw1 150 \
        'checks = ( { name = "peer"; type = "icmp"; address = "10.77.0.99"; interval_ms = 200; } );
groups = ( { name = "gateway"; instances = [ "wan" ]; } );'
sed -i 's|^    virtual_ips = .*|&\n    track_checks = ( { check = "peer"; weight = -20; } );|' "$CONF"
"$HAMGR_BIN" check -c "$CONF" >/dev/null || die "gw1.conf: $("$HAMGR_BIN" check -c "$CONF" 2>&1)"
hamgr_start gw1 "$CONF"
SOCK=/run/hamgr/control.sock
wait_until 10 hamgr_state_is gw1 wan MASTER || die "gw1 did not become MASTER: $(cat "$(hamgr_log gw1)")"

# Nobody answers at 10.77.0.99: the check goes down, weight -20 applies.
eff_is_130() {
        [ "$(inst_field gw1 wan .effective_priority)" = 130 ]
}
assert_true "effective priority 150 - 20 while the check is down" wait_until 10 eff_is_130
run node_exec gw1 "$HAMGR_BIN" -s "$SOCK" status
assert_eq "$RC" 0 "status, MASTER: exit 0"
printf '%s\n' "$OUT" | sed 's/^/    status: /'
assert_true "status: the PRIO and EFF columns" out_matches "^INSTANCE +INTERFACE +VRID +STATE +PRIO +EFF "
assert_true "status: wan MASTER, priority 150, effective 130" out_matches "^wan +eth0 +51 +MASTER +150 +130 "
assert_true "status: the VIPs held" out_has_line "  virtual IPs held: 10.77.0.10/24"

run node_exec gw1 "$HAMGR_BIN" status --json -s "$SOCK"
assert_eq "$RC" 0 "status --json, MASTER: exit 0"
json_schema_check "status --json" "$HAMGR_SOURCE_DIR/tests/integration/status-schema.txt" "$OUT"

gw_carrier gw1 off
assert_true "eth1 without carrier: wan goes FAULT" wait_until 10 hamgr_state_is gw1 wan FAULT
run node_exec gw1 "$HAMGR_BIN" status -s "$SOCK"
assert_eq "$RC" 1 "status, FAULT: exit 1"
assert_eq "$ERR" "hamgr status: in FAULT: wan" "status, FAULT: names the instance on stderr"
assert_true "status, FAULT: the VIPs not held" out_has_line "  virtual IPs not held: 10.77.0.10/24"
run node_exec gw1 "$HAMGR_BIN" status --json -s "$SOCK"
assert_eq "$RC" 1 "status --json, FAULT: exit 1"
assert_eq "$(jq -r '.instances[0].state' <<<"$OUT")" FAULT "status --json, FAULT: the JSON is printed"
json_schema_check "status --json (FAULT)" "$HAMGR_SOURCE_DIR/tests/integration/status-schema.txt" "$OUT"
gw_carrier gw1 on
assert_true "carrier back: MASTER again" wait_until 10 hamgr_state_is gw1 wan MASTER
run node_exec gw1 "$HAMGR_BIN" status -s "$SOCK"
assert_eq "$RC" 0 "status after the FAULT: exit 0"

hamgr_stop gw1
run node_exec gw1 "$HAMGR_BIN" status --json -s "$SOCK"
assert_eq "$RC" 3 "status after stop: exit 3"
finish
