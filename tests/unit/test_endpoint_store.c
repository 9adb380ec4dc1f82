/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The endpoint store's text format: round trip, both versions, and every
 * way a store is refused (the line and the reason said). */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hamgr/endpoint-store.h"

#define KEY_A "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
#define KEY_B "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="

static int parse(const char *text, struct endpoint_record **recs, size_t *n, unsigned *line, const char **why) {
        return endpoint_store_parse((const uint8_t *) text, strlen(text), recs, n, line, why);
}

static void test_round_trip(void **state) {
        struct endpoint_record in[3] = {}, *out = NULL;
        char *text = NULL;
        size_t len = 0, n = 0;

        assert_int_equal(wg_key_from_base64(in[0].public_key, KEY_A), 0);
        assert_int_equal(wg_endpoint_parse("192.0.2.1:51820", &in[0].endpoint), 0);
        in[0].keepalive = 25;
        in[0].learned_ms = 1796540000123;
        in[0].handshake_ms = UINT64_MAX;
        assert_int_equal(wg_key_from_base64(in[1].public_key, KEY_B), 0);
        assert_int_equal(wg_endpoint_parse("[2001:db8::1]:65535", &in[1].endpoint), 0);
        in[1].keepalive = 65535;
        in[2] = in[0];
        assert_int_equal(wg_endpoint_parse("[fe80::1%7]:1", &in[2].endpoint), 0);
        in[2].keepalive = 0;
        in[2].learned_ms = 0;
        in[2].handshake_ms = 0;

        assert_int_equal(endpoint_store_format(in, 3, &text, &len), 0);
        assert_int_equal(strlen(text), len);
        assert_string_equal(text, ENDPOINT_STORE_MAGIC "\n"
                            KEY_A " 192.0.2.1:51820 25 1796540000123 18446744073709551615\n"
                            KEY_B " [2001:db8::1]:65535 65535 0 0\n"
                            KEY_A " [fe80::1%7]:1 0 0 0\n");
        assert_int_equal(endpoint_store_parse((const uint8_t *) text, len, &out, &n, NULL, NULL), 0);
        assert_int_equal(n, 3);
        for (size_t i = 0; i < 3; i++) {
                char a[64], b[64];

                assert_memory_equal(out[i].public_key, in[i].public_key, WG_KEY_LEN);
                assert_string_equal(wg_endpoint_to_string(&out[i].endpoint, a, sizeof(a)),
                                    wg_endpoint_to_string(&in[i].endpoint, b, sizeof(b)));
                assert_int_equal(out[i].keepalive, in[i].keepalive);
                assert_true(out[i].learned_ms == in[i].learned_ms);
                assert_true(out[i].handshake_ms == in[i].handshake_ms);
        }
        assert_int_equal(out[2].endpoint.addr6.sin6_scope_id, 7);
        free(out);
        free(text);
}

static void test_versions(void **state) {
        struct endpoint_record *out = NULL;
        size_t n = 99;

        /* Version 1: three fields. */
        assert_int_equal(parse(ENDPOINT_STORE_MAGIC_V1 "\n" KEY_A " 10.0.0.1:1 5\n", &out, &n, NULL, NULL), 0);
        assert_int_equal(n, 1);
        assert_int_equal(out[0].keepalive, 5);
        assert_true(out[0].learned_ms == 0 && out[0].handshake_ms == 0);
        free(out);
        /* Version 2 without the handshake time, tabs, no final newline. */
        assert_int_equal(parse(ENDPOINT_STORE_MAGIC "\n" KEY_A "\t10.0.0.1:1  0\t42", &out, &n, NULL, NULL), 0);
        assert_int_equal(n, 1);
        assert_true(out[0].learned_ms == 42);
        free(out);
        /* No record at all. */
        out = (void *) 1;
        assert_int_equal(parse(ENDPOINT_STORE_MAGIC "\n", &out, &n, NULL, NULL), 0);
        assert_int_equal(n, 0);
        assert_null(out);
}

static void expect_refused(const char *text, size_t len, unsigned want_line, const char *want_reason) {
        struct endpoint_record *out = (void *) 1;
        size_t n = 77;
        unsigned line = 0;
        const char *why = NULL;

        assert_int_equal(endpoint_store_parse((const uint8_t *) text, len, &out, &n, &line, &why), -EBADMSG);
        assert_int_equal(line, want_line);
        assert_non_null(why);
        assert_string_equal(why, want_reason);
        /* Untouched on failure. */
        assert_ptr_equal(out, (void *) 1);
        assert_int_equal(n, 77);
}

static void refused(const char *text, unsigned want_line, const char *want_reason) {
        expect_refused(text, strlen(text), want_line, want_reason);
}

static void test_refused(void **state) {
        char long_line[ENDPOINT_STORE_LINE_MAX + 64];
        static const char nul[] = ENDPOINT_STORE_MAGIC "\n" KEY_A " 10.0.0.1:1 0\0 0\n";

        refused("", 1, "empty file");
        refused("hamgr-endpoints 3\n", 1, "not an endpoint store (no magic line)");
        refused(ENDPOINT_STORE_MAGIC " \n", 1, "not an endpoint store (no magic line)");
        refused(ENDPOINT_STORE_MAGIC "\n\n", 2, "expected 4 or 5 fields");
        refused(ENDPOINT_STORE_MAGIC "\n" KEY_A " 10.0.0.1:1 0\n", 2, "expected 4 or 5 fields");
        refused(ENDPOINT_STORE_MAGIC "\n" KEY_A " 10.0.0.1:1 0 0 0 0\n", 2, "expected 4 or 5 fields");
        refused(ENDPOINT_STORE_MAGIC "\n" KEY_A " 10.0.0.1:1 0 0 0 0 0 0 0\n", 2, "expected 4 or 5 fields");
        refused(ENDPOINT_STORE_MAGIC_V1 "\n" KEY_A " 10.0.0.1:1 0 0\n", 2, "expected 3 fields");
        refused(ENDPOINT_STORE_MAGIC "\n" KEY_A " 10.0.0.1:1 0 0\n" "nokey 10.0.0.1:1 0 0\n", 3, "not a public key");
        refused(ENDPOINT_STORE_MAGIC "\n" KEY_A " example.com:1 0 0\n", 2, "not a numeric endpoint");
        refused(ENDPOINT_STORE_MAGIC "\n" KEY_A " (none) 0 0\n", 2, "not a numeric endpoint");
        refused(ENDPOINT_STORE_MAGIC "\n" KEY_A " 10.0.0.1:1 65536 0\n", 2, "keepalive not a number of 0..65535");
        refused(ENDPOINT_STORE_MAGIC "\n" KEY_A " 10.0.0.1:1 -1 0\n", 2, "keepalive not a number of 0..65535");
        refused(ENDPOINT_STORE_MAGIC "\n" KEY_A " 10.0.0.1:1 1 18446744073709551616\n", 2,
                "learned time not a 64-bit number");
        refused(ENDPOINT_STORE_MAGIC "\n" KEY_A " 10.0.0.1:1 1 +5\n", 2, "learned time not a 64-bit number");
        refused(ENDPOINT_STORE_MAGIC "\n" KEY_A " 10.0.0.1:1 1 5 0x10\n", 2, "handshake time not a 64-bit number");
        expect_refused(nul, sizeof(nul) - 1, 2, "NUL byte");

        memset(long_line, ' ', sizeof(long_line));
        memcpy(long_line, ENDPOINT_STORE_MAGIC "\n", strlen(ENDPOINT_STORE_MAGIC) + 1);
        long_line[sizeof(long_line) - 2] = '\n';
        long_line[sizeof(long_line) - 1] = '\0';
        refused(long_line, 2, "line too long");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_versions),
                cmocka_unit_test(test_refused),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
