/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The WireGuard device model: growth, sorting, lookup, endpoints, backend
 * names, and the peer diff, checked by applying it (with a model of what
 * the kernel and wireguard-go do with a set) and comparing. */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/macro.h"
#include "wg/uapi.h"
#include "wg/wg.h"

/* ---- helpers ---- */

static uint64_t rng_state;

static uint64_t rnd(void) {
        /* xorshift64*: reproducible across runs and libcs. */
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return rng_state * UINT64_C(2685821657736338717);
}

static void key_fill(uint8_t key[static WG_KEY_LEN], uint32_t id) {
        memset(key, 0, WG_KEY_LEN);
        key[0] = (uint8_t) (id >> 24);
        key[1] = (uint8_t) (id >> 16);
        key[2] = (uint8_t) (id >> 8);
        key[3] = (uint8_t) id;
        key[31] = 0x5a;
}

static struct wg_device *dev_new(void) {
        struct wg_device *d = calloc(1, sizeof(*d));

        assert_non_null(d);
        strcpy(d->name, "wgt0");
        return d;
}

static struct wg_peer *peer_add(struct wg_device *d, uint32_t id) {
        struct wg_peer *p = wg_device_add_peer(d);

        assert_non_null(p);
        key_fill(p->public_key, id);
        p->flags = WG_PEER_HAS_PUBLIC_KEY;
        return p;
}

static void aip_add(struct wg_peer *p, const char *s) {
        struct wg_allowedip a = {};
        char buf[64];
        char *slash;

        assert_true(strlen(s) < sizeof(buf));
        strcpy(buf, s);
        slash = strchr(buf, '/');
        assert_non_null(slash);
        *slash = '\0';
        a.family = strchr(buf, ':') ? AF_INET6 : AF_INET;
        assert_int_equal(inet_pton(a.family, buf, &a.ip), 1);
        a.cidr = (uint8_t) atoi(slash + 1);
        assert_int_equal(wg_peer_add_allowedip(p, &a), 0);
}

static void aip4(struct wg_peer *p, uint32_t addr, uint8_t cidr) {
        struct wg_allowedip a = { .family = AF_INET, .cidr = cidr };

        a.ip.in.s_addr = htonl(addr);
        assert_int_equal(wg_peer_add_allowedip(p, &a), 0);
}

static void set_endpoint(struct wg_peer *p, const char *s) {
        assert_int_equal(wg_endpoint_parse(s, &p->endpoint), 0);
        p->flags |= WG_PEER_HAS_ENDPOINT;
}

static void set_keepalive(struct wg_peer *p, uint16_t v) {
        p->persistent_keepalive_interval = v;
        p->flags |= WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL;
}

static void set_psk(struct wg_peer *p, uint8_t fill) {
        memset(p->preshared_key, fill, WG_KEY_LEN);
        p->flags |= WG_PEER_HAS_PRESHARED_KEY;
}

static struct wg_allowedip *aip_copy(const struct wg_peer *p) {
        struct wg_allowedip *a;

        if (p->n_allowedips == 0)
                return NULL;
        a = malloc(p->n_allowedips * sizeof(*a));
        assert_non_null(a);
        memcpy(a, p->allowedips, p->n_allowedips * sizeof(*a));
        return a;
}

static struct wg_device *dev_clone(const struct wg_device *src) {
        struct wg_device *d = dev_new();

        *d = *src;
        d->peers = NULL;
        d->n_peers = 0;
        for (size_t i = 0; i < src->n_peers; i++) {
                struct wg_peer *p = wg_device_add_peer(d);

                assert_non_null(p);
                *p = src->peers[i];
                p->allowedips = aip_copy(&src->peers[i]);
        }
        return d;
}

static size_t peer_index(const struct wg_device *d, const uint8_t key[static WG_KEY_LEN], size_t n) {
        for (size_t lo = 0, hi = n; lo < hi;) {
                size_t mid = lo + (hi - lo) / 2;
                int c = memcmp(key, d->peers[mid].public_key, WG_KEY_LEN);

                if (c == 0)
                        return mid;
                if (c < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return SIZE_MAX;
}

/*
 * What the kernel and wireguard-go do with a set (the reference model for
 * the diff): REPLACE_PEERS empties the peer list; a peer with REMOVE_ME goes;
 * any other is created unless UPDATE_ONLY, then its flagged fields are
 * overwritten, its allowed IPs emptied on REPLACE_ALLOWEDIPS and the listed
 * ones added.
 */
static void apply(struct wg_device *dev, const struct wg_device *set) {
        size_t n_sorted;
        size_t k = 0;

        if (set->flags & WG_DEVICE_HAS_PRIVATE_KEY) {
                memcpy(dev->private_key, set->private_key, WG_KEY_LEN);
                if (wg_key_is_zero(set->private_key))
                        dev->flags &= ~(uint32_t) (WG_DEVICE_HAS_PRIVATE_KEY | WG_DEVICE_HAS_PUBLIC_KEY);
                else {
                        assert_int_equal(wg_key_public_from_private(dev->public_key, dev->private_key), 0);
                        dev->flags |= WG_DEVICE_HAS_PRIVATE_KEY | WG_DEVICE_HAS_PUBLIC_KEY;
                }
        }
        if (set->flags & WG_DEVICE_HAS_LISTEN_PORT) {
                dev->listen_port = set->listen_port;
                dev->flags |= WG_DEVICE_HAS_LISTEN_PORT;
        }
        if (set->flags & WG_DEVICE_HAS_FWMARK) {
                dev->fwmark = set->fwmark;
                dev->flags |= WG_DEVICE_HAS_FWMARK;
        }
        if (set->flags & WG_DEVICE_REPLACE_PEERS)
                for (size_t i = 0; i < dev->n_peers; i++)
                        dev->peers[i].flags |= WG_PEER_REMOVE_ME;

        wg_device_sort(dev);
        n_sorted = dev->n_peers;
        for (size_t i = 0; i < set->n_peers; i++) {
                const struct wg_peer *c = &set->peers[i];
                size_t idx = peer_index(dev, c->public_key, n_sorted);
                struct wg_peer *p;

                assert_true(c->flags & WG_PEER_HAS_PUBLIC_KEY);
                if (idx == SIZE_MAX)
                        for (size_t j = n_sorted; j < dev->n_peers; j++)
                                if (memcmp(dev->peers[j].public_key, c->public_key, WG_KEY_LEN) == 0)
                                        idx = j;
                if (idx != SIZE_MAX && (dev->peers[idx].flags & WG_PEER_REMOVE_ME)) {
                        /* Removed earlier in this set: a later mention
                         * creates it afresh. */
                        free(dev->peers[idx].allowedips);
                        dev->peers[idx] = (struct wg_peer) { .flags = WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REMOVE_ME };
                        memcpy(dev->peers[idx].public_key, c->public_key, WG_KEY_LEN);
                }
                if (c->flags & WG_PEER_REMOVE_ME) {
                        if (idx != SIZE_MAX)
                                dev->peers[idx].flags |= WG_PEER_REMOVE_ME;
                        continue;
                }
                if (idx == SIZE_MAX) {
                        if (c->flags & WG_PEER_UPDATE_ONLY)
                                continue;
                        p = wg_device_add_peer(dev);
                        assert_non_null(p);
                        memcpy(p->public_key, c->public_key, WG_KEY_LEN);
                        p->flags = WG_PEER_HAS_PUBLIC_KEY;
                } else {
                        p = &dev->peers[idx];
                        if ((p->flags & WG_PEER_REMOVE_ME) && (c->flags & WG_PEER_UPDATE_ONLY))
                                continue;
                        p->flags &= ~(uint32_t) WG_PEER_REMOVE_ME;
                }
                if (c->flags & WG_PEER_HAS_PRESHARED_KEY) {
                        memcpy(p->preshared_key, c->preshared_key, WG_KEY_LEN);
                        p->flags |= WG_PEER_HAS_PRESHARED_KEY;
                }
                if (c->flags & WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL) {
                        p->persistent_keepalive_interval = c->persistent_keepalive_interval;
                        p->flags |= WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL;
                }
                if (c->flags & WG_PEER_HAS_ENDPOINT) {
                        p->endpoint = c->endpoint;
                        p->flags |= WG_PEER_HAS_ENDPOINT;
                }
                if (c->flags & WG_PEER_REPLACE_ALLOWEDIPS)
                        p->n_allowedips = 0;
                for (size_t j = 0; j < c->n_allowedips; j++)
                        assert_int_equal(wg_peer_add_allowedip(p, &c->allowedips[j]), 0);
        }
        for (size_t i = 0; i < dev->n_peers; i++) {
                if (dev->peers[i].flags & WG_PEER_REMOVE_ME) {
                        free(dev->peers[i].allowedips);
                        continue;
                }
                dev->peers[k++] = dev->peers[i];
        }
        dev->n_peers = k;
        wg_device_sort(dev);
}

/* Same peers with the same normalised fields (see wg_device_diff). */
static void assert_same_peers(struct wg_device *a, struct wg_device *b, bool endpoints) {
        wg_device_sort(a);
        wg_device_sort(b);
        assert_int_equal(a->n_peers, b->n_peers);
        for (size_t i = 0; i < a->n_peers; i++) {
                const struct wg_peer *x = &a->peers[i], *y = &b->peers[i];
                uint8_t zero[WG_KEY_LEN] = {};

                assert_memory_equal(x->public_key, y->public_key, WG_KEY_LEN);
                assert_memory_equal((x->flags & WG_PEER_HAS_PRESHARED_KEY) ? x->preshared_key : zero,
                                    (y->flags & WG_PEER_HAS_PRESHARED_KEY) ? y->preshared_key : zero, WG_KEY_LEN);
                assert_int_equal((x->flags & WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL) ? x->persistent_keepalive_interval : 0,
                                 (y->flags & WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL) ? y->persistent_keepalive_interval : 0);
                if (endpoints) {
                        char ex[96], ey[96];

                        assert_string_equal(wg_endpoint_to_string(&x->endpoint, ex, sizeof(ex)),
                                            wg_endpoint_to_string(&y->endpoint, ey, sizeof(ey)));
                }
                assert_int_equal(x->n_allowedips, y->n_allowedips);
                for (size_t j = 0; j < x->n_allowedips; j++) {
                        assert_int_equal(x->allowedips[j].family, y->allowedips[j].family);
                        assert_int_equal(x->allowedips[j].cidr, y->allowedips[j].cidr);
                        assert_memory_equal(&x->allowedips[j].ip, &y->allowedips[j].ip, 16);
                }
        }
}

static struct wg_device *diff(struct wg_device *cur, struct wg_device *des, bool endpoints) {
        struct wg_device *d = NULL;

        assert_int_equal(wg_device_diff(cur, des, endpoints, &d), 0);
        assert_non_null(d);
        return d;
}

/* ---- model ---- */

static void test_free_null(void **state) {
        assert_null(wg_device_free(NULL));
        wg_device_freep(&(struct wg_device *) { NULL });
}

static void test_grow(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *d = dev_new();

        for (uint32_t i = 0; i < 3000; i++) {
                struct wg_peer *p = peer_add(d, i);

                for (uint32_t k = 0; k < i % 7; k++)
                        aip4(p, 0x0a000000 | (i << 8) | k, 32);
        }
        assert_int_equal(d->n_peers, 3000);
        for (uint32_t i = 0; i < 3000; i++) {
                uint8_t key[WG_KEY_LEN];

                key_fill(key, i);
                assert_memory_equal(d->peers[i].public_key, key, WG_KEY_LEN);
                assert_int_equal(d->peers[i].n_allowedips, i % 7);
                for (uint32_t k = 0; k < i % 7; k++)
                        assert_int_equal(ntohl(d->peers[i].allowedips[k].ip.in.s_addr), 0x0a000000 | (i << 8) | k);
        }
}

/* Reserved room keeps the peers already there and takes appends without
 * moving the array; a smaller reservation changes nothing. */
static void test_reserve(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *d = dev_new();
        struct wg_peer *first;

        for (uint32_t i = 0; i < 5; i++)
                aip4(peer_add(d, i), 0x0a000000 | i, 32);
        assert_int_equal(wg_device_reserve_peers(d, 1000), 0);
        first = d->peers;
        assert_int_equal(wg_device_reserve_peers(d, 10), 0);
        assert_ptr_equal(d->peers, first);
        for (uint32_t i = 5; i < 1000; i++)
                peer_add(d, i);
        assert_ptr_equal(d->peers, first);
        assert_int_equal(d->n_peers, 1000);
        for (uint32_t i = 0; i < 1000; i++) {
                uint8_t key[WG_KEY_LEN];

                key_fill(key, i);
                assert_memory_equal(d->peers[i].public_key, key, WG_KEY_LEN);
        }
        for (uint32_t i = 0; i < 5; i++)
                assert_int_equal(ntohl(d->peers[i].allowedips[0].ip.in.s_addr), 0x0a000000 | i);
        assert_int_equal(wg_device_reserve_peers(NULL, 1), -EINVAL);
        assert_int_equal(wg_device_reserve_peers(d, SIZE_MAX), -ENOMEM);
        assert_ptr_equal(d->peers, first);
}

/* Arrays allocated by other code to their exact size grow safely too. */
static void test_grow_foreign_array(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *d = dev_new();
        struct wg_peer *p;

        d->peers = calloc(3, sizeof(*d->peers));
        assert_non_null(d->peers);
        d->n_peers = 3;
        for (int i = 0; i < 3; i++) {
                key_fill(d->peers[i].public_key, (uint32_t) i);
                d->peers[i].allowedips = calloc(1, sizeof(struct wg_allowedip));
                d->peers[i].allowedips[0] = (struct wg_allowedip) { .family = AF_INET, .cidr = 8 };
                d->peers[i].n_allowedips = 1;
        }
        for (uint32_t i = 3; i < 40; i++) {
                p = peer_add(d, i);
                aip4(p, i, 32);
                aip4(&d->peers[0], i, 32);
        }
        assert_int_equal(d->n_peers, 40);
        assert_int_equal(d->peers[0].n_allowedips, 38);
        assert_int_equal(d->peers[2].allowedips[0].cidr, 8);
}

static void test_sort_and_find(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *d = dev_new();
        uint8_t key[WG_KEY_LEN];
        struct wg_peer *p;
        char s[INET6_ADDRSTRLEN];

        peer_add(d, 30);
        p = peer_add(d, 10);
        aip_add(p, "fd00::1/64");
        aip_add(p, "10.0.0.7/24");      /* host bits: same entry as 10.0.0.0/24 */
        aip_add(p, "10.0.0.0/24");
        aip_add(p, "10.0.0.0/16");
        aip_add(p, "9.0.0.0/8");
        aip_add(p, "0.0.0.0/0");
        peer_add(d, 20);

        wg_device_sort(d);
        key_fill(key, 10);
        assert_memory_equal(d->peers[0].public_key, key, WG_KEY_LEN);
        key_fill(key, 30);
        assert_memory_equal(d->peers[2].public_key, key, WG_KEY_LEN);

        p = &d->peers[0];
        assert_int_equal(p->n_allowedips, 5);
        const char *want[] = { "0.0.0.0", "9.0.0.0", "10.0.0.0", "10.0.0.0", "fd00::" };
        const uint8_t cidr[] = { 0, 8, 16, 24, 64 };
        for (size_t i = 0; i < 5; i++) {
                assert_non_null(inet_ntop(p->allowedips[i].family, &p->allowedips[i].ip, s, sizeof(s)));
                assert_string_equal(s, want[i]);
                assert_int_equal(p->allowedips[i].cidr, cidr[i]);
        }

        key_fill(key, 20);
        assert_ptr_equal(wg_device_find_peer(d, key), &d->peers[1]);
        key_fill(key, 21);
        assert_null(wg_device_find_peer(d, key));
        assert_null(wg_device_find_peer(NULL, key));
}

static void test_backend_names(void **state) {
        for (int b = 0; b < _WG_BACKEND_MAX; b++) {
                assert_non_null(wg_backend_to_string(b));
                assert_int_equal(wg_backend_from_string(wg_backend_to_string(b)), b);
        }
        assert_string_equal(wg_backend_to_string(WG_BACKEND_UAPI), "uapi");
        assert_null(wg_backend_to_string(_WG_BACKEND_MAX));
        assert_int_equal(wg_backend_from_string("netlink"), -EINVAL);
        assert_int_equal(wg_backend_from_string(""), -EINVAL);
        assert_int_equal(wg_backend_from_string(NULL), -EINVAL);
}

static void test_backend_resolve(void **state) {
        char dir[] = "/tmp/hamgr-wgdev.XXXXXX";
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        assert_non_null(mkdtemp(dir));
        setenv(WG_UAPI_DIR_ENV, dir, 1);
        assert_int_equal(wg_backend_resolve(WG_BACKEND_AUTO, "wgt0"), WG_BACKEND_KERNEL);

        /* A regular file is no socket. */
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/wgx.sock", dir);
        fd = open(sa.sun_path, O_CREAT | O_WRONLY, 0600);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(wg_backend_resolve(WG_BACKEND_AUTO, "wgx"), WG_BACKEND_KERNEL);

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/wgt0.sock", dir);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        /* Bound, nobody listening: a dead daemon's socket. It goes, as
         * with wg(8), and the kernel is used. */
        assert_int_equal(wg_backend_resolve(WG_BACKEND_AUTO, "wgt0"), WG_BACKEND_KERNEL);
        assert_int_equal(access(sa.sun_path, F_OK), -1);
        assert_int_equal(errno, ENOENT);
        close(fd);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(listen(fd, 1), 0);
        assert_int_equal(wg_backend_resolve(WG_BACKEND_AUTO, "wgt0"), WG_BACKEND_UAPI);
        /* Its probe connection waits in the queue: the queue (backlog 1)
         * fills, and a busy daemon still counts as there. */
        assert_int_equal(wg_backend_resolve(WG_BACKEND_AUTO, "wgt0"), WG_BACKEND_UAPI);
        assert_int_equal(wg_backend_resolve(WG_BACKEND_AUTO, "wgt0"), WG_BACKEND_UAPI);
        assert_int_equal(access(sa.sun_path, F_OK), 0);
        assert_int_equal(wg_backend_resolve(WG_BACKEND_BORINGTUN, "wgt0"), WG_BACKEND_BORINGTUN);
        assert_int_equal(wg_backend_resolve(WG_BACKEND_KERNEL, "wgt0"), WG_BACKEND_KERNEL);
        assert_int_equal(wg_backend_resolve(WG_BACKEND_UAPI, "nothere"), WG_BACKEND_UAPI);
        /* Names that could escape the directory never select UAPI. */
        assert_int_equal(wg_backend_resolve(WG_BACKEND_AUTO, "../wgt0"), WG_BACKEND_KERNEL);
        assert_int_equal(wg_backend_resolve(WG_BACKEND_AUTO, ""), WG_BACKEND_KERNEL);
        assert_int_equal(wg_backend_resolve(WG_BACKEND_AUTO, NULL), WG_BACKEND_KERNEL);
        close(fd);
        unlink(sa.sun_path);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/wgx.sock", dir);
        unlink(sa.sun_path);
        rmdir(dir);
        unsetenv(WG_UAPI_DIR_ENV);
}

static void test_endpoint(void **state) {
        static const char *const good[] = {
                "192.0.2.1:51820", "[2001:db8::1]:51820", "0.0.0.0:0", "[::]:65535", "[fe80::1%3]:1",
        };
        static const char *const bad[] = {
                "192.0.2.1", "192.0.2.1:", "192.0.2.1:65536", "192.0.2.1:-1", "192.0.2.1:+5",
                "2001:db8::1:51820", "[2001:db8::1]51820", "[2001:db8::1]:", "[192.0.2.1]:5",
                "1.2.3:5", "host.example:51820", "[]:5", "[::1%]:5", "192.0.2.1:5 ", " 192.0.2.1:5",
                "192.0.2.1:000051820", "[fe80::1%nosuchif0]:1", "",
        };
        union wg_endpoint e;
        char buf[96];

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                assert_int_equal(wg_endpoint_parse(good[i], &e), 0);
                assert_string_equal(wg_endpoint_to_string(&e, buf, sizeof(buf)), good[i]);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                memset(&e, 0x5a, sizeof(e));
                assert_int_equal(wg_endpoint_parse(bad[i], &e), -EINVAL);
                /* untouched on failure */
                assert_int_equal(((uint8_t *) &e)[0], 0x5a);
        }
        assert_int_equal(wg_endpoint_parse("[fe80::1%lo]:7", &e), 0);
        assert_int_equal(e.addr6.sin6_scope_id, 1);
        assert_int_equal(wg_endpoint_parse("198.51.100.7:51820", &e), 0);
        assert_int_equal(e.addr.sa_family, AF_INET);
        assert_int_equal(ntohs(e.addr4.sin_port), 51820);
        e = (union wg_endpoint) {};
        assert_string_equal(wg_endpoint_to_string(&e, buf, sizeof(buf)), "(none)");
        /* Short buffers truncate rather than overflow. */
        assert_int_equal(wg_endpoint_parse("[2001:db8::1]:51820", &e), 0);
        assert_string_equal(wg_endpoint_to_string(&e, buf, 6), "[2001");
}

/* ---- diff ---- */

static struct wg_device *sample(void) {
        struct wg_device *d = dev_new();
        struct wg_peer *p;

        p = peer_add(d, 1);
        aip_add(p, "10.1.0.0/24");
        aip_add(p, "fd01::/64");
        set_endpoint(p, "192.0.2.1:51820");
        set_keepalive(p, 25);
        p = peer_add(d, 2);
        aip_add(p, "10.2.0.0/24");
        set_psk(p, 0x22);
        p = peer_add(d, 3);
        aip_add(p, "10.3.0.0/24");
        set_endpoint(p, "[2001:db8::3]:51820");
        return d;
}

static void test_diff_identical(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *cur = sample(), *des = sample(), *d = NULL;
        _cleanup_(wg_device_freep) struct wg_device *e1 = dev_new(), *e2 = dev_new(), *d2 = NULL;

        d = diff(cur, des, true);
        assert_int_equal(d->n_peers, 0);
        assert_int_equal(d->flags, 0);
        assert_string_equal(d->name, "wgt0");
        d2 = diff(e1, e2, true);
        assert_int_equal(d2->n_peers, 0);
        assert_int_equal(d2->flags, 0);
}

static void test_diff_add_remove(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *cur = sample(), *des = sample(), *d = NULL;
        struct wg_peer *p;
        uint8_t key[WG_KEY_LEN];

        /* Drop peer 2, add peer 4. */
        free(des->peers[1].allowedips);
        des->peers[1] = des->peers[2];
        des->n_peers = 2;
        p = peer_add(des, 4);
        aip_add(p, "10.4.0.0/24");
        set_psk(p, 0x44);
        set_keepalive(p, 15);
        set_endpoint(p, "198.51.100.4:1234");

        d = diff(cur, des, false);
        assert_int_equal(d->n_peers, 2);
        key_fill(key, 2);
        assert_memory_equal(d->peers[0].public_key, key, WG_KEY_LEN);
        assert_int_equal(d->peers[0].flags, WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REMOVE_ME);
        assert_int_equal(d->peers[0].n_allowedips, 0);

        p = &d->peers[1];
        key_fill(key, 4);
        assert_memory_equal(p->public_key, key, WG_KEY_LEN);
        /* New peers in full, endpoint included even without compare_endpoints. */
        assert_int_equal(p->flags, WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REPLACE_ALLOWEDIPS | WG_PEER_HAS_PRESHARED_KEY |
                                           WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL | WG_PEER_HAS_ENDPOINT);
        assert_int_equal(p->preshared_key[0], 0x44);
        assert_int_equal(p->persistent_keepalive_interval, 15);
        assert_int_equal(p->n_allowedips, 1);
        assert_int_equal(ntohl(p->allowedips[0].ip.in.s_addr), 0x0a040000);
        assert_int_equal(ntohs(p->endpoint.addr4.sin_port), 1234);
}

static void test_diff_changes(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *cur = sample(), *des = sample(), *d = NULL, *d2 = NULL;
        struct wg_peer *p;

        wg_device_sort(des);
        /* peer 1: allowed IPs grow; peer 2: psk changes; peer 3: keepalive on. */
        aip_add(&des->peers[0], "10.9.0.0/16");
        set_psk(&des->peers[1], 0x23);
        set_keepalive(&des->peers[2], 5);

        d = diff(cur, des, false);
        assert_int_equal(d->n_peers, 3);
        p = &d->peers[0];
        assert_int_equal(p->flags, WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REPLACE_ALLOWEDIPS);
        assert_int_equal(p->n_allowedips, 3);   /* the full new list */
        p = &d->peers[1];
        assert_int_equal(p->flags, WG_PEER_HAS_PUBLIC_KEY | WG_PEER_HAS_PRESHARED_KEY);
        assert_int_equal(p->preshared_key[5], 0x23);
        assert_int_equal(p->n_allowedips, 0);
        p = &d->peers[2];
        assert_int_equal(p->flags, WG_PEER_HAS_PUBLIC_KEY | WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL);
        assert_int_equal(p->persistent_keepalive_interval, 5);

        /* Dropping psk and keepalive from the desired peer clears them. */
        des->peers[1].flags &= ~(uint32_t) WG_PEER_HAS_PRESHARED_KEY;
        des->peers[0].flags &= ~(uint32_t) WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL;
        /* sorted by the diff: 10.1.0.0/24, 10.9.0.0/16, fd01::/64 */
        des->peers[0].allowedips[1] = des->peers[0].allowedips[2];
        des->peers[0].n_allowedips = 2;
        des->peers[2].flags &= ~(uint32_t) WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL;
        d2 = diff(cur, des, false);
        assert_int_equal(d2->n_peers, 2);
        assert_int_equal(d2->peers[0].flags, WG_PEER_HAS_PUBLIC_KEY | WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL);
        assert_int_equal(d2->peers[0].persistent_keepalive_interval, 0);
        assert_int_equal(d2->peers[1].flags, WG_PEER_HAS_PUBLIC_KEY | WG_PEER_HAS_PRESHARED_KEY);
        assert_true(wg_key_is_zero(d2->peers[1].preshared_key));
}

static void test_diff_endpoints(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *cur = sample(), *des = sample();
        _cleanup_(wg_device_freep) struct wg_device *d = NULL, *d2 = NULL, *d3 = NULL;

        wg_device_sort(cur);
        /* The client roamed. */
        set_endpoint(&cur->peers[0], "203.0.113.9:40000");
        /* Peer 2 has an endpoint now, peer 3 lost its (desired has one). */
        set_endpoint(&cur->peers[1], "203.0.113.2:1");
        cur->peers[2].flags &= ~(uint32_t) WG_PEER_HAS_ENDPOINT;
        cur->peers[2].endpoint = (union wg_endpoint) {};

        d = diff(cur, des, false);
        assert_int_equal(d->n_peers, 0);

        d2 = diff(cur, des, true);
        /* Peer 1 back to its configured endpoint, peer 3 gets one; peer 2
         * has none configured and keeps what it learnt. */
        assert_int_equal(d2->n_peers, 2);
        assert_int_equal(d2->peers[0].flags, WG_PEER_HAS_PUBLIC_KEY | WG_PEER_HAS_ENDPOINT);
        assert_int_equal(ntohs(d2->peers[0].endpoint.addr4.sin_port), 51820);
        assert_int_equal(d2->peers[1].flags, WG_PEER_HAS_PUBLIC_KEY | WG_PEER_HAS_ENDPOINT);
        assert_int_equal(d2->peers[1].endpoint.addr.sa_family, AF_INET6);

        /* Same address, other port: a change. */
        set_endpoint(&cur->peers[0], "192.0.2.1:51821");
        set_endpoint(&cur->peers[2], "[2001:db8::3]:51820");
        d3 = diff(cur, des, true);
        assert_int_equal(d3->n_peers, 1);
}

static void test_diff_device_fields(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *cur = dev_new(), *des = dev_new();
        _cleanup_(wg_device_freep) struct wg_device *d = NULL, *d2 = NULL, *d3 = NULL, *d4 = NULL;

        memset(des->private_key, 0x41, WG_KEY_LEN);
        des->listen_port = 51820;
        des->fwmark = 0x77;
        des->flags = WG_DEVICE_HAS_PRIVATE_KEY | WG_DEVICE_HAS_LISTEN_PORT | WG_DEVICE_HAS_FWMARK;

        d = diff(cur, des, false);
        assert_int_equal(d->flags, WG_DEVICE_HAS_PRIVATE_KEY | WG_DEVICE_HAS_LISTEN_PORT | WG_DEVICE_HAS_FWMARK);
        assert_int_equal(d->private_key[0], 0x41);
        assert_int_equal(d->listen_port, 51820);
        assert_int_equal(d->fwmark, 0x77);

        apply(cur, d);
        d2 = diff(cur, des, false);
        assert_int_equal(d2->flags, 0);

        /* boringtun shows only its public key: no change if it matches. */
        cur->flags &= ~(uint32_t) WG_DEVICE_HAS_PRIVATE_KEY;
        memset(cur->private_key, 0, WG_KEY_LEN);
        d3 = diff(cur, des, false);
        assert_int_equal(d3->flags, 0);
        cur->public_key[0] ^= 1;
        d4 = diff(cur, des, false);
        assert_int_equal(d4->flags, WG_DEVICE_HAS_PRIVATE_KEY);

        /* Port 0 means "any": never rebinds a running device. */
        wg_device_free(d4);
        des->listen_port = 0;
        cur->public_key[0] ^= 1;
        d4 = diff(cur, des, false);
        assert_int_equal(d4->flags, 0);

        /* fwmark 0 desired clears a set one. */
        wg_device_free(d4);
        des->fwmark = 0;
        d4 = diff(cur, des, false);
        assert_int_equal(d4->flags, WG_DEVICE_HAS_FWMARK);
        assert_int_equal(d4->fwmark, 0);
}

static void test_diff_host_bits_and_duplicates(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *cur = sample(), *des = sample(), *d = NULL, *d2 = NULL;
        struct wg_peer *p;

        wg_device_sort(des);
        /* Spelled differently, same entries: no change. */
        des->peers[0].n_allowedips = 0;
        aip_add(&des->peers[0], "fd01::99/64");
        aip_add(&des->peers[0], "10.1.0.200/24");
        aip_add(&des->peers[0], "10.1.0.0/24");
        d = diff(cur, des, true);
        assert_int_equal(d->n_peers, 0);

        /* Peer 3 listed twice in the desired set: one peer, allowed IPs
         * merged, the keepalive from the entry that has one. */
        p = peer_add(des, 3);
        aip_add(p, "10.33.0.0/24");
        aip_add(p, "10.3.0.0/24");
        set_keepalive(p, 9);
        d2 = diff(cur, des, false);
        assert_int_equal(d2->n_peers, 1);
        p = &d2->peers[0];
        assert_int_equal(p->flags, WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REPLACE_ALLOWEDIPS |
                                           WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL);
        assert_int_equal(p->persistent_keepalive_interval, 9);
        assert_int_equal(p->n_allowedips, 2);
        assert_int_equal(ntohl(p->allowedips[0].ip.in.s_addr), 0x0a030000);
        assert_int_equal(ntohl(p->allowedips[1].ip.in.s_addr), 0x0a210000);
}

/* ---- round trip at scale ---- */

static void random_peer(struct wg_peer *p) {
        size_t n = rnd() % 4;

        p->flags = WG_PEER_HAS_PUBLIC_KEY;
        if (rnd() % 3 == 0)
                set_psk(p, (uint8_t) (rnd() | 1));
        if (rnd() % 2 == 0)
                set_keepalive(p, (uint16_t) (rnd() % 3 * 10));
        if (rnd() % 2 == 0) {
                p->endpoint.addr4.sin_family = AF_INET;
                p->endpoint.addr4.sin_addr.s_addr = htonl(0xc6336400 | (uint32_t) (rnd() & 0xff));
                p->endpoint.addr4.sin_port = htons((uint16_t) (51820 + rnd() % 3));
                p->flags |= WG_PEER_HAS_ENDPOINT;
        }
        for (size_t i = 0; i < n; i++) {
                if (rnd() % 4 == 0) {
                        struct wg_allowedip a = { .family = AF_INET6, .cidr = (uint8_t) (48 + rnd() % 81) };

                        a.ip.bytes[0] = 0xfd;
                        for (int k = 1; k < 16; k++)
                                a.ip.bytes[k] = (uint8_t) rnd();
                        assert_int_equal(wg_peer_add_allowedip(p, &a), 0);
                } else
                        aip4(p, 0x0a000000 | (uint32_t) (rnd() & 0xffffff), (uint8_t) (16 + rnd() % 17));
        }
}

static void round_trip(uint64_t seed, size_t n, bool endpoints) {
        _cleanup_(wg_device_freep) struct wg_device *cur = dev_new(), *des = NULL, *d = NULL, *again = NULL;
        size_t kept = 0;

        rng_state = seed;
        for (size_t i = 0; i < n; i++) {
                /* Distinct keys in a scattered order. */
                struct wg_peer *p = peer_add(cur, (uint32_t) (i * 7919 + 1) & 0xfffffff);

                random_peer(p);
        }
        des = dev_clone(cur);

        /* Mutate about a third: remove, change, add. */
        for (size_t i = 0; i < des->n_peers; i++) {
                struct wg_peer *p = &des->peers[i];
                unsigned what = (unsigned) (rnd() % 12);

                if (what == 0) {
                        free(p->allowedips);
                        continue;
                }
                if (what == 1) {
                        p->n_allowedips = 0;
                        aip4(p, 0x0b000000 | (uint32_t) (rnd() & 0xffffff), 24);
                } else if (what == 2)
                        set_psk(p, (uint8_t) rnd());
                else if (what == 3)
                        p->flags &= ~(uint32_t) WG_PEER_HAS_PRESHARED_KEY;
                else if (what == 4)
                        set_keepalive(p, (uint16_t) (1 + rnd() % 100));
                else if (what == 5 && p->n_allowedips > 0)
                        p->n_allowedips--;
                else if (what == 6)
                        set_endpoint(p, "[2001:db8::99]:4242");
                des->peers[kept++] = *p;
        }
        des->n_peers = kept;
        for (size_t i = 0; i < n / 10; i++)
                random_peer(peer_add(des, 0x10000000 | (uint32_t) i));

        d = diff(cur, des, endpoints);
        assert_true(d->n_peers > 0);
        apply(cur, d);
        assert_same_peers(cur, des, endpoints);
        again = diff(cur, des, endpoints);
        assert_int_equal(again->n_peers, 0);
        assert_int_equal(again->flags, 0);
}

static void test_diff_round_trip_10000(void **state) {
        round_trip(0x9e3779b97f4a7c15, 10000, false);
        round_trip(0x1234567, 10000, true);
        for (uint64_t seed = 1; seed <= 20; seed++)
                round_trip(seed * 0x2545f4914f6cdd1d, 50, seed % 2);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_free_null),
                cmocka_unit_test(test_grow),
                cmocka_unit_test(test_grow_foreign_array),
                cmocka_unit_test(test_reserve),
                cmocka_unit_test(test_sort_and_find),
                cmocka_unit_test(test_backend_names),
                cmocka_unit_test(test_backend_resolve),
                cmocka_unit_test(test_endpoint),
                cmocka_unit_test(test_diff_identical),
                cmocka_unit_test(test_diff_add_remove),
                cmocka_unit_test(test_diff_changes),
                cmocka_unit_test(test_diff_endpoints),
                cmocka_unit_test(test_diff_device_fields),
                cmocka_unit_test(test_diff_host_bits_and_duplicates),
                cmocka_unit_test(test_diff_round_trip_10000),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
