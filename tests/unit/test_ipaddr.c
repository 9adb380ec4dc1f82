/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "common/ipaddr.h"
#include "common/macro.h"

static struct ip_address addr(const char *s) {
        struct ip_address a = {};

        assert_int_equal(ip_address_parse(s, &a), 0);
        return a;
}

static void test_family_len(void **state) {
        assert_int_equal(ip_family_addr_len(AF_INET), 4);
        assert_int_equal(ip_family_addr_len(AF_INET6), 16);
        assert_int_equal(ip_family_addr_len(AF_UNSPEC), 0);
        assert_int_equal(ip_family_addr_len(-1), 0);
}

static void test_parse_valid(void **state) {
        struct ip_address a = {};
        char buf[INET6_ADDRSTRLEN];

        assert_int_equal(ip_address_parse("192.0.2.1", &a), 0);
        assert_int_equal(a.family, AF_INET);
        assert_memory_equal(&a.addr.in, "\xc0\x00\x02\x01", 4);
        assert_string_equal(ip_address_to_string(&a, buf, sizeof(buf)), "192.0.2.1");

        assert_int_equal(ip_address_parse("2001:db8::1", &a), 0);
        assert_int_equal(a.family, AF_INET6);
        assert_memory_equal(&a.addr.in6, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
        assert_string_equal(ip_address_to_string(&a, buf, sizeof(buf)), "2001:db8::1");

        /* Textual forms normalise. */
        a = addr("2001:DB8:0:0::0:1");
        assert_string_equal(ip_address_to_string(&a, buf, sizeof(buf)), "2001:db8::1");
        a = addr("::ffff:192.0.2.1");
        assert_int_equal(a.family, AF_INET6);
        a = addr("::");
        assert_int_equal(a.family, AF_INET6);
}

static void test_parse_invalid(void **state) {
        static const char *const bad[] = {
                "", "1.2.3", "1.2.3.256", "1.2.3.4.5", "01.2.3.4x", " 1.2.3.4", "1.2.3.4 ",
                "::g", "2001:db8::1::2", "fe80::1%eth0", "10.0.0.1/24", "localhost",
        };
        struct ip_address a = { .family = 77 };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                assert_int_equal(ip_address_parse(bad[i], &a), -EINVAL);
                assert_int_equal(a.family, 77);
        }
        assert_int_equal(ip_address_parse(NULL, &a), -EINVAL);
        assert_int_equal(a.family, 77);
}

static void test_prefix(void **state) {
        struct ip_prefix p = {};
        struct ip_address want;

        assert_int_equal(ip_prefix_parse("10.99.0.10/24", &p), 0);
        want = addr("10.99.0.10");
        assert_true(ip_address_equal(&p.address, &want));
        assert_int_equal(p.prefixlen, 24);

        assert_int_equal(ip_prefix_parse("2001:db8::10/64", &p), 0);
        assert_int_equal(p.address.family, AF_INET6);
        assert_int_equal(p.prefixlen, 64);

        /* No prefix means a host route. */
        assert_int_equal(ip_prefix_parse("10.0.0.1", &p), 0);
        assert_int_equal(p.prefixlen, 32);
        assert_int_equal(ip_prefix_parse("fe80::1", &p), 0);
        assert_int_equal(p.prefixlen, 128);

        /* Bounds per family. */
        assert_int_equal(ip_prefix_parse("0.0.0.0/0", &p), 0);
        assert_int_equal(p.prefixlen, 0);
        assert_int_equal(ip_prefix_parse("10.0.0.1/32", &p), 0);
        assert_int_equal(p.prefixlen, 32);
        assert_int_equal(ip_prefix_parse("::/128", &p), 0);
        assert_int_equal(p.prefixlen, 128);
}

static void test_prefix_invalid(void **state) {
        static const char *const bad[] = {
                "10.0.0.1/33", "2001:db8::1/129", "10.0.0.1/", "/24", "10.0.0.1/-1", "10.0.0.1/+8",
                "10.0.0.1/ 8", "10.0.0.1/24x", "10.0.0.1/24/8", "10.0.0.1//24", "10.0.0/24",
                "10.0.0.1/99999999999999999999999", "10.0.0.1/4294967320",
                "2001:db8:1111:2222:3333:4444:5555:6666:7777/64",
                "0000000000000000000000000000000000000000000000000000000000000010.0.0.1/8",
        };
        struct ip_prefix p = { .prefixlen = 99 };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                assert_int_equal(ip_prefix_parse(bad[i], &p), -EINVAL);
                assert_int_equal(p.prefixlen, 99);
        }
        assert_int_equal(ip_prefix_parse(NULL, &p), -EINVAL);
}

static void test_to_string(void **state) {
        struct ip_address a = addr("203.0.113.254");
        struct ip_address bad = { .family = AF_UNSPEC };
        char buf[INET6_ADDRSTRLEN], small[4];

        assert_ptr_equal(ip_address_to_string(&a, buf, sizeof(buf)), buf);
        assert_string_equal(buf, "203.0.113.254");
        assert_string_equal(ip_address_to_string(&bad, buf, sizeof(buf)), "?");
        assert_string_equal(ip_address_to_string(NULL, buf, sizeof(buf)), "?");
        assert_string_equal(ip_address_to_string(&a, small, sizeof(small)), "?");
}

static void test_compare(void **state) {
        struct ip_address a, b;

        /* VRRP breaks priority ties on the larger primary address, compared
         * as an unsigned number: the top bit must not make it negative. */
        a = addr("10.0.0.1");
        b = addr("10.0.0.2");
        assert_true(ip_address_compare(&a, &b) < 0);
        assert_true(ip_address_compare(&b, &a) > 0);
        a = addr("128.0.0.1");
        b = addr("127.255.255.255");
        assert_true(ip_address_compare(&a, &b) > 0);
        a = addr("192.0.2.1");
        b = addr("10.255.255.255");
        assert_true(ip_address_compare(&a, &b) > 0);
        /* Byte order, not host order: 1.0.0.2 > 2.0.0.1 is false. */
        a = addr("1.0.0.2");
        b = addr("2.0.0.1");
        assert_true(ip_address_compare(&a, &b) < 0);

        a = addr("fe80::1");
        b = addr("fe80::2");
        assert_true(ip_address_compare(&a, &b) < 0);
        a = addr("ff02::1");
        b = addr("fe80::ffff");
        assert_true(ip_address_compare(&a, &b) > 0);

        /* Families order consistently (IPv4 first). */
        a = addr("255.255.255.255");
        b = addr("::");
        assert_true(ip_address_compare(&a, &b) < 0);
        assert_true(ip_address_compare(&b, &a) > 0);
        assert_false(ip_address_equal(&a, &b));

        /* Bytes past an IPv4 address do not count. */
        a = addr("192.0.2.7");
        b = a;
        memset(b.addr.bytes + 4, 0xee, 12);
        assert_int_equal(ip_address_compare(&a, &b), 0);
        assert_true(ip_address_equal(&a, &b));
        a = addr("2001:db8::1");
        b = addr("2001:0db8:0::1");
        assert_true(ip_address_equal(&a, &b));
}

static void test_link_local(void **state) {
        static const char *const yes[] = { "fe80::1", "febf:ffff::1", "169.254.0.1", "169.254.255.255" };
        static const char *const no[] = {
                "fec0::1", "fe7f::1", "2001:db8::1", "::1", "ff02::12", "169.253.255.255", "169.255.0.0",
                "10.0.0.1", "127.0.0.1", "224.0.0.18",
        };
        struct ip_address a, none = {};

        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                a = addr(yes[i]);
                assert_true(ip_address_is_link_local(&a));
        }
        for (size_t i = 0; i < ELEMENTSOF(no); i++) {
                a = addr(no[i]);
                assert_false(ip_address_is_link_local(&a));
        }
        assert_false(ip_address_is_link_local(&none));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_family_len),
                cmocka_unit_test(test_parse_valid),
                cmocka_unit_test(test_parse_invalid),
                cmocka_unit_test(test_prefix),
                cmocka_unit_test(test_prefix_invalid),
                cmocka_unit_test(test_to_string),
                cmocka_unit_test(test_compare),
                cmocka_unit_test(test_link_local),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
