/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "common/macro.h"
#include "keepalived_adverts.h"
#include "vrrp/packet.h"

static struct ip_address addr(const char *s) {
        struct ip_address a = {};

        assert_int_equal(ip_address_parse(s, &a), 0);
        return a;
}

static struct vrrp_ip_meta meta_of(const char *src, const char *dst, int ttl) {
        struct vrrp_ip_meta m = {
                .src = addr(src),
                .dst = addr(dst),
                .ttl = ttl,
        };

        m.family = m.src.family;
        return m;
}

static struct vrrp_advert advert(uint8_t version, int family, uint8_t vrid, uint8_t priority,
                                 uint16_t interval_cs, uint8_t n_addrs) {
        struct vrrp_advert a = {
                .version = version,
                .vrid = vrid,
                .priority = priority,
                .max_adver_int_cs = interval_cs,
                .family = family,
                .n_addrs = n_addrs,
        };

        /* Distinct, recognisable addresses: byte i of address k is k + i. */
        for (unsigned k = 0; k < n_addrs; k++)
                for (unsigned i = 0; i < 16; i++)
                        a.addrs[k].bytes[i] = (uint8_t) (k + i);
        return a;
}

/* An independent checksum (word-by-word, folded at the end) so a bug in the
 * codec's helper cannot hide itself. PSEUDO may be NULL. */
static uint16_t ref_checksum(const uint8_t *pseudo, size_t plen, const uint8_t *msg, size_t len) {
        uint64_t sum = 0;

        for (size_t i = 0; i < plen; i += 2)
                sum += (uint64_t) pseudo[i] << 8 | pseudo[i + 1];
        for (size_t i = 0; i < len; i++)
                sum += i % 2 ? msg[i] : (uint64_t) msg[i] << 8;
        while (sum >> 16)
                sum = (sum & 0xffff) + (sum >> 16);
        return (uint16_t) ~sum;
}

static size_t ref_pseudo(const struct vrrp_ip_meta *m, const struct ip_address *dst, size_t len,
                         uint8_t out[40]) {
        if (m->family == AF_INET) {
                memcpy(out, &m->src.addr.in, 4);
                memcpy(out + 4, &dst->addr.in, 4);
                out[8] = 0;
                out[9] = VRRP_IPPROTO;
                out[10] = (uint8_t) (len >> 8);
                out[11] = (uint8_t) len;
                return 12;
        }
        memcpy(out, &m->src.addr.in6, 16);
        memcpy(out + 16, &dst->addr.in6, 16);
        memset(out + 32, 0, 8);
        out[34] = (uint8_t) (len >> 8);
        out[35] = (uint8_t) len;
        out[39] = VRRP_IPPROTO;
        return 40;
}

/* Rewrite the checksum of a hand-edited message in the given form so that
 * the test reaches the check it means to exercise. */
static void fix_checksum(uint8_t *msg, size_t len, const struct vrrp_ip_meta *m, bool pseudo) {
        uint8_t ph[40];
        size_t plen = 0;
        uint16_t ck;

        if (pseudo)
                plen = ref_pseudo(m, &m->dst, len, ph);
        msg[6] = msg[7] = 0;
        ck = ref_checksum(ph, plen, msg, len);
        msg[6] = (uint8_t) (ck >> 8);
        msg[7] = (uint8_t) ck;
}

static void assert_advert_equal(const struct vrrp_advert *a, const struct vrrp_advert *b) {
        assert_int_equal(a->version, b->version);
        assert_int_equal(a->vrid, b->vrid);
        assert_int_equal(a->priority, b->priority);
        assert_int_equal(a->auth_type, b->auth_type);
        assert_memory_equal(a->auth_data, b->auth_data, VRRP_V2_AUTH_LEN);
        assert_int_equal(a->max_adver_int_cs, b->max_adver_int_cs);
        assert_int_equal(a->family, b->family);
        assert_int_equal(a->n_addrs, b->n_addrs);
        for (unsigned i = 0; i < a->n_addrs; i++)
                assert_memory_equal(a->addrs[i].bytes, b->addrs[i].bytes, ip_family_addr_len(a->family));
}

/* Parse a copy in a buffer of exactly LEN bytes, so ASan catches any read past it. */
static int parse_exact(const uint8_t *msg, size_t len, const struct vrrp_ip_meta *m,
                       struct vrrp_advert *ret, const char **reason) {
        _cleanup_(freep) uint8_t *copy = malloc(len ? len : 1);

        assert_non_null(copy);
        if (len > 0)
                memcpy(copy, msg, len);
        return vrrp_advert_parse(copy, len, m, ret, reason);
}

/* Expect a rejection with REASON and *ret left alone. */
static void assert_rejected(const uint8_t *msg, size_t len, const struct vrrp_ip_meta *m,
                            const char *reason) {
        struct vrrp_advert out;
        uint8_t sentinel[sizeof(out)];
        const char *r = NULL;

        memset(&out, 0xa5, sizeof(out));
        memcpy(sentinel, &out, sizeof(out));
        assert_int_equal(parse_exact(msg, len, m, &out, &r), -EBADMSG);
        assert_non_null(r);
        assert_string_equal(r, reason);
        assert_memory_equal(&out, sentinel, sizeof(out));
}

static void roundtrip(const struct vrrp_advert *in, const struct vrrp_ip_meta *m,
                      enum vrrp_checksum_mode mode, enum vrrp_checksum_mode expect_mode) {
        uint8_t buf[VRRP_MAX_MESSAGE_LEN];
        struct vrrp_advert out = {};
        const char *reason = NULL;
        size_t alen = ip_family_addr_len(in->family);
        int n;

        n = vrrp_advert_build(in, m, mode, buf, sizeof(buf));
        assert_int_equal(n, VRRP_HEADER_LEN + in->n_addrs * alen + (in->version == 2 ? VRRP_V2_AUTH_LEN : 0));
        assert_int_equal(buf[0], in->version << 4 | VRRP_TYPE_ADVERTISEMENT);
        assert_int_equal(parse_exact(buf, n, m, &out, &reason), 0);
        assert_null(reason);
        assert_advert_equal(in, &out);
        assert_int_equal(out.checksum_mode, expect_mode);
}

static void test_checksum_helper(void **state) {
        /* RFC 1071 section 3 worked example: the folded sum is 0xddf2. */
        static const uint8_t ex[] = { 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7 };
        static const uint8_t odd[] = { 0x12, 0x34, 0x56 };
        uint32_t s;

        assert_int_equal(inet_checksum_finish(inet_checksum_add(0, ex, sizeof(ex))), (uint16_t) ~0xddf2);
        /* Chained even chunks equal one pass. */
        s = inet_checksum_add(0, ex, 4);
        s = inet_checksum_add(s, ex + 4, 4);
        assert_int_equal(inet_checksum_finish(s), (uint16_t) ~0xddf2);
        /* A trailing odd byte is the high half of a word. */
        assert_int_equal(inet_checksum_finish(inet_checksum_add(0, odd, 3)), (uint16_t) ~(0x1234 + 0x5600));
        assert_int_equal(inet_checksum_finish(0), 0xffff);
        /* End-around carry over many chained calls: 0xffff is a one's
         * complement zero, so the sum is 100000 mod 0xffff. */
        s = 0;
        for (int i = 0; i < 100000; i++)
                s = inet_checksum_add(s, "\xff\xff\x00\x01", 4);
        assert_int_equal(inet_checksum_finish(s), (uint16_t) ~(100000 % 0xffff));
}

static void test_checksum_mode_names(void **state) {
        assert_string_equal(vrrp_checksum_mode_to_string(VRRP_CHECKSUM_RFC5798), "rfc5798");
        assert_string_equal(vrrp_checksum_mode_to_string(VRRP_CHECKSUM_RFC9568), "rfc9568");
        assert_null(vrrp_checksum_mode_to_string(_VRRP_CHECKSUM_MAX));
        assert_null(vrrp_checksum_mode_to_string((enum vrrp_checksum_mode) -1));
        assert_int_equal(vrrp_checksum_mode_from_string("rfc5798"), VRRP_CHECKSUM_RFC5798);
        assert_int_equal(vrrp_checksum_mode_from_string("rfc9568"), VRRP_CHECKSUM_RFC9568);
        assert_int_equal(vrrp_checksum_mode_from_string("RFC5798"), -EINVAL);
        assert_int_equal(vrrp_checksum_mode_from_string(""), -EINVAL);
        assert_int_equal(vrrp_checksum_mode_from_string(NULL), -EINVAL);
}

static void test_roundtrip_v2(void **state) {
        struct vrrp_ip_meta m = meta_of("192.0.2.1", "224.0.0.18", 255);
        struct vrrp_advert a = advert(2, AF_INET, 7, 100, 300, 1);
        uint8_t buf[64];
        int n;

        roundtrip(&a, &m, VRRP_CHECKSUM_RFC5798, VRRP_CHECKSUM_RFC9568);
        roundtrip(&a, &m, VRRP_CHECKSUM_RFC9568, VRRP_CHECKSUM_RFC9568);
        /* Seconds on the wire, auth type 0 and 8 zero bytes of auth data. */
        n = vrrp_advert_build(&a, &m, VRRP_CHECKSUM_RFC5798, buf, sizeof(buf));
        assert_int_equal(n, 20);
        assert_int_equal(buf[4], 0);
        assert_int_equal(buf[5], 3);
        assert_memory_equal(buf + 12, "\0\0\0\0\0\0\0\0", 8);
        /* v2 never has a pseudo-header: the mode and addresses do not matter. */
        assert_int_equal(ref_checksum(NULL, 0, buf, n), 0);
        n = vrrp_advert_build(&a, NULL, VRRP_CHECKSUM_RFC5798, buf, sizeof(buf));
        assert_int_equal(n, 20);

        a = advert(2, AF_INET, 255, 255, 25500, VRRP_MAX_ADDRS);
        roundtrip(&a, &m, VRRP_CHECKSUM_RFC9568, VRRP_CHECKSUM_RFC9568);
}

static void test_roundtrip_v3_ipv4(void **state) {
        struct vrrp_ip_meta m = meta_of("192.0.2.1", "224.0.0.18", 255);
        struct vrrp_advert a = advert(3, AF_INET, 1, 1, 100, 1);
        uint8_t b5798[64], b9568[64], ph[40];
        int n;

        roundtrip(&a, &m, VRRP_CHECKSUM_RFC5798, VRRP_CHECKSUM_RFC5798);
        roundtrip(&a, &m, VRRP_CHECKSUM_RFC9568, VRRP_CHECKSUM_RFC9568);

        /* The two forms differ exactly in the pseudo-header. */
        assert_int_equal(vrrp_advert_build(&a, &m, VRRP_CHECKSUM_RFC5798, b5798, sizeof(b5798)), 12);
        assert_int_equal(vrrp_advert_build(&a, &m, VRRP_CHECKSUM_RFC9568, b9568, sizeof(b9568)), 12);
        assert_memory_not_equal(b5798 + 6, b9568 + 6, 2);
        assert_memory_equal(b5798 + 8, b9568 + 8, 4);
        ref_pseudo(&m, &m.dst, 12, ph);
        assert_int_equal(ref_checksum(ph, 12, b5798, 12), 0);
        assert_int_equal(ref_checksum(NULL, 0, b9568, 12), 0);
        /* Max interval in the low 12 bits, reserved bits zero. */
        a.max_adver_int_cs = VRRP_V3_MAX_INTERVAL_CS;
        n = vrrp_advert_build(&a, &m, VRRP_CHECKSUM_RFC9568, b9568, sizeof(b9568));
        assert_int_equal(n, 12);
        assert_int_equal(b9568[4], 0x0f);
        assert_int_equal(b9568[5], 0xff);
        roundtrip(&a, &m, VRRP_CHECKSUM_RFC5798, VRRP_CHECKSUM_RFC5798);
        /* The RFC 9568 form needs no addresses at all. */
        assert_int_equal(vrrp_advert_build(&a, NULL, VRRP_CHECKSUM_RFC9568, b9568, sizeof(b9568)), 12);

        a = advert(3, AF_INET, 200, 0, 1, VRRP_MAX_ADDRS);
        roundtrip(&a, &m, VRRP_CHECKSUM_RFC5798, VRRP_CHECKSUM_RFC5798);
        roundtrip(&a, &m, VRRP_CHECKSUM_RFC9568, VRRP_CHECKSUM_RFC9568);

        /* Unicast: the pseudo-header carries the real destination. */
        m = meta_of("192.0.2.1", "192.0.2.2", 255);
        a = advert(3, AF_INET, 9, 50, 25, 3);
        roundtrip(&a, &m, VRRP_CHECKSUM_RFC5798, VRRP_CHECKSUM_RFC5798);
        roundtrip(&a, &m, VRRP_CHECKSUM_RFC9568, VRRP_CHECKSUM_RFC9568);
}

static void test_roundtrip_v3_ipv6(void **state) {
        struct vrrp_ip_meta m = meta_of("fe80::1", "ff02::12", 255);
        struct vrrp_advert a = advert(3, AF_INET6, 42, 200, 100, 1);
        uint8_t b1[64], b2[64], ph[40];

        /* Same pseudo-header for both modes; reported under the current RFC. */
        roundtrip(&a, &m, VRRP_CHECKSUM_RFC5798, VRRP_CHECKSUM_RFC9568);
        roundtrip(&a, &m, VRRP_CHECKSUM_RFC9568, VRRP_CHECKSUM_RFC9568);
        assert_int_equal(vrrp_advert_build(&a, &m, VRRP_CHECKSUM_RFC5798, b1, sizeof(b1)), 24);
        assert_int_equal(vrrp_advert_build(&a, &m, VRRP_CHECKSUM_RFC9568, b2, sizeof(b2)), 24);
        assert_memory_equal(b1, b2, 24);
        ref_pseudo(&m, &m.dst, 24, ph);
        assert_int_equal(ref_checksum(ph, sizeof(ph), b1, 24), 0);

        a = advert(3, AF_INET6, 1, 254, 4095, VRRP_MAX_ADDRS);
        roundtrip(&a, &m, VRRP_CHECKSUM_RFC9568, VRRP_CHECKSUM_RFC9568);
}

static void test_build_rejects(void **state) {
        struct vrrp_ip_meta m4 = meta_of("192.0.2.1", "224.0.0.18", 255);
        struct vrrp_ip_meta m6 = meta_of("fe80::1", "ff02::12", 255);
        struct vrrp_advert a;
        uint8_t buf[VRRP_MAX_MESSAGE_LEN];

        memset(buf, 0x5a, sizeof(buf));

        a = advert(3, AF_INET, 1, 100, VRRP_V3_MAX_INTERVAL_CS + 1, 1);
        assert_int_equal(vrrp_advert_build(&a, &m4, VRRP_CHECKSUM_RFC5798, buf, sizeof(buf)), -EINVAL);
        a = advert(3, AF_INET, 1, 100, 0, 1);
        assert_int_equal(vrrp_advert_build(&a, &m4, VRRP_CHECKSUM_RFC5798, buf, sizeof(buf)), -EINVAL);
        a = advert(3, AF_INET, 0, 100, 100, 1);
        assert_int_equal(vrrp_advert_build(&a, &m4, VRRP_CHECKSUM_RFC5798, buf, sizeof(buf)), -EINVAL);
        a = advert(3, AF_INET, 1, 100, 100, 0);
        assert_int_equal(vrrp_advert_build(&a, &m4, VRRP_CHECKSUM_RFC5798, buf, sizeof(buf)), -EINVAL);
        a = advert(1, AF_INET, 1, 100, 100, 1);
        assert_int_equal(vrrp_advert_build(&a, &m4, VRRP_CHECKSUM_RFC5798, buf, sizeof(buf)), -EINVAL);
        a = advert(4, AF_INET, 1, 100, 100, 1);
        assert_int_equal(vrrp_advert_build(&a, &m4, VRRP_CHECKSUM_RFC5798, buf, sizeof(buf)), -EINVAL);
        a = advert(3, AF_UNSPEC, 1, 100, 100, 1);
        assert_int_equal(vrrp_advert_build(&a, &m4, VRRP_CHECKSUM_RFC9568, buf, sizeof(buf)), -EINVAL);
        a = advert(3, AF_INET, 1, 100, 100, 1);
        assert_int_equal(vrrp_advert_build(&a, &m4, _VRRP_CHECKSUM_MAX, buf, sizeof(buf)), -EINVAL);

        /* v2: IPv4 only, whole seconds that fit 8 bits, no AH authentication. */
        a = advert(2, AF_INET6, 1, 100, 100, 1);
        assert_int_equal(vrrp_advert_build(&a, &m6, VRRP_CHECKSUM_RFC9568, buf, sizeof(buf)), -EINVAL);
        a = advert(2, AF_INET, 1, 100, 150, 1);
        assert_int_equal(vrrp_advert_build(&a, &m4, VRRP_CHECKSUM_RFC9568, buf, sizeof(buf)), -EINVAL);
        a = advert(2, AF_INET, 1, 100, 25600, 1);
        assert_int_equal(vrrp_advert_build(&a, &m4, VRRP_CHECKSUM_RFC9568, buf, sizeof(buf)), -EINVAL);
        a = advert(2, AF_INET, 1, 100, 0, 1);
        assert_int_equal(vrrp_advert_build(&a, &m4, VRRP_CHECKSUM_RFC9568, buf, sizeof(buf)), -EINVAL);
        a = advert(2, AF_INET, 1, 100, 100, 1);
        a.auth_type = VRRP_AUTH_AH;
        assert_int_equal(vrrp_advert_build(&a, &m4, VRRP_CHECKSUM_RFC9568, buf, sizeof(buf)), -EINVAL);
        a.auth_type = 3;
        assert_int_equal(vrrp_advert_build(&a, &m4, VRRP_CHECKSUM_RFC9568, buf, sizeof(buf)), -EINVAL);

        /* A pseudo-header needs addresses of the advert's family. */
        a = advert(3, AF_INET, 1, 100, 100, 1);
        assert_int_equal(vrrp_advert_build(&a, NULL, VRRP_CHECKSUM_RFC5798, buf, sizeof(buf)), -EINVAL);
        assert_int_equal(vrrp_advert_build(&a, &m6, VRRP_CHECKSUM_RFC5798, buf, sizeof(buf)), -EINVAL);
        a = advert(3, AF_INET6, 1, 100, 100, 1);
        assert_int_equal(vrrp_advert_build(&a, NULL, VRRP_CHECKSUM_RFC9568, buf, sizeof(buf)), -EINVAL);
        assert_int_equal(vrrp_advert_build(&a, &m4, VRRP_CHECKSUM_RFC9568, buf, sizeof(buf)), -EINVAL);

        /* Nothing was written by any failed build. */
        for (size_t i = 0; i < sizeof(buf); i++)
                assert_int_equal(buf[i], 0x5a);

        /* Exactly big enough works, one byte less does not. */
        a = advert(3, AF_INET6, 1, 100, 100, 2);
        assert_int_equal(vrrp_advert_build(&a, &m6, VRRP_CHECKSUM_RFC9568, buf, 40), 40);
        assert_int_equal(vrrp_advert_build(&a, &m6, VRRP_CHECKSUM_RFC9568, buf, 39), -ENOBUFS);
        a = advert(2, AF_INET, 1, 100, 100, 1);
        assert_int_equal(vrrp_advert_build(&a, &m4, VRRP_CHECKSUM_RFC9568, buf, 19), -ENOBUFS);
        assert_int_equal(vrrp_advert_build(&a, &m4, VRRP_CHECKSUM_RFC9568, NULL, 0), -ENOBUFS);
}

/* A valid message of each kind to mutate. */
static size_t valid_msg(uint8_t version, const struct vrrp_ip_meta *m, enum vrrp_checksum_mode mode,
                        uint8_t n_addrs, uint8_t *buf, size_t size) {
        struct vrrp_advert a = advert(version, m->family, 10, 100, 100, n_addrs);
        int n = vrrp_advert_build(&a, m, mode, buf, size);

        assert_true(n > 0);
        return (size_t) n;
}

static void test_reject_truncated(void **state) {
        struct vrrp_ip_meta m = meta_of("192.0.2.1", "224.0.0.18", 255);
        uint8_t buf[64];
        size_t n = valid_msg(3, &m, VRRP_CHECKSUM_RFC5798, 1, buf, sizeof(buf));

        for (size_t len = 0; len < VRRP_HEADER_LEN; len++)
                assert_rejected(buf, len, &m, "truncated header");
        assert_int_equal(vrrp_advert_parse(NULL, 0, &m, &(struct vrrp_advert) {}, NULL), -EBADMSG);
        /* Every shorter prefix of a valid message fails, and reads stay in bounds. */
        for (size_t len = VRRP_HEADER_LEN; len < n; len++)
                assert_rejected(buf, len, &m, "address count does not match length");
}

static void test_reject_version_type_vrid(void **state) {
        struct vrrp_ip_meta m = meta_of("192.0.2.1", "224.0.0.18", 255);
        uint8_t buf[64];
        size_t n;
        static const uint8_t bad_versions[] = { 0, 1, 4, 15 };
        static const uint8_t bad_types[] = { 0, 2, 15 };

        for (size_t i = 0; i < ELEMENTSOF(bad_versions); i++) {
                n = valid_msg(3, &m, VRRP_CHECKSUM_RFC9568, 1, buf, sizeof(buf));
                buf[0] = (uint8_t) (bad_versions[i] << 4 | VRRP_TYPE_ADVERTISEMENT);
                fix_checksum(buf, n, &m, false);
                assert_rejected(buf, n, &m, "bad version");
        }
        for (size_t i = 0; i < ELEMENTSOF(bad_types); i++) {
                n = valid_msg(3, &m, VRRP_CHECKSUM_RFC9568, 1, buf, sizeof(buf));
                buf[0] = (uint8_t) (3 << 4 | bad_types[i]);
                fix_checksum(buf, n, &m, false);
                assert_rejected(buf, n, &m, "bad type");

                n = valid_msg(2, &m, VRRP_CHECKSUM_RFC9568, 1, buf, sizeof(buf));
                buf[0] = (uint8_t) (2 << 4 | bad_types[i]);
                fix_checksum(buf, n, &m, false);
                assert_rejected(buf, n, &m, "bad type");
        }

        n = valid_msg(3, &m, VRRP_CHECKSUM_RFC5798, 1, buf, sizeof(buf));
        buf[1] = 0;
        fix_checksum(buf, n, &m, true);
        assert_rejected(buf, n, &m, "vrid 0");

        n = valid_msg(2, &m, VRRP_CHECKSUM_RFC9568, 1, buf, sizeof(buf));
        buf[1] = 0;
        fix_checksum(buf, n, &m, false);
        assert_rejected(buf, n, &m, "vrid 0");
}

static void test_reject_count(void **state) {
        struct vrrp_ip_meta m4 = meta_of("192.0.2.1", "224.0.0.18", 255);
        struct vrrp_ip_meta m6 = meta_of("fe80::1", "ff02::12", 255);
        uint8_t buf[VRRP_MAX_MESSAGE_LEN + 16] = {};
        size_t n;

        /* Count says 2, only one address present (short). */
        n = valid_msg(3, &m4, VRRP_CHECKSUM_RFC5798, 1, buf, sizeof(buf));
        buf[3] = 2;
        fix_checksum(buf, n, &m4, true);
        assert_rejected(buf, n, &m4, "address count does not match length");

        /* Count says 1, two addresses present (long). */
        n = valid_msg(3, &m4, VRRP_CHECKSUM_RFC5798, 2, buf, sizeof(buf));
        buf[3] = 1;
        fix_checksum(buf, n, &m4, true);
        assert_rejected(buf, n, &m4, "address count does not match length");

        /* One trailing byte is not an address either. */
        n = valid_msg(3, &m4, VRRP_CHECKSUM_RFC9568, 1, buf, sizeof(buf));
        buf[n] = 0;
        fix_checksum(buf, n + 1, &m4, false);
        assert_rejected(buf, n + 1, &m4, "address count does not match length");

        /* v2 without its 8 bytes of authentication data. */
        n = valid_msg(2, &m4, VRRP_CHECKSUM_RFC9568, 1, buf, sizeof(buf));
        fix_checksum(buf, n - VRRP_V2_AUTH_LEN, &m4, false);
        assert_rejected(buf, n - VRRP_V2_AUTH_LEN, &m4, "address count does not match length");

        /* An IPv4-sized address in an IPv6 message. */
        n = valid_msg(3, &m6, VRRP_CHECKSUM_RFC9568, 2, buf, sizeof(buf));
        fix_checksum(buf, n - 12, &m6, true);
        assert_rejected(buf, n - 12, &m6, "address count does not match length");

        /* 255 IPv6 addresses, one byte short and one byte long. */
        n = valid_msg(3, &m6, VRRP_CHECKSUM_RFC9568, VRRP_MAX_ADDRS, buf, sizeof(buf));
        assert_int_equal(n, VRRP_HEADER_LEN + 255 * 16);
        fix_checksum(buf, n - 1, &m6, true);
        assert_rejected(buf, n - 1, &m6, "address count does not match length");
        n = valid_msg(3, &m6, VRRP_CHECKSUM_RFC9568, VRRP_MAX_ADDRS, buf, sizeof(buf));
        buf[n] = 0;
        fix_checksum(buf, n + 1, &m6, true);
        assert_rejected(buf, n + 1, &m6, "address count does not match length");

        /* Count zero is ignored per RFC 9568 5.2.5 even if the length agrees. */
        n = valid_msg(3, &m4, VRRP_CHECKSUM_RFC9568, 1, buf, sizeof(buf));
        buf[3] = 0;
        fix_checksum(buf, VRRP_HEADER_LEN, &m4, false);
        assert_rejected(buf, VRRP_HEADER_LEN, &m4, "zero address count");
}

static void test_reject_checksum(void **state) {
        struct vrrp_ip_meta m4 = meta_of("192.0.2.1", "224.0.0.18", 255);
        struct vrrp_ip_meta m6 = meta_of("fe80::1", "ff02::12", 255);
        struct vrrp_ip_meta other;
        uint8_t buf[64];
        size_t n;

        /* A flipped bit in the address, for each form. */
        n = valid_msg(3, &m4, VRRP_CHECKSUM_RFC5798, 1, buf, sizeof(buf));
        buf[n - 1] ^= 0x01;
        assert_rejected(buf, n, &m4, "bad checksum");
        n = valid_msg(3, &m4, VRRP_CHECKSUM_RFC9568, 1, buf, sizeof(buf));
        buf[2] ^= 0x80;
        assert_rejected(buf, n, &m4, "bad checksum");
        n = valid_msg(2, &m4, VRRP_CHECKSUM_RFC9568, 1, buf, sizeof(buf));
        buf[7] ^= 0x01;
        assert_rejected(buf, n, &m4, "bad checksum");
        n = valid_msg(3, &m6, VRRP_CHECKSUM_RFC9568, 1, buf, sizeof(buf));
        buf[10] ^= 0x10;
        assert_rejected(buf, n, &m6, "bad checksum");

        /* The RFC 5798 form does not verify against another source address. */
        n = valid_msg(3, &m4, VRRP_CHECKSUM_RFC5798, 1, buf, sizeof(buf));
        other = meta_of("192.0.2.99", "224.0.0.18", 255);
        assert_rejected(buf, n, &other, "bad checksum");
        /* Nor an IPv6 one against another destination. */
        n = valid_msg(3, &m6, VRRP_CHECKSUM_RFC9568, 1, buf, sizeof(buf));
        other = meta_of("fe80::1", "ff02::1", 255);
        assert_rejected(buf, n, &other, "bad checksum");
        /* An IPv6 message checksummed without its pseudo-header is wrong. */
        fix_checksum(buf, n, &m6, false);
        assert_rejected(buf, n, &m6, "bad checksum");
        /* A v2 message checksummed with an IPv4 pseudo-header is wrong. */
        n = valid_msg(2, &m4, VRRP_CHECKSUM_RFC9568, 1, buf, sizeof(buf));
        fix_checksum(buf, n, &m4, true);
        assert_rejected(buf, n, &m4, "bad checksum");
}

static void test_checksum_old_keepalived_unicast(void **state) {
        /* Old keepalived sent unicast v3 with 224.0.0.18 in the pseudo-header. */
        struct vrrp_ip_meta sent_as = meta_of("192.0.2.1", "224.0.0.18", 255);
        struct vrrp_ip_meta received = meta_of("192.0.2.1", "192.0.2.2", 255);
        struct vrrp_ip_meta other_src = meta_of("192.0.2.3", "192.0.2.2", 255);
        struct vrrp_advert out = {};
        const char *reason = NULL;
        uint8_t buf[64];
        size_t n = valid_msg(3, &sent_as, VRRP_CHECKSUM_RFC5798, 2, buf, sizeof(buf));

        assert_int_equal(parse_exact(buf, n, &received, &out, &reason), 0);
        assert_int_equal(out.checksum_mode, VRRP_CHECKSUM_RFC5798);
        assert_int_equal(out.n_addrs, 2);
        /* The fallback still binds the source address. */
        assert_rejected(buf, n, &other_src, "bad checksum");
}

static void test_reject_ttl(void **state) {
        struct vrrp_ip_meta m = meta_of("192.0.2.1", "224.0.0.18", 255);
        struct vrrp_ip_meta m6 = meta_of("fe80::1", "ff02::12", 255);
        struct vrrp_advert out = {};
        uint8_t buf[64];
        size_t n = valid_msg(3, &m, VRRP_CHECKSUM_RFC5798, 1, buf, sizeof(buf));

        m.ttl = 254;
        assert_rejected(buf, n, &m, "ttl is not 255");
        m.ttl = 0;
        assert_rejected(buf, n, &m, "ttl is not 255");
        m.ttl = 1;
        assert_rejected(buf, n, &m, "ttl is not 255");
        m.ttl = -1;
        assert_int_equal(parse_exact(buf, n, &m, &out, NULL), 0);
        m.ttl = 255;
        assert_int_equal(parse_exact(buf, n, &m, &out, NULL), 0);

        n = valid_msg(3, &m6, VRRP_CHECKSUM_RFC9568, 1, buf, sizeof(buf));
        m6.ttl = 64;
        assert_rejected(buf, n, &m6, "ttl is not 255");
        n = valid_msg(2, &m, VRRP_CHECKSUM_RFC9568, 1, buf, sizeof(buf));
        m.ttl = 254;
        assert_rejected(buf, n, &m, "ttl is not 255");
}

static void test_reject_v2_over_ipv6(void **state) {
        struct vrrp_ip_meta m4 = meta_of("192.0.2.1", "224.0.0.18", 255);
        struct vrrp_ip_meta m6 = meta_of("fe80::1", "ff02::12", 255);
        uint8_t buf[64];
        size_t n;

        /* A v2 layout that would fit an IPv6 address exactly. */
        n = valid_msg(3, &m6, VRRP_CHECKSUM_RFC9568, 1, buf, sizeof(buf));
        memset(buf + n, 0, VRRP_V2_AUTH_LEN);
        n += VRRP_V2_AUTH_LEN;
        buf[0] = 2 << 4 | VRRP_TYPE_ADVERTISEMENT;
        buf[4] = 0;
        buf[5] = 1;
        fix_checksum(buf, n, &m6, false);
        assert_rejected(buf, n, &m6, "v2 over IPv6");

        /* And a real v2 IPv4 message handed in as IPv6. */
        n = valid_msg(2, &m4, VRRP_CHECKSUM_RFC9568, 1, buf, sizeof(buf));
        assert_rejected(buf, n, &m6, "v2 over IPv6");
}

static void test_reject_zero_interval(void **state) {
        struct vrrp_ip_meta m4 = meta_of("192.0.2.1", "224.0.0.18", 255);
        struct vrrp_ip_meta m6 = meta_of("fe80::1", "ff02::12", 255);
        uint8_t buf[64];
        size_t n;

        n = valid_msg(2, &m4, VRRP_CHECKSUM_RFC9568, 1, buf, sizeof(buf));
        buf[5] = 0;
        fix_checksum(buf, n, &m4, false);
        assert_rejected(buf, n, &m4, "zero advertisement interval");

        n = valid_msg(3, &m4, VRRP_CHECKSUM_RFC5798, 1, buf, sizeof(buf));
        buf[4] = 0;
        buf[5] = 0;
        fix_checksum(buf, n, &m4, true);
        assert_rejected(buf, n, &m4, "zero advertisement interval");

        /* Reserved bits set do not make a zero interval valid. */
        n = valid_msg(3, &m6, VRRP_CHECKSUM_RFC9568, 1, buf, sizeof(buf));
        buf[4] = 0xf0;
        buf[5] = 0;
        fix_checksum(buf, n, &m6, true);
        assert_rejected(buf, n, &m6, "zero advertisement interval");
}

static void test_v3_reserved_bits_ignored(void **state) {
        struct vrrp_ip_meta m = meta_of("192.0.2.1", "224.0.0.18", 255);
        struct vrrp_advert out = {};
        uint8_t buf[64];
        size_t n = valid_msg(3, &m, VRRP_CHECKSUM_RFC5798, 1, buf, sizeof(buf));

        buf[4] = 0xa0 | 0x01;
        buf[5] = 0x2c;
        fix_checksum(buf, n, &m, true);
        assert_int_equal(parse_exact(buf, n, &m, &out, NULL), 0);
        assert_int_equal(out.max_adver_int_cs, 0x12c);
}

static void test_v2_auth(void **state) {
        struct vrrp_ip_meta m = meta_of("192.0.2.1", "224.0.0.18", 255);
        struct vrrp_advert out = {};
        uint8_t buf[64];
        size_t n;

        /* Type 0: the data field is ignored. */
        n = valid_msg(2, &m, VRRP_CHECKSUM_RFC9568, 1, buf, sizeof(buf));
        memcpy(buf + n - VRRP_V2_AUTH_LEN, "garbage!", VRRP_V2_AUTH_LEN);
        fix_checksum(buf, n, &m, false);
        assert_int_equal(parse_exact(buf, n, &m, &out, NULL), 0);
        assert_int_equal(out.auth_type, 0);
        assert_int_equal(out.max_adver_int_cs, 100);

        /* Type 1 (plain text): the 8 bytes come back as they are, for
         * the caller to compare with its password. */
        n = valid_msg(2, &m, VRRP_CHECKSUM_RFC9568, 1, buf, sizeof(buf));
        buf[4] = VRRP_AUTH_SIMPLE;
        memcpy(buf + n - VRRP_V2_AUTH_LEN, "secret\0\0", VRRP_V2_AUTH_LEN);
        fix_checksum(buf, n, &m, false);
        assert_int_equal(parse_exact(buf, n, &m, &out, NULL), 0);
        assert_int_equal(out.auth_type, VRRP_AUTH_SIMPLE);
        assert_memory_equal(out.auth_data, "secret\0\0", VRRP_V2_AUTH_LEN);

        /* Type 2 (IP AH) and anything above are refused. */
        for (unsigned t = 2; t <= 255; t++) {
                n = valid_msg(2, &m, VRRP_CHECKSUM_RFC9568, 1, buf, sizeof(buf));
                buf[4] = (uint8_t) t;
                memcpy(buf + n - VRRP_V2_AUTH_LEN, "secret\0\0", VRRP_V2_AUTH_LEN);
                fix_checksum(buf, n, &m, false);
                assert_rejected(buf, n, &m, "unsupported authentication type");
        }
}

/* RFC 2338 5.3.6.1: type 1 carries the password in the last 8 bytes, zero
 * padded; built by hand here so that the expected bytes do not come from
 * the code under test. */
static void test_v2_auth_build(void **state) {
        struct vrrp_ip_meta m = meta_of("192.0.2.1", "224.0.0.18", 255);
        static const uint8_t expected[] = {
                0x21, 0x07, 0x64, 0x01, 0x01, 0x01, 0x00, 0x00, /* v2 advert vrid 7 prio 100, 1 addr, auth 1, 1 s */
                0xc0, 0x00, 0x02, 0x0a,                         /* 192.0.2.10 */
                'p', 'a', 's', 's', 0x00, 0x00, 0x00, 0x00,     /* "pass" zero padded */
        };
        uint8_t want[sizeof(expected)], buf[64];
        struct vrrp_advert a = {
                .version = 2, .vrid = 7, .priority = 100, .auth_type = VRRP_AUTH_SIMPLE,
                .max_adver_int_cs = 100, .family = AF_INET, .n_addrs = 1,
                .auth_data = { 'p', 'a', 's', 's' },
        }, out = {};
        int n;

        assert_int_equal(inet_pton(AF_INET, "192.0.2.10", &a.addrs[0].in), 1);
        memcpy(want, expected, sizeof(want));
        fix_checksum(want, sizeof(want), &m, false);
        n = vrrp_advert_build(&a, &m, VRRP_CHECKSUM_RFC9568, buf, sizeof(buf));
        assert_int_equal(n, sizeof(want));
        assert_memory_equal(buf, want, sizeof(want));
        assert_int_equal(parse_exact(buf, (size_t) n, &m, &out, NULL), 0);
        assert_advert_equal(&a, &out);

        /* Eight characters fill the field, without a terminator. */
        memcpy(a.auth_data, "12345678", VRRP_V2_AUTH_LEN);
        n = vrrp_advert_build(&a, &m, VRRP_CHECKSUM_RFC9568, buf, sizeof(buf));
        assert_int_equal(n, sizeof(want));
        assert_memory_equal(buf + n - VRRP_V2_AUTH_LEN, "12345678", VRRP_V2_AUTH_LEN);
        assert_int_equal(parse_exact(buf, (size_t) n, &m, &out, NULL), 0);
        assert_advert_equal(&a, &out);

        /* Type 0 sends zeros whatever auth_data holds; v3 has no such field. */
        a.auth_type = VRRP_AUTH_NONE;
        n = vrrp_advert_build(&a, &m, VRRP_CHECKSUM_RFC9568, buf, sizeof(buf));
        assert_int_equal(n, sizeof(want));
        assert_int_equal(buf[4], 0);
        for (int i = n - VRRP_V2_AUTH_LEN; i < n; i++)
                assert_int_equal(buf[i], 0);
}

static void test_reject_meta_family(void **state) {
        struct vrrp_ip_meta m = meta_of("192.0.2.1", "224.0.0.18", 255);
        uint8_t buf[64];
        size_t n = valid_msg(3, &m, VRRP_CHECKSUM_RFC9568, 1, buf, sizeof(buf));

        m.family = AF_UNSPEC;
        assert_rejected(buf, n, &m, "unknown address family");
        assert_rejected(buf, n, NULL, "unknown address family");
}

/* An IPv4 header around PAYLOAD; returns the total length. */
static size_t ipv4_wrap(uint8_t *out, size_t ihl, uint8_t proto, uint8_t ttl,
                        const uint8_t *payload, size_t plen) {
        size_t hlen = ihl * 4;
        size_t total = hlen + plen;

        memset(out, 0, hlen);
        out[0] = (uint8_t) (0x40 | ihl);
        out[2] = (uint8_t) (total >> 8);
        out[3] = (uint8_t) total;
        out[8] = ttl;
        out[9] = proto;
        memcpy(out + 12, "\xc0\x00\x02\x01", 4);
        memcpy(out + 16, "\xe0\x00\x00\x12", 4);
        memcpy(out + hlen, payload, plen);
        return total;
}

static void assert_split_rejected(const uint8_t *pkt, size_t len, const char *reason) {
        _cleanup_(freep) uint8_t *copy = malloc(len ? len : 1);
        struct vrrp_ip_meta meta = { .family = 12345 };
        const uint8_t *payload = (const uint8_t *) &meta;
        size_t plen = 777;
        const char *r = NULL;

        assert_non_null(copy);
        if (len > 0)
                memcpy(copy, pkt, len);
        assert_int_equal(vrrp_ipv4_split(copy, len, &meta, &payload, &plen, &r), -EBADMSG);
        assert_non_null(r);
        assert_string_equal(r, reason);
        assert_int_equal(meta.family, 12345);
        assert_ptr_equal(payload, &meta);
        assert_int_equal(plen, 777);
}

/* vrrp_advert_check() expecting -EBADMSG with WANT, and vrrp_advert_parse()
 * naming the same cause in words. */
static void assert_cause(const uint8_t *msg, size_t len, const struct vrrp_ip_meta *m,
                         enum vrrp_parse_error want) {
        enum vrrp_parse_error got = _VRRP_PARSE_ERROR_MAX;
        struct vrrp_advert out;
        const char *reason = NULL;

        assert_int_equal(vrrp_advert_check(msg, len, m, &out, &got), -EBADMSG);
        assert_int_equal(got, want);
        assert_int_equal(parse_exact(msg, len, m, &out, &reason), -EBADMSG);
        assert_string_equal(reason, vrrp_parse_error_to_string(want));
}

static void test_parse_error_causes(void **state) {
        struct vrrp_ip_meta m4 = meta_of("192.0.2.1", "224.0.0.18", 255);
        struct vrrp_ip_meta m6 = meta_of("fe80::1", "ff02::12", 255);
        struct vrrp_ip_meta bad_family = m4;
        struct vrrp_advert out;
        enum vrrp_parse_error e = _VRRP_PARSE_ERROR_MAX;
        uint8_t buf[64], v2[64];
        size_t n, n2;

        /* Every cause has a distinct description. */
        for (unsigned i = 0; i < _VRRP_PARSE_ERROR_MAX; i++) {
                assert_non_null(vrrp_parse_error_to_string(i));
                for (unsigned j = 0; j < i; j++)
                        assert_string_not_equal(vrrp_parse_error_to_string(i), vrrp_parse_error_to_string(j));
        }
        assert_null(vrrp_parse_error_to_string(_VRRP_PARSE_ERROR_MAX));

        n = valid_msg(3, &m4, VRRP_CHECKSUM_RFC5798, 1, buf, sizeof(buf));
        /* A valid message leaves the error alone. */
        assert_int_equal(vrrp_advert_check(buf, n, &m4, &out, &e), 0);
        assert_int_equal(e, _VRRP_PARSE_ERROR_MAX);
        assert_int_equal(vrrp_advert_check(buf, n, &m4, &out, NULL), 0);

        assert_cause(buf, VRRP_HEADER_LEN - 1, &m4, VRRP_PARSE_TRUNCATED);
        bad_family.family = AF_UNIX;
        assert_cause(buf, n, &bad_family, VRRP_PARSE_FAMILY);

        /* What the hamgr counters build on: version, TTL, checksum. */
        buf[0] = 4 << 4 | VRRP_TYPE_ADVERTISEMENT;
        fix_checksum(buf, n, &m4, true);
        assert_cause(buf, n, &m4, VRRP_PARSE_VERSION);
        n = valid_msg(3, &m4, VRRP_CHECKSUM_RFC5798, 1, buf, sizeof(buf));
        m4.ttl = 64;
        assert_cause(buf, n, &m4, VRRP_PARSE_TTL);
        m4.ttl = 255;
        buf[2] ^= 0x01;
        assert_cause(buf, n, &m4, VRRP_PARSE_CHECKSUM);
        /* A TTL failure is reported as such even if the checksum is bad too:
         * the TTL is what the operator must fix first. */
        m4.ttl = 1;
        assert_cause(buf, n, &m4, VRRP_PARSE_TTL);
        m4.ttl = 255;
        /* A valid v2 message over IPv6 is a version problem. */
        n2 = valid_msg(2, &m4, VRRP_CHECKSUM_RFC9568, 1, v2, sizeof(v2));
        assert_cause(v2, n2, &m6, VRRP_PARSE_V2_OVER_IPV6);

        /* The rest, one check each. */
        n = valid_msg(3, &m4, VRRP_CHECKSUM_RFC5798, 1, buf, sizeof(buf));
        buf[0] = 3 << 4 | 2;
        fix_checksum(buf, n, &m4, true);
        assert_cause(buf, n, &m4, VRRP_PARSE_TYPE);
        n = valid_msg(3, &m4, VRRP_CHECKSUM_RFC5798, 1, buf, sizeof(buf));
        buf[1] = 0;
        fix_checksum(buf, n, &m4, true);
        assert_cause(buf, n, &m4, VRRP_PARSE_VRID);
        n = valid_msg(3, &m4, VRRP_CHECKSUM_RFC5798, 1, buf, sizeof(buf));
        buf[3] = 0;
        fix_checksum(buf, n, &m4, true);
        assert_cause(buf, n, &m4, VRRP_PARSE_ZERO_ADDRESSES);
        n = valid_msg(3, &m4, VRRP_CHECKSUM_RFC5798, 1, buf, sizeof(buf));
        buf[3] = 2;
        fix_checksum(buf, n, &m4, true);
        assert_cause(buf, n, &m4, VRRP_PARSE_LENGTH);
        n = valid_msg(3, &m4, VRRP_CHECKSUM_RFC5798, 1, buf, sizeof(buf));
        buf[4] = 0;
        buf[5] = 0;
        fix_checksum(buf, n, &m4, true);
        assert_cause(buf, n, &m4, VRRP_PARSE_ZERO_INTERVAL);
        n2 = valid_msg(2, &m4, VRRP_CHECKSUM_RFC9568, 1, v2, sizeof(v2));
        v2[4] = VRRP_AUTH_AH;
        fix_checksum(v2, n2, &m4, false);
        assert_cause(v2, n2, &m4, VRRP_PARSE_AUTH_TYPE);
}

static void test_ipv4_split(void **state) {
        struct vrrp_ip_meta m = meta_of("192.0.2.1", "224.0.0.18", 255);
        struct vrrp_ip_meta got = {};
        struct vrrp_advert out = {};
        uint8_t msg[64], pkt[128];
        const uint8_t *payload = NULL;
        size_t n, total, plen = 0;

        n = valid_msg(3, &m, VRRP_CHECKSUM_RFC5798, 1, msg, sizeof(msg));
        total = ipv4_wrap(pkt, 5, VRRP_IPPROTO, 255, msg, n);
        assert_int_equal(vrrp_ipv4_split(pkt, total, &got, &payload, &plen, NULL), 0);
        assert_int_equal(got.family, AF_INET);
        assert_int_equal(got.ttl, 255);
        assert_true(ip_address_equal(&got.src, &m.src));
        assert_true(ip_address_equal(&got.dst, &m.dst));
        assert_ptr_equal(payload, pkt + 20);
        assert_int_equal(plen, n);
        assert_int_equal(vrrp_advert_parse(payload, plen, &got, &out, NULL), 0);

        /* IP options move the payload. */
        total = ipv4_wrap(pkt, 6, VRRP_IPPROTO, 254, msg, n);
        assert_int_equal(vrrp_ipv4_split(pkt, total, &got, &payload, &plen, NULL), 0);
        assert_ptr_equal(payload, pkt + 24);
        assert_int_equal(plen, n);
        assert_int_equal(got.ttl, 254);

        /* Link-layer padding beyond the IP total length is dropped. */
        total = ipv4_wrap(pkt, 5, VRRP_IPPROTO, 255, msg, n);
        memset(pkt + total, 0, 6);
        assert_int_equal(vrrp_ipv4_split(pkt, total + 6, &got, &payload, &plen, NULL), 0);
        assert_int_equal(plen, n);

        /* An empty payload is the parser's problem, not the splitter's. */
        total = ipv4_wrap(pkt, 5, VRRP_IPPROTO, 255, msg, 0);
        assert_int_equal(vrrp_ipv4_split(pkt, total, &got, &payload, &plen, NULL), 0);
        assert_int_equal(plen, 0);
}

static void test_ipv4_split_rejects(void **state) {
        struct vrrp_ip_meta m = meta_of("192.0.2.1", "224.0.0.18", 255);
        uint8_t msg[64], pkt[128];
        size_t n, total;

        n = valid_msg(3, &m, VRRP_CHECKSUM_RFC5798, 1, msg, sizeof(msg));
        total = ipv4_wrap(pkt, 5, VRRP_IPPROTO, 255, msg, n);

        for (size_t len = 0; len < 20; len++)
                assert_split_rejected(pkt, len, "truncated IPv4 header");

        pkt[0] = 0x65;
        assert_split_rejected(pkt, total, "not IPv4");
        for (uint8_t ihl = 0; ihl < 5; ihl++) {
                pkt[0] = (uint8_t) (0x40 | ihl);
                assert_split_rejected(pkt, total, "IPv4 header length below 20");
        }
        /* IHL 15 claims 60 bytes of header; only 32 are there. */
        pkt[0] = 0x4f;
        assert_split_rejected(pkt, total, "truncated IPv4 options");
        pkt[0] = 0x45;

        /* Total length longer than what was received, or shorter than the header. */
        pkt[3] = (uint8_t) (total + 1);
        assert_split_rejected(pkt, total, "truncated IPv4 packet");
        pkt[2] = 0x01;
        pkt[3] = 0x00;
        assert_split_rejected(pkt, total, "truncated IPv4 packet");
        pkt[2] = 0;
        pkt[3] = 19;
        assert_split_rejected(pkt, total, "IPv4 total length below header length");
        pkt[3] = (uint8_t) total;

        pkt[9] = 6;
        assert_split_rejected(pkt, total, "protocol is not VRRP");
        pkt[9] = 51;
        assert_split_rejected(pkt, total, "protocol is not VRRP");
}

/* A captured IPv6 packet has no splitter in the codec (the IPv6 socket gives
 * addresses through cmsgs); read the fixed header here. */
static void ipv6_meta(const uint8_t *pkt, size_t len, struct vrrp_ip_meta *m,
                      const uint8_t **payload, size_t *plen) {
        assert_true(len >= 40);
        assert_int_equal(pkt[0] >> 4, 6);
        assert_int_equal(pkt[6], VRRP_IPPROTO);
        *m = (struct vrrp_ip_meta) {
                .family = AF_INET6,
                .src.family = AF_INET6,
                .dst.family = AF_INET6,
                .ttl = pkt[7],
        };
        memcpy(&m->src.addr.in6, pkt + 8, 16);
        memcpy(&m->dst.addr.in6, pkt + 24, 16);
        *payload = pkt + 40;
        *plen = (size_t) (pkt[4] << 8 | pkt[5]);
        assert_int_equal(*plen, len - 40);
}

static void check_capture(const uint8_t *pkt, size_t len, uint8_t version, uint8_t vrid,
                          uint8_t priority, uint16_t interval_cs, enum vrrp_checksum_mode mode,
                          const char *src, const char *dst, const char *const *addrs, size_t n_addrs) {
        struct vrrp_ip_meta m = {};
        struct vrrp_advert adv = {};
        const uint8_t *payload = NULL;
        const char *reason = NULL;
        uint8_t rebuilt[VRRP_MAX_MESSAGE_LEN];
        size_t plen = 0;
        struct ip_address want;

        if (pkt[0] >> 4 == 4)
                assert_int_equal(vrrp_ipv4_split(pkt, len, &m, &payload, &plen, &reason), 0);
        else
                ipv6_meta(pkt, len, &m, &payload, &plen);
        want = addr(src);
        assert_true(ip_address_equal(&m.src, &want));
        want = addr(dst);
        assert_true(ip_address_equal(&m.dst, &want));
        assert_int_equal(m.ttl, 255);

        assert_int_equal(vrrp_advert_parse(payload, plen, &m, &adv, &reason), 0);
        assert_null(reason);
        assert_int_equal(adv.version, version);
        assert_int_equal(adv.vrid, vrid);
        assert_int_equal(adv.priority, priority);
        assert_int_equal(adv.max_adver_int_cs, interval_cs);
        assert_int_equal(adv.auth_type, 0);
        assert_int_equal(adv.family, m.family);
        assert_int_equal(adv.checksum_mode, mode);
        assert_int_equal(adv.n_addrs, n_addrs);
        for (size_t i = 0; i < n_addrs; i++) {
                want = addr(addrs[i]);
                assert_int_equal(want.family, m.family);
                assert_memory_equal(adv.addrs[i].bytes, want.addr.bytes, ip_family_addr_len(m.family));
        }

        /* Our builder produces keepalived's bytes exactly. */
        assert_int_equal(vrrp_advert_build(&adv, &m, mode, rebuilt, sizeof(rebuilt)), (int) plen);
        assert_memory_equal(rebuilt, payload, plen);

        /* And the other v3 IPv4 form is not what keepalived sent. */
        if (version == 3 && m.family == AF_INET) {
                assert_int_equal(vrrp_advert_build(&adv, &m, mode == VRRP_CHECKSUM_RFC5798 ?
                                                   VRRP_CHECKSUM_RFC9568 : VRRP_CHECKSUM_RFC5798,
                                                   rebuilt, sizeof(rebuilt)), (int) plen);
                assert_memory_not_equal(rebuilt, payload, plen);
        }
}

static void test_keepalived_v3_ipv4(void **state) {
        static const char *const vips[] = { "10.99.0.10" };

        check_capture(keepalived_v3_ipv4_mcast, sizeof(keepalived_v3_ipv4_mcast), 3, 51, 150, 100,
                      VRRP_CHECKSUM_RFC5798, "10.99.0.1", "224.0.0.18", vips, 1);
        check_capture(keepalived_v3_ipv4_mcast_prio0, sizeof(keepalived_v3_ipv4_mcast_prio0), 3, 51, 0, 100,
                      VRRP_CHECKSUM_RFC5798, "10.99.0.1", "224.0.0.18", vips, 1);
}

static void test_keepalived_v3_ipv4_unicast(void **state) {
        static const char *const vips[] = { "10.99.0.30" };

        check_capture(keepalived_v3_ipv4_unicast, sizeof(keepalived_v3_ipv4_unicast), 3, 54, 120, 50,
                      VRRP_CHECKSUM_RFC5798, "10.99.0.1", "10.99.0.2", vips, 1);
        check_capture(keepalived_v3_ipv4_unicast_prio0, sizeof(keepalived_v3_ipv4_unicast_prio0),
                      3, 54, 0, 50,
                      VRRP_CHECKSUM_RFC5798, "10.99.0.1", "10.99.0.2", vips, 1);
}

static void test_keepalived_v2_ipv4(void **state) {
        static const char *const vips[] = { "10.99.0.20", "10.99.0.21" };

        check_capture(keepalived_v2_ipv4, sizeof(keepalived_v2_ipv4), 2, 52, 100, 200,
                      VRRP_CHECKSUM_RFC9568, "10.99.0.1", "224.0.0.18", vips, 2);
        check_capture(keepalived_v2_ipv4_prio0, sizeof(keepalived_v2_ipv4_prio0), 2, 52, 0, 200,
                      VRRP_CHECKSUM_RFC9568, "10.99.0.1", "224.0.0.18", vips, 2);
}

/* keepalived's auth_type PASS: type 1, the password zero-padded; our
 * builder makes the same bytes from the parsed fields. */
static void test_keepalived_v2_pass(void **state) {
        const uint8_t *caps[] = { keepalived_v2_ipv4_pass, keepalived_v2_ipv4_pass_prio0 };
        const uint8_t prios[] = { 110, 0 };
        struct ip_address vip = addr("10.99.0.40"), src = addr("10.99.0.1");

        for (size_t i = 0; i < ELEMENTSOF(caps); i++) {
                struct vrrp_ip_meta m = {};
                struct vrrp_advert adv = {};
                const uint8_t *payload = NULL;
                uint8_t buf[64];
                size_t plen = 0;

                assert_int_equal(vrrp_ipv4_split(caps[i], sizeof(keepalived_v2_ipv4_pass), &m, &payload, &plen,
                                                 NULL), 0);
                assert_true(ip_address_equal(&m.src, &src));
                assert_int_equal(vrrp_advert_parse(payload, plen, &m, &adv, NULL), 0);
                assert_int_equal(adv.version, 2);
                assert_int_equal(adv.vrid, 55);
                assert_int_equal(adv.priority, prios[i]);
                assert_int_equal(adv.max_adver_int_cs, 100);
                assert_int_equal(adv.n_addrs, 1);
                assert_memory_equal(adv.addrs[0].bytes, vip.addr.bytes, 4);
                assert_int_equal(adv.auth_type, VRRP_AUTH_SIMPLE);
                assert_memory_equal(adv.auth_data, "hamgr12\0", VRRP_V2_AUTH_LEN);
                assert_int_equal(vrrp_advert_build(&adv, &m, VRRP_CHECKSUM_RFC9568, buf, sizeof(buf)), (int) plen);
                assert_memory_equal(buf, payload, plen);
        }
}

static void test_keepalived_v3_ipv6(void **state) {
        static const char *const vips[] = { "2001:db8::10" };

        check_capture(keepalived_v3_ipv6, sizeof(keepalived_v3_ipv6), 3, 53, 200, 100,
                      VRRP_CHECKSUM_RFC9568, "fe80::9c43:3fff:fef0:208e", "ff02::12", vips, 1);
        check_capture(keepalived_v3_ipv6_prio0, sizeof(keepalived_v3_ipv6_prio0), 3, 53, 0, 100,
                      VRRP_CHECKSUM_RFC9568, "fe80::9c43:3fff:fef0:208e", "ff02::12", vips, 1);
}

static void test_keepalived_rejected_when_tampered(void **state) {
        uint8_t pkt[sizeof(keepalived_v3_ipv4_mcast)];
        struct vrrp_ip_meta m = {};
        const uint8_t *payload = NULL;
        size_t plen = 0;

        /* Same bytes, but seen with a decremented TTL or from another host. */
        memcpy(pkt, keepalived_v3_ipv4_mcast, sizeof(pkt));
        pkt[8] = 254;
        assert_int_equal(vrrp_ipv4_split(pkt, sizeof(pkt), &m, &payload, &plen, NULL), 0);
        assert_rejected(payload, plen, &m, "ttl is not 255");
        pkt[8] = 255;
        pkt[15] = 2;
        assert_int_equal(vrrp_ipv4_split(pkt, sizeof(pkt), &m, &payload, &plen, NULL), 0);
        assert_rejected(payload, plen, &m, "bad checksum");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_checksum_helper),
                cmocka_unit_test(test_checksum_mode_names),
                cmocka_unit_test(test_roundtrip_v2),
                cmocka_unit_test(test_roundtrip_v3_ipv4),
                cmocka_unit_test(test_roundtrip_v3_ipv6),
                cmocka_unit_test(test_build_rejects),
                cmocka_unit_test(test_reject_truncated),
                cmocka_unit_test(test_reject_version_type_vrid),
                cmocka_unit_test(test_reject_count),
                cmocka_unit_test(test_reject_checksum),
                cmocka_unit_test(test_checksum_old_keepalived_unicast),
                cmocka_unit_test(test_reject_ttl),
                cmocka_unit_test(test_reject_v2_over_ipv6),
                cmocka_unit_test(test_reject_zero_interval),
                cmocka_unit_test(test_v3_reserved_bits_ignored),
                cmocka_unit_test(test_v2_auth),
                cmocka_unit_test(test_v2_auth_build),
                cmocka_unit_test(test_reject_meta_family),
                cmocka_unit_test(test_parse_error_causes),
                cmocka_unit_test(test_ipv4_split),
                cmocka_unit_test(test_ipv4_split_rejects),
                cmocka_unit_test(test_keepalived_v3_ipv4),
                cmocka_unit_test(test_keepalived_v3_ipv4_unicast),
                cmocka_unit_test(test_keepalived_v2_ipv4),
                cmocka_unit_test(test_keepalived_v2_pass),
                cmocka_unit_test(test_keepalived_v3_ipv6),
                cmocka_unit_test(test_keepalived_rejected_when_tampered),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
