#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The userspace (UAPI) WireGuard backend against a real wireguard-go, with
# wireguard-tools' wg(8) reading the same socket as the referee:
#  - set a private key, listen port, fwmark and 3 peers (allowed IPs of both
#    families, IPv4 and IPv6 endpoints, a keepalive, a preshared key); our
#    dump equals the expected text and `wg show dump` (keys masked);
#  - the public key we report equals `wg pubkey` of the private key and
#    wg's; neither our get nor our dump prints the private or preshared key;
#  - AUTO picks UAPI for wgt0; the kernel backend is not asked;
#  - remove a peer; replace a peer's allowed IPs; add one without replace;
#  - sync (get, wg_device_diff, set) to a 1000-peer configuration: both
#    dumps match it; a second sync changes nothing; a sync after removing
#    10, changing 10 and adding 10 peers sends exactly 30 and matches again.
# Needs HAMGR_WG_TOOL (tests/integration/wg_tool.c).
# shellcheck disable=SC2317 # small predicates run through wait_until
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_root
require_cmd ip nsenter unshare wireguard-go wg awk sort
[ -n "${HAMGR_WG_TOOL:-}" ] || die "HAMGR_WG_TOOL is not set"
require_cmd "$HAMGR_WG_TOOL"

NODE=gw1
IFACE=wgt0
SOCK=/var/run/wireguard/$IFACE.sock

hi_netns_add "$(ns_of "$NODE")"
node_start "$NODE"
# wireguard-go refuses to run where the kernel has WireGuard unless told.
WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 \
        node_spawn "$NODE" "$HI_TMP/wireguard-go.log" wireguard-go -f "$IFACE"
wait_until 10 node_exec "$NODE" test -S "$SOCK" || die "wireguard-go did not create $SOCK"

tool() {
        node_exec "$NODE" "$HAMGR_WG_TOOL" "$@"
}

wg_in() {
        node_exec "$NODE" wg "$@"
}

# Mask keys, drop handshake/transfer columns, sort allowed IPs and peers,
# so our dump and wg's compare as text.
normalize() {
        awk -F'\t' 'BEGIN { OFS = "\t" }
                NR == 1 { print "(hidden)", $2, $3, $4; next }
                {
                        psk = ($2 == "(none)") ? "(none)" : "(hidden)"
                        n = split($4, a, ",")
                        # insertion sort: awk has no portable sort
                        for (i = 2; i <= n; i++) { v = a[i]; j = i - 1
                                while (j > 0 && a[j] > v) { a[j + 1] = a[j]; j-- } a[j + 1] = v }
                        s = a[1]; for (i = 2; i <= n; i++) s = s "," a[i]
                        print $1, psk, $3, s, $8
                }' | { IFS= read -r head; printf '%s\n' "$head"; sort; }
}

# same_text MSG GOT WANT: like assert_eq, but a failure shows a diff
# instead of a thousand lines.
same_text() {
        local msg=$1
        printf '%s\n' "$2" >"$HI_TMP/got"
        printf '%s\n' "$3" >"$HI_TMP/want"
        if cmp -s "$HI_TMP/got" "$HI_TMP/want"; then
                pass "$msg ($(wc -l <"$HI_TMP/want") lines)"
        else
                fail "$msg: $(diff "$HI_TMP/want" "$HI_TMP/got" | head -n 12)"
        fi
}

ours() {
        tool dump "$IFACE" | normalize
}

theirs() {
        wg_in show "$IFACE" dump | normalize
}

umask 077
wg genkey >"$HI_TMP/priv.key"
wg genpsk >"$HI_TMP/psk.key"
PUB=$(wg pubkey <"$HI_TMP/priv.key")
PRIV=$(cat "$HI_TMP/priv.key")
PSK=$(cat "$HI_TMP/psk.key")
mapfile -t P < <("$HAMGR_WG_TOOL" genkeys 3)

# ---------------------------------------------------------------- basics --

# wireguard-go binds a random port at start; the rest is empty.
assert_eq "$(tool dump "$IFACE" | cut -f1,2,4)" $'(none)\t(none)\toff' "fresh wireguard-go: no key, no fwmark, no peers"
assert_true "fresh wireguard-go: a listen port" test "$(tool dump "$IFACE" | cut -f3)" -gt 0

tool set "$IFACE" private_key_file="$HI_TMP/priv.key" listen_port=51820 fwmark=0x1234 \
        peer="${P[0]}" allowed_ips=10.1.0.0/24,fd01::/64 endpoint=192.0.2.1:51820 persistent_keepalive=25 \
        peer="${P[1]}" allowed_ips=10.2.0.0/24 preshared_key_file="$HI_TMP/psk.key" \
        peer="${P[2]}" allowed_ips=10.3.0.0/24,10.33.0.0/16 'endpoint=[2001:db8::3]:51820' \
        || die "wg_tool set failed"

expected=$(
        printf '(hidden)\t%s\t51820\t0x1234\n' "$PUB"
        {
                printf '%s\t(none)\t192.0.2.1:51820\t10.1.0.0/24,fd01::/64\t25\n' "${P[0]}"
                printf '%s\t(hidden)\t(none)\t10.2.0.0/24\toff\n' "${P[1]}"
                printf '%s\t(none)\t[2001:db8::3]:51820\t10.3.0.0/24,10.33.0.0/16\toff\n' "${P[2]}"
        } | sort
)
assert_eq "$(ours)" "$expected" "our dump after set"
assert_eq "$(theirs)" "$expected" "wg show dump after set"
assert_eq "$(wg_in show "$IFACE" public-key)" "$PUB" "wg's public key is wg pubkey of ours"
assert_eq "$(tool dump "$IFACE" | head -n1 | cut -f2)" "$PUB" "our public key is wg pubkey of the private key"
# Keys are compared, never echoed into the log.
assert_true "the private key reached the daemon" test "$(wg_in show "$IFACE" private-key)" = "$PRIV"
assert_true "the preshared key reached the daemon" \
        test "$(wg_in show "$IFACE" preshared-keys | grep -F "${P[1]}" | cut -f2)" = "$PSK"

has() {
        [[ "$1" == *"$2"* ]]
}

show=$(tool get "$IFACE")
dump=$(tool dump "$IFACE")
assert_contains "$show" "private key: (hidden)" "get hides the private key"
assert_contains "$show" "preshared key: (hidden)" "get hides the preshared key"
assert_contains "$show" "persistent keepalive: every 25 seconds" "get shows the keepalive"
assert_false "get never prints the private key" has "$show" "$PRIV"
assert_false "get never prints the preshared key" has "$show" "$PSK"
assert_false "dump never prints the private key" has "$dump" "$PRIV"
assert_false "dump never prints the preshared key" has "$dump" "$PSK"
assert_eq "$(tool -b uapi dump "$IFACE" | head -n1)" "$(tool -b auto dump "$IFACE" | head -n1)" \
        "AUTO resolves to UAPI when the socket exists"

# ------------------------------------------------------- peer changes --

tool set "$IFACE" peer="${P[1]}" remove || die "remove failed"
assert_eq "$(wg_in show "$IFACE" peers | sort)" "$(printf '%s\n' "${P[0]}" "${P[2]}" | sort)" "peer removed"

tool set "$IFACE" peer="${P[0]}" replace_allowed_ips allowed_ips=10.9.0.0/16 || die "replace failed"
assert_eq "$(wg_in show "$IFACE" allowed-ips | grep -F "${P[0]}" | cut -f2)" "10.9.0.0/16" \
        "allowed IPs replaced"
assert_eq "$(wg_in show "$IFACE" persistent-keepalive | grep -F "${P[0]}" | cut -f2)" "25" \
        "replacing allowed IPs kept the keepalive"

tool set "$IFACE" peer="${P[2]}" allowed_ips=10.4.0.0/24 || die "add allowed IP failed"
assert_eq "$(wg_in show "$IFACE" allowed-ips | grep -F "${P[2]}" | cut -f2 | tr ' ' '\n' | sort | xargs)" \
        "10.3.0.0/24 10.33.0.0/16 10.4.0.0/24" "allowed IP added without replace"
assert_eq "$(ours)" "$(theirs)" "our dump equals wg's after the changes"

tool set "$IFACE" peer="${P[0]}" update_only allowed_ips=10.10.0.0/16 || die "update_only failed"
tool set "$IFACE" peer="${P[1]}" update_only allowed_ips=10.11.0.0/16 || die "update_only (absent) failed"
assert_eq "$(wg_in show "$IFACE" peers | wc -l)" 2 "update_only does not create a peer"

# -------------------------------------------------------- 1000 peers --

mapfile -t K < <("$HAMGR_WG_TOOL" genkeys 1010)
[ "${#K[@]}" = 1010 ] || die "genkeys gave ${#K[@]} keys"

# write_conf FILE FIRST LAST [CHANGED_FROM CHANGED_TO]: peers FIRST..LAST-1,
# with a second allowed IP for peers in [CHANGED_FROM, CHANGED_TO).
write_conf() {
        local file=$1 first=$2 last=$3 cf=${4:-0} ct=${5:-0} i ka ips
        {
                echo "# generated"
                echo "private_key_file=$HI_TMP/priv.key listen_port=51820 fwmark=0x1234"
                for ((i = first; i < last; i++)); do
                        ka=0
                        ((i % 3 == 0)) && ka=25
                        ips="10.$((100 + i / 256)).$((i % 256)).0/24,fd00::1:$(printf '%x' "$i")/128"
                        ((i >= cf && i < ct)) && ips+=",172.16.$((i % 256)).0/24"
                        echo "peer=${K[$i]} persistent_keepalive=$ka allowed_ips=$ips"
                done
        } >"$file"
}

# Expected normalised dump for the same parameters.
expected_dump() {
        local first=$1 last=$2 cf=${3:-0} ct=${4:-0} i ka ips
        printf '(hidden)\t%s\t51820\t0x1234\n' "$PUB"
        for ((i = first; i < last; i++)); do
                ka=off
                ((i % 3 == 0)) && ka=25
                ips="10.$((100 + i / 256)).$((i % 256)).0/24,fd00::1:$(printf '%x' "$i")/128"
                ((i >= cf && i < ct)) && ips+=",172.16.$((i % 256)).0/24"
                printf '%s\t(none)\t(none)\t%s\t%s\n' "${K[$i]}" "$ips" "$ka"
        done | normalize_peers
}

normalize_peers() {
        awk -F'\t' 'BEGIN { OFS = "\t" } {
                n = split($4, a, ",")
                for (i = 2; i <= n; i++) { v = a[i]; j = i - 1
                        while (j > 0 && a[j] > v) { a[j + 1] = a[j]; j-- } a[j + 1] = v }
                s = a[1]; for (i = 2; i <= n; i++) s = s "," a[i]
                print $1, $2, $3, s, $5 }' | sort
}

write_conf "$HI_TMP/big.conf" 0 1000
out=$(tool sync "$IFACE" "$HI_TMP/big.conf") || die "sync to 1000 peers failed"
assert_eq "$out" "diff: 1002 peers, flags 0x0" "sync: 1000 new peers, 2 old ones removed, device unchanged"
want=$(expected_dump 0 1000)
assert_eq "$(wg_in show "$IFACE" peers | wc -l)" 1000 "wg counts 1000 peers"
same_text "our dump matches the 1000-peer configuration" "$(ours)" "$want"
same_text "wg's dump matches the 1000-peer configuration" "$(theirs)" "$want"

out=$(tool sync "$IFACE" "$HI_TMP/big.conf") || die "second sync failed"
assert_eq "$out" "diff: 0 peers, flags 0x0" "a second sync finds nothing to do"

# Peers 0..9 go, 10..19 get another allowed IP, 1000..1009 are new.
write_conf "$HI_TMP/big2.conf" 10 1010 10 20
out=$(tool sync "$IFACE" "$HI_TMP/big2.conf") || die "third sync failed"
assert_eq "$out" "diff: 30 peers, flags 0x0" "sync sends only the 30 changed peers"
want=$(expected_dump 10 1010 10 20)
same_text "our dump matches after the partial change" "$(ours)" "$want"
same_text "wg's dump matches after the partial change" "$(theirs)" "$want"
assert_eq "$(tool sync "$IFACE" "$HI_TMP/big2.conf")" "diff: 0 peers, flags 0x0" "and then nothing is left"

finish
