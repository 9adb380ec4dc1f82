/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The UAPI backend: the get parser (wireguard-go and boringtun replies,
 * malformed input, limits), the set formatter, the boringtun plan, and the
 * socket code against a fake daemon in a thread that plays wireguard-go or
 * boringtun (as its device/api.rs behaves in 0.4 to 0.7), or hangs. */

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <systemd/sd-event.h>

#include "common/macro.h"
#include "hamgr/wg-io.h"
#include "wg/uapi.h"
#include "wg/wg.h"

#define NOW INT64_C(1700000000)

/* RFC 7748 section 6.1 (Alice). */
static const char alice_priv_hex[] = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
static const char alice_pub_hex[] = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";

static void hex_key(uint8_t key[static WG_KEY_LEN], const char *hex) {
        for (size_t i = 0; i < WG_KEY_LEN; i++) {
                unsigned v;

                assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
                key[i] = (uint8_t) v;
        }
}

static void key_to_hex(char out[static 2 * WG_KEY_LEN + 1], const uint8_t key[static WG_KEY_LEN]) {
        for (size_t i = 0; i < WG_KEY_LEN; i++)
                sprintf(out + 2 * i, "%02x", key[i]);
}

static void key_fill(uint8_t key[static WG_KEY_LEN], uint8_t id) {
        memset(key, id, WG_KEY_LEN);
}

static int parse(const char *text, struct wg_device **ret, const char **reason) {
        return wg_uapi_parse_get((const uint8_t *) text, strlen(text), NOW, ret, reason);
}

/* ---- get parser ---- */

static const char wggo_reply[] =
        "private_key=77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a\n"
        "listen_port=51820\n"
        "fwmark=4660\n"
        "public_key=0101010101010101010101010101010101010101010101010101010101010101\n"
        "preshared_key=0000000000000000000000000000000000000000000000000000000000000000\n"
        "protocol_version=1\n"
        "endpoint=192.0.2.1:51820\n"
        "last_handshake_time_sec=1699999990\n"
        "last_handshake_time_nsec=5\n"
        "tx_bytes=1000\n"
        "rx_bytes=18446744073709551615\n"
        "persistent_keepalive_interval=25\n"
        "allowed_ip=10.1.0.0/24\n"
        "allowed_ip=fd01::/64\n"
        "public_key=0202020202020202020202020202020202020202020202020202020202020202\n"
        "preshared_key=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
        "protocol_version=1\n"
        "endpoint=[2001:db8::2]:4500\n"
        "last_handshake_time_sec=0\n"
        "last_handshake_time_nsec=0\n"
        "tx_bytes=0\n"
        "rx_bytes=0\n"
        "persistent_keepalive_interval=0\n"
        "errno=0\n"
        "\n";

static void test_parse_wireguard_go(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *d = NULL;
        uint8_t key[WG_KEY_LEN];
        const struct wg_peer *p;
        char buf[96];

        assert_int_equal(parse(wggo_reply, &d, NULL), 0);
        assert_int_equal(d->flags, WG_DEVICE_HAS_PRIVATE_KEY | WG_DEVICE_HAS_PUBLIC_KEY | WG_DEVICE_HAS_LISTEN_PORT |
                                           WG_DEVICE_HAS_FWMARK);
        hex_key(key, alice_priv_hex);
        assert_memory_equal(d->private_key, key, WG_KEY_LEN);
        hex_key(key, alice_pub_hex);
        assert_memory_equal(d->public_key, key, WG_KEY_LEN);
        assert_int_equal(d->listen_port, 51820);
        assert_int_equal(d->fwmark, 4660);
        assert_int_equal(d->n_peers, 2);

        p = &d->peers[0];
        key_fill(key, 1);
        assert_memory_equal(p->public_key, key, WG_KEY_LEN);
        /* An all-zero preshared key is "none". */
        assert_int_equal(p->flags, WG_PEER_HAS_PUBLIC_KEY | WG_PEER_HAS_ENDPOINT |
                                           WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL);
        assert_string_equal(wg_endpoint_to_string(&p->endpoint, buf, sizeof(buf)), "192.0.2.1:51820");
        assert_int_equal(p->last_handshake_time_sec, 1699999990);
        assert_int_equal(p->last_handshake_time_nsec, 5);
        assert_int_equal(p->tx_bytes, 1000);
        assert_true(p->rx_bytes == UINT64_MAX);
        assert_int_equal(p->persistent_keepalive_interval, 25);
        assert_int_equal(p->n_allowedips, 2);
        assert_int_equal(p->allowedips[0].family, AF_INET);
        assert_int_equal(ntohl(p->allowedips[0].ip.in.s_addr), 0x0a010000);
        assert_int_equal(p->allowedips[0].cidr, 24);
        assert_int_equal(p->allowedips[1].family, AF_INET6);
        assert_int_equal(p->allowedips[1].ip.bytes[0], 0xfd);
        assert_int_equal(p->allowedips[1].cidr, 64);

        p = &d->peers[1];
        assert_true(p->flags & WG_PEER_HAS_PRESHARED_KEY);
        assert_int_equal(p->preshared_key[31], 0xaa);
        assert_string_equal(wg_endpoint_to_string(&p->endpoint, buf, sizeof(buf)), "[2001:db8::2]:4500");
        assert_int_equal(p->last_handshake_time_sec, 0);
        assert_int_equal(p->n_allowedips, 0);
}

/* The endpoint store's read: the same peers with the same endpoints,
 * handshakes and keepalives, and neither preshared keys nor allowed IPs. */
static void test_parse_endpoints_only(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *full = NULL, *light = NULL;

        assert_int_equal(parse(wggo_reply, &full, NULL), 0);
        assert_int_equal(wg_uapi_parse_get_endpoints((const uint8_t *) wggo_reply, strlen(wggo_reply), NOW, &light, NULL),
                         0);
        assert_int_equal(light->n_peers, full->n_peers);
        assert_int_equal(light->listen_port, full->listen_port);
        for (size_t i = 0; i < full->n_peers; i++) {
                const struct wg_peer *f = &full->peers[i], *l = &light->peers[i];

                assert_memory_equal(l->public_key, f->public_key, WG_KEY_LEN);
                assert_memory_equal(&l->endpoint, &f->endpoint, sizeof(l->endpoint));
                assert_int_equal(l->last_handshake_time_sec, f->last_handshake_time_sec);
                assert_int_equal(l->last_handshake_time_nsec, f->last_handshake_time_nsec);
                assert_int_equal(l->persistent_keepalive_interval, f->persistent_keepalive_interval);
                assert_int_equal(l->n_allowedips, 0);
                assert_false(l->flags & WG_PEER_HAS_PRESHARED_KEY);
                assert_true(wg_key_is_zero(l->preshared_key));
        }
        assert_true(full->peers[0].n_allowedips > 0);
        assert_true(full->peers[1].flags & WG_PEER_HAS_PRESHARED_KEY);
}

static void test_parse_boringtun(void **state) {
        static const char reply[] =
                "own_public_key=8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a\n"
                "listen_port=40000\n"
                "public_key=0303030303030303030303030303030303030303030303030303030303030303\n"
                "persistent_keepalive_interval=10\n"
                "endpoint=198.51.100.3:51820\n"
                "allowed_ip=10.3.0.0/16\n"
                "last_handshake_time_sec=5\n"
                "last_handshake_time_nsec=250000000\n"
                "rx_bytes=7\n"
                "tx_bytes=8\n"
                "public_key=0404040404040404040404040404040404040404040404040404040404040404\n"
                "last_handshake_time_sec=0\n"
                "last_handshake_time_nsec=1\n"
                "errno=0\n"
                "\n";
        _cleanup_(wg_device_freep) struct wg_device *d = NULL;
        uint8_t key[WG_KEY_LEN];

        assert_int_equal(parse(reply, &d, NULL), 0);
        /* No private key, but the public key is known. */
        assert_int_equal(d->flags, WG_DEVICE_HAS_PUBLIC_KEY | WG_DEVICE_HAS_LISTEN_PORT);
        hex_key(key, alice_pub_hex);
        assert_memory_equal(d->public_key, key, WG_KEY_LEN);
        assert_true(wg_key_is_zero(d->private_key));
        assert_int_equal(d->n_peers, 2);
        /* 5.25 s before NOW. */
        assert_int_equal(d->peers[0].last_handshake_time_sec, NOW - 6);
        assert_int_equal(d->peers[0].last_handshake_time_nsec, 750000000);
        assert_int_equal(d->peers[0].rx_bytes, 7);
        assert_int_equal(d->peers[0].tx_bytes, 8);
        /* 1 ns ago is a handshake too, not "never". */
        assert_int_equal(d->peers[1].last_handshake_time_sec, NOW - 1);
        assert_int_equal(d->peers[1].last_handshake_time_nsec, 999999999);
}

static void test_parse_relative_clock_before(void **state) {
        static const char reply[] =
                "public_key=0303030303030303030303030303030303030303030303030303030303030303\n"
                "last_handshake_time_sec=100\n"
                "errno=0\n\n";
        _cleanup_(wg_device_freep) struct wg_device *d = NULL;

        assert_int_equal(wg_uapi_parse_get((const uint8_t *) reply, strlen(reply), 50, &d, NULL), 0);
        assert_int_equal(d->peers[0].last_handshake_time_sec, 1);
}

static void test_parse_errno(void **state) {
        struct wg_device *d = (struct wg_device *) 0x1;
        _cleanup_(wg_device_freep) struct wg_device *empty = NULL;

        /* wireguard-go answers negative values, boringtun positive ones. */
        assert_int_equal(parse("errno=-22\n\n", &d, NULL), -EINVAL);
        assert_int_equal(parse("errno=22\n\n", &d, NULL), -EINVAL);
        assert_int_equal(parse("errno=-5\n\n", &d, NULL), -EIO);
        assert_ptr_equal(d, (struct wg_device *) 0x1);
        assert_int_equal(parse("errno=0\n\n", &empty, NULL), 0);
        assert_int_equal(empty->n_peers, 0);
        assert_int_equal(empty->flags, 0);
}

static void test_parse_unknown_keys(void **state) {
        static const char reply[] =
                "jc=4\n"
                "listen_port=1\n"
                "future_device_thing=x y z\n"
                "public_key=0303030303030303030303030303030303030303030303030303030303030303\n"
                "future_peer_thing=\n"
                "protocol_version=2\n"
                "allowed_ip=10.0.0.1/32\n"
                "errno=0\n\n";
        _cleanup_(wg_device_freep) struct wg_device *d = NULL;

        assert_int_equal(parse(reply, &d, NULL), 0);
        assert_int_equal(d->listen_port, 1);
        assert_int_equal(d->n_peers, 1);
        assert_int_equal(d->peers[0].n_allowedips, 1);
}

static void test_parse_malformed(void **state) {
        static const struct {
                const char *text;
                const char *reason;
        } cases[] = {
                { "listen_port\nerrno=0\n\n", "line without '='" },
                { "=1\nerrno=0\n\n", "empty key" },
                { "private_key=77076d0a\nerrno=0\n\n", "bad device value" },
                { "private_key=77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2g\nerrno=0\n\n",
                  "bad device value" },
                { "listen_port=65536\nerrno=0\n\n", "bad device value" },
                { "listen_port=-1\nerrno=0\n\n", "bad device value" },
                { "listen_port=\nerrno=0\n\n", "bad device value" },
                { "fwmark=4294967296\nerrno=0\n\n", "bad device value" },
                { "public_key=zz\nerrno=0\n\n", "bad public key" },
                { "public_key=x303030303030303030303030303030303030303030303030303030303030303\nerrno=0\n\n",
                  "bad public key" },
                { "public_key=03030303030303030303030303030303030303030303030303030303030303-3\nerrno=0\n\n",
                  "bad public key" },
                { "allowed_ip=10.0.0.0/8\nerrno=0\n\n", "peer key before public_key" },
                { "public_key=0303030303030303030303030303030303030303030303030303030303030303\n"
                  "listen_port=1\nerrno=0\n\n", "device key after a peer" },
                { "public_key=0303030303030303030303030303030303030303030303030303030303030303\n"
                  "allowed_ip=10.0.0.0/33\nerrno=0\n\n", "bad peer value" },
                { "public_key=0303030303030303030303030303030303030303030303030303030303030303\n"
                  "allowed_ip=10.0.0.0\nerrno=0\n\n", "bad peer value" },
                { "public_key=0303030303030303030303030303030303030303030303030303030303030303\n"
                  "allowed_ip=fd00::/129\nerrno=0\n\n", "bad peer value" },
                { "public_key=0303030303030303030303030303030303030303030303030303030303030303\n"
                  "endpoint=fd00::1:5\nerrno=0\n\n", "bad peer value" },
                { "public_key=0303030303030303030303030303030303030303030303030303030303030303\n"
                  "last_handshake_time_nsec=1000000000\nerrno=0\n\n", "bad peer value" },
                { "public_key=0303030303030303030303030303030303030303030303030303030303030303\n"
                  "rx_bytes=18446744073709551616\nerrno=0\n\n", "bad peer value" },
                { "public_key=0303030303030303030303030303030303030303030303030303030303030303\n"
                  "persistent_keepalive_interval=65536\nerrno=0\n\n", "bad peer value" },
                { "errno=x\n\n", "bad errno value" },
                { "errno=4096\n\n", "bad errno value" },
                { "errno=--1\n\n", "bad errno value" },
                { "errno=0\nlisten_port=1\n\n", "data after errno" },
                { "listen_port=1\n\n", "reply has no errno line" },
                { "errno=0\n", "reply does not end with a blank line" },
                { "errno=0\n\nerrno=0\n\n", "data after the end of the reply" },
                { "errno=0", "last line not terminated" },
                { "", "reply does not end with a blank line" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct wg_device *d = NULL;
                const char *reason = NULL;

                assert_int_equal(parse(cases[i].text, &d, &reason), -EBADMSG);
                assert_null(d);
                assert_non_null(reason);
                if (!streq(reason, cases[i].reason))
                        fail_msg("case %zu: reason '%s', want '%s'", i, reason, cases[i].reason);
        }
}

static void test_parse_nul_and_long_lines(void **state) {
        static const char nul[] = "listen_port=1\0\nerrno=0\n\n";
        struct wg_device *d = NULL;
        const char *reason = NULL;
        _cleanup_(freep) char *longline = NULL;
        size_t n;

        assert_int_equal(wg_uapi_parse_get((const uint8_t *) nul, sizeof(nul) - 1, NOW, &d, &reason), -EBADMSG);
        assert_string_equal(reason, "NUL byte in line");
        /* The digest hashes a NUL as the start of one of its tokens: the
         * digest and a compared read (which check whole chunks, not lines)
         * refuse it too. */
        {
                static const char base[] = "listen_port=1\nerrno=0\n\n";
                _cleanup_(wg_index_freep) struct wg_index *ia = NULL, *ib = NULL;
                _cleanup_(wg_device_freep) struct wg_device *a = NULL, *b = NULL;
                uint8_t dg[WG_DIGEST_LEN];
                bool partial;

                reason = NULL;
                assert_int_equal(wg_uapi_parse_digest((const uint8_t *) nul, sizeof(nul) - 1, dg, &reason), -EBADMSG);
                assert_string_equal(reason, "NUL byte in line");
                assert_int_equal(wg_uapi_parse_indexed((const uint8_t *) base, sizeof(base) - 1, NOW, NULL, &ia, &a,
                                                       &partial, &reason),
                                 0);
                reason = NULL;
                assert_int_equal(wg_uapi_parse_indexed((const uint8_t *) nul, sizeof(nul) - 1, NOW, ia, &ib, &b,
                                                       &partial, &reason),
                                 -EBADMSG);
                assert_string_equal(reason, "NUL byte in line");
        }

        /* An unknown key of exactly WG_UAPI_LINE_MAX bytes is fine, one more is not. */
        longline = malloc(WG_UAPI_LINE_MAX + 64);
        assert_non_null(longline);
        for (int extra = 0; extra <= 1; extra++) {
                n = (size_t) WG_UAPI_LINE_MAX + (size_t) extra;
                memset(longline, 'x', n);
                longline[3] = '=';
                strcpy(longline + n, "\nerrno=0\n\n");
                reason = NULL;
                if (extra == 0) {
                        assert_int_equal(parse(longline, &d, &reason), 0);
                        d = wg_device_free(d);
                } else {
                        assert_int_equal(parse(longline, &d, &reason), -EBADMSG);
                        assert_string_equal(reason, "line too long");
                }
        }
        /* Unterminated and too long. */
        memset(longline, 'x', WG_UAPI_LINE_MAX + 10);
        assert_int_equal(wg_uapi_parse_get((const uint8_t *) longline, WG_UAPI_LINE_MAX + 10, NOW, &d, &reason),
                         -EBADMSG);
        assert_string_equal(reason, "line too long");
        /* Never reads past LEN: the blank line is outside it. */
        assert_int_equal(wg_uapi_parse_get((const uint8_t *) "errno=0\n\n", 8, NOW, &d, &reason), -EBADMSG);
}

static void test_parse_allowedip_limit(void **state) {
        static const char head[] = "public_key=0303030303030303030303030303030303030303030303030303030303030303\n";
        static const char line[] = "allowed_ip=10.0.0.0/32\n";
        const size_t n_lines = WG_UAPI_MAX_ALLOWEDIPS + 1;
        size_t len = sizeof(head) - 1 + n_lines * (sizeof(line) - 1) + 10;
        _cleanup_(freep) char *text = malloc(len + 1);
        struct wg_device *d = NULL;
        const char *reason = NULL;
        char *w = text;

        assert_non_null(text);
        w = stpcpy(w, head);
        for (size_t i = 0; i < n_lines; i++) {
                memcpy(w, line, sizeof(line) - 1);
                w += sizeof(line) - 1;
        }
        strcpy(w, "errno=0\n\n");
        assert_int_equal(parse(text, &d, &reason), -EBADMSG);
        assert_string_equal(reason, "too many allowed IPs");
        /* One fewer is accepted. */
        strcpy(w - (sizeof(line) - 1), "errno=0\n\n");
        assert_int_equal(parse(text, &d, &reason), 0);
        assert_int_equal(d->peers[0].n_allowedips, WG_UAPI_MAX_ALLOWEDIPS);
        wg_device_free(d);
}

static void test_parse_set_reply(void **state) {
        const char *reason = NULL;

        assert_int_equal(wg_uapi_parse_set_reply((const uint8_t *) "errno=0\n\n", 9, NULL), 0);
        assert_int_equal(wg_uapi_parse_set_reply((const uint8_t *) "errno=-17\n\n", 11, NULL), -EEXIST);
        assert_int_equal(wg_uapi_parse_set_reply((const uint8_t *) "errno=17\n\n", 10, NULL), -EEXIST);
        assert_int_equal(wg_uapi_parse_set_reply((const uint8_t *) "\n", 1, &reason), -EBADMSG);
        assert_string_equal(reason, "reply has no errno line");
        assert_int_equal(wg_uapi_parse_set_reply((const uint8_t *) "errno=0\n", 8, &reason), -EBADMSG);
        assert_int_equal(wg_uapi_parse_set_reply((const uint8_t *) "errno=0\nx=1\n\n", 13, &reason), -EBADMSG);
        assert_string_equal(reason, "data after errno");
}

/* ---- set formatting ---- */

static struct wg_peer *peer_add(struct wg_device *d, uint8_t id) {
        struct wg_peer *p = wg_device_add_peer(d);

        assert_non_null(p);
        key_fill(p->public_key, id);
        p->flags = WG_PEER_HAS_PUBLIC_KEY;
        return p;
}

static void aip_add(struct wg_peer *p, int family, const char *addr, uint8_t cidr) {
        struct wg_allowedip a = { .family = family, .cidr = cidr };

        assert_int_equal(inet_pton(family, addr, &a.ip), 1);
        assert_int_equal(wg_peer_add_allowedip(p, &a), 0);
}

static struct wg_device *sample_set(void) {
        struct wg_device *d = calloc(1, sizeof(*d));
        struct wg_peer *p;

        assert_non_null(d);
        strcpy(d->name, "wgt0");
        hex_key(d->private_key, alice_priv_hex);
        d->listen_port = 51820;
        d->fwmark = 7;
        d->flags = WG_DEVICE_HAS_PRIVATE_KEY | WG_DEVICE_HAS_LISTEN_PORT | WG_DEVICE_HAS_FWMARK |
                   WG_DEVICE_REPLACE_PEERS;
        p = peer_add(d, 1);
        p->flags |= WG_PEER_HAS_PRESHARED_KEY | WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL | WG_PEER_REPLACE_ALLOWEDIPS |
                    WG_PEER_UPDATE_ONLY;
        memset(p->preshared_key, 0xab, WG_KEY_LEN);
        p->persistent_keepalive_interval = 25;
        assert_int_equal(wg_endpoint_parse("[fe80::1%2]:51820", &p->endpoint), 0);
        p->flags |= WG_PEER_HAS_ENDPOINT;
        aip_add(p, AF_INET, "10.1.0.0", 24);
        aip_add(p, AF_INET6, "fd01::", 64);
        p = peer_add(d, 2);
        p->flags |= WG_PEER_REMOVE_ME;
        aip_add(p, AF_INET, "10.2.0.0", 24); /* ignored for a removal */
        return d;
}

static void test_format_set(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *d = sample_set();
        char *text = NULL;

        assert_int_equal(wg_uapi_format_set(d, &text), 0);
        assert_string_equal(text,
                "set=1\n"
                "private_key=77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a\n"
                "listen_port=51820\n"
                "fwmark=7\n"
                "replace_peers=true\n"
                "public_key=0101010101010101010101010101010101010101010101010101010101010101\n"
                "update_only=true\n"
                "preshared_key=abababababababababababababababababababababababababababababababab\n"
                "endpoint=[fe80::1%2]:51820\n"
                "persistent_keepalive_interval=25\n"
                "replace_allowed_ips=true\n"
                "allowed_ip=10.1.0.0/24\n"
                "allowed_ip=fd01::/64\n"
                "public_key=0202020202020202020202020202020202020202020202020202020202020202\n"
                "remove=true\n"
                "\n");
        wg_uapi_text_free(text);
        assert_null(wg_uapi_text_free(NULL));
}

static void test_format_set_invalid(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *d = sample_set();
        char *text = (char *) 0x1;

        d->peers[0].allowedips[0].cidr = 33;
        assert_int_equal(wg_uapi_format_set(d, &text), -EINVAL);
        d->peers[0].allowedips[0].cidr = 32;
        d->peers[0].allowedips[1].family = AF_UNIX;
        assert_int_equal(wg_uapi_format_set(d, &text), -EINVAL);
        d->peers[0].allowedips[1].family = AF_INET6;
        d->peers[0].endpoint.addr.sa_family = AF_UNIX;
        assert_int_equal(wg_uapi_format_set(d, &text), -EINVAL);
        d->peers[0].endpoint.addr.sa_family = AF_INET6;
        d->peers[0].flags &= ~(uint32_t) WG_PEER_HAS_PUBLIC_KEY;
        assert_int_equal(wg_uapi_format_set(d, &text), -EINVAL);
        assert_ptr_equal(text, (char *) 0x1);
}

/* A set's text, minus "set=1" and with an errno line, reads as a get
 * reply: both sides agree on every field they share. */
static void test_format_parse_round_trip(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *d = NULL, *back = NULL;
        _cleanup_(freep) char *get = NULL;
        char *text = NULL;
        size_t n;

        assert_int_equal(parse(wggo_reply, &d, NULL), 0);
        assert_int_equal(wg_uapi_format_set(d, &text), 0);
        n = strlen(text);
        get = malloc(n + 16);
        assert_non_null(get);
        memcpy(get, text + 6, n - 7);
        strcpy(get + n - 7, "errno=0\n\n");
        wg_uapi_text_free(text);
        assert_int_equal(parse(get, &back, NULL), 0);
        assert_int_equal(back->flags, d->flags);
        assert_memory_equal(back->private_key, d->private_key, WG_KEY_LEN);
        assert_int_equal(back->n_peers, d->n_peers);
        for (size_t i = 0; i < d->n_peers; i++) {
                assert_memory_equal(back->peers[i].public_key, d->peers[i].public_key, WG_KEY_LEN);
                assert_int_equal(back->peers[i].flags, d->peers[i].flags);
                assert_memory_equal(&back->peers[i].endpoint, &d->peers[i].endpoint, sizeof(union wg_endpoint));
                assert_int_equal(back->peers[i].n_allowedips, d->peers[i].n_allowedips);
                if (d->peers[i].n_allowedips > 0)
                        assert_memory_equal(back->peers[i].allowedips, d->peers[i].allowedips,
                                            d->peers[i].n_allowedips * sizeof(struct wg_allowedip));
        }
}

/* ---- retry set ---- */

static void test_readd_peers(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *cur = calloc(1, sizeof(struct wg_device));
        _cleanup_(wg_device_freep) struct wg_device *chg = calloc(1, sizeof(struct wg_device));
        _cleanup_(wg_device_freep) struct wg_device *r = NULL, *r2 = NULL;
        struct wg_peer *p;

        p = peer_add(cur, 1);
        p->flags |= WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL | WG_PEER_HAS_ENDPOINT | WG_PEER_HAS_PRESHARED_KEY;
        p->persistent_keepalive_interval = 25;
        memset(p->preshared_key, 0x11, WG_KEY_LEN);
        assert_int_equal(wg_endpoint_parse("192.0.2.1:51820", &p->endpoint), 0);
        aip_add(p, AF_INET, "10.1.0.0", 24);
        p = peer_add(cur, 2);
        aip_add(p, AF_INET, "10.2.0.0", 24);

        strcpy(chg->name, "wgt0");
        chg->flags = WG_DEVICE_HAS_LISTEN_PORT;
        chg->listen_port = 9;
        p = peer_add(chg, 1);                   /* exists: allowed IPs replaced */
        p->flags |= WG_PEER_REPLACE_ALLOWEDIPS;
        aip_add(p, AF_INET, "10.9.0.0", 16);
        p = peer_add(chg, 2);                   /* exists: psk set, allowed IP added */
        p->flags |= WG_PEER_HAS_PRESHARED_KEY;
        memset(p->preshared_key, 0x22, WG_KEY_LEN);
        aip_add(p, AF_INET, "10.22.0.0", 24);
        p = peer_add(chg, 3);                   /* new */
        aip_add(p, AF_INET, "10.3.0.0", 24);
        p = peer_add(chg, 4);                   /* absent and update-only: dropped */
        p->flags |= WG_PEER_UPDATE_ONLY;
        p = peer_add(chg, 5);                   /* removal */
        p->flags |= WG_PEER_REMOVE_ME;

        assert_int_equal(wg_uapi_readd_peers(chg, cur, &r), 2);
        assert_string_equal(r->name, "wgt0");
        assert_int_equal(r->flags, WG_DEVICE_HAS_LISTEN_PORT);
        assert_int_equal(r->listen_port, 9);
        assert_int_equal(r->n_peers, 6);
        assert_int_equal(r->peers[0].flags, WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REMOVE_ME);
        assert_int_equal(r->peers[0].public_key[0], 1);
        p = &r->peers[1];
        assert_int_equal(p->public_key[0], 1);
        assert_int_equal(p->flags, WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REPLACE_ALLOWEDIPS | WG_PEER_HAS_PRESHARED_KEY |
                                           WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL | WG_PEER_HAS_ENDPOINT);
        assert_int_equal(p->persistent_keepalive_interval, 25);
        assert_int_equal(p->preshared_key[0], 0x11);
        assert_int_equal(ntohs(p->endpoint.addr4.sin_port), 51820);
        assert_int_equal(p->n_allowedips, 1);
        assert_int_equal(ntohl(p->allowedips[0].ip.in.s_addr), 0x0a090000);
        assert_int_equal(r->peers[2].flags, WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REMOVE_ME);
        p = &r->peers[3];
        assert_int_equal(p->public_key[0], 2);
        assert_int_equal(p->flags, WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REPLACE_ALLOWEDIPS | WG_PEER_HAS_PRESHARED_KEY);
        assert_int_equal(p->preshared_key[0], 0x22);
        assert_int_equal(p->n_allowedips, 2);
        assert_int_equal(r->peers[4].public_key[0], 3);
        assert_int_equal(r->peers[4].flags, WG_PEER_HAS_PUBLIC_KEY);
        assert_int_equal(r->peers[4].n_allowedips, 1);
        assert_int_equal(r->peers[5].public_key[0], 5);
        assert_int_equal(r->peers[5].flags, WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REMOVE_ME);

        /* With REPLACE_PEERS every peer is new: nothing to re-add. */
        chg->flags |= WG_DEVICE_REPLACE_PEERS;
        assert_int_equal(wg_uapi_readd_peers(chg, cur, &r2), 0);
}

/* A removal followed by the same key (how hamgr clears an endpoint): the
 * second entry is a new peer, nothing of the current one (endpoint,
 * keepalive, preshared key, allowed IPs) carries over, and an update-only
 * entry right after its removal is dropped. */
static void test_readd_after_removal(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *cur = calloc(1, sizeof(struct wg_device));
        _cleanup_(wg_device_freep) struct wg_device *chg = calloc(1, sizeof(struct wg_device));
        _cleanup_(wg_device_freep) struct wg_device *r = NULL;
        struct wg_peer *p;

        for (uint8_t k = 1; k <= 2; k++) {
                p = peer_add(cur, k);
                p->flags |= WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL | WG_PEER_HAS_ENDPOINT | WG_PEER_HAS_PRESHARED_KEY;
                p->persistent_keepalive_interval = 25;
                memset(p->preshared_key, 0x11, WG_KEY_LEN);
                assert_int_equal(wg_endpoint_parse("192.0.2.1:51820", &p->endpoint), 0);
                aip_add(p, AF_INET, "10.1.0.0", 24);
        }
        strcpy(chg->name, "wgt0");
        p = peer_add(chg, 1);
        p->flags |= WG_PEER_REMOVE_ME;
        p = peer_add(chg, 1);
        p->flags |= WG_PEER_REPLACE_ALLOWEDIPS;
        aip_add(p, AF_INET, "10.9.0.0", 16);
        p = peer_add(chg, 2);
        p->flags |= WG_PEER_REMOVE_ME;
        p = peer_add(chg, 2);
        p->flags |= WG_PEER_UPDATE_ONLY | WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL;

        assert_int_equal(wg_uapi_readd_peers(chg, cur, &r), 0);
        assert_int_equal(r->n_peers, 3);
        assert_int_equal(r->peers[0].public_key[0], 1);
        assert_int_equal(r->peers[0].flags, WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REMOVE_ME);
        p = &r->peers[1];
        assert_int_equal(p->public_key[0], 1);
        assert_int_equal(p->flags, WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REPLACE_ALLOWEDIPS);
        assert_int_equal(p->n_allowedips, 1);
        assert_int_equal(ntohl(p->allowedips[0].ip.in.s_addr), 0x0a090000);
        assert_int_equal(r->peers[2].public_key[0], 2);
        assert_int_equal(r->peers[2].flags, WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REMOVE_ME);
}

/* ---- fake daemon ---- */

enum fake_mode {
        FAKE_WIREGUARD_GO,   /* several operations per connection, errno<0 */
        FAKE_BORINGTUN,      /* one per connection, errno>0, see fake_set_boringtun() */
        FAKE_CLOSE,          /* hangs up at once */
        FAKE_EIO,            /* answers every request with errno=5 */
        FAKE_HANG,           /* accepts, reads, never answers */
        FAKE_TRICKLE,        /* answers a get one byte every 200 ms: 10 s */
        FAKE_SLOW,           /* answers a get one byte every 60 ms: 3 s */
};

/* fake_set_boringtun(): the request crashed, no answer. */
#define FAKE_PANIC (-1)

struct fake {
        enum fake_mode mode;
        char dir[64];
        char path[128];
        int listen_fd;
        pthread_t thread;
        atomic_bool stop;
        struct wg_device *state;
        atomic_int n_get, n_set, n_refused;
        atomic_int set_delay_ms;             /* before a set's answer */
};

static struct wg_peer *fake_find(struct wg_device *s, const uint8_t key[static WG_KEY_LEN]) {
        for (size_t i = 0; i < s->n_peers; i++)
                if (memcmp(s->peers[i].public_key, key, WG_KEY_LEN) == 0)
                        return &s->peers[i];
        return NULL;
}

static void fake_remove(struct wg_device *s, struct wg_peer *p) {
        free(p->allowedips);
        *p = s->peers[--s->n_peers];
}

static bool fake_hex(const char *v, uint8_t key[static WG_KEY_LEN]) {
        if (strlen(v) != 64)
                return false;
        for (size_t i = 0; i < WG_KEY_LEN; i++) {
                unsigned x;

                if (sscanf(v + 2 * i, "%2x", &x) != 1)
                        return false;
                key[i] = (uint8_t) x;
        }
        return true;
}

/* Returns the errno to report (0: fine). Stops at the first problem, as
 * both daemons do, leaving earlier lines applied. */
static int fake_set(struct fake *f, FILE *in) {
        struct wg_device *s = f->state;
        uint8_t key[WG_KEY_LEN], cur_key[WG_KEY_LEN];
        bool in_peer = false, dummy = false;
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        int err = 0;

        while ((n = getline(&line, &cap, in)) > 0) {
                struct wg_peer *p;
                char *eq;

                if (line[n - 1] == '\n')
                        line[--n] = '\0';
                if (n == 0)
                        break;
                eq = strchr(line, '=');
                if (!eq) {
                        err = EPROTO;
                        break;
                }
                *eq++ = '\0';
                if (streq(line, "private_key") && !in_peer) {
                        if (!fake_hex(eq, s->private_key)) {
                                err = EINVAL;
                                break;
                        }
                        s->flags |= WG_DEVICE_HAS_PRIVATE_KEY;
                        continue;
                }
                if (streq(line, "listen_port") && !in_peer) {
                        s->listen_port = (uint16_t) atoi(eq);
                        continue;
                }
                if (streq(line, "fwmark") && !in_peer) {
                        s->fwmark = (uint32_t) atol(eq);
                        continue;
                }
                if (streq(line, "replace_peers") && !in_peer) {
                        while (s->n_peers > 0)
                                fake_remove(s, &s->peers[0]);
                        continue;
                }
                if (streq(line, "public_key")) {
                        if (!fake_hex(eq, key)) {
                                err = EINVAL;
                                break;
                        }
                        in_peer = true;
                        dummy = false;
                        memcpy(cur_key, key, WG_KEY_LEN);
                        if (!fake_find(s, key)) {
                                p = wg_device_add_peer(s);
                                memcpy(p->public_key, key, WG_KEY_LEN);
                                p->flags = WG_PEER_HAS_PUBLIC_KEY;
                        }
                        continue;
                }
                if (!in_peer) {
                        err = EINVAL;
                        break;
                }
                p = dummy ? NULL : fake_find(s, cur_key);
                if (streq(line, "remove")) {
                        if (p)
                                fake_remove(s, p);
                        dummy = true;
                } else if (streq(line, "update_only")) {
                        /* wireguard-go: the peer was created above; a
                         * real one would not create it. Not needed here. */
                } else if (!p) {
                        continue;
                } else if (streq(line, "preshared_key")) {
                        if (!fake_hex(eq, p->preshared_key)) {
                                err = EINVAL;
                                break;
                        }
                        p->flags |= WG_PEER_HAS_PRESHARED_KEY;
                } else if (streq(line, "endpoint")) {
                        if (wg_endpoint_parse(eq, &p->endpoint) < 0) {
                                err = EINVAL;
                                break;
                        }
                        p->flags |= WG_PEER_HAS_ENDPOINT;
                } else if (streq(line, "persistent_keepalive_interval")) {
                        p->persistent_keepalive_interval = (uint16_t) atoi(eq);
                        p->flags |= WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL;
                } else if (streq(line, "replace_allowed_ips")) {
                        p->n_allowedips = 0;
                } else if (streq(line, "allowed_ip")) {
                        struct wg_allowedip a = {};
                        char *slash = strchr(eq, '/');

                        if (!slash) {
                                err = EINVAL;
                                break;
                        }
                        *slash = '\0';
                        a.family = strchr(eq, ':') ? AF_INET6 : AF_INET;
                        if (inet_pton(a.family, eq, &a.ip) != 1) {
                                err = EINVAL;
                                break;
                        }
                        a.cidr = (uint8_t) atoi(slash + 1);
                        wg_peer_add_allowedip(p, &a);
                } else {
                        err = EINVAL;
                        break;
                }
        }
        free(line);
        return err;
}

static bool fake_allowedip(char *v, struct wg_allowedip *a) {
        char *slash = strchr(v, '/');

        *a = (struct wg_allowedip) {};
        if (!slash)
                return false;
        *slash = '\0';
        a->family = strchr(v, ':') ? AF_INET6 : AF_INET;
        if (inet_pton(a->family, v, &a->ip) != 1)
                return false;
        a->cidr = (uint8_t) atoi(slash + 1);
        return true;
}

/* What boringtun keeps of one peer block until the next public_key or the
 * blank line: allowed IPs are cleared after each peer, the rest is not. */
struct bt_peer {
        bool remove;
        bool has_endpoint, has_keepalive, has_psk;
        union wg_endpoint endpoint;
        uint16_t keepalive;
        uint8_t psk[WG_KEY_LEN];
        struct wg_allowedip aips[16];
        size_t n_aips;
};

/* boringtun's update_peer(): a removal, or a new peer; changing a peer
 * that exists panics the request. */
static int bt_commit(struct wg_device *s, const uint8_t key[static WG_KEY_LEN], struct bt_peer *b) {
        struct wg_peer *p = fake_find(s, key);

        if (b->remove) {
                if (p)
                        fake_remove(s, p);
        } else if (p)
                return FAKE_PANIC;
        else {
                p = wg_device_add_peer(s);
                memcpy(p->public_key, key, WG_KEY_LEN);
                p->flags = WG_PEER_HAS_PUBLIC_KEY;
                if (b->has_endpoint) {
                        p->endpoint = b->endpoint;
                        p->flags |= WG_PEER_HAS_ENDPOINT;
                }
                if (b->has_keepalive)
                        p->persistent_keepalive_interval = b->keepalive;
                if (b->has_psk) {
                        memcpy(p->preshared_key, b->psk, WG_KEY_LEN);
                        p->flags |= WG_PEER_HAS_PRESHARED_KEY;
                }
                for (size_t i = 0; i < b->n_aips; i++)
                        wg_peer_add_allowedip(p, &b->aips[i]);
        }
        b->n_aips = 0;
        return 0;
}

/* boringtun's api_set(): unknown keys and update_only are EINVAL; earlier
 * lines stay applied. Returns the errno or FAKE_PANIC. */
static int fake_set_boringtun(struct fake *f, FILE *in) {
        struct wg_device *s = f->state;
        struct bt_peer b = {};
        uint8_t key[WG_KEY_LEN];
        bool in_peer = false;
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        int err = 0;

        while ((n = getline(&line, &cap, in)) > 0) {
                char *eq;

                if (line[n - 1] == '\n')
                        line[--n] = '\0';
                if (n == 0) {
                        if (in_peer)
                                err = bt_commit(s, key, &b);
                        goto done;
                }
                eq = strchr(line, '=');
                if (!eq) {
                        err = EPROTO;
                        goto done;
                }
                *eq++ = '\0';
                if (!in_peer) {
                        if (streq(line, "private_key")) {
                                if (!fake_hex(eq, s->private_key)) {
                                        err = EINVAL;
                                        goto done;
                                }
                                s->flags |= WG_DEVICE_HAS_PRIVATE_KEY;
                        } else if (streq(line, "listen_port"))
                                s->listen_port = (uint16_t) atoi(eq);
                        else if (streq(line, "fwmark"))
                                s->fwmark = (uint32_t) atol(eq);
                        else if (streq(line, "replace_peers")) {
                                while (s->n_peers > 0)
                                        fake_remove(s, &s->peers[0]);
                        } else if (streq(line, "public_key")) {
                                if (!fake_hex(eq, key)) {
                                        err = EINVAL;
                                        goto done;
                                }
                                in_peer = true;
                        } else {
                                err = EINVAL;
                                goto done;
                        }
                        continue;
                }
                if (streq(line, "public_key")) {
                        err = bt_commit(s, key, &b);
                        if (err != 0)
                                goto done;
                        if (!fake_hex(eq, key)) {
                                err = EINVAL;
                                goto done;
                        }
                } else if (streq(line, "remove"))
                        b.remove = streq(eq, "true");
                else if (streq(line, "preshared_key")) {
                        if (!fake_hex(eq, b.psk)) {
                                err = EINVAL;
                                goto done;
                        }
                        b.has_psk = true;
                } else if (streq(line, "endpoint")) {
                        if (wg_endpoint_parse(eq, &b.endpoint) < 0) {
                                err = EINVAL;
                                goto done;
                        }
                        b.has_endpoint = true;
                } else if (streq(line, "persistent_keepalive_interval")) {
                        b.keepalive = (uint16_t) atoi(eq);
                        b.has_keepalive = true;
                } else if (streq(line, "replace_allowed_ips"))
                        ;
                else if (streq(line, "allowed_ip")) {
                        if (b.n_aips >= ELEMENTSOF(b.aips) || !fake_allowedip(eq, &b.aips[b.n_aips])) {
                                err = EINVAL;
                                goto done;
                        }
                        b.n_aips++;
                } else {
                        /* update_only among them. */
                        err = EINVAL;
                        goto done;
                }
        }
done:
        free(line);
        return err;
}

static void fake_get(struct fake *f, FILE *out) {
        struct wg_device *s = f->state;
        char hex[65], ep[96], a[INET6_ADDRSTRLEN];

        if (f->mode == FAKE_BORINGTUN) {
                uint8_t pub[WG_KEY_LEN];

                if ((s->flags & WG_DEVICE_HAS_PRIVATE_KEY) && wg_key_public_from_private(pub, s->private_key) == 0) {
                        key_to_hex(hex, pub);
                        fprintf(out, "own_public_key=%s\n", hex);
                }
        } else if (s->flags & WG_DEVICE_HAS_PRIVATE_KEY) {
                key_to_hex(hex, s->private_key);
                fprintf(out, "private_key=%s\n", hex);
        }
        if (s->listen_port)
                fprintf(out, "listen_port=%u\n", s->listen_port);
        if (s->fwmark)
                fprintf(out, "fwmark=%u\n", s->fwmark);
        for (size_t i = 0; i < s->n_peers; i++) {
                const struct wg_peer *p = &s->peers[i];
                uint8_t zero[WG_KEY_LEN] = {};

                key_to_hex(hex, p->public_key);
                fprintf(out, "public_key=%s\n", hex);
                if (f->mode != FAKE_BORINGTUN || (p->flags & WG_PEER_HAS_PRESHARED_KEY)) {
                        key_to_hex(hex, (p->flags & WG_PEER_HAS_PRESHARED_KEY) ? p->preshared_key : zero);
                        fprintf(out, "preshared_key=%s\n", hex);
                }
                if (p->flags & WG_PEER_HAS_ENDPOINT)
                        fprintf(out, "endpoint=%s\n", wg_endpoint_to_string(&p->endpoint, ep, sizeof(ep)));
                if (f->mode != FAKE_BORINGTUN) {
                        fprintf(out, "last_handshake_time_sec=0\n");
                        fprintf(out, "last_handshake_time_nsec=0\n");
                }
                if (f->mode != FAKE_BORINGTUN || p->persistent_keepalive_interval)
                        fprintf(out, "persistent_keepalive_interval=%u\n", p->persistent_keepalive_interval);
                for (size_t k = 0; k < p->n_allowedips; k++)
                        fprintf(out, "allowed_ip=%s/%u\n",
                                inet_ntop(p->allowedips[k].family, &p->allowedips[k].ip, a, sizeof(a)),
                                p->allowedips[k].cidr);
                if (f->mode == FAKE_BORINGTUN)
                        fprintf(out, "last_handshake_time_sec=3\nlast_handshake_time_nsec=0\nrx_bytes=0\ntx_bytes=0\n");
        }
}

static void fake_serve(struct fake *f, int c) {
        FILE *in = fdopen(dup(c), "r"), *out = fdopen(dup(c), "w");
        char *line = NULL;
        size_t cap = 0;

        if (!in || !out)
                goto done;
        while (getline(&line, &cap, in) > 0) {
                int err = 0;

                if (streq(line, "get=1\n")) {
                        if (getline(&line, &cap, in) <= 0 || !streq(line, "\n"))
                                break;
                        atomic_fetch_add(&f->n_get, 1);
                        if (f->mode == FAKE_EIO)
                                err = EIO;
                        else
                                fake_get(f, out);
                } else if (streq(line, "set=1\n")) {
                        atomic_fetch_add(&f->n_set, 1);
                        err = f->mode == FAKE_EIO        ? EIO
                              : f->mode == FAKE_BORINGTUN ? fake_set_boringtun(f, in)
                                                          : fake_set(f, in);
                        if (err)
                                atomic_fetch_add(&f->n_refused, 1);
                        if (err == FAKE_PANIC)
                                break;
                        poll(NULL, 0, atomic_load(&f->set_delay_ms));
                } else
                        break;
                fprintf(out, "errno=%d\n\n", f->mode == FAKE_WIREGUARD_GO ? -err : err);
                fflush(out);
                if (f->mode != FAKE_WIREGUARD_GO)
                        break;
        }
done:
        free(line);
        if (in)
                fclose(in);
        if (out)
                fclose(out);
}

static void *fake_thread(void *userdata) {
        struct fake *f = userdata;

        while (!atomic_load(&f->stop)) {
                struct pollfd pfd = { .fd = f->listen_fd, .events = POLLIN };
                int c;

                if (poll(&pfd, 1, 20) <= 0)
                        continue;
                c = accept(f->listen_fd, NULL, NULL);
                if (c < 0)
                        continue;
                if (f->mode == FAKE_HANG)
                        /* Read the request, keep the connection, say nothing. */
                        while (!atomic_load(&f->stop)) {
                                char junk[256];

                                (void) recv(c, junk, sizeof(junk), MSG_DONTWAIT);
                                poll(NULL, 0, 20);
                        }
                else if (f->mode == FAKE_TRICKLE || f->mode == FAKE_SLOW) {
                        static const char reply[] = "listen_port=51820\nfwmark=0\nfwmark=0\nfwmark=0\n"
                                                    "fwmark=0\nfwmark=0\nerrno=0\n\n";

                        for (size_t i = 0; i < sizeof(reply) - 1 && !atomic_load(&f->stop); i++) {
                                if (send(c, reply + i, 1, MSG_NOSIGNAL) != 1)
                                        break;
                                poll(NULL, 0, f->mode == FAKE_TRICKLE ? 200 : 60);
                        }
                } else if (f->mode != FAKE_CLOSE)
                        fake_serve(f, c);
                close(c);
        }
        return NULL;
}

static struct fake *fake_start(enum fake_mode mode) {
        struct fake *f = calloc(1, sizeof(*f));
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        assert_non_null(f);
        f->mode = mode;
        strcpy(f->dir, "/tmp/hamgr-uapi.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->path, sizeof(f->path), "%s/wgt0.sock", f->dir);
        strcpy(sa.sun_path, f->path);
        f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(f->listen_fd >= 0);
        assert_int_equal(bind(f->listen_fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(listen(f->listen_fd, 8), 0);
        f->state = calloc(1, sizeof(struct wg_device));
        assert_non_null(f->state);
        setenv(WG_UAPI_DIR_ENV, f->dir, 1);
        assert_int_equal(pthread_create(&f->thread, NULL, fake_thread, f), 0);
        return f;
}

static void fake_stop(struct fake *f) {
        atomic_store(&f->stop, true);
        pthread_join(f->thread, NULL);
        close(f->listen_fd);
        unlink(f->path);
        rmdir(f->dir);
        unsetenv(WG_UAPI_DIR_ENV);
        wg_device_free(f->state);
        free(f);
}

/* State: peer 1 (10.1.0.0/24, keepalive 25, endpoint) and peer 2. */
static void fake_seed(struct fake *f) {
        struct wg_peer *p;

        p = peer_add(f->state, 1);
        p->flags |= WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL | WG_PEER_HAS_ENDPOINT;
        p->persistent_keepalive_interval = 25;
        assert_int_equal(wg_endpoint_parse("192.0.2.1:51820", &p->endpoint), 0);
        aip_add(p, AF_INET, "10.1.0.0", 24);
        p = peer_add(f->state, 2);
        aip_add(p, AF_INET, "10.2.0.0", 24);
}

/* Desired: peer 1 on 10.9.0.0/16, peer 2 gone, peer 3 new. */
static struct wg_device *desired(void) {
        struct wg_device *d = calloc(1, sizeof(*d));
        struct wg_peer *p;

        assert_non_null(d);
        strcpy(d->name, "wgt0");
        hex_key(d->private_key, alice_priv_hex);
        d->listen_port = 51820;
        d->flags = WG_DEVICE_HAS_PRIVATE_KEY | WG_DEVICE_HAS_LISTEN_PORT;
        p = peer_add(d, 1);
        p->flags |= WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL | WG_PEER_HAS_ENDPOINT;
        p->persistent_keepalive_interval = 25;
        assert_int_equal(wg_endpoint_parse("192.0.2.1:51820", &p->endpoint), 0);
        aip_add(p, AF_INET, "10.9.0.0", 16);
        p = peer_add(d, 3);
        aip_add(p, AF_INET6, "fd03::", 64);
        return d;
}

/* diff against the daemon, set, read back: nothing left to change. */
static void sync_and_check(struct fake *f, enum wg_backend backend, int want_sets, int want_gets) {
        _cleanup_(wg_device_freep) struct wg_device *cur = NULL, *des = desired(), *d = NULL, *after = NULL,
                                                   *d2 = NULL;

        assert_int_equal(wg_uapi_get_device("wgt0", &cur), 0);
        assert_string_equal(cur->name, "wgt0");
        assert_int_equal(cur->n_peers, 2);
        assert_int_equal(wg_device_diff(cur, des, true, &d), 0);
        assert_int_equal(d->n_peers, 3);
        assert_int_equal(wg_set_device(backend, d), 0);
        assert_int_equal(atomic_load(&f->n_set), want_sets);
        assert_int_equal(atomic_load(&f->n_get), want_gets);

        assert_int_equal(wg_get_device(WG_BACKEND_UAPI, "wgt0", &after), 0);
        assert_int_equal(wg_device_diff(after, des, true, &d2), 0);
        assert_int_equal(d2->n_peers, 0);
        assert_int_equal(d2->flags, 0);
        assert_int_equal(after->n_peers, 2);
        /* Peer 1 kept its keepalive and endpoint through any re-add. */
        assert_int_equal(after->peers[0].persistent_keepalive_interval, 25);
        assert_true(after->peers[0].flags & WG_PEER_HAS_ENDPOINT);
}


/* ---- configuration digest ---- */

static int digest_of(const char *text, uint8_t out[static WG_DIGEST_LEN], const char **reason) {
        return wg_uapi_parse_digest((const uint8_t *) text, strlen(text), out, reason);
}

/* TEXT with the first occurrence of FROM replaced by TO. */
static char *edited(const char *text, const char *from, const char *to) {
        const char *at = strstr(text, from);
        size_t pre, n_to, rest;
        char *out;

        assert_non_null(at);
        pre = (size_t) (at - text);
        n_to = strlen(to);
        rest = strlen(at + strlen(from));
        out = malloc(pre + n_to + rest + 1);
        assert_non_null(out);
        memcpy(out, text, pre);
        memcpy(out + pre, to, n_to);
        memcpy(out + pre + n_to, at + strlen(from), rest + 1);
        return out;
}

static void test_digest(void **state) {
        uint8_t base[WG_DIGEST_LEN], d[WG_DIGEST_LEN];
        const char *reason = NULL;
        static const struct {
                const char *from, *to;
                bool same;
        } edits[] = {
                /* Traffic and handshakes are not configuration. */
                { "last_handshake_time_sec=1699999990", "last_handshake_time_sec=1700000100", true },
                { "last_handshake_time_nsec=5", "last_handshake_time_nsec=999", true },
                { "tx_bytes=1000", "tx_bytes=2000", true },
                { "rx_bytes=0", "rx_bytes=77", true },
                /* Everything else is. */
                { "persistent_keepalive_interval=25", "persistent_keepalive_interval=26", false },
                { "allowed_ip=10.1.0.0/24", "allowed_ip=10.1.0.0/25", false },
                { "endpoint=192.0.2.1:51820", "endpoint=192.0.2.9:51820", false },
                { "listen_port=51820", "listen_port=51821", false },
                { "fwmark=4660", "fwmark=0", false },
                { "allowed_ip=fd01::/64\n", "", false },
                { "preshared_key=AAAA", "preshared_key=BAAA", false },
                /* Names and the zero key are hashed as tokens: a change to
                 * either, or a line they no longer match, still shows. */
                { "preshared_key=0000000000000000000000000000000000000000000000000000000000000000",
                  "preshared_key=0000000000000000000000000000000000000000000000000000000000000001", false },
                { "preshared_key=0000000000000000000000000000000000000000000000000000000000000000\n", "", false },
                { "protocol_version=1", "protocol_versio=1", false },
                { "protocol_version=1", "protocol_version=2", false },
                { "persistent_keepalive_interval=25", "persistent_keepalive_interval=025", false },
                { "public_key=", "public_key=\npublic_key=", false },
        };

        assert_int_equal(digest_of(wggo_reply, base, &reason), 0);
        for (size_t i = 0; i < ELEMENTSOF(edits); i++) {
                _cleanup_(freep) char *text = edited(wggo_reply, edits[i].from, edits[i].to);

                assert_int_equal(digest_of(text, d, &reason), 0);
                assert_int_equal(memcmp(base, d, WG_DIGEST_LEN) == 0, edits[i].same);
        }
        /* Peers in another order (wireguard-go lists them in map order). */
        {
                const char *p1 = strstr(wggo_reply, "public_key="), *p2 = strstr(p1 + 1, "public_key="),
                           *end = strstr(wggo_reply, "errno=");
                _cleanup_(freep) char *swapped = NULL;

                assert_true(asprintf(&swapped, "%.*s%.*s%.*s%s", (int) (p1 - wggo_reply), wggo_reply, (int) (end - p2), p2,
                                     (int) (p2 - p1), p1, end) > 0);
                assert_int_equal(strlen(swapped), strlen(wggo_reply));
                assert_int_equal(digest_of(swapped, d, &reason), 0);
                assert_memory_equal(base, d, WG_DIGEST_LEN);
        }
        /* Moving a line from one peer to the other is a change. */
        {
                _cleanup_(freep) char *a = edited(wggo_reply, "allowed_ip=fd01::/64\n", "");
                _cleanup_(freep) char *b = edited(a, "persistent_keepalive_interval=0\n",
                                                  "persistent_keepalive_interval=0\nallowed_ip=fd01::/64\n");

                assert_int_equal(digest_of(b, d, &reason), 0);
                assert_memory_not_equal(base, d, WG_DIGEST_LEN);
        }
        /* A section longer than the hasher's buffer (a peer with 1,000
         * allowed IPs) is hashed in chained chunks: an edit in its first
         * chunk or its last still shows, the peers' order still does not. */
        {
                _cleanup_(freep) char *ips = NULL, *big = NULL, *first = NULL, *last = NULL, *swapped = NULL;
                uint8_t big_d[WG_DIGEST_LEN];
                const char *p1, *p2, *end;
                size_t len = 0;

                ips = calloc(1000, 32);
                assert_non_null(ips);
                for (unsigned i = 0; i < 1000; i++)
                        len += (size_t) sprintf(ips + len, "allowed_ip=10.%u.%u.0/24\n", i / 256, i % 256);
                big = edited(wggo_reply, "allowed_ip=fd01::/64\n", ips);
                assert_true(strlen(big) > 3 * 4096);
                assert_int_equal(digest_of(big, big_d, &reason), 0);
                assert_memory_not_equal(base, big_d, WG_DIGEST_LEN);
                first = edited(big, "allowed_ip=10.0.0.0/24\n", "allowed_ip=10.0.0.0/25\n");
                assert_int_equal(digest_of(first, d, &reason), 0);
                assert_memory_not_equal(big_d, d, WG_DIGEST_LEN);
                last = edited(big, "allowed_ip=10.3.231.0/24\n", "allowed_ip=10.3.231.0/25\n");
                assert_int_equal(digest_of(last, d, &reason), 0);
                assert_memory_not_equal(big_d, d, WG_DIGEST_LEN);
                p1 = strstr(big, "public_key=");
                p2 = strstr(p1 + 1, "public_key=");
                end = strstr(big, "errno=");
                assert_true(asprintf(&swapped, "%.*s%.*s%.*s%s", (int) (p1 - big), big, (int) (end - p2), p2,
                                     (int) (p2 - p1), p1, end) > 0);
                assert_int_equal(digest_of(swapped, d, &reason), 0);
                assert_memory_equal(big_d, d, WG_DIGEST_LEN);
        }
        assert_int_equal(digest_of("errno=-19\n\n", d, &reason), -ENODEV);
        assert_int_equal(digest_of("listen_port=1\nerrno=0\n", d, &reason), -EBADMSG);
        assert_int_equal(digest_of("listen_port=1\n\n", d, &reason), -EBADMSG);
        assert_string_equal(reason, "no errno line");
        assert_int_equal(digest_of("errno=x\n\n", d, &reason), -EBADMSG);
        assert_int_equal(digest_of("errno=0\n\nx\n", d, &reason), -EBADMSG);
        assert_int_equal(digest_of("errno=0\n", d, &reason), -EBADMSG);
        assert_int_equal(digest_of("errno=0\n\n", d, &reason), 0);
}

static void test_socket_wireguard_go(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *d1 = NULL, *d2 = NULL, *d3 = NULL;
        _cleanup_(wg_index_freep) struct wg_index *i1 = NULL, *i2 = NULL, *i3 = NULL;
        struct fake *f = fake_start(FAKE_WIREGUARD_GO);
        bool partial;

        fake_seed(f);
        assert_int_equal(wg_backend_resolve(WG_BACKEND_AUTO, "wgt0"), WG_BACKEND_UAPI);
        assert_int_equal(wg_get_indexed(WG_BACKEND_AUTO, "wgt0", NULL, &i1, &d1, &partial), 0);
        assert_false(partial);
        assert_int_equal(d1->n_peers, 2);
        assert_int_equal(wg_uapi_get_indexed("wgt0", i1, &i2, &d2, &partial), 0);
        assert_null(d2);
        assert_null(i2);
        sync_and_check(f, WG_BACKEND_AUTO, 1, 3); /* two gets were the indexed reads */
        /* The device's own key and port changed too: that is not peers
         * (read it whole). */
        assert_int_equal(wg_uapi_get_indexed("wgt0", i1, &i3, &d3, &partial), -ESTALE);
        assert_null(d3);
        assert_null(i3);
        assert_int_equal(wg_uapi_get_indexed("wgt0", NULL, &i3, &d3, &partial), 0);
        assert_false(partial);
        assert_int_equal(d3->n_peers, 2);
        assert_non_null(i3);
        assert_int_equal(atomic_load(&f->n_refused), 0);
        assert_true(f->state->flags & WG_DEVICE_HAS_PRIVATE_KEY);
        fake_stop(f);
}

/* Two peers in one request, or a change to a peer that exists: what
 * boringtun does with wireguard-go's requests. */
static void test_socket_boringtun_as_wireguard_go(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *d = calloc(1, sizeof(struct wg_device)), *after = NULL;
        struct fake *f = fake_start(FAKE_BORINGTUN);
        struct wg_peer *p;

        fake_seed(f);
        strcpy(d->name, "wgt0");
        /* The removal of peer 2 carries over to the new peer 4. */
        peer_add(d, 2)->flags |= WG_PEER_REMOVE_ME;
        aip_add(peer_add(d, 4), AF_INET, "10.4.0.0", 24);
        assert_int_equal(wg_uapi_set_device(d), 0);
        assert_int_equal(wg_uapi_get_device("wgt0", &after), 0);
        assert_int_equal(after->n_peers, 1);
        after = wg_device_free(after);

        /* update_only is refused. */
        d->n_peers = 0;
        free(d->peers[0].allowedips);
        free(d->peers[1].allowedips);
        p = peer_add(d, 1);
        p->flags |= WG_PEER_UPDATE_ONLY | WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL;
        assert_int_equal(wg_uapi_set_device(d), -EINVAL);
        /* A change to an existing peer: the request dies unanswered. */
        p->flags &= ~(uint32_t) WG_PEER_UPDATE_ONLY;
        assert_int_equal(wg_uapi_set_device(d), -ECONNRESET);
        fake_stop(f);
}

static void test_socket_boringtun(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *d = calloc(1, sizeof(struct wg_device)), *after = NULL;
        struct fake *f = fake_start(FAKE_BORINGTUN);
        struct wg_peer *p;

        fake_seed(f);
        /* get; get (plan); device fields; peer 1 removed and re-added;
         * peer 2 removed; peer 3 added; get (check). */
        sync_and_check(f, WG_BACKEND_BORINGTUN, 5, 3);
        assert_int_equal(atomic_load(&f->n_refused), 0);

        /* The spoke's sequence: an update_only change to an existing peer
         * becomes a re-add that keeps everything else. */
        strcpy(d->name, "wgt0");
        p = peer_add(d, 1);
        p->flags |= WG_PEER_UPDATE_ONLY | WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL;
        p->persistent_keepalive_interval = 0;
        assert_int_equal(wg_set_device(WG_BACKEND_BORINGTUN, d), 0);
        assert_int_equal(atomic_load(&f->n_refused), 0);
        assert_int_equal(wg_uapi_get_device("wgt0", &after), 0);
        wg_device_sort(after);
        p = wg_device_find_peer(after, d->peers[0].public_key);
        assert_non_null(p);
        assert_int_equal(p->persistent_keepalive_interval, 0);
        assert_int_equal(p->n_allowedips, 1);
        assert_true(p->flags & WG_PEER_HAS_ENDPOINT);
        /* An update_only peer that does not exist is not created. */
        after = wg_device_free(after);
        key_fill(d->peers[0].public_key, 9);
        assert_int_equal(wg_set_device(WG_BACKEND_BORINGTUN, d), 0);
        assert_int_equal(wg_uapi_get_device("wgt0", &after), 0);
        assert_int_equal(after->n_peers, 2);
        fake_stop(f);
}

static int64_t mono_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A daemon that never answers ends after the bound without progress; one
 * that answers too slowly in total while every single read gets a byte
 * ends at the total cap; one that is slow but done within the cap (a large
 * device under load) is read. */
static void test_socket_timeout(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *d = NULL, *rm = calloc(1, sizeof(struct wg_device));
        enum fake_mode modes[] = { FAKE_HANG, FAKE_TRICKLE };
        const int64_t bound[] = { WG_UAPI_TIMEOUT_MSEC, WG_UAPI_TOTAL_MSEC };
        struct fake *slow;
        int64_t t0;

        strcpy(rm->name, "wgt0");
        peer_add(rm, 2)->flags |= WG_PEER_REMOVE_ME;

        /* 3 s in all, longer than the bound without progress. */
        slow = fake_start(FAKE_SLOW);
        t0 = mono_ms();
        assert_int_equal(wg_uapi_get_device("wgt0", &d), 0);
        assert_true(mono_ms() - t0 > WG_UAPI_TIMEOUT_MSEC);
        assert_int_equal(d->listen_port, 51820);
        d = wg_device_free(d);
        fake_stop(slow);

        for (size_t i = 0; i < ELEMENTSOF(modes); i++) {
                struct fake *f = fake_start(modes[i]);
                int64_t t;

                t0 = mono_ms();
                assert_int_equal(wg_uapi_get_device("wgt0", &d), -ETIMEDOUT);
                t = mono_ms() - t0;
                assert_true(t >= bound[i] - 50);
                /* The trickle's whole reply takes 10 s; per-read timeouts
                 * would wait for it. */
                assert_true(t < bound[i] + 1500);
                assert_null(d);
                /* Held off: the next exchanges fail at once. */
                t0 = mono_ms();
                assert_int_equal(wg_uapi_get_device("wgt0", &d), -ETIMEDOUT);
                assert_int_equal(wg_uapi_set_device(rm), -ETIMEDOUT);
                assert_true(mono_ms() - t0 < WG_UAPI_TIMEOUT_MSEC / 2);
                fake_stop(f);
        }
}

static void test_socket_errors(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *removal = calloc(1, sizeof(struct wg_device));
        _cleanup_(wg_device_freep) struct wg_device *change = calloc(1, sizeof(struct wg_device));
        struct wg_device *d = NULL;
        struct fake *f;
        struct wg_peer *p;

        strcpy(removal->name, "wgt0");
        peer_add(removal, 2)->flags |= WG_PEER_REMOVE_ME;
        strcpy(change->name, "wgt0");
        p = peer_add(change, 1);
        p->flags |= WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL;

        /* No socket at all. */
        setenv(WG_UAPI_DIR_ENV, "/nonexistent-hamgr", 1);
        assert_int_equal(wg_uapi_get_device("wgt0", &d), -ENODEV);
        assert_int_equal(wg_uapi_set_device(removal), -ENODEV);
        assert_int_equal(wg_uapi_get_device("../x", &d), -EINVAL);
        unsetenv(WG_UAPI_DIR_ENV);

        f = fake_start(FAKE_CLOSE);
        assert_int_equal(wg_uapi_get_device("wgt0", &d), -ECONNRESET);
        assert_int_equal(wg_uapi_set_device(removal) < 0, true);
        fake_stop(f);

        f = fake_start(FAKE_EIO);
        fake_seed(f);
        assert_int_equal(wg_uapi_get_device("wgt0", &d), -EIO);
        assert_null(d);
        /* One request each, no retry. */
        assert_int_equal(wg_uapi_set_device(removal), -EIO);
        assert_int_equal(atomic_load(&f->n_set), 1);
        assert_int_equal(atomic_load(&f->n_get), 1);
        assert_int_equal(wg_uapi_set_device(change), -EIO);
        assert_int_equal(atomic_load(&f->n_set), 2);
        assert_int_equal(atomic_load(&f->n_get), 1);
        /* boringtun mode reads the device first, and stops there. */
        assert_int_equal(wg_uapi_boringtun_set_device(change), -EIO);
        assert_int_equal(atomic_load(&f->n_set), 2);
        assert_int_equal(atomic_load(&f->n_get), 2);
        fake_stop(f);
}

/* ---- what changed since the last read (wg_uapi_parse_indexed()) ---- */

#define K1 "0101010101010101010101010101010101010101010101010101010101010101"
#define K2 "0202020202020202020202020202020202020202020202020202020202020202"
#define K3 "0303030303030303030303030303030303030303030303030303030303030303"
#define DEV "private_key=e84b5a6d2717c1003a13b431570353dbaca9146cf150c5f8575680feba52027a\nlisten_port=51820\n"
#define P1 "public_key=" K1 "\nendpoint=192.0.2.1:51820\nlast_handshake_time_sec=5\npersistent_keepalive_interval=25\n" \
           "allowed_ip=10.1.0.0/24\n"
#define P2 "public_key=" K2 "\nallowed_ip=10.2.0.0/24\nallowed_ip=fd02::/64\n"
#define P3 "public_key=" K3 "\nallowed_ip=10.3.0.0/24\n"
#define END "errno=0\n\n"

static const struct wg_peer *peer_by_key(const struct wg_device *d, const uint8_t key[static WG_KEY_LEN]) {
        for (size_t i = 0; i < d->n_peers; i++)
                if (memcmp(d->peers[i].public_key, key, WG_KEY_LEN) == 0)
                        return &d->peers[i];
        return NULL;
}

static void assert_peer_same(const struct wg_peer *a, const struct wg_peer *b) {
        assert_non_null(a);
        assert_non_null(b);
        assert_int_equal(a->n_allowedips, b->n_allowedips);
        if (a->n_allowedips > 0)
                assert_memory_equal(a->allowedips, b->allowedips, a->n_allowedips * sizeof(*a->allowedips));
        assert_memory_equal(&a->endpoint, &b->endpoint, sizeof(a->endpoint));
        assert_memory_equal(a->preshared_key, b->preshared_key, WG_KEY_LEN);
        assert_int_equal(a->persistent_keepalive_interval, b->persistent_keepalive_interval);
}

/* Index A, read B against it; the delta applied to A
 * must give B's peers exactly. Returns what the compared read returned. */
static int delta_of(const char *a, const char *b, bool *ret_unchanged, size_t *ret_n) {
        _cleanup_(wg_device_freep) struct wg_device *da = NULL, *delta = NULL, *whole_b = NULL;
        _cleanup_(wg_index_freep) struct wg_index *ia = NULL, *ib = NULL;
        const char *reason = NULL;
        bool partial;
        int r;

        assert_int_equal(wg_uapi_parse_indexed((const uint8_t *) a, strlen(a), 0, NULL, &ia, &da, &partial, &reason), 0);
        assert_false(partial);
        assert_non_null(ia);
        r = wg_uapi_parse_indexed((const uint8_t *) b, strlen(b), 0, ia, &ib, &delta, &partial, &reason);
        if (r < 0)
                return r;
        assert_int_equal(wg_uapi_parse_get((const uint8_t *) b, strlen(b), 0, &whole_b, &reason), 0);
        *ret_unchanged = !delta;
        *ret_n = delta ? delta->n_peers : 0;
        /* Every peer of B: from the delta if named there, else unchanged from A. */
        for (size_t i = 0; i < whole_b->n_peers; i++) {
                const struct wg_peer *want = &whole_b->peers[i], *got = delta ? peer_by_key(delta, want->public_key) : NULL;

                if (got)
                        assert_false(got->flags & WG_PEER_REMOVE_ME);
                else
                        got = peer_by_key(da, want->public_key);
                assert_peer_same(got, want);
        }
        /* Every peer of A that B lacks is named gone. */
        for (size_t i = 0; i < da->n_peers; i++) {
                const struct wg_peer *gone;

                if (peer_by_key(whole_b, da->peers[i].public_key))
                        continue;
                assert_non_null(delta);
                gone = peer_by_key(delta, da->peers[i].public_key);
                assert_non_null(gone);
                assert_true(gone->flags & WG_PEER_REMOVE_ME);
        }
        if (delta) {
                assert_true(partial);
                assert_non_null(ib);
                /* And B's index describes B: B again is unchanged. */
                {
                        _cleanup_(wg_device_freep) struct wg_device *again = NULL;
                        _cleanup_(wg_index_freep) struct wg_index *ic = NULL;

                        assert_int_equal(wg_uapi_parse_indexed((const uint8_t *) b, strlen(b), 0, ib, &ic, &again,
                                                               &partial, &reason), 0);
                        assert_null(again);
                        assert_null(ic);
                }
        } else
                assert_null(ib);
        return 0;
}

static void test_parse_indexed(void **state) {
        bool unchanged;
        size_t n;

        /* The same peers in another order, other handshake times: unchanged. */
        assert_int_equal(delta_of(DEV P1 P2 P3 END, DEV P3 P2 P1 END, &unchanged, &n), 0);
        assert_true(unchanged);
        assert_int_equal(delta_of(DEV P1 P2 END,
                                  DEV "public_key=" K1 "\nendpoint=192.0.2.1:51820\nlast_handshake_time_sec=9\n"
                                      "persistent_keepalive_interval=25\nallowed_ip=10.1.0.0/24\n" P2 END,
                                  &unchanged, &n), 0);
        assert_true(unchanged);
        /* Added, removed, changed (an allowed IP, an endpoint). */
        assert_int_equal(delta_of(DEV P1 P2 END, DEV P2 P3 P1 END, &unchanged, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(delta_of(DEV P1 P2 P3 END, DEV P3 P1 END, &unchanged, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(delta_of(DEV P1 P2 P3 END, DEV P1 "public_key=" K2 "\nallowed_ip=10.2.0.0/24\n" P3 END,
                                  &unchanged, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(delta_of(DEV P1 P2 END,
                                  DEV "public_key=" K1 "\nendpoint=192.0.2.7:51820\npersistent_keepalive_interval=25\n"
                                      "allowed_ip=10.1.0.0/24\n" P2 END,
                                  &unchanged, &n), 0);
        assert_int_equal(n, 1);
        /* Everything gone, everything new. */
        assert_int_equal(delta_of(DEV P1 P2 END, DEV END, &unchanged, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(delta_of(DEV END, DEV P1 P2 P3 END, &unchanged, &n), 0);
        assert_int_equal(n, 3);
        /* The device's own settings: not peers, read whole. */
        assert_int_equal(delta_of(DEV P1 END, "listen_port=51821\n" P1 END, &unchanged, &n), -ESTALE);
        assert_int_equal(delta_of(DEV P1 END, P1 END, &unchanged, &n), -ESTALE);
        /* A bad reply compared with an index: refused with a reason. */
        {
                _cleanup_(wg_device_freep) struct wg_device *da = NULL, *db = NULL;
                _cleanup_(wg_index_freep) struct wg_index *ia = NULL, *ib = NULL;
                const char *reason = NULL, *bad = DEV P1 "public_key=zz\n" END;
                bool partial;

                assert_int_equal(wg_uapi_parse_indexed((const uint8_t *) (DEV P1 END), strlen(DEV P1 END), 0, NULL, &ia,
                                                       &da, &partial, &reason), 0);
                assert_int_equal(wg_uapi_parse_indexed((const uint8_t *) bad, strlen(bad), 0, ia, &ib, &db, &partial,
                                                       &reason), -ESTALE);
                assert_null(db);
                reason = NULL;
                assert_int_equal(wg_uapi_parse_indexed((const uint8_t *) (DEV P1), strlen(DEV P1), 0, ia, &ib, &db,
                                                       &partial, &reason), -EBADMSG);
                assert_non_null(reason);
                assert_int_equal(wg_uapi_parse_indexed((const uint8_t *) "errno=-19\n\n", 11, 0, ia, &ib, &db,
                                                       &partial, &reason), -ENODEV);
                assert_null(db);
                assert_int_equal(wg_get_indexed(WG_BACKEND_KERNEL, "wg0", NULL, &ib, &db, &partial), -EOPNOTSUPP);
        }
}

/* A peer hamgr wrote is listed by the next compared read whatever its
 * lines are, changed or gone; the others only if they changed. */
static void test_index_forget(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *da = NULL;
        _cleanup_(wg_index_freep) struct wg_index *ia = NULL;
        const char *a = DEV P1 P2 P3 END, *reason = NULL;
        uint8_t k1[WG_KEY_LEN], k2[WG_KEY_LEN], k9[WG_KEY_LEN];
        bool partial;

        hex_key(k1, K1);
        hex_key(k2, K2);
        key_fill(k9, 9);
        assert_int_equal(wg_index_forget(NULL, k2), -EINVAL);
        assert_int_equal(wg_uapi_parse_indexed((const uint8_t *) a, strlen(a), 0, NULL, &ia, &da, &partial, &reason), 0);
        /* Not listed (written after the read, a new peer): the same reply
         * says it is gone (removed by hand after the write, the device
         * just as the read saw it), never "unchanged"; a reply with it
         * lists it as new. Once only, however often it is forgotten. */
        {
                _cleanup_(wg_device_freep) struct wg_device *dx = NULL, *d = NULL, *dn = NULL;
                _cleanup_(wg_index_freep) struct wg_index *ix = NULL, *ib = NULL, *ic = NULL;
                const char *with9 = DEV P1 P2 P3 "public_key=0909090909090909090909090909090909090909090909090909090909090909\n"
                                    "allowed_ip=10.9.9.9/32\n" END;

                assert_int_equal(wg_uapi_parse_indexed((const uint8_t *) a, strlen(a), 0, NULL, &ix, &dx, &partial,
                                                       &reason), 0);
                assert_int_equal(wg_index_forget(ix, k9), 0);
                assert_int_equal(wg_index_forget(ix, k9), 0);
                assert_int_equal(wg_uapi_parse_indexed((const uint8_t *) a, strlen(a), 0, ix, &ib, &d, &partial, &reason), 0);
                assert_non_null(d);
                assert_true(partial);
                assert_int_equal(d->n_peers, 1);
                assert_memory_equal(d->peers[0].public_key, k9, WG_KEY_LEN);
                assert_true(d->peers[0].flags & WG_PEER_REMOVE_ME);
                assert_int_equal(wg_uapi_parse_indexed((const uint8_t *) with9, strlen(with9), 0, ix, &ic, &dn, &partial,
                                                       &reason), 0);
                assert_non_null(dn);
                assert_int_equal(dn->n_peers, 1);
                assert_memory_equal(dn->peers[0].public_key, k9, WG_KEY_LEN);
                assert_false(dn->peers[0].flags & WG_PEER_REMOVE_ME);
                /* The index that read made stands for the device again. */
                wg_device_free(TAKE_PTR(d));
                wg_index_free(TAKE_PTR(ix));
                assert_int_equal(wg_uapi_parse_indexed((const uint8_t *) a, strlen(a), 0, ib, &ix, &d, &partial, &reason), 0);
                assert_null(d);
        }
        assert_int_equal(wg_index_forget(ia, k2), 0);
        assert_int_equal(wg_index_forget(ia, k2), 0);
        /* The same reply: K2 alone, as it is. Read against the new index,
         * nothing. */
        {
                _cleanup_(wg_device_freep) struct wg_device *d = NULL, *again = NULL;
                _cleanup_(wg_index_freep) struct wg_index *ib = NULL, *ic = NULL;

                assert_int_equal(wg_uapi_parse_indexed((const uint8_t *) a, strlen(a), 0, ia, &ib, &d, &partial, &reason), 0);
                assert_non_null(d);
                assert_true(partial);
                assert_int_equal(d->n_peers, 1);
                assert_false(d->peers[0].flags & WG_PEER_REMOVE_ME);
                assert_peer_same(&d->peers[0], peer_by_key(da, k2));
                assert_non_null(ib);
                assert_int_equal(wg_uapi_parse_indexed((const uint8_t *) a, strlen(a), 0, ib, &ic, &again, &partial,
                                                       &reason), 0);
                assert_null(again);
        }
        /* K2 gone: named gone. K1 changed too: both. */
        {
                _cleanup_(wg_device_freep) struct wg_device *d = NULL;
                _cleanup_(wg_index_freep) struct wg_index *ib = NULL;
                const char *b = DEV P1 P3 END;

                assert_int_equal(wg_uapi_parse_indexed((const uint8_t *) b, strlen(b), 0, ia, &ib, &d, &partial, &reason), 0);
                assert_non_null(d);
                assert_int_equal(d->n_peers, 1);
                assert_memory_equal(d->peers[0].public_key, k2, WG_KEY_LEN);
                assert_true(d->peers[0].flags & WG_PEER_REMOVE_ME);
        }
        {
                _cleanup_(wg_device_freep) struct wg_device *d = NULL;
                _cleanup_(wg_index_freep) struct wg_index *ib = NULL;
                const char *b = DEV "public_key=" K1 "\nallowed_ip=10.9.0.0/24\n" P2 P3 END;

                assert_int_equal(wg_uapi_parse_indexed((const uint8_t *) b, strlen(b), 0, ia, &ib, &d, &partial, &reason), 0);
                assert_non_null(d);
                assert_int_equal(d->n_peers, 2);
                assert_non_null(peer_by_key(d, k1));
                assert_non_null(peer_by_key(d, k2));
        }
}

/* A read without an index parses what wg_uapi_parse_get() parses and
 * fails where it or the digest would; compared with the index of another
 * reply, it is unchanged exactly when the two digests are equal. */
static void test_indexed_whole(void **state) {
        static const char *const good[] = {
                "private_key=e84b5a6d2717c1003a13b431570353dbaca9146cf150c5f8575680feba52027a\nlisten_port=12912\n"
                "public_key=b85996fecc9c7f1fc6d2572a76eda11d59bcd20be8e543b15ce4bd85a8e75a33\n"
                "preshared_key=188515093e952f5f22e865cef3012e72f8b5f0b598ac0309d5dacce3b70fcf52\n"
                "endpoint=[abcd:23::33%2]:51820\nlast_handshake_time_sec=1\nlast_handshake_time_nsec=2\n"
                "tx_bytes=3\nrx_bytes=4\npersistent_keepalive_interval=25\nallowed_ip=192.168.4.4/32\n"
                "public_key=58402e695ba1772b1cc9309755f043251ea77fdcf10fbe63989ceb7e19321376\n"
                "endpoint=182.122.22.19:3233\nallowed_ip=192.168.4.6/32\nallowed_ip=fd00::/64\nerrno=0\n\n",
                /* The same but for the counters, and the peers swapped. */
                "private_key=e84b5a6d2717c1003a13b431570353dbaca9146cf150c5f8575680feba52027a\nlisten_port=12912\n"
                "public_key=58402e695ba1772b1cc9309755f043251ea77fdcf10fbe63989ceb7e19321376\n"
                "endpoint=182.122.22.19:3233\nallowed_ip=192.168.4.6/32\nallowed_ip=fd00::/64\n"
                "public_key=b85996fecc9c7f1fc6d2572a76eda11d59bcd20be8e543b15ce4bd85a8e75a33\n"
                "preshared_key=188515093e952f5f22e865cef3012e72f8b5f0b598ac0309d5dacce3b70fcf52\n"
                "endpoint=[abcd:23::33%2]:51820\nlast_handshake_time_sec=7\nlast_handshake_time_nsec=2\n"
                "tx_bytes=99\nrx_bytes=4\npersistent_keepalive_interval=25\nallowed_ip=192.168.4.4/32\nerrno=0\n\n",
                ("listen_port=12912\npublic_key=58402e695ba1772b1cc9309755f043251ea77fdcf10fbe63989ceb7e19321376\n"
                 "allowed_ip=192.168.4.6/32\nerrno=0\n\n"),
                "errno=0\n\n",
        };
        static const char *const bad[] = {
                "listen_port=1\n\n", "errno=0\n\nx\n", "errno=0\n", "listen_port\nerrno=0\n\n",
                "public_key=zz\nerrno=0\n\n", "errno=x\n\n",
        };
        const char *reason;
        bool partial;

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                _cleanup_(wg_device_freep) struct wg_device *a = NULL, *b = NULL;
                _cleanup_(wg_index_freep) struct wg_index *ia = NULL;
                uint8_t di[WG_DIGEST_LEN];

                assert_int_equal(wg_uapi_parse_get((const uint8_t *) good[i], strlen(good[i]), 1000, &a, &reason), 0);
                assert_int_equal(wg_uapi_parse_indexed((const uint8_t *) good[i], strlen(good[i]), 1000, NULL, &ia, &b,
                                                       &partial, &reason), 0);
                assert_false(partial);
                assert_non_null(ia);
                assert_int_equal(a->n_peers, b->n_peers);
                assert_int_equal(a->listen_port, b->listen_port);
                for (size_t k = 0; k < a->n_peers; k++) {
                        assert_memory_equal(a->peers[k].public_key, b->peers[k].public_key, WG_KEY_LEN);
                        assert_peer_same(&a->peers[k], &b->peers[k]);
                        assert_int_equal(a->peers[k].last_handshake_time_sec, b->peers[k].last_handshake_time_sec);
                }
                assert_int_equal(digest_of(good[i], di, &reason), 0);
                for (size_t j = 0; j < ELEMENTSOF(good); j++) {
                        _cleanup_(wg_device_freep) struct wg_device *c = NULL;
                        _cleanup_(wg_index_freep) struct wg_index *ic = NULL;
                        uint8_t dj[WG_DIGEST_LEN];
                        int r;

                        assert_int_equal(digest_of(good[j], dj, &reason), 0);
                        r = wg_uapi_parse_indexed((const uint8_t *) good[j], strlen(good[j]), 1000, ia, &ic, &c, &partial,
                                                  &reason);
                        if (memcmp(di, dj, WG_DIGEST_LEN) == 0) {
                                assert_int_equal(r, 0);
                                assert_null(c);
                        } else
                                assert_true(r == -ESTALE || (r == 0 && c));
                }
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_(wg_device_freep) struct wg_device *b = NULL;
                _cleanup_(wg_index_freep) struct wg_index *ib = NULL;

                reason = NULL;
                assert_int_equal(wg_uapi_parse_indexed((const uint8_t *) bad[i], strlen(bad[i]), 1000, NULL, &ib, &b,
                                                       &partial, &reason), -EBADMSG);
                assert_non_null(reason);
                assert_null(b);
                assert_null(ib);
        }
        {
                _cleanup_(wg_device_freep) struct wg_device *b = NULL;
                _cleanup_(wg_index_freep) struct wg_index *ib = NULL;

                assert_int_equal(wg_uapi_parse_indexed((const uint8_t *) "errno=-19\n\n", 11, 0, NULL, &ib, &b, &partial,
                                                       &reason), -ENODEV);
                assert_null(b);
        }
}

/* ---- reads beside an event loop (hamgr/wg-io.c) ---- */

struct io_seen {
        int calls, r;
        bool unchanged, partial, had_device;
        size_t n_peers, n_removed;
        struct wg_index *index;         /* what the next WG_IO_CHANGES read compares with */
};

static void io_done(struct wg_io *io, struct wg_io_result *res, void *userdata) {
        struct io_seen *seen = userdata;

        seen->calls++;
        seen->r = res->r;
        seen->unchanged = res->unchanged;
        seen->partial = res->partial;
        seen->had_device = res->device != NULL;
        seen->n_peers = res->device ? res->device->n_peers : 0;
        seen->n_removed = 0;
        for (size_t i = 0; i < seen->n_peers; i++)
                if (res->device->peers[i].flags & WG_PEER_REMOVE_ME)
                        seen->n_removed++;
        if (res->unchanged) {
                assert_null(res->index);
                seen->index = wg_index_free(seen->index);
                seen->index = TAKE_PTR(res->prev_index);
        } else if (res->index) {
                seen->index = wg_index_free(seen->index);
                seen->index = TAKE_PTR(res->index);
        }
}

static void io_wait(sd_event *e, const struct io_seen *seen, int calls) {
        while (seen->calls < calls)
                assert_true(sd_event_run(e, 5 * USEC_PER_SEC) >= 0);
        assert_int_equal(seen->calls, calls);
}

/* One WG_IO_CHANGES read of wgt0 compared with SEEN's index: gets it took. */
static int io_changes(sd_event *e, struct fake *f, struct io_seen *seen) {
        struct wg_io *io = NULL;
        int gets = atomic_load(&f->n_get), calls = seen->calls;

        assert_int_equal(wg_io_read(e, WG_BACKEND_UAPI, "wgt0", WG_IO_CHANGES, TAKE_PTR(seen->index), io_done, seen,
                                    &io), 0);
        io_wait(e, seen, calls + 1);
        assert_int_equal(seen->r, 0);
        return atomic_load(&f->n_get) - gets;
}

static void test_io(void **state) {
        struct fake *f = fake_start(FAKE_WIREGUARD_GO);
        struct io_seen seen = {};
        struct wg_io *io = NULL;
        sd_event *e = NULL;

        fake_seed(f);
        assert_int_equal(sd_event_new(&e), 0);

        /* Nothing to compare with: the whole device, and its index, in one get. */
        assert_int_equal(io_changes(e, f, &seen), 1);
        assert_false(seen.unchanged);
        assert_false(seen.partial);
        assert_int_equal(seen.n_peers, 2);
        assert_non_null(seen.index);

        /* The same configuration: one get, nothing parsed. */
        assert_int_equal(io_changes(e, f, &seen), 1);
        assert_true(seen.unchanged);
        assert_false(seen.had_device);
        assert_non_null(seen.index);

        /* A new peer and a changed one: one get, just those two. */
        {
                _cleanup_(wg_device_freep) struct wg_device *d = calloc(1, sizeof(*d));
                struct wg_peer *p;

                assert_non_null(d);
                strcpy(d->name, "wgt0");
                aip_add(peer_add(d, 3), AF_INET, "10.3.0.0", 24);
                p = peer_add(d, 2);
                p->flags |= WG_PEER_REPLACE_ALLOWEDIPS;
                aip_add(p, AF_INET, "10.22.0.0", 24);
                assert_int_equal(wg_uapi_set_device(d), 0);
        }
        assert_int_equal(io_changes(e, f, &seen), 1);
        assert_true(seen.partial);
        assert_int_equal(seen.n_peers, 2);
        assert_int_equal(seen.n_removed, 0);

        /* A peer gone: named, by its whole key. */
        {
                _cleanup_(wg_device_freep) struct wg_device *d = calloc(1, sizeof(*d));

                assert_non_null(d);
                strcpy(d->name, "wgt0");
                peer_add(d, 1)->flags |= WG_PEER_REMOVE_ME;
                assert_int_equal(wg_uapi_set_device(d), 0);
        }
        assert_int_equal(io_changes(e, f, &seen), 1);
        assert_true(seen.partial);
        assert_int_equal(seen.n_peers, 1);
        assert_int_equal(seen.n_removed, 1);
        assert_int_equal(io_changes(e, f, &seen), 1);
        assert_true(seen.unchanged);

        /* The device's own settings: read again, whole. */
        {
                _cleanup_(wg_device_freep) struct wg_device *d = calloc(1, sizeof(*d));

                assert_non_null(d);
                strcpy(d->name, "wgt0");
                d->listen_port = 4242;
                d->flags = WG_DEVICE_HAS_LISTEN_PORT;
                assert_int_equal(wg_uapi_set_device(d), 0);
        }
        assert_int_equal(io_changes(e, f, &seen), 2);
        assert_false(seen.partial);
        assert_int_equal(seen.n_peers, 2);
        assert_non_null(seen.index);
        seen.index = wg_index_free(seen.index);

        /* Cancelled: joined, never called back. */
        assert_int_equal(wg_io_read(e, WG_BACKEND_UAPI, "wgt0", WG_IO_DEVICE, NULL, io_done, &seen, &io), 0);
        assert_null(wg_io_cancel(io));
        assert_true(sd_event_run(e, 100 * USEC_PER_MSEC) >= 0);
        assert_int_equal(seen.calls, 6);
        assert_null(wg_io_cancel(NULL));

        /* No such device: the error comes back, no device. */
        assert_int_equal(wg_io_read(e, WG_BACKEND_UAPI, "wgt9", WG_IO_DEVICE, NULL, io_done, &seen, &io), 0);
        io_wait(e, &seen, 7);
        assert_true(seen.r < 0);
        assert_false(seen.had_device);

        assert_int_equal(wg_io_read(e, WG_BACKEND_UAPI, "wgt0", _WG_IO_READ_MAX, NULL, io_done, &seen, &io), -EINVAL);
        wg_index_free(seen.index);
        sd_event_unref(e);
        fake_stop(f);
}

/* A write to wgt0 of N new peers, their keys FILL but for a count. */
static struct wg_device *write_of(uint32_t n, uint8_t fill) {
        struct wg_device *d = calloc(1, sizeof(*d));

        assert_non_null(d);
        strcpy(d->name, "wgt0");
        for (uint32_t i = 0; i < n; i++) {
                struct wg_peer *p = wg_device_add_peer(d);

                assert_non_null(p);
                memset(p->public_key, fill, WG_KEY_LEN);
                memcpy(p->public_key, &i, sizeof(i));
                p->flags = WG_PEER_HAS_PUBLIC_KEY;
        }
        return d;
}

/* A write goes in requests of 2,048 peers; cancelled while the first is
 * being answered, it sends no other: a stop waits for one request, not
 * for the whole write. */
static void test_io_write_cancel(void **state) {
        struct fake *f = fake_start(FAKE_WIREGUARD_GO);
        struct wg_device *change = write_of(3 * 2048 + 1, 0x11);
        struct io_seen seen = {};
        struct wg_io *io = NULL;
        sd_event *e = NULL;
        int64_t t0;

        assert_int_equal(sd_event_new(&e), 0);

        /* Uncancelled: four requests, every peer. */
        assert_int_equal(wg_io_write(e, WG_BACKEND_UAPI, change, io_done, &seen, &io), 0);
        io_wait(e, &seen, 1);
        assert_int_equal(seen.r, 0);
        assert_int_equal(atomic_load(&f->n_set), 4);
        assert_int_equal(f->state->n_peers, 3 * 2048 + 1);

        wg_device_free(f->state);
        f->state = calloc(1, sizeof(struct wg_device));
        assert_non_null(f->state);
        atomic_store(&f->n_set, 0);
        atomic_store(&f->set_delay_ms, 200);
        change = write_of(3 * 2048 + 1, 0x22);
        assert_int_equal(wg_io_write(e, WG_BACKEND_UAPI, change, io_done, &seen, &io), 0);
        t0 = mono_ms();
        while (atomic_load(&f->n_set) < 1) {
                assert_true(mono_ms() - t0 < 5000);
                poll(NULL, 0, 1);
        }
        assert_null(wg_io_cancel(io));
        assert_int_equal(atomic_load(&f->n_set), 1);
        assert_int_equal(f->state->n_peers, 2048);
        assert_true(sd_event_run(e, 100 * USEC_PER_MSEC) >= 0);
        assert_int_equal(seen.calls, 1); /* never called back */
        sd_event_unref(e);
        fake_stop(f);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_wireguard_go),
                cmocka_unit_test(test_parse_endpoints_only),
                cmocka_unit_test(test_parse_boringtun),
                cmocka_unit_test(test_parse_relative_clock_before),
                cmocka_unit_test(test_parse_errno),
                cmocka_unit_test(test_parse_unknown_keys),
                cmocka_unit_test(test_parse_malformed),
                cmocka_unit_test(test_parse_nul_and_long_lines),
                cmocka_unit_test(test_parse_allowedip_limit),
                cmocka_unit_test(test_parse_set_reply),
                cmocka_unit_test(test_format_set),
                cmocka_unit_test(test_format_set_invalid),
                cmocka_unit_test(test_format_parse_round_trip),
                cmocka_unit_test(test_readd_peers),
                cmocka_unit_test(test_readd_after_removal),
                cmocka_unit_test(test_digest),
                cmocka_unit_test(test_indexed_whole),
                cmocka_unit_test(test_parse_indexed),
                cmocka_unit_test(test_index_forget),
                cmocka_unit_test(test_socket_wireguard_go),
                cmocka_unit_test(test_socket_boringtun_as_wireguard_go),
                cmocka_unit_test(test_socket_boringtun),
                cmocka_unit_test(test_socket_timeout),
                cmocka_unit_test(test_socket_errors),
                cmocka_unit_test(test_io),
                cmocka_unit_test(test_io_write_cancel),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
