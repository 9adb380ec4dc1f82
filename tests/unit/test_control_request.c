/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The control socket's request parser: every request hamgr(8) sends, and
 * the refusals with their reasons. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "common/macro.h"
#include "hamgr/control-request.h"

/* 32 bytes 0x01..0x20 in base64. */
#define KEY "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="

static int parse(const char *s, struct control_request *r, const char **reason) {
        return control_request_parse(s, strlen(s), r, reason);
}

static void test_simple(void **state) {
        static const struct {
                const char *text;
                enum control_request_type type;
        } ok[] = {
                { "STATUS", CONTROL_REQUEST_STATUS },
                { "STATUS\n", CONTROL_REQUEST_STATUS },
                { "STATUS JSON\r\n", CONTROL_REQUEST_STATUS_JSON },
                { "PEERS JSON\nignored", CONTROL_REQUEST_PEERS_JSON },
        };
        struct control_request r;

        for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
                assert_int_equal(parse(ok[i].text, &r, NULL), 0);
                assert_int_equal(r.type, ok[i].type);
                control_request_done(&r);
        }
}

static void test_peer_add(void **state) {
        struct control_request r;
        char buf[128];

        assert_int_equal(parse("PEER ADD wg0 " KEY " allowed=10.0.0.1/32,fd00::/64 keepalive=25 psk=" KEY "\n", &r, NULL), 0);
        assert_int_equal(r.type, CONTROL_REQUEST_PEER_ADD);
        assert_string_equal(r.ifname, "wg0");
        assert_int_equal(r.peer.public_key[0], 1);
        assert_int_equal(r.peer.public_key[31], 32);
        assert_int_equal(r.peer.flags, WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REPLACE_ALLOWEDIPS |
                                               WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL | WG_PEER_HAS_PRESHARED_KEY);
        assert_int_equal(r.peer.persistent_keepalive_interval, 25);
        assert_int_equal(r.peer.preshared_key[31], 32);
        assert_int_equal(r.peer.n_allowedips, 2);
        assert_int_equal(r.peer.allowedips[0].family, AF_INET);
        assert_int_equal(r.peer.allowedips[0].cidr, 32);
        assert_string_equal(inet_ntop(AF_INET6, &r.peer.allowedips[1].ip, buf, sizeof(buf)), "fd00::");
        assert_int_equal(r.peer.allowedips[1].cidr, 64);
        control_request_done(&r);
        /* Done wipes: no key left behind. */
        assert_int_equal(r.peer.preshared_key[31], 0);

        /* Nothing but the key: no allowed IPs, no keepalive or psk flags;
         * an empty list is the same. */
        assert_int_equal(parse("PEER ADD wg1 " KEY " allowed=", &r, NULL), 0);
        assert_int_equal(r.peer.flags, WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REPLACE_ALLOWEDIPS);
        assert_int_equal(r.peer.n_allowedips, 0);
        control_request_done(&r);
        assert_int_equal(parse("PEER ADD wg1 " KEY " keepalive=65535", &r, NULL), 0);
        assert_int_equal(r.peer.persistent_keepalive_interval, 65535);
        control_request_done(&r);
}

static void test_peer_remove(void **state) {
        struct control_request r;

        /* Words after the key are ignored, as before. */
        assert_int_equal(parse("PEER REMOVE wg0 " KEY " allowed=junk", &r, NULL), 0);
        assert_int_equal(r.type, CONTROL_REQUEST_PEER_REMOVE);
        assert_int_equal(r.peer.flags, WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REMOVE_ME);
        assert_int_equal(r.peer.n_allowedips, 0);
        control_request_done(&r);
}

static void test_rejects(void **state) {
        static const struct {
                const char *text;
                const char *reason;
        } bad[] = {
                { "", "unknown request" },
                { "status", "unknown request" },
                { "STATUS ", "unknown request" },
                { "PEERS", "unknown request" },
                { "PEER", "unknown request" },
                { "PEER ADD wg0", "usage: PEER ADD|REMOVE IFACE KEY [allowed=LIST] [keepalive=N] [psk=KEY]" },
                { "PEER DEL wg0 " KEY, "usage: PEER ADD|REMOVE IFACE KEY [allowed=LIST] [keepalive=N] [psk=KEY]" },
                { "PEER ADD wg0123456789abcd " KEY, "the interface name is too long" },
                { "PEER ADD wg0 AAAA", "the public key is not a base64 WireGuard key" },
                { "PEER ADD wg0 " KEY " allowed=10.0.0.1/33", "an allowed IP is not an address/prefix" },
                { "PEER ADD wg0 " KEY " allowed=10.0.0.0/8,x", "an allowed IP is not an address/prefix" },
                { "PEER ADD wg0 " KEY " keepalive=65536", "keepalive must be 0..65535 seconds" },
                { "PEER ADD wg0 " KEY " keepalive=", "keepalive must be 0..65535 seconds" },
                { "PEER ADD wg0 " KEY " keepalive=-1", "keepalive must be 0..65535 seconds" },
                { "PEER ADD wg0 " KEY " keepalive=5s", "keepalive must be 0..65535 seconds" },
                { "PEER ADD wg0 " KEY " psk=AAAA", "the preshared key is not a base64 key" },
                { "PEER ADD wg0 " KEY " endpoint=1.2.3.4:5", "unknown argument (allowed=, keepalive= or psk=)" },
        };
        struct control_request r = { .type = CONTROL_REQUEST_PEERS_JSON };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                const char *reason = NULL;

                assert_int_equal(parse(bad[i].text, &r, &reason), -EBADMSG);
                assert_string_equal(reason, bad[i].reason);
                /* Untouched on failure. */
                assert_int_equal(r.type, CONTROL_REQUEST_PEERS_JSON);
        }
        /* A NUL inside the line. */
        assert_int_equal(control_request_parse("STATUS\0X", 8, &r, NULL), -EBADMSG);
        /* The 15-byte limit of an interface name is IFNAMSIZ - 1. */
        assert_int_equal(parse("PEER REMOVE wg0123456789abc " KEY, &r, NULL), 0);
        control_request_done(&r);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_simple),
                cmocka_unit_test(test_peer_add),
                cmocka_unit_test(test_peer_remove),
                cmocka_unit_test(test_rejects),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
