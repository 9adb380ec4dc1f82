/* SPDX-License-Identifier: GPL-2.0-or-later */

/*
 * The kernel backend's messages against the layout documented in
 * linux/wireguard.h. Dumps are built here the way the kernel builds them;
 * SET messages are read back by a decoder written here, independently of
 * wg/kernel.c, that also checks the splitting rules.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/time_types.h>
#include <linux/wireguard.h>
#include <netlink/attr.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/macro.h"
#include "wg/kernel.h"

#define FAMILY 29

static void key_fill(uint8_t key[static WG_KEY_LEN], uint32_t n, uint8_t tag) {
        for (size_t i = 0; i < WG_KEY_LEN; i++)
                key[i] = (uint8_t) (n * 131u + i * 7u + tag);
        memcpy(key, &n, sizeof(n));
        key[4] = tag;
}

static uint32_t rng_state;

static uint32_t rng(void) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 17;
        rng_state ^= rng_state << 5;
        return rng_state;
}

/* ---- dumps built the way the kernel builds them ---- */

static struct nl_msg *kmsg_new(int cmd, uint16_t extra_flags) {
        struct nl_msg *m = nlmsg_alloc_size(65536);

        assert_non_null(m);
        assert_non_null(genlmsg_put(m, 0, 42, FAMILY, 0, NLM_F_MULTI | extra_flags, (uint8_t) cmd, WG_GENL_VERSION));
        return m;
}

static struct nlattr *knest(struct nl_msg *m, int type) {
        struct nlattr *n = nla_nest_start(m, type);

        assert_non_null(n);
        n->nla_type |= NLA_F_NESTED;
        return n;
}

static void kput_allowedip(struct nl_msg *m, const char *addr, uint8_t cidr) {
        struct in6_addr a6;
        struct in_addr a4;
        struct nlattr *n = knest(m, 0);

        if (inet_pton(AF_INET, addr, &a4) == 1) {
                assert_int_equal(nla_put_u16(m, WGALLOWEDIP_A_FAMILY, AF_INET), 0);
                assert_int_equal(nla_put(m, WGALLOWEDIP_A_IPADDR, sizeof(a4), &a4), 0);
        } else {
                assert_int_equal(inet_pton(AF_INET6, addr, &a6), 1);
                assert_int_equal(nla_put_u16(m, WGALLOWEDIP_A_FAMILY, AF_INET6), 0);
                assert_int_equal(nla_put(m, WGALLOWEDIP_A_IPADDR, sizeof(a6), &a6), 0);
        }
        assert_int_equal(nla_put_u8(m, WGALLOWEDIP_A_CIDR_MASK, cidr), 0);
        nla_nest_end(m, n);
}

static void kput_device_head(struct nl_msg *m) {
        uint8_t priv[WG_KEY_LEN], pub[WG_KEY_LEN];

        key_fill(priv, 1, 'S');
        key_fill(pub, 1, 'P');
        assert_int_equal(nla_put_u16(m, WGDEVICE_A_LISTEN_PORT, 51820), 0);
        assert_int_equal(nla_put_u32(m, WGDEVICE_A_FWMARK, 0x42), 0);
        assert_int_equal(nla_put_u32(m, WGDEVICE_A_IFINDEX, 7), 0);
        assert_int_equal(nla_put_string(m, WGDEVICE_A_IFNAME, "wg-test"), 0);
        assert_int_equal(nla_put(m, WGDEVICE_A_PRIVATE_KEY, WG_KEY_LEN, priv), 0);
        assert_int_equal(nla_put(m, WGDEVICE_A_PUBLIC_KEY, WG_KEY_LEN, pub), 0);
}

/* A peer's own attributes, as in its first part. */
static void kput_peer_head(struct nl_msg *m, const uint8_t psk[static WG_KEY_LEN], const void *endpoint,
                           size_t endpoint_len, uint16_t keepalive, int64_t hs_sec, int64_t hs_nsec, uint64_t rx,
                           uint64_t tx) {
        struct __kernel_timespec ts = { .tv_sec = hs_sec, .tv_nsec = hs_nsec };

        assert_int_equal(nla_put(m, WGPEER_A_PRESHARED_KEY, WG_KEY_LEN, psk), 0);
        assert_int_equal(nla_put(m, WGPEER_A_LAST_HANDSHAKE_TIME, sizeof(ts), &ts), 0);
        assert_int_equal(nla_put_u16(m, WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, keepalive), 0);
        assert_int_equal(nla_put_u64(m, WGPEER_A_TX_BYTES, tx), 0);
        assert_int_equal(nla_put_u64(m, WGPEER_A_RX_BYTES, rx), 0);
        assert_int_equal(nla_put_u32(m, WGPEER_A_PROTOCOL_VERSION, 1), 0);
        if (endpoint)
                assert_int_equal(nla_put(m, WGPEER_A_ENDPOINT, (int) endpoint_len, endpoint), 0);
}

static int feed(struct wg_kernel_dump *d, struct nl_msg *m) {
        struct nlmsghdr *h = nlmsg_hdr(m);

        return wg_kernel_dump_add(d, (const uint8_t *) h, h->nlmsg_len);
}

static struct sockaddr_in endpoint_a(void) {
        struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(51820) };

        assert_int_equal(inet_pton(AF_INET, "192.0.2.1", &sin.sin_addr), 1);
        return sin;
}

static struct sockaddr_in6 endpoint_b(void) {
        struct sockaddr_in6 sin6 = {
                .sin6_family = AF_INET6,
                .sin6_port = htons(4500),
                .sin6_flowinfo = htonl(0x12345),
                .sin6_scope_id = 3,
        };

        assert_int_equal(inet_pton(AF_INET6, "fe80::1", &sin6.sin6_addr), 1);
        return sin6;
}

/*
 * Four messages: the device and peers A and B (B cut after three allowed
 * IPs); B continued with one; B again with one, then C without allowed
 * IPs; C continued with one. INTR_AT marks that message (1-based) with
 * NLM_F_DUMP_INTR, 0 none.
 */
static void build_dump(struct nl_msg *msgs[static 4], int intr_at) {
        uint8_t key[WG_KEY_LEN], psk[WG_KEY_LEN];
        struct sockaddr_in ea = endpoint_a();
        struct sockaddr_in6 eb = endpoint_b();
        struct nlattr *peers, *peer, *ips;

        for (int i = 0; i < 4; i++)
                msgs[i] = kmsg_new(WG_CMD_GET_DEVICE, intr_at == i + 1 ? NLM_F_DUMP_INTR : 0);

        /* 1: device, A in full, B's first part */
        kput_device_head(msgs[0]);
        peers = knest(msgs[0], WGDEVICE_A_PEERS);
        peer = knest(msgs[0], 0);
        key_fill(key, 'A', 'K');
        assert_int_equal(nla_put(msgs[0], WGPEER_A_PUBLIC_KEY, WG_KEY_LEN, key), 0);
        memset(psk, 0, sizeof(psk));
        kput_peer_head(msgs[0], psk, &ea, sizeof(ea), 25, 1700000000, 123456789, 1000, 2000);
        ips = knest(msgs[0], WGPEER_A_ALLOWEDIPS);
        kput_allowedip(msgs[0], "10.0.0.1", 32);
        kput_allowedip(msgs[0], "fd00::", 64);
        nla_nest_end(msgs[0], ips);
        nla_nest_end(msgs[0], peer);
        peer = knest(msgs[0], 0);
        key_fill(key, 'B', 'K');
        assert_int_equal(nla_put(msgs[0], WGPEER_A_PUBLIC_KEY, WG_KEY_LEN, key), 0);
        key_fill(psk, 'B', 'Q');
        kput_peer_head(msgs[0], psk, &eb, sizeof(eb), 0, 0, 0, UINT64_C(1) << 40, 5);
        ips = knest(msgs[0], WGPEER_A_ALLOWEDIPS);
        kput_allowedip(msgs[0], "10.1.0.0", 16);
        kput_allowedip(msgs[0], "10.2.0.0", 16);
        kput_allowedip(msgs[0], "10.3.0.0", 16);
        nla_nest_end(msgs[0], ips);
        nla_nest_end(msgs[0], peer);
        nla_nest_end(msgs[0], peers);

        /* 2: B continued (key and allowed IPs only, as the kernel does) */
        assert_int_equal(nla_put_string(msgs[1], WGDEVICE_A_IFNAME, "wg-test"), 0);
        peers = knest(msgs[1], WGDEVICE_A_PEERS);
        peer = knest(msgs[1], 0);
        assert_int_equal(nla_put(msgs[1], WGPEER_A_PUBLIC_KEY, WG_KEY_LEN, key), 0);
        ips = knest(msgs[1], WGPEER_A_ALLOWEDIPS);
        kput_allowedip(msgs[1], "10.4.0.0", 16);
        nla_nest_end(msgs[1], ips);
        nla_nest_end(msgs[1], peer);
        nla_nest_end(msgs[1], peers);

        /* 3: B continued again, then C without allowed IPs */
        assert_int_equal(nla_put_string(msgs[2], WGDEVICE_A_IFNAME, "wg-test"), 0);
        peers = knest(msgs[2], WGDEVICE_A_PEERS);
        peer = knest(msgs[2], 0);
        assert_int_equal(nla_put(msgs[2], WGPEER_A_PUBLIC_KEY, WG_KEY_LEN, key), 0);
        ips = knest(msgs[2], WGPEER_A_ALLOWEDIPS);
        kput_allowedip(msgs[2], "2001:db8:1::", 48);
        nla_nest_end(msgs[2], ips);
        nla_nest_end(msgs[2], peer);
        peer = knest(msgs[2], 0);
        key_fill(key, 'C', 'K');
        assert_int_equal(nla_put(msgs[2], WGPEER_A_PUBLIC_KEY, WG_KEY_LEN, key), 0);
        memset(psk, 0, sizeof(psk));
        kput_peer_head(msgs[2], psk, NULL, 0, 0, 5, 6, 7, 8);
        nla_nest_end(msgs[2], peer);
        nla_nest_end(msgs[2], peers);

        /* 4: C continued */
        assert_int_equal(nla_put_string(msgs[3], WGDEVICE_A_IFNAME, "wg-test"), 0);
        peers = knest(msgs[3], WGDEVICE_A_PEERS);
        peer = knest(msgs[3], 0);
        assert_int_equal(nla_put(msgs[3], WGPEER_A_PUBLIC_KEY, WG_KEY_LEN, key), 0);
        ips = knest(msgs[3], WGPEER_A_ALLOWEDIPS);
        kput_allowedip(msgs[3], "192.168.0.0", 24);
        nla_nest_end(msgs[3], ips);
        nla_nest_end(msgs[3], peer);
        nla_nest_end(msgs[3], peers);
}

static void free_msgs(struct nl_msg **msgs, size_t n) {
        for (size_t i = 0; i < n; i++)
                nlmsg_free(msgs[i]);
}

static void assert_allowedip(const struct wg_allowedip *a, const char *addr, uint8_t cidr) {
        union in_addr_union want = {};
        int family = strchr(addr, ':') ? AF_INET6 : AF_INET;

        assert_int_equal(inet_pton(family, addr, &want), 1);
        assert_int_equal(a->family, family);
        assert_int_equal(a->cidr, cidr);
        assert_memory_equal(&a->ip, &want, family == AF_INET ? 4 : 16);
}

static void test_dump_coalesces(void **state) {
        _cleanup_(wg_kernel_dump_clear) struct wg_kernel_dump d = {};
        _cleanup_(wg_device_freep) struct wg_device *dev = NULL;
        struct nl_msg *msgs[4];
        uint8_t key[WG_KEY_LEN];
        struct sockaddr_in ea = endpoint_a();
        struct sockaddr_in6 eb = endpoint_b();
        const struct wg_peer *a, *b, *c;

        build_dump(msgs, 0);
        wg_kernel_dump_init(&d, FAMILY);
        for (int i = 0; i < 4; i++)
                assert_int_equal(feed(&d, msgs[i]), 0);
        free_msgs(msgs, 4);
        assert_int_equal(wg_kernel_dump_finish(&d, &dev), 0);
        assert_null(d.device);

        assert_string_equal(dev->name, "wg-test");
        assert_int_equal(dev->ifindex, 7);
        assert_int_equal(dev->listen_port, 51820);
        assert_int_equal(dev->fwmark, 0x42);
        assert_int_equal(dev->flags, WG_DEVICE_HAS_PRIVATE_KEY | WG_DEVICE_HAS_PUBLIC_KEY |
                                     WG_DEVICE_HAS_LISTEN_PORT | WG_DEVICE_HAS_FWMARK);
        key_fill(key, 1, 'S');
        assert_memory_equal(dev->private_key, key, WG_KEY_LEN);
        key_fill(key, 1, 'P');
        assert_memory_equal(dev->public_key, key, WG_KEY_LEN);

        assert_int_equal(dev->n_peers, 3);
        a = &dev->peers[0];
        b = &dev->peers[1];
        c = &dev->peers[2];

        key_fill(key, 'A', 'K');
        assert_memory_equal(a->public_key, key, WG_KEY_LEN);
        assert_int_equal(a->flags, WG_PEER_HAS_PUBLIC_KEY | WG_PEER_HAS_ENDPOINT |
                                   WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL);
        assert_memory_equal(&a->endpoint.addr4, &ea, sizeof(ea));
        assert_int_equal(a->persistent_keepalive_interval, 25);
        assert_int_equal(a->last_handshake_time_sec, 1700000000);
        assert_int_equal(a->last_handshake_time_nsec, 123456789);
        assert_int_equal(a->rx_bytes, 1000);
        assert_int_equal(a->tx_bytes, 2000);
        assert_int_equal(a->n_allowedips, 2);
        assert_allowedip(&a->allowedips[0], "10.0.0.1", 32);
        assert_allowedip(&a->allowedips[1], "fd00::", 64);

        key_fill(key, 'B', 'K');
        assert_memory_equal(b->public_key, key, WG_KEY_LEN);
        assert_int_equal(b->flags, WG_PEER_HAS_PUBLIC_KEY | WG_PEER_HAS_PRESHARED_KEY | WG_PEER_HAS_ENDPOINT |
                                   WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL);
        key_fill(key, 'B', 'Q');
        assert_memory_equal(b->preshared_key, key, WG_KEY_LEN);
        assert_int_equal(b->endpoint.addr.sa_family, AF_INET6);
        assert_memory_equal(&b->endpoint.addr6, &eb, sizeof(eb));
        assert_int_equal(b->persistent_keepalive_interval, 0);
        assert_int_equal(b->last_handshake_time_sec, 0);
        assert_int_equal(b->rx_bytes, UINT64_C(1) << 40);
        assert_int_equal(b->tx_bytes, 5);
        assert_int_equal(b->n_allowedips, 5);
        assert_allowedip(&b->allowedips[0], "10.1.0.0", 16);
        assert_allowedip(&b->allowedips[1], "10.2.0.0", 16);
        assert_allowedip(&b->allowedips[2], "10.3.0.0", 16);
        assert_allowedip(&b->allowedips[3], "10.4.0.0", 16);
        assert_allowedip(&b->allowedips[4], "2001:db8:1::", 48);

        key_fill(key, 'C', 'K');
        assert_memory_equal(c->public_key, key, WG_KEY_LEN);
        assert_int_equal(c->flags, WG_PEER_HAS_PUBLIC_KEY | WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL);
        assert_int_equal(c->endpoint.addr.sa_family, AF_UNSPEC);
        assert_int_equal(c->last_handshake_time_sec, 5);
        assert_int_equal(c->last_handshake_time_nsec, 6);
        assert_int_equal(c->rx_bytes, 7);
        assert_int_equal(c->tx_bytes, 8);
        assert_int_equal(c->n_allowedips, 1);
        assert_allowedip(&c->allowedips[0], "192.168.0.0", 24);
}

/* A device without peers answers one message without a PEERS nest. */
static void test_dump_no_peers(void **state) {
        _cleanup_(wg_kernel_dump_clear) struct wg_kernel_dump d = {};
        _cleanup_(wg_device_freep) struct wg_device *dev = NULL;
        struct nl_msg *m = kmsg_new(WG_CMD_GET_DEVICE, 0);

        assert_int_equal(nla_put_u16(m, WGDEVICE_A_LISTEN_PORT, 0), 0);
        assert_int_equal(nla_put_u32(m, WGDEVICE_A_FWMARK, 0), 0);
        assert_int_equal(nla_put_u32(m, WGDEVICE_A_IFINDEX, 9), 0);
        assert_int_equal(nla_put_string(m, WGDEVICE_A_IFNAME, "wg1"), 0);
        /* An attribute newer than this code is skipped, not an error. */
        assert_int_equal(nla_put_u32(m, WGDEVICE_A_MAX + 5, 1), 0);
        wg_kernel_dump_init(&d, FAMILY);
        assert_int_equal(feed(&d, m), 0);
        nlmsg_free(m);
        assert_int_equal(wg_kernel_dump_finish(&d, &dev), 0);
        assert_string_equal(dev->name, "wg1");
        assert_int_equal(dev->ifindex, 9);
        assert_int_equal(dev->flags, WG_DEVICE_HAS_LISTEN_PORT | WG_DEVICE_HAS_FWMARK);
        assert_int_equal(dev->n_peers, 0);
}

static void test_dump_interrupted(void **state) {
        for (int at = 1; at <= 4; at++) {
                _cleanup_(wg_kernel_dump_clear) struct wg_kernel_dump d = {};
                struct wg_device sentinel, *dev = &sentinel;
                struct nl_msg *msgs[4];

                build_dump(msgs, at);
                wg_kernel_dump_init(&d, FAMILY);
                for (int i = 0; i < 4; i++)
                        assert_int_equal(feed(&d, msgs[i]), 0);
                free_msgs(msgs, 4);
                assert_true(d.interrupted);
                assert_int_equal(wg_kernel_dump_finish(&d, &dev), -EAGAIN);
                assert_ptr_equal(dev, &sentinel);

                /* The retry starts from scratch and succeeds. */
                wg_kernel_dump_clear(&d);
                assert_false(d.interrupted);
                assert_null(d.device);
                build_dump(msgs, 0);
                for (int i = 0; i < 4; i++)
                        assert_int_equal(feed(&d, msgs[i]), 0);
                free_msgs(msgs, 4);
                assert_int_equal(wg_kernel_dump_finish(&d, &dev), 0);
                assert_int_equal(dev->n_peers, 3);
                assert_int_equal(dev->peers[1].n_allowedips, 5);
                wg_device_free(dev);
        }
}

static void test_dump_empty(void **state) {
        _cleanup_(wg_kernel_dump_clear) struct wg_kernel_dump d = {};
        struct wg_device sentinel, *dev = &sentinel;

        wg_kernel_dump_init(&d, FAMILY);
        assert_int_equal(wg_kernel_dump_finish(&d, &dev), -EBADMSG);
        assert_non_null(d.reason);
        assert_ptr_equal(dev, &sentinel);
}

/* ---- malformed dumps ---- */

enum bad_kind {
        BAD_PEER_KEY_31,
        BAD_PRIVATE_KEY_33,
        BAD_AIP_FAMILY,
        BAD_AIP_V4_CIDR,
        BAD_AIP_V6_CIDR,
        BAD_AIP_V4_ADDR_16,
        BAD_AIP_ADDR_5,
        BAD_AIP_NO_CIDR,
        BAD_ENDPOINT_FAMILY_SIZE,
        BAD_ENDPOINT_SHORT,
        BAD_ENDPOINT_FAMILY,
        BAD_IFNAME_UNTERMINATED,
        BAD_IFNAME_LONG,
        BAD_LISTEN_PORT_4,
        BAD_NO_PEER_KEY,
        BAD_RX_BYTES_4,
        BAD_HANDSHAKE_8,
        BAD_COMMAND,
        BAD_TRUNCATED,
        BAD_TRUNCATED_NESTED,
        BAD_TRUNCATED_ARRAY,
        BAD_HEADER_ONLY,
        BAD_LEN_BEYOND_BUFFER,
        _BAD_MAX,
};

static const char *const bad_kind_names[_BAD_MAX] = {
        [BAD_PEER_KEY_31] = "peer key 31 bytes",
        [BAD_PRIVATE_KEY_33] = "private key 33 bytes",
        [BAD_AIP_FAMILY] = "allowed IP family AF_UNIX",
        [BAD_AIP_V4_CIDR] = "IPv4 /33",
        [BAD_AIP_V6_CIDR] = "IPv6 /129",
        [BAD_AIP_V4_ADDR_16] = "AF_INET with 16-byte address",
        [BAD_AIP_ADDR_5] = "5-byte address",
        [BAD_AIP_NO_CIDR] = "allowed IP without prefix",
        [BAD_ENDPOINT_FAMILY_SIZE] = "AF_INET6 endpoint of sockaddr_in size",
        [BAD_ENDPOINT_SHORT] = "10-byte endpoint",
        [BAD_ENDPOINT_FAMILY] = "AF_UNIX endpoint",
        [BAD_IFNAME_UNTERMINATED] = "name without NUL",
        [BAD_IFNAME_LONG] = "name of 16 characters",
        [BAD_LISTEN_PORT_4] = "listen port 4 bytes",
        [BAD_NO_PEER_KEY] = "peer without key",
        [BAD_RX_BYTES_4] = "rx bytes 4 bytes",
        [BAD_HANDSHAKE_8] = "handshake time 8 bytes",
        [BAD_COMMAND] = "SET command",
        [BAD_TRUNCATED] = "message cut inside an attribute",
        [BAD_TRUNCATED_NESTED] = "attribute overrunning its nest",
        [BAD_TRUNCATED_ARRAY] = "garbage after the last peer",
        [BAD_HEADER_ONLY] = "10 bytes",
        [BAD_LEN_BEYOND_BUFFER] = "nlmsg_len beyond the buffer",
};

/* One dump message with one peer and one allowed IP, broken as KIND says. */
static struct nl_msg *build_bad(enum bad_kind kind) {
        struct nl_msg *m = kmsg_new(kind == BAD_COMMAND ? WG_CMD_SET_DEVICE : WG_CMD_GET_DEVICE, 0);
        uint8_t key[WG_KEY_LEN + 1] = {}, zero[40] = {};
        struct nlattr *peers, *peer, *ips, *ip, *cidr = NULL;
        struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
        struct sockaddr_in sin = { .sin_family = AF_INET6 };
        uint32_t addr = htonl(0x0a000001);

        if (kind == BAD_IFNAME_UNTERMINATED)
                assert_int_equal(nla_put(m, WGDEVICE_A_IFNAME, 3, "wg0"), 0);
        else if (kind == BAD_IFNAME_LONG)
                assert_int_equal(nla_put_string(m, WGDEVICE_A_IFNAME, "0123456789abcdef"), 0);
        else
                assert_int_equal(nla_put_string(m, WGDEVICE_A_IFNAME, "wg0"), 0);
        assert_int_equal(nla_put(m, WGDEVICE_A_PRIVATE_KEY, kind == BAD_PRIVATE_KEY_33 ? 33 : 32, key), 0);
        if (kind == BAD_LISTEN_PORT_4)
                assert_int_equal(nla_put_u32(m, WGDEVICE_A_LISTEN_PORT, 1), 0);

        peers = knest(m, WGDEVICE_A_PEERS);
        peer = knest(m, 0);
        if (kind != BAD_NO_PEER_KEY)
                assert_int_equal(nla_put(m, WGPEER_A_PUBLIC_KEY, kind == BAD_PEER_KEY_31 ? 31 : 32, key), 0);
        if (kind == BAD_ENDPOINT_FAMILY_SIZE)
                assert_int_equal(nla_put(m, WGPEER_A_ENDPOINT, sizeof(sin), &sin), 0);
        else if (kind == BAD_ENDPOINT_SHORT)
                assert_int_equal(nla_put(m, WGPEER_A_ENDPOINT, 10, &sin6), 0);
        else if (kind == BAD_ENDPOINT_FAMILY) {
                sin6.sin6_family = AF_UNIX;
                assert_int_equal(nla_put(m, WGPEER_A_ENDPOINT, sizeof(sin6), &sin6), 0);
        } else
                assert_int_equal(nla_put(m, WGPEER_A_ENDPOINT, sizeof(sin6), &sin6), 0);
        if (kind == BAD_RX_BYTES_4)
                assert_int_equal(nla_put_u32(m, WGPEER_A_RX_BYTES, 1), 0);
        assert_int_equal(nla_put(m, WGPEER_A_LAST_HANDSHAKE_TIME, kind == BAD_HANDSHAKE_8 ? 8 : 16, zero), 0);

        ips = knest(m, WGPEER_A_ALLOWEDIPS);
        ip = knest(m, 0);
        assert_int_equal(nla_put_u16(m, WGALLOWEDIP_A_FAMILY,
                                     kind == BAD_AIP_FAMILY ? AF_UNIX : kind == BAD_AIP_V6_CIDR ? AF_INET6 : AF_INET),
                         0);
        if (kind == BAD_AIP_V4_ADDR_16 || kind == BAD_AIP_V6_CIDR)
                assert_int_equal(nla_put(m, WGALLOWEDIP_A_IPADDR, 16, zero), 0);
        else if (kind == BAD_AIP_ADDR_5)
                assert_int_equal(nla_put(m, WGALLOWEDIP_A_IPADDR, 5, zero), 0);
        else
                assert_int_equal(nla_put(m, WGALLOWEDIP_A_IPADDR, 4, &addr), 0);
        if (kind != BAD_AIP_NO_CIDR) {
                cidr = (struct nlattr *) ((uint8_t *) nlmsg_hdr(m) + nlmsg_hdr(m)->nlmsg_len);
                assert_int_equal(nla_put_u8(m, WGALLOWEDIP_A_CIDR_MASK,
                                            kind == BAD_AIP_V4_CIDR ? 33 : kind == BAD_AIP_V6_CIDR ? 129 : 8),
                                 0);
        }
        nla_nest_end(m, ip);
        nla_nest_end(m, ips);
        nla_nest_end(m, peer);
        if (kind == BAD_TRUNCATED_ARRAY) {
                /* Two stray bytes inside the peers array, after its last element. */
                assert_non_null(nlmsg_reserve(m, 4, 1));
                nla_nest_end(m, peers);
                peers->nla_len -= 2;
        } else
                nla_nest_end(m, peers);

        if (kind == BAD_TRUNCATED_NESTED)
                /* The prefix length claims more than its nest holds. */
                cidr->nla_len = 9;
        if (kind == BAD_TRUNCATED)
                /* The message ends in the middle of the peers nest. */
                nlmsg_hdr(m)->nlmsg_len -= 8;
        return m;
}

static void test_dump_malformed(void **state) {
        for (int kind = 0; kind < _BAD_MAX; kind++) {
                _cleanup_(wg_kernel_dump_clear) struct wg_kernel_dump d = {};
                struct wg_device sentinel, *dev = &sentinel;
                struct nl_msg *m = build_bad(kind);
                struct nlmsghdr *h = nlmsg_hdr(m);
                size_t len = h->nlmsg_len;
                int r;

                if (kind == BAD_HEADER_ONLY)
                        len = 10;
                else if (kind == BAD_LEN_BEYOND_BUFFER)
                        len -= 4;
                wg_kernel_dump_init(&d, FAMILY);
                r = wg_kernel_dump_add(&d, (const uint8_t *) h, len);
                if (r != -EBADMSG || !d.reason)
                        fail_msg("%s: %d, reason %s", bad_kind_names[kind], r, d.reason ? d.reason : "none");
                /* The error sticks: the dump cannot be finished into a device. */
                assert_int_equal(wg_kernel_dump_add(&d, (const uint8_t *) h, h->nlmsg_len), -EBADMSG);
                assert_int_equal(wg_kernel_dump_finish(&d, &dev), -EBADMSG);
                assert_ptr_equal(dev, &sentinel);
                nlmsg_free(m);
        }
}

static void test_dump_wrong_family(void **state) {
        _cleanup_(wg_kernel_dump_clear) struct wg_kernel_dump d = {};
        struct nl_msg *msgs[4];

        build_dump(msgs, 0);
        wg_kernel_dump_init(&d, FAMILY + 1);
        assert_int_equal(feed(&d, msgs[0]), -EBADMSG);
        assert_non_null(d.reason);
        free_msgs(msgs, 4);
}

/* The sane version of build_bad() parses: the failures above come from the
 * one thing each breaks. */
static void test_dump_malformed_control(void **state) {
        _cleanup_(wg_kernel_dump_clear) struct wg_kernel_dump d = {};
        _cleanup_(wg_device_freep) struct wg_device *dev = NULL;
        struct nl_msg *m;

        m = build_bad(_BAD_MAX);
        wg_kernel_dump_init(&d, FAMILY);
        assert_int_equal(feed(&d, m), 0);
        nlmsg_free(m);
        assert_int_equal(wg_kernel_dump_finish(&d, &dev), 0);
        assert_int_equal(dev->n_peers, 1);
        assert_int_equal(dev->peers[0].n_allowedips, 1);
        assert_allowedip(&dev->peers[0].allowedips[0], "10.0.0.1", 8);
        assert_int_equal(dev->peers[0].endpoint.addr.sa_family, AF_INET6);
}

/* Every truncation and many byte flips of real messages: 0 or -EBADMSG,
 * and (under ASan) no read outside the buffer. */
static void test_dump_mutations(void **state) {
        struct nl_msg *msgs[4];
        size_t tried = 0, rejected = 0;

        build_dump(msgs, 0);
        for (int i = 0; i < 4; i++) {
                struct nlmsghdr *h = nlmsg_hdr(msgs[i]);
                size_t len = h->nlmsg_len;

                for (size_t cut = 0; cut <= len; cut++) {
                        for (int mode = 0; mode < 3; mode++) {
                                _cleanup_(wg_kernel_dump_clear) struct wg_kernel_dump d = {};
                                size_t n = mode == 0 ? cut : len;
                                /* Exactly N bytes, so ASan sees any read past them. */
                                _cleanup_(freep) uint8_t *buf = malloc(MAX(n, (size_t) 1));
                                int r;

                                assert_non_null(buf);
                                memcpy(buf, h, n);
                                if (mode == 0 && cut >= sizeof(struct nlmsghdr))
                                        ((struct nlmsghdr *) buf)->nlmsg_len = (uint32_t) cut;
                                else if (mode == 1 && cut < len)
                                        buf[cut] ^= 0xff;
                                else if (mode == 2 && cut < len)
                                        buf[cut] ^= (uint8_t) (1u << (cut % 8));
                                wg_kernel_dump_init(&d, FAMILY);
                                r = wg_kernel_dump_add(&d, buf, n);
                                assert_true(r == 0 || r == -EBADMSG);
                                assert_true(r == 0 || d.reason != NULL);
                                tried++;
                                rejected += r < 0;
                        }
                }
        }
        free_msgs(msgs, 4);
        /* Sanity: the mutations did hit the checks. */
        assert_true(rejected > tried / 4);
}

/* ---- SET: an independent decoder ---- */

struct set_decoded {
        struct wg_device *dev;
        size_t n_msgs;
        size_t n_continuations;
        bool replace_peers;
};

static void set_decoded_done(struct set_decoded *s) {
        wg_device_free(s->dev);
}

/* Walk attributes, insisting they fill LEN exactly (modulo last padding). */
#define for_each_attr_strict(a, head, len, rem) \
        for (a = (const struct nlattr *) (head), rem = (len); nla_ok(a, rem); a = nla_next(a, &rem))

static void decode_allowedips(const struct nlattr *list, struct wg_peer *p) {
        const struct nlattr *e, *a;
        int rem, rem2;

        assert_true(list->nla_type & NLA_F_NESTED);
        for_each_attr_strict(e, nla_data(list), nla_len(list), rem) {
                struct wg_allowedip ip = {};
                int seen = 0;

                assert_true(e->nla_type & NLA_F_NESTED);
                for_each_attr_strict(a, nla_data(e), nla_len(e), rem2) {
                        switch (nla_type(a)) {
                        case WGALLOWEDIP_A_FAMILY:
                                assert_int_equal(nla_len(a), 2);
                                ip.family = *(const uint16_t *) nla_data(a);
                                seen |= 1;
                                break;
                        case WGALLOWEDIP_A_IPADDR:
                                assert_true(nla_len(a) == 4 || nla_len(a) == 16);
                                memcpy(&ip.ip, nla_data(a), (size_t) nla_len(a));
                                seen |= 2;
                                assert_int_equal(nla_len(a), ip.family == AF_INET ? 4 : 16);
                                break;
                        case WGALLOWEDIP_A_CIDR_MASK:
                                assert_int_equal(nla_len(a), 1);
                                ip.cidr = *(const uint8_t *) nla_data(a);
                                seen |= 4;
                                break;
                        default:
                                fail_msg("unexpected allowed IP attribute %d", nla_type(a));
                        }
                }
                assert_int_equal(rem2, 0);
                assert_int_equal(seen, 7);
                assert_int_equal(wg_peer_add_allowedip(p, &ip), 0);
        }
        assert_int_equal(rem, 0);
}

/* One peer element of message MSG_INDEX; FIRST_IN_MSG: the first of its
 * peers array. */
static void decode_peer(struct set_decoded *s, const struct nlattr *elem, size_t msg_index, bool first_in_msg) {
        const struct nlattr *tb[WGPEER_A_MAX + 1] = {}, *a;
        struct wg_device *dev = s->dev;
        uint32_t flags = 0;
        struct wg_peer *p;
        int rem;

        assert_true(elem->nla_type & NLA_F_NESTED);
        for_each_attr_strict(a, nla_data(elem), nla_len(elem), rem) {
                int t = nla_type(a);

                assert_true(t > 0 && t <= WGPEER_A_MAX);
                assert_null(tb[t]);
                tb[t] = a;
        }
        assert_int_equal(rem, 0);
        assert_non_null(tb[WGPEER_A_PUBLIC_KEY]);
        assert_int_equal(nla_len(tb[WGPEER_A_PUBLIC_KEY]), WG_KEY_LEN);
        /* GET-only attributes never go into a SET. */
        assert_null(tb[WGPEER_A_LAST_HANDSHAKE_TIME]);
        assert_null(tb[WGPEER_A_RX_BYTES]);
        assert_null(tb[WGPEER_A_TX_BYTES]);
        assert_null(tb[WGPEER_A_PROTOCOL_VERSION]);
        if (tb[WGPEER_A_FLAGS]) {
                assert_int_equal(nla_len(tb[WGPEER_A_FLAGS]), 4);
                flags = *(const uint32_t *) nla_data(tb[WGPEER_A_FLAGS]);
                assert_int_equal(flags & ~(uint32_t) __WGPEER_F_ALL, 0);
                /* Zero flags are not worth sending. */
                assert_int_not_equal(flags, 0);
        }

        if (dev->n_peers > 0 &&
            memcmp(dev->peers[dev->n_peers - 1].public_key, nla_data(tb[WGPEER_A_PUBLIC_KEY]), WG_KEY_LEN) == 0) {
                /* A continuation: only at the start of a later message,
                 * with nothing but key, UPDATE_ONLY and allowed IPs. */
                p = &dev->peers[dev->n_peers - 1];
                assert_true(first_in_msg);
                assert_true(msg_index > 0);
                assert_int_equal(flags & ~(uint32_t) WGPEER_F_UPDATE_ONLY, 0);
                assert_int_equal(!!(flags & WGPEER_F_UPDATE_ONLY), !!(p->flags & WG_PEER_UPDATE_ONLY));
                assert_null(tb[WGPEER_A_PRESHARED_KEY]);
                assert_null(tb[WGPEER_A_ENDPOINT]);
                assert_null(tb[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]);
                assert_non_null(tb[WGPEER_A_ALLOWEDIPS]);
                assert_false(p->flags & WG_PEER_REMOVE_ME);
                s->n_continuations++;
                decode_allowedips(tb[WGPEER_A_ALLOWEDIPS], p);
                return;
        }

        p = wg_device_add_peer(dev);
        assert_non_null(p);
        memcpy(p->public_key, nla_data(tb[WGPEER_A_PUBLIC_KEY]), WG_KEY_LEN);
        p->flags |= WG_PEER_HAS_PUBLIC_KEY;
        if (flags & WGPEER_F_REMOVE_ME) {
                /* Nothing but the key and the flag. */
                assert_int_equal(flags, WGPEER_F_REMOVE_ME);
                for (int t = 0; t <= WGPEER_A_MAX; t++)
                        if (t != WGPEER_A_PUBLIC_KEY && t != WGPEER_A_FLAGS)
                                assert_null(tb[t]);
                p->flags |= WG_PEER_REMOVE_ME;
                return;
        }
        if (flags & WGPEER_F_REPLACE_ALLOWEDIPS)
                p->flags |= WG_PEER_REPLACE_ALLOWEDIPS;
        if (flags & WGPEER_F_UPDATE_ONLY)
                p->flags |= WG_PEER_UPDATE_ONLY;
        if (tb[WGPEER_A_PRESHARED_KEY]) {
                assert_int_equal(nla_len(tb[WGPEER_A_PRESHARED_KEY]), WG_KEY_LEN);
                memcpy(p->preshared_key, nla_data(tb[WGPEER_A_PRESHARED_KEY]), WG_KEY_LEN);
                p->flags |= WG_PEER_HAS_PRESHARED_KEY;
        }
        if (tb[WGPEER_A_ENDPOINT]) {
                const struct sockaddr *sa = nla_data(tb[WGPEER_A_ENDPOINT]);

                if (sa->sa_family == AF_INET)
                        assert_int_equal(nla_len(tb[WGPEER_A_ENDPOINT]), sizeof(struct sockaddr_in));
                else {
                        assert_int_equal(sa->sa_family, AF_INET6);
                        assert_int_equal(nla_len(tb[WGPEER_A_ENDPOINT]), sizeof(struct sockaddr_in6));
                }
                memcpy(&p->endpoint, sa, (size_t) nla_len(tb[WGPEER_A_ENDPOINT]));
                p->flags |= WG_PEER_HAS_ENDPOINT;
        }
        if (tb[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]) {
                assert_int_equal(nla_len(tb[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]), 2);
                p->persistent_keepalive_interval = *(const uint16_t *) nla_data(tb[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]);
                p->flags |= WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL;
        }
        if (tb[WGPEER_A_ALLOWEDIPS])
                decode_allowedips(tb[WGPEER_A_ALLOWEDIPS], p);
}

static void decode_set(struct nl_msg **msgs, size_t n, size_t max, struct set_decoded *s) {
        *s = (struct set_decoded) { .dev = calloc(1, sizeof(struct wg_device)), .n_msgs = n };
        assert_non_null(s->dev);
        assert_true(n >= 1);

        for (size_t i = 0; i < n; i++) {
                struct nlmsghdr *h = nlmsg_hdr(msgs[i]);
                struct genlmsghdr *g = nlmsg_data(h);
                const struct nlattr *a;
                bool peers_seen = false;
                int rem;

                assert_true(h->nlmsg_len <= max);
                assert_int_equal(h->nlmsg_type, FAMILY);
                assert_int_equal(h->nlmsg_flags, NLM_F_REQUEST | NLM_F_ACK);
                assert_int_equal(g->cmd, WG_CMD_SET_DEVICE);
                assert_int_equal(g->version, WG_GENL_VERSION);

                for_each_attr_strict(a, genlmsg_attrdata(g, 0), genlmsg_attrlen(g, 0), rem) {
                        const struct nlattr *e;
                        bool first_in_msg = true;
                        int rem2;

                        switch (nla_type(a)) {
                        case WGDEVICE_A_IFNAME:
                                assert_true(nla_len(a) <= IFNAMSIZ);
                                assert_int_equal(((const char *) nla_data(a))[nla_len(a) - 1], '\0');
                                if (i == 0)
                                        strcpy(s->dev->name, nla_data(a));
                                else
                                        assert_string_equal(s->dev->name, nla_data(a));
                                break;
                        case WGDEVICE_A_IFINDEX:
                                assert_int_equal(nla_len(a), 4);
                                s->dev->ifindex = *(const uint32_t *) nla_data(a);
                                break;
                        case WGDEVICE_A_FLAGS:
                                /* REPLACE_PEERS in a later message would drop earlier peers. */
                                assert_int_equal(i, 0);
                                assert_int_equal(*(const uint32_t *) nla_data(a), WGDEVICE_F_REPLACE_PEERS);
                                s->replace_peers = true;
                                s->dev->flags |= WG_DEVICE_REPLACE_PEERS;
                                break;
                        case WGDEVICE_A_PRIVATE_KEY:
                                assert_int_equal(i, 0);
                                assert_int_equal(nla_len(a), WG_KEY_LEN);
                                memcpy(s->dev->private_key, nla_data(a), WG_KEY_LEN);
                                s->dev->flags |= WG_DEVICE_HAS_PRIVATE_KEY;
                                break;
                        case WGDEVICE_A_LISTEN_PORT:
                                assert_int_equal(i, 0);
                                assert_int_equal(nla_len(a), 2);
                                s->dev->listen_port = *(const uint16_t *) nla_data(a);
                                s->dev->flags |= WG_DEVICE_HAS_LISTEN_PORT;
                                break;
                        case WGDEVICE_A_FWMARK:
                                assert_int_equal(i, 0);
                                assert_int_equal(nla_len(a), 4);
                                s->dev->fwmark = *(const uint32_t *) nla_data(a);
                                s->dev->flags |= WG_DEVICE_HAS_FWMARK;
                                break;
                        case WGDEVICE_A_PEERS:
                                assert_false(peers_seen);
                                peers_seen = true;
                                assert_true(a->nla_type & NLA_F_NESTED);
                                for_each_attr_strict(e, nla_data(a), nla_len(a), rem2) {
                                        decode_peer(s, e, i, first_in_msg);
                                        first_in_msg = false;
                                }
                                assert_int_equal(rem2, 0);
                                /* No empty arrays. */
                                assert_false(first_in_msg);
                                break;
                        default:
                                fail_msg("unexpected device attribute %d", nla_type(a));
                        }
                }
                assert_int_equal(rem, 0);
                /* Only the first message may be without peers. */
                assert_true(i == 0 || peers_seen);
        }
}

/* What the wire can say about peer P, in wg.h terms. */
static uint32_t expected_peer_flags(const struct wg_peer *p) {
        if (p->flags & WG_PEER_REMOVE_ME)
                return WG_PEER_REMOVE_ME | WG_PEER_HAS_PUBLIC_KEY;
        return WG_PEER_HAS_PUBLIC_KEY |
               (p->flags & (WG_PEER_REPLACE_ALLOWEDIPS | WG_PEER_UPDATE_ONLY | WG_PEER_HAS_PRESHARED_KEY |
                            WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL | WG_PEER_HAS_ENDPOINT));
}

static void assert_same_peers(const struct wg_device *want, const struct wg_device *got) {
        assert_int_equal(got->n_peers, want->n_peers);
        for (size_t i = 0; i < want->n_peers; i++) {
                const struct wg_peer *w = &want->peers[i], *g = &got->peers[i];
                uint32_t f = expected_peer_flags(w);

                assert_memory_equal(g->public_key, w->public_key, WG_KEY_LEN);
                assert_int_equal(g->flags, f);
                if (f & WG_PEER_HAS_PRESHARED_KEY)
                        assert_memory_equal(g->preshared_key, w->preshared_key, WG_KEY_LEN);
                if (f & WG_PEER_HAS_ENDPOINT)
                        assert_memory_equal(&g->endpoint, &w->endpoint,
                                            w->endpoint.addr.sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                                                                  : sizeof(struct sockaddr_in6));
                if (f & WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL)
                        assert_int_equal(g->persistent_keepalive_interval, w->persistent_keepalive_interval);
                if (f & WG_PEER_REMOVE_ME) {
                        assert_int_equal(g->n_allowedips, 0);
                        continue;
                }
                assert_int_equal(g->n_allowedips, w->n_allowedips);
                for (size_t j = 0; j < w->n_allowedips; j++) {
                        assert_int_equal(g->allowedips[j].family, w->allowedips[j].family);
                        assert_int_equal(g->allowedips[j].cidr, w->allowedips[j].cidr);
                        assert_memory_equal(&g->allowedips[j].ip, &w->allowedips[j].ip,
                                            w->allowedips[j].family == AF_INET ? 4 : 16);
                }
        }
}

static struct wg_device *device_new(const char *name) {
        struct wg_device *dev = calloc(1, sizeof(*dev));

        assert_non_null(dev);
        strcpy(dev->name, name);
        return dev;
}

static void add_ip(struct wg_peer *p, int family, uint32_t seed, uint8_t cidr) {
        struct wg_allowedip a = { .family = family, .cidr = cidr };

        if (family == AF_INET)
                a.ip.in.s_addr = htonl(seed);
        else {
                a.ip.bytes[0] = 0xfd;
                memcpy(&a.ip.bytes[12], &seed, sizeof(seed));
        }
        assert_int_equal(wg_peer_add_allowedip(p, &a), 0);
}

/* 10,000 peers of every kind: allowed IPs 1..20, mixed families, some
 * with preshared keys, endpoints, keepalive; some to remove (carrying junk
 * that must not be sent). */
static struct wg_device *big_device(void) {
        struct wg_device *dev = device_new("wg-big");

        dev->flags = WG_DEVICE_REPLACE_PEERS | WG_DEVICE_HAS_PRIVATE_KEY | WG_DEVICE_HAS_LISTEN_PORT |
                     WG_DEVICE_HAS_FWMARK;
        key_fill(dev->private_key, 99, 'S');
        dev->listen_port = 51820;
        dev->fwmark = 0xca6c;
        rng_state = 2463534242u;
        for (uint32_t i = 0; i < 10000; i++) {
                struct wg_peer *p = wg_device_add_peer(dev);
                uint32_t n_ips = 1 + rng() % 20;

                assert_non_null(p);
                key_fill(p->public_key, i, 'K');
                p->flags = WG_PEER_HAS_PUBLIC_KEY;
                if (i % 97 == 0)
                        p->flags |= WG_PEER_REMOVE_ME;
                if (i % 2 == 0)
                        p->flags |= WG_PEER_REPLACE_ALLOWEDIPS;
                if (i % 7 == 0)
                        p->flags |= WG_PEER_UPDATE_ONLY;
                if (i % 3 == 0) {
                        p->flags |= WG_PEER_HAS_PRESHARED_KEY;
                        key_fill(p->preshared_key, i, 'Q');
                }
                if (i % 4 != 0) {
                        p->flags |= WG_PEER_HAS_ENDPOINT;
                        if (i % 8 == 1) {
                                p->endpoint.addr6 = (struct sockaddr_in6) {
                                        .sin6_family = AF_INET6,
                                        .sin6_port = htons((uint16_t) i),
                                        .sin6_scope_id = i,
                                };
                                p->endpoint.addr6.sin6_addr.s6_addr[0] = 0x20;
                                memcpy(&p->endpoint.addr6.sin6_addr.s6_addr[8], &i, sizeof(i));
                        } else {
                                p->endpoint.addr4.sin_family = AF_INET;
                                p->endpoint.addr4.sin_port = htons((uint16_t) (i + 1));
                                p->endpoint.addr4.sin_addr.s_addr = htonl(0xc6336400 + i);
                        }
                }
                if (i % 5 == 0) {
                        p->flags |= WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL;
                        p->persistent_keepalive_interval = (uint16_t) (i % 60);
                }
                for (uint32_t j = 0; j < n_ips; j++) {
                        bool v6 = rng() % 3 == 0;

                        add_ip(p, v6 ? AF_INET6 : AF_INET, i * 32 + j, (uint8_t) (v6 ? 32 + rng() % 97 : rng() % 33));
                }
        }
        return dev;
}

static void check_big_set(size_t max) {
        _cleanup_(wg_device_freep) struct wg_device *dev = big_device();
        _cleanup_(set_decoded_done) struct set_decoded s = {};
        struct nl_msg **msgs = NULL;
        size_t n = 0, total = 0;

        assert_int_equal(wg_kernel_build_set(dev, FAMILY, max, &msgs, &n), 0);
        decode_set(msgs, n, max, &s);
        for (size_t i = 0; i < n; i++)
                total += nlmsg_hdr(msgs[i])->nlmsg_len;
        print_message("max %zu: %zu messages, %zu bytes, %zu continuations\n", max, n, total, s.n_continuations);
        /* Messages are filled, not one peer each. */
        assert_true(n <= total / (max * 3 / 4) + 1);
        assert_true(n > 1);
        assert_true(s.n_continuations > 0);

        assert_true(s.replace_peers);
        assert_string_equal(s.dev->name, "wg-big");
        assert_memory_equal(s.dev->private_key, dev->private_key, WG_KEY_LEN);
        assert_int_equal(s.dev->listen_port, 51820);
        assert_int_equal(s.dev->fwmark, 0xca6c);
        assert_int_equal(s.dev->flags, dev->flags);
        assert_same_peers(dev, s.dev);
        wg_kernel_msgs_free(msgs, n);
}

static void test_set_10000_peers(void **state) {
        check_big_set(wg_kernel_msg_max());
}

static void test_set_10000_peers_small_messages(void **state) {
        check_big_set(600);
}

static void test_set_one_peer_5000_ips(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *dev = device_new("wg0");
        _cleanup_(set_decoded_done) struct set_decoded s = {};
        struct nl_msg **msgs = NULL;
        struct wg_peer *p;
        size_t n = 0;

        dev->flags = WG_DEVICE_REPLACE_PEERS;
        p = wg_device_add_peer(dev);
        assert_non_null(p);
        key_fill(p->public_key, 5000, 'K');
        key_fill(p->preshared_key, 5000, 'Q');
        p->flags = WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REPLACE_ALLOWEDIPS | WG_PEER_UPDATE_ONLY |
                   WG_PEER_HAS_PRESHARED_KEY | WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL;
        p->persistent_keepalive_interval = 25;
        for (uint32_t j = 0; j < 5000; j++)
                add_ip(p, j % 2 ? AF_INET6 : AF_INET, j, j % 2 ? 128 : 32);

        assert_int_equal(wg_kernel_build_set(dev, FAMILY, wg_kernel_msg_max(), &msgs, &n), 0);
        decode_set(msgs, n, wg_kernel_msg_max(), &s);
        assert_true(n > 1);
        /* Every message after the first continues the one peer. */
        assert_int_equal(s.n_continuations, n - 1);
        assert_same_peers(dev, s.dev);
        wg_kernel_msgs_free(msgs, n);
}

/* A peer whose head fits but none of whose allowed IPs do: the head goes
 * alone, the allowed IPs follow as a continuation. */
static void test_set_cut_after_head(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *dev = device_new("wg0");
        _cleanup_(set_decoded_done) struct set_decoded s = {};
        struct nl_msg **msgs = NULL;
        struct wg_peer *p;
        size_t n = 0, max;

        p = wg_device_add_peer(dev);
        assert_non_null(p);
        key_fill(p->public_key, 1, 'K');
        p->flags = WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REPLACE_ALLOWEDIPS;
        add_ip(p, AF_INET6, 1, 64);
        /* header 20, name 8, peers 4, peer 4, key 36, flags 8; an allowed IP
         * needs 4 + 4 + 8 + 20 + 8 = 44 more. */
        max = 20 + 8 + 4 + 4 + 36 + 8 + 43;
        assert_int_equal(wg_kernel_build_set(dev, FAMILY, max, &msgs, &n), 0);
        decode_set(msgs, n, max, &s);
        assert_int_equal(n, 2);
        assert_int_equal(s.n_continuations, 1);
        assert_same_peers(dev, s.dev);
        wg_kernel_msgs_free(msgs, n);
}

static void test_set_remove_me_only_key(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *dev = device_new("wg0");
        struct nl_msg **msgs = NULL;
        struct wg_peer *p;
        size_t n = 0;
        struct nlmsghdr *h;
        struct nlattr *peers, *peer, *a;
        int rem, count = 0;

        p = wg_device_add_peer(dev);
        assert_non_null(p);
        key_fill(p->public_key, 1, 'K');
        p->flags = WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REMOVE_ME | WG_PEER_REPLACE_ALLOWEDIPS | WG_PEER_UPDATE_ONLY |
                   WG_PEER_HAS_PRESHARED_KEY | WG_PEER_HAS_ENDPOINT | WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL;
        /* Junk a removal must not carry, not even when invalid. */
        p->endpoint.addr.sa_family = AF_UNIX;
        add_ip(p, AF_INET, 1, 32);
        p->allowedips[0].cidr = 200;

        assert_int_equal(wg_kernel_build_set(dev, FAMILY, wg_kernel_msg_max(), &msgs, &n), 0);
        assert_int_equal(n, 1);
        h = nlmsg_hdr(msgs[0]);
        peers = nlmsg_find_attr(h, GENL_HDRLEN, WGDEVICE_A_PEERS);
        assert_non_null(peers);
        peer = nla_data(peers);
        assert_int_equal(nla_len(peers), NLA_ALIGN(peer->nla_len));
        nla_for_each_nested(a, peer, rem) {
                count++;
                if (nla_type(a) == WGPEER_A_PUBLIC_KEY)
                        assert_memory_equal(nla_data(a), p->public_key, WG_KEY_LEN);
                else {
                        assert_int_equal(nla_type(a), WGPEER_A_FLAGS);
                        assert_int_equal(nla_get_u32(a), WGPEER_F_REMOVE_ME);
                }
        }
        assert_int_equal(count, 2);
        wg_kernel_msgs_free(msgs, n);
}

/* Removals each followed by the re-creation of the same peer (how hamgr
 * clears an endpoint): at every message size, a removal is never the last
 * peer of a message, its re-creation begins in the same one, and every
 * entry is sent once, in order. */
static void test_set_readd_pairs_together(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *dev = device_new("wg0");
        size_t splits_seen = 0;

        for (uint32_t i = 0; i < 60; i++) {
                struct wg_peer *rm = wg_device_add_peer(dev), *add;

                assert_non_null(rm);
                key_fill(rm->public_key, i, 'K');
                rm->flags = WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REMOVE_ME;
                add = wg_device_add_peer(dev);
                assert_non_null(add);
                key_fill(add->public_key, i, 'K');
                add->flags = WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REPLACE_ALLOWEDIPS |
                             WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL;
                add->persistent_keepalive_interval = (uint16_t) i;
                for (uint32_t j = 0; j < 1 + i % 4; j++)
                        add_ip(add, j % 2 ? AF_INET6 : AF_INET, i * 8 + j, j % 2 ? 128 : 32);
        }
        for (size_t max = 200; max <= 2000; max += 7) {
                struct nl_msg **msgs = NULL;
                size_t n = 0, next = 0;

                assert_int_equal(wg_kernel_build_set(dev, FAMILY, max, &msgs, &n), 0);
                for (size_t m = 0; m < n; m++) {
                        struct nlattr *peers = nlmsg_find_attr(nlmsg_hdr(msgs[m]), GENL_HDRLEN, WGDEVICE_A_PEERS);
                        struct nlattr *peer;
                        bool last_was_removal = false;
                        int rem;

                        assert_non_null(peers);
                        nla_for_each_nested(peer, peers, rem) {
                                struct nlattr *key = nla_find(nla_data(peer), nla_len(peer), WGPEER_A_PUBLIC_KEY);
                                struct nlattr *fl = nla_find(nla_data(peer), nla_len(peer), WGPEER_A_FLAGS);
                                uint32_t flags = fl ? nla_get_u32(fl) : 0;
                                bool removal = flags & WGPEER_F_REMOVE_ME;
                                bool head = nla_find(nla_data(peer), nla_len(peer),
                                                     WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL) != NULL;

                                assert_non_null(key);
                                if (!removal && !head) /* the continuation of a cut re-creation */
                                        continue;
                                assert_true(next < dev->n_peers);
                                assert_memory_equal(nla_data(key), dev->peers[next].public_key, WG_KEY_LEN);
                                assert_int_equal(removal, (dev->peers[next].flags & WG_PEER_REMOVE_ME) != 0);
                                next++;
                                last_was_removal = removal;
                        }
                        assert_false(last_was_removal);
                        if (m > 0)
                                splits_seen++;
                }
                assert_int_equal(next, dev->n_peers);
                wg_kernel_msgs_free(msgs, n);
        }
        /* The sizes did cut the set into many messages. */
        assert_true(splits_seen > 1000);
}

static void test_set_device_only(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *dev = device_new("");
        _cleanup_(set_decoded_done) struct set_decoded s = {};
        struct nl_msg **msgs = NULL;
        size_t n = 0;

        dev->ifindex = 12;
        dev->flags = WG_DEVICE_HAS_LISTEN_PORT;
        dev->listen_port = 0; /* "choose randomly" is a value to send */
        assert_int_equal(wg_kernel_build_set(dev, FAMILY, wg_kernel_msg_max(), &msgs, &n), 0);
        assert_int_equal(n, 1);
        decode_set(msgs, n, wg_kernel_msg_max(), &s);
        assert_int_equal(s.dev->ifindex, 12);
        assert_string_equal(s.dev->name, "");
        assert_int_equal(s.dev->flags, WG_DEVICE_HAS_LISTEN_PORT);
        assert_int_equal(s.dev->listen_port, 0);
        assert_false(s.replace_peers);
        wg_kernel_msgs_free(msgs, n);
}

static void test_set_invalid(void **state) {
        struct nl_msg **msgs = (struct nl_msg **) &msgs;
        size_t n = 77;
        struct wg_peer *p;

        {
                _cleanup_(wg_device_freep) struct wg_device *dev = device_new("");
                assert_int_equal(wg_kernel_build_set(dev, FAMILY, 4096, &msgs, &n), -EINVAL);
                memset(dev->name, 'x', sizeof(dev->name));
                assert_int_equal(wg_kernel_build_set(dev, FAMILY, 4096, &msgs, &n), -EINVAL);
        }
        for (int c = 0; c < 4; c++) {
                _cleanup_(wg_device_freep) struct wg_device *dev = device_new("wg0");

                p = wg_device_add_peer(dev);
                assert_non_null(p);
                p->flags = WG_PEER_HAS_PUBLIC_KEY;
                add_ip(p, AF_INET, 1, 32);
                switch (c) {
                case 0:
                        p->allowedips[0].family = AF_UNIX;
                        break;
                case 1:
                        p->allowedips[0].cidr = 33;
                        break;
                case 2:
                        p->allowedips[0].family = AF_INET6;
                        p->allowedips[0].cidr = 129;
                        break;
                case 3:
                        p->flags |= WG_PEER_HAS_ENDPOINT; /* with AF_UNSPEC */
                        break;
                }
                assert_int_equal(wg_kernel_build_set(dev, FAMILY, 4096, &msgs, &n), -EINVAL);
        }
        /* Outputs untouched on failure. */
        assert_ptr_equal(msgs, (struct nl_msg **) &msgs);
        assert_int_equal(n, 77);
}

static void test_set_too_small(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *dev = device_new("wg0");
        struct nl_msg **msgs = (struct nl_msg **) &msgs;
        size_t n = 77;
        struct wg_peer *p;

        dev->flags = WG_DEVICE_HAS_PRIVATE_KEY;
        /* Not even the header and the private key fit. */
        assert_int_equal(wg_kernel_build_set(dev, FAMILY, 40, &msgs, &n), -EMSGSIZE);
        dev->flags = 0;
        p = wg_device_add_peer(dev);
        assert_non_null(p);
        add_ip(p, AF_INET, 1, 32);
        /* The device fits, the peer never does. */
        assert_int_equal(wg_kernel_build_set(dev, FAMILY, 64, &msgs, &n), -EMSGSIZE);
        /* The peer's head fits, its allowed IP never does. */
        assert_int_equal(wg_kernel_build_set(dev, FAMILY, 20 + 8 + 4 + 4 + 36 + 30, &msgs, &n), -EMSGSIZE);
        assert_ptr_equal(msgs, (struct nl_msg **) &msgs);
        assert_int_equal(n, 77);
}

/* A bound above what a nest length can say is clamped. */
static void test_set_huge_bound(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *dev = big_device();
        _cleanup_(set_decoded_done) struct set_decoded s = {};
        struct nl_msg **msgs = NULL;
        size_t n = 0;

        assert_int_equal(wg_kernel_build_set(dev, FAMILY, 1u << 20, &msgs, &n), 0);
        decode_set(msgs, n, UINT16_MAX, &s);
        assert_same_peers(dev, s.dev);
        wg_kernel_msgs_free(msgs, n);
}

static void test_build_get(void **state) {
        struct nl_msg *m = NULL;
        struct nlmsghdr *h;
        struct genlmsghdr *g;
        struct nlattr *a;

        assert_int_equal(wg_kernel_build_get("wg0", FAMILY, &m), 0);
        h = nlmsg_hdr(m);
        g = nlmsg_data(h);
        assert_int_equal(h->nlmsg_type, FAMILY);
        assert_int_equal(h->nlmsg_flags, NLM_F_REQUEST | NLM_F_DUMP);
        assert_int_equal(g->cmd, WG_CMD_GET_DEVICE);
        assert_int_equal(g->version, WG_GENL_VERSION);
        a = nlmsg_find_attr(h, GENL_HDRLEN, WGDEVICE_A_IFNAME);
        assert_non_null(a);
        assert_string_equal(nla_get_string(a), "wg0");
        assert_null(nlmsg_find_attr(h, GENL_HDRLEN, WGDEVICE_A_IFINDEX));
        nlmsg_free(m);

        m = NULL;
        assert_int_equal(wg_kernel_build_get("0123456789abcdef", FAMILY, &m), -EINVAL);
        assert_int_equal(wg_kernel_build_get("", FAMILY, &m), -EINVAL);
        assert_null(m);
}

/* On a machine without the module the family is missing; with it, the
 * interface is. Either way the error says which. */
static void test_live_missing(void **state) {
        struct wg_device *dev = NULL, *set;
        int r;

        r = wg_kernel_get_device("hamgr-nx0", &dev);
        if (r == -EPERM || r == -EACCES || r == -EAFNOSUPPORT) {
                print_message("no generic netlink here (%d), skipping\n", r);
                skip();
        }
        assert_true(r == -EPROTONOSUPPORT || r == -ENODEV);
        /* Only a missing family blames the module. */
        assert_int_equal(strstr(wg_kernel_last_error(), "module is not loaded") != NULL, r == -EPROTONOSUPPORT);
        assert_null(dev);
        set = device_new("hamgr-nx0");
        assert_int_equal(wg_kernel_set_device(set), r);
        assert_int_equal(strstr(wg_kernel_last_error(), "module is not loaded") != NULL, r == -EPROTONOSUPPORT);
        wg_device_free(set);
        assert_int_equal(wg_kernel_get_device("", &dev), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_dump_coalesces),
                cmocka_unit_test(test_dump_no_peers),
                cmocka_unit_test(test_dump_interrupted),
                cmocka_unit_test(test_dump_empty),
                cmocka_unit_test(test_dump_malformed),
                cmocka_unit_test(test_dump_malformed_control),
                cmocka_unit_test(test_dump_wrong_family),
                cmocka_unit_test(test_dump_mutations),
                cmocka_unit_test(test_set_10000_peers),
                cmocka_unit_test(test_set_10000_peers_small_messages),
                cmocka_unit_test(test_set_one_peer_5000_ips),
                cmocka_unit_test(test_set_cut_after_head),
                cmocka_unit_test(test_set_remove_me_only_key),
                cmocka_unit_test(test_set_readd_pairs_together),
                cmocka_unit_test(test_set_device_only),
                cmocka_unit_test(test_set_invalid),
                cmocka_unit_test(test_set_too_small),
                cmocka_unit_test(test_set_huge_bound),
                cmocka_unit_test(test_build_get),
                cmocka_unit_test(test_live_missing),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
