/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The unsolicited neighbour advertisement frame, byte by byte. The expected
 * checksum is summed here from the frame's own fields with a plain loop,
 * not with the code under test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>

#include <cmocka.h>

#include "vrrp/announce.h"

static const uint8_t mac[6] = { 0x02, 0x77, 0x00, 0x00, 0x00, 0x01 };

/* RFC 1071 one's complement sum of 16-bit big-endian words. */
static uint32_t ones_sum(uint32_t sum, const uint8_t *p, size_t len) {
        for (size_t i = 0; i < len; i++)
                sum += i % 2 == 0 ? (uint32_t) p[i] << 8 : p[i];
        return sum;
}

static uint16_t fold(uint32_t sum) {
        while (sum > 0xffff)
                sum = (sum & 0xffff) + (sum >> 16);
        return (uint16_t) sum;
}

/* The ICMPv6 checksum of MSG (32 bytes) from SRC to ff02::1, computed with
 * the checksum field taken as zero. */
static uint16_t expected_checksum(const struct in6_addr *src, const uint8_t *msg) {
        const uint8_t dst[16] = { 0xff, 0x02, [15] = 1 };
        const uint8_t len_nh[8] = { 0, 0, 0, 32, 0, 0, 0, 58 };
        uint8_t copy[32];
        uint32_t sum = 0;

        memcpy(copy, msg, sizeof(copy));
        copy[2] = copy[3] = 0;
        sum = ones_sum(sum, src->s6_addr, 16);
        sum = ones_sum(sum, dst, 16);
        sum = ones_sum(sum, len_nh, 8);
        sum = ones_sum(sum, copy, 32);
        return (uint16_t) ~fold(sum);
}

static void check_frame(const char *s_src, const char *s_target) {
        static const uint8_t eth_dst[6] = { 0x33, 0x33, 0, 0, 0, 1 };
        static const uint8_t all_nodes[16] = { 0xff, 0x02, [15] = 1 };
        uint8_t frame[VRRP_NA_FRAME_LEN];
        const uint8_t *ip6 = frame + 14, *icmp = frame + 54;
        struct in6_addr src, target;
        uint16_t csum;

        assert_int_equal(inet_pton(AF_INET6, s_src, &src), 1);
        assert_int_equal(inet_pton(AF_INET6, s_target, &target), 1);
        memset(frame, 0xa5, sizeof(frame));
        vrrp_announce_na_frame(frame, mac, &src, &target);

        assert_int_equal(VRRP_NA_FRAME_LEN, 86);
        /* Ethernet */
        assert_memory_equal(frame, eth_dst, 6);
        assert_memory_equal(frame + 6, mac, 6);
        assert_int_equal(frame[12], 0x86);
        assert_int_equal(frame[13], 0xdd);
        /* IPv6: version 6, payload 32, next header 58, hop limit 255 */
        assert_int_equal(ip6[0], 0x60);
        assert_int_equal(ip6[1] | ip6[2] | ip6[3], 0);
        assert_int_equal(ip6[4] << 8 | ip6[5], 32);
        assert_int_equal(ip6[6], 58);
        assert_int_equal(ip6[7], 255);
        assert_memory_equal(ip6 + 8, src.s6_addr, 16);
        assert_memory_equal(ip6 + 24, all_nodes, 16);
        /* NA: type 136 code 0; R and O set, S clear, reserved zero */
        assert_int_equal(icmp[0], 136);
        assert_int_equal(icmp[1], 0);
        assert_true(icmp[4] & 0x80);
        assert_false(icmp[4] & 0x40);
        assert_true(icmp[4] & 0x20);
        assert_int_equal(icmp[4] & 0x1f, 0);
        assert_int_equal(icmp[5] | icmp[6] | icmp[7], 0);
        assert_memory_equal(icmp + 8, target.s6_addr, 16);
        /* target link-layer address option, length 1 (8 bytes) */
        assert_int_equal(icmp[24], 2);
        assert_int_equal(icmp[25], 1);
        assert_memory_equal(icmp + 26, mac, 6);

        csum = (uint16_t) (icmp[2] << 8 | icmp[3]);
        assert_int_equal(csum, expected_checksum(&src, icmp));
        /* and the receiver's view: everything, checksum included, sums to 0xffff */
        {
                const uint8_t len_nh[8] = { 0, 0, 0, 32, 0, 0, 0, 58 };
                uint32_t sum = ones_sum(0, ip6 + 8, 32);

                sum = ones_sum(sum, len_nh, 8);
                sum = ones_sum(sum, icmp, 32);
                assert_int_equal(fold(sum), 0xffff);
        }
}

static void test_na_frame(void **state) {
        check_frame("fe80::77ff:fe00:1", "fd77::10");
        check_frame("fe80::1", "2001:db8::100");
        check_frame("fe80::ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe");
}

/* A flipped target must change the checksum: the target is covered. */
static void test_na_checksum_covers_target(void **state) {
        uint8_t a[VRRP_NA_FRAME_LEN], b[VRRP_NA_FRAME_LEN];
        struct in6_addr src, t1, t2;

        assert_int_equal(inet_pton(AF_INET6, "fe80::1", &src), 1);
        assert_int_equal(inet_pton(AF_INET6, "fd77::10", &t1), 1);
        assert_int_equal(inet_pton(AF_INET6, "fd77::11", &t2), 1);
        vrrp_announce_na_frame(a, mac, &src, &t1);
        vrrp_announce_na_frame(b, mac, &src, &t2);
        assert_memory_not_equal(a + 56, b + 56, 2);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_na_frame),
                cmocka_unit_test(test_na_checksum_covers_target),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
