#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# A sync group over two links, VRRP lost on one of them only. gw1 (150) and
# gw2 (100) run "wan" on eth0 (the shared bridge, vrid 51) and "lan" on
# eth2 (a direct link between the two, vrid 52), in one group "gateway".
#  - gw1 MASTER of both, gw2 BACKUP of both;
#  - gw2 drops incoming VRRP on eth2 (nftables): its lan member no longer
#    hears gw1, but its wan member does, so the group stays BACKUP: no
#    transition on either node for 20 s (about 55 Master_Down intervals),
#    and gw2 sends no advertisement at all (a node that took the group, even
#    briefly, would have); gw2 logs once that lan is held;
#  - gw1 then dies for real (kill -9) with the drop still in place: gw2
#    takes both at once.
# shellcheck disable=SC2317 # small predicates run through wait_until
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_hamgr
require_cmd nft

WAN_VIP=10.77.0.10
LAN_VIP=10.79.0.20

# write_conf FILE NODE PRIORITY
write_conf() {
        local file=$1 node=$2 prio=$3
        mkdir -p "$HI_TMP/$node.state"
        cat >"$file" <<EOF
node = {
    name = "$node";
    state_dir = "$HI_TMP/$node.state";
    control_socket = "/run/hamgr/control.sock";
};
vrrp = (
  { name = "wan"; interface = "eth0"; vrid = 51; priority = $prio; advert_interval_ms = 100;
    virtual_ips = [ "$WAN_VIP/24" ]; },
  { name = "lan"; interface = "eth2"; vrid = 52; priority = $prio; advert_interval_ms = 100;
    virtual_ips = [ "$LAN_VIP/24" ]; }
);
groups = ( { name = "gateway"; instances = [ "wan", "lan" ]; } );
notify = { script = "$HAMGR_NOTIFY_SCRIPT"; timeout_ms = 5000; };
EOF
}

lan_vip_on() {
        node_addrs "$1" eth2 | grep -qxF -- "$LAN_VIP"
}

both_are() {
        hamgr_state_is "$1" wan "$2" && hamgr_state_is "$1" lan "$2"
}

settled() {
        both_are gw1 MASTER && both_are gw2 BACKUP &&
                vip_on gw1 "$WAN_VIP" && lan_vip_on gw1 &&
                ! vip_on gw2 "$WAN_VIP" && ! lan_vip_on gw2
}

# counter NODE FIELD: the sum of a counter over both members.
counter() {
        hamgr_status "$1" | jq -er "[.instances[] | select(.name == \"wan\" or .name == \"lan\") | .counters.$2] | add"
}

# unchanged NODE FIELD VALUE (for holds_for)
unchanged() {
        [ "$(counter "$1" "$2")" = "$3" ]
}

lab_create 2
node_start gw1
node_start gw2
gw_direct_link gw1 gw2 eth2 10.79.0
write_conf "$(conf_of gw1)" gw1 150
write_conf "$(conf_of gw2)" gw2 100
hamgr_start gw1 "$(conf_of gw1)"
hamgr_start gw2 "$(conf_of gw2)"

wait_until 10 settled || fail "start: gw1 wan/lan $(hamgr_state gw1 wan)/$(hamgr_state gw1 lan), gw2 $(hamgr_state gw2 wan)/$(hamgr_state gw2 lan)"
assert_true "start: gw1 MASTER of both, gw2 BACKUP of both for 1 s" holds_for 1 settled
assert_true "start: gw2 hears gw1 on eth2" wait_until 2 inst_field_is gw2 lan .last_master 10.79.0.1

# ---- partial partition: VRRP lost on eth2, in gw2's input only
node_exec gw2 nft -f - <<'EOF'
table inet hi_partial {
        chain input {
                type filter hook input priority 0; policy accept;
                iifname "eth2" ip protocol vrrp counter drop
        }
}
EOF
t1=$(counter gw1 transitions)
t2=$(counter gw2 transitions)
s2=$(counter gw2 adverts_sent)
assert_true "partial: gw1 MASTER, gw2 BACKUP, no transition and no advert from gw2, for 20 s" \
        holds_for 20 eval 'settled && unchanged gw1 transitions "$t1" && unchanged gw2 transitions "$t2" && unchanged gw2 adverts_sent "$s2"'
assert_eq "$(counter gw2 transitions)" "$t2" "partial: gw2 transitions"
assert_eq "$(counter gw1 transitions)" "$t1" "partial: gw1 transitions"
dropped=$(node_exec gw2 nft -j list table inet hi_partial | jq -er '[.nftables[] | select(.rule) | .rule.expr[] | select(.counter) | .counter.packets] | add')
assert_true "partial: the rule did drop gw1's adverts on eth2 ($dropped packets)" test "$dropped" -ge 100
assert_eq "$(hamgr_notify_count gw2 'args=GROUP gateway MASTER')" 0 "partial: gw2 never notified GROUP MASTER"
assert_eq "$(hamgr_log_count gw2 'lan: master down, but group gateway stays BACKUP')" 1 \
        "partial: gw2 logs once that lan is held"

# ---- gw1 dies on every link: the group fails over although lan was held
hamgr_stop gw1 KILL
assert_true "failure: gw2 MASTER of both" wait_until 3 both_are gw2 MASTER
assert_true "failure: gw2 holds both VIPs" wait_until 2 eval 'vip_on gw2 "$WAN_VIP" && lan_vip_on gw2'
assert_eq "$(counter gw2 transitions)" "$((t2 + 2))" "failure: one transition per member on gw2"
assert_true "failure: gw2 stays MASTER of both for 2 s" holds_for 2 both_are gw2 MASTER

finish
