/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Vectors checked against computations that do not go through the code
 * under test: a precomputed checksum constant and a plain reference
 * checksum written here from the RFCs, and endpoints that differ only in
 * their IPv6 scope. Each one kills a mutant that passed every other unit
 * test (tests/mutation/mutants.txt names them). Also: every seed of the
 * packet fuzzer is a message the parser accepts. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "common/macro.h"
#include "vrrp/packet.h"
#include "wg/wg.h"

static struct vrrp_ip_meta meta_of(const char *src, const char *dst) {
        struct vrrp_ip_meta m = { .ttl = 255 };

        assert_int_equal(ip_address_parse(src, &m.src), 0);
        assert_int_equal(ip_address_parse(dst, &m.dst), 0);
        m.family = m.src.family;
        return m;
}

/* A v3 advertisement with N addresses 2001:db8::1.. (or 10.0.0.1..). */
static struct vrrp_advert advert_n(int family, uint8_t n) {
        struct vrrp_advert a = {
                .version = 3,
                .vrid = 7,
                .priority = 100,
                .max_adver_int_cs = 100,
                .family = family,
                .n_addrs = n,
        };

        for (unsigned i = 0; i < n; i++) {
                if (family == AF_INET6) {
                        a.addrs[i].bytes[0] = 0x20;
                        a.addrs[i].bytes[1] = 0x01;
                        a.addrs[i].bytes[2] = 0x0d;
                        a.addrs[i].bytes[3] = 0xb8;
                        a.addrs[i].bytes[14] = (uint8_t) ((i + 1) >> 8);
                        a.addrs[i].bytes[15] = (uint8_t) (i + 1);
                } else {
                        a.addrs[i].bytes[0] = 10;
                        a.addrs[i].bytes[2] = (uint8_t) ((i + 1) >> 8);
                        a.addrs[i].bytes[3] = (uint8_t) (i + 1);
                }
        }
        return a;
}

/* Reference: lay the pseudo-header out byte by byte as RFC 8200 8.1
 * (IPv6: src, dst, 32-bit length, 3 zero bytes, next header) or RFC 768
 * (IPv4: src, dst, zero, protocol, 16-bit length) draw it, append the
 * message with a zero checksum field and add up 16-bit big-endian words.
 * Deliberately naive: one buffer, one loop, no chunking or folding tricks. */
static uint16_t reference_checksum(const struct vrrp_ip_meta *m, const uint8_t *msg, size_t len) {
        static uint8_t buf[40 + VRRP_MAX_MESSAGE_LEN + 1];
        size_t alen = m->family == AF_INET6 ? 16 : 4, n = 0;
        uint64_t sum = 0;

        memcpy(buf + n, m->src.addr.bytes, alen);
        n += alen;
        memcpy(buf + n, m->dst.addr.bytes, alen);
        n += alen;
        if (m->family == AF_INET6) {
                buf[n++] = (uint8_t) (len >> 24);
                buf[n++] = (uint8_t) (len >> 16);
                buf[n++] = (uint8_t) (len >> 8);
                buf[n++] = (uint8_t) len;
                buf[n++] = 0;
                buf[n++] = 0;
                buf[n++] = 0;
                buf[n++] = 112;
        } else {
                buf[n++] = 0;
                buf[n++] = 112;
                buf[n++] = (uint8_t) (len >> 8);
                buf[n++] = (uint8_t) len;
        }
        memcpy(buf + n, msg, len);
        buf[n + 6] = buf[n + 7] = 0;
        n += len;
        buf[n] = 0; /* pad an odd length */
        for (size_t i = 0; i < n; i += 2)
                sum += (uint64_t) buf[i] << 8 | buf[i + 1];
        while (sum > 0xffff)
                sum = (sum & 0xffff) + (sum >> 16);
        return (uint16_t) ~sum;
}

/* 16 IPv6 addresses make a 264-byte message: the pseudo-header length has a
 * non-zero high byte (0x01 0x08). 0x8f5a was computed outside hamgr with
 * Python's ipaddress and struct: the 40-byte pseudo-header (fe80::1,
 * ff02::12, length 264 as 4 bytes, 0 0 0 112) followed by the message
 * (31 07 64 10 00 64 00 00, then 2001:db8::1 .. 2001:db8::10), summed as
 * big-endian 16-bit words, carries folded, complemented. Dropping the
 * length's high byte would give 0x905a. */
static void test_ipv6_checksum_264_bytes(void **state) {
        struct vrrp_ip_meta m = meta_of("fe80::1", "ff02::12");
        struct vrrp_advert a = advert_n(AF_INET6, 16), out;
        uint8_t buf[VRRP_MAX_MESSAGE_LEN];
        const char *reason = NULL;
        int n;

        n = vrrp_advert_build(&a, &m, VRRP_CHECKSUM_RFC9568, buf, sizeof(buf));
        assert_int_equal(n, 264);
        assert_int_equal(buf[6] << 8 | buf[7], 0x8f5a);
        assert_int_equal(reference_checksum(&m, buf, 264), 0x8f5a);
        assert_int_equal(vrrp_advert_parse(buf, 264, &m, &out, &reason), 0);
        assert_int_equal(out.n_addrs, 16);

        /* What a receiver that dropped the high byte would have wanted. */
        buf[6] = 0x90;
        assert_int_equal(vrrp_advert_parse(buf, 264, &m, &out, &reason), -EBADMSG);
        assert_string_equal(reason, "bad checksum");
}

/* Every size, both families and both v3 forms, against the reference: the
 * sizes around each byte boundary of the length are where a wrong shift or
 * mask shows. */
static void test_checksum_against_reference(void **state) {
        static const uint8_t counts[] = { 1, 2, 15, 16, 17, 62, 63, 64, 65, 127, 128, 200, 254, 255 };
        static const struct {
                const char *src, *dst;
        } pairs[] = {
                { "fe80::1", "ff02::12" },
                { "fe80::ffff:ffff:ffff:ffff", "fe80::2" },
                { "192.0.2.1", "224.0.0.18" },
                { "255.255.255.254", "192.0.2.2" },
        };
        uint8_t buf[VRRP_MAX_MESSAGE_LEN];

        for (size_t p = 0; p < ELEMENTSOF(pairs); p++)
                for (size_t c = 0; c < ELEMENTSOF(counts); c++) {
                        struct vrrp_ip_meta m = meta_of(pairs[p].src, pairs[p].dst);
                        struct vrrp_advert a = advert_n(m.family, counts[c]), out;
                        size_t len = 8 + (size_t) counts[c] * (m.family == AF_INET6 ? 16 : 4);
                        int n;

                        n = vrrp_advert_build(&a, &m, VRRP_CHECKSUM_RFC5798, buf, sizeof(buf));
                        assert_int_equal(n, (int) len);
                        assert_int_equal(buf[6] << 8 | buf[7], reference_checksum(&m, buf, len));
                        assert_int_equal(vrrp_advert_parse(buf, len, &m, &out, NULL), 0);
                        assert_int_equal(out.checksum_mode,
                                         m.family == AF_INET ? VRRP_CHECKSUM_RFC5798 : VRRP_CHECKSUM_RFC9568);
                        /* Off by one in the checksum: refused. */
                        buf[7] ^= 1;
                        assert_int_equal(vrrp_advert_parse(buf, len, &m, &out, NULL), -EBADMSG);
                }
}

static void endpoint6(struct wg_peer *p, const char *addr, uint32_t scope) {
        p->flags |= WG_PEER_HAS_ENDPOINT;
        p->endpoint = (union wg_endpoint) {};
        p->endpoint.addr6.sin6_family = AF_INET6;
        p->endpoint.addr6.sin6_port = htons(51820);
        p->endpoint.addr6.sin6_scope_id = scope;
        assert_int_equal(inet_pton(AF_INET6, addr, &p->endpoint.addr6.sin6_addr), 1);
}

static struct wg_device *one_peer(const char *addr, uint32_t scope) {
        struct wg_device *d = calloc(1, sizeof(*d));
        struct wg_peer *p;

        assert_non_null(d);
        strcpy(d->name, "wg0");
        p = wg_device_add_peer(d);
        assert_non_null(p);
        memset(p->public_key, 0x33, WG_KEY_LEN);
        p->flags = WG_PEER_HAS_PUBLIC_KEY;
        endpoint6(p, addr, scope);
        return d;
}

/* fe80::1 on link 2 and fe80::1 on link 3 are different hosts: moving the
 * endpoint between them is a change the diff must carry, with the scope. */
static void test_diff_endpoint_scope(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *cur = one_peer("fe80::1", 2);
        _cleanup_(wg_device_freep) struct wg_device *des = one_peer("fe80::1", 3);
        _cleanup_(wg_device_freep) struct wg_device *d = NULL, *same = NULL;
        _cleanup_(wg_device_freep) struct wg_device *des2 = one_peer("fe80::1", 2);

        assert_int_equal(wg_device_diff(cur, des, true, &d), 0);
        assert_int_equal(d->n_peers, 1);
        assert_true(d->peers[0].flags & WG_PEER_HAS_ENDPOINT);
        assert_int_equal(d->peers[0].endpoint.addr6.sin6_scope_id, 3);

        /* Same scope, same address, same port: nothing to do. */
        assert_int_equal(wg_device_diff(cur, des2, true, &same), 0);
        assert_int_equal(same->n_peers, 0);
}

/* Every seed in tests/fuzz/corpus/packet, decoded as fuzz_packet.c lays its
 * input out, parses with the checksum it carries: a seed that is refused
 * only tests the refusal, and a checksum-valid, well-formed message that
 * fails to parse is a parser bug. */
static void test_packet_seeds_parse(void **state) {
        static const int ttls[] = { -1, 255, 255, 254 };
        static uint8_t data[1 << 16];
        const char *dir = HAMGR_SOURCE_DIR "/tests/fuzz/corpus/packet";
        struct dirent *e;
        size_t seeds = 0;
        DIR *d;

        d = opendir(dir);
        assert_non_null(d);
        while ((e = readdir(d))) {
                struct vrrp_ip_meta meta = {};
                struct vrrp_advert adv;
                const uint8_t *msg;
                const char *reason = NULL;
                char path[512];
                size_t size, len, alen;
                FILE *f;

                if (e->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
                f = fopen(path, "rb");
                assert_non_null(f);
                size = fread(data, 1, sizeof(data), f);
                fclose(f);
                assert_true(size > 1);
                /* Bits 5-6 would have the fuzzer rewrite the checksum:
                 * a seed carries its own. */
                assert_int_equal(data[0] & 0x60, 0);
                if (data[0] & 0x01) {
                        assert_int_equal(vrrp_ipv4_split(data + 1, size - 1, &meta, &msg, &len, &reason), 0);
                } else {
                        meta.family = data[0] & 0x02 ? AF_INET6 : AF_INET;
                        meta.ttl = ttls[(data[0] >> 2) & 0x03];
                        alen = ip_family_addr_len(meta.family);
                        assert_true(size - 1 > 2 * alen);
                        meta.src.family = meta.dst.family = meta.family;
                        memcpy(meta.src.addr.bytes, data + 1, alen);
                        memcpy(meta.dst.addr.bytes, data + 1 + alen, alen);
                        msg = data + 1 + 2 * alen;
                        len = size - 1 - 2 * alen;
                }
                if (vrrp_advert_parse(msg, len, &meta, &adv, &reason) != 0)
                        fail_msg("seed %s refused: %s", e->d_name, reason);
                seeds++;
        }
        closedir(d);
        assert_true(seeds >= 5);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ipv6_checksum_264_bytes),
                cmocka_unit_test(test_checksum_against_reference),
                cmocka_unit_test(test_diff_endpoint_scope),
                cmocka_unit_test(test_packet_seeds_parse),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
