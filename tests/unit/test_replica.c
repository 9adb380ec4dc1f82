/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The replication core: the hybrid logical clock, local polls and the echo
 * rule, last-writer-wins merging with tombstones across partitions (two
 * simulated gateways, each a replica plus the device it drives), catch-up,
 * and the record encoding with its rejection of malformed input. */

#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/macro.h"
#include "sync/replica.h"

#define NODE_A UINT64_C(0xa0a0a0a0a0a0a0a0)
#define NODE_B UINT64_C(0x0b0b0b0b0b0b0b0b)
#define NODE_C UINT64_C(0x0c0c0c0c0c0c0c0c)
#define NODE_X UINT64_C(0xffffffffffffffff)   /* configured nowhere */
#define IF "wg0"

/* ---- helpers ---- */

static void key_fill(uint8_t key[static WG_KEY_LEN], uint32_t id, uint8_t tag) {
        memset(key, 0, WG_KEY_LEN);
        key[0] = (uint8_t) (id >> 24);
        key[1] = (uint8_t) (id >> 16);
        key[2] = (uint8_t) (id >> 8);
        key[3] = (uint8_t) id;
        key[31] = tag;
}

static struct wg_allowedip aip(const char *s, uint8_t cidr) {
        struct wg_allowedip a = { .cidr = cidr };

        if (inet_pton(AF_INET, s, &a.ip.in) == 1)
                a.family = AF_INET;
        else {
                assert_int_equal(inet_pton(AF_INET6, s, &a.ip.in6), 1);
                a.family = AF_INET6;
        }
        return a;
}

static struct wg_device *dev_new(void) {
        struct wg_device *d = calloc(1, sizeof(*d));

        assert_non_null(d);
        strcpy(d->name, IF);
        key_fill(d->private_key, 0xdead, 0x11);
        d->listen_port = 51820;
        d->flags = WG_DEVICE_HAS_PRIVATE_KEY | WG_DEVICE_HAS_PUBLIC_KEY | WG_DEVICE_HAS_LISTEN_PORT |
                   WG_DEVICE_HAS_FWMARK;
        return d;
}

static struct wg_peer *dev_peer(struct wg_device *d, uint32_t id) {
        uint8_t k[WG_KEY_LEN];

        key_fill(k, id, 0x77);
        for (size_t i = 0; i < d->n_peers; i++)
                if (memcmp(d->peers[i].public_key, k, WG_KEY_LEN) == 0)
                        return &d->peers[i];
        return NULL;
}

/* Add or update peer ID as a backend would report it: every field flagged,
 * one allowed IP 10.0.<id>.0/24, preshared key tagged VAL. */
static struct wg_peer *dev_set(struct wg_device *d, uint32_t id, uint8_t val) {
        struct wg_peer *p = dev_peer(d, id);
        struct wg_allowedip a = aip("10.0.0.0", 24);

        if (!p) {
                p = wg_device_add_peer(d);
                assert_non_null(p);
                key_fill(p->public_key, id, 0x77);
                a.ip.bytes[2] = (uint8_t) id;
                assert_int_equal(wg_peer_add_allowedip(p, &a), 0);
        }
        p->flags = WG_PEER_HAS_PUBLIC_KEY | WG_PEER_HAS_PRESHARED_KEY | WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL;
        key_fill(p->preshared_key, 0x5000 + val, val);
        p->persistent_keepalive_interval = 25;
        return p;
}

static void dev_del(struct wg_device *d, uint32_t id) {
        struct wg_peer *p = dev_peer(d, id);
        size_t i;

        assert_non_null(p);
        i = (size_t) (p - d->peers);
        free(p->allowedips);
        memmove(&d->peers[i], &d->peers[i + 1], (d->n_peers - i - 1) * sizeof(*p));
        d->n_peers--;
}

/* The preshared key tag of peer ID in R's desired device; -1: absent. */
static int desired_val(struct replica *r, uint32_t id) {
        _cleanup_(wg_device_freep) struct wg_device *d = NULL;
        struct wg_peer *p;

        if (replica_device_for(r, IF, false, &d) == -ENOENT)
                return -1;
        p = dev_peer(d, id);
        return p ? p->preshared_key[31] : -1;
}

static size_t poll(struct replica *r, const struct wg_device *d, uint64_t wall, bool master) {
        struct replica_changes c = {};
        size_t n;

        assert_int_equal(replica_apply_local_device(r, IF, d, wall, master, &c), 0);
        n = c.n;
        replica_changes_done(&c);
        return n;
}

static void encode(const struct replica *r, uint8_t **buf, size_t *len) {
        assert_int_equal(replica_encode(r, buf, len), 0);
}

static void assert_same_state(const struct replica *a, const struct replica *b) {
        _cleanup_(freep) uint8_t *ea = NULL, *eb = NULL;
        size_t la, lb;

        encode(a, &ea, &la);
        encode(b, &eb, &lb);
        assert_int_equal(la, lb);
        assert_memory_equal(ea, eb, la);
}

/* A gateway: its replica and the device hamgr drives from it. */
struct node {
        struct replica *r;
        struct wg_device *dev;
};

static void node_init(struct node *n, uint64_t id) {
        assert_int_equal(replica_new(id, &n->r), 0);
        n->dev = dev_new();
}

static void node_done(struct node *n) {
        replica_free(n->r);
        wg_device_free(n->dev);
}

/* What the daemon does after a merge: write the desired device, confirm. */
static void node_apply(struct node *n) {
        struct wg_device *d = NULL;

        assert_int_equal(replica_device_for(n->r, IF, false, &d), 0);
        wg_device_free(n->dev);
        n->dev = d;
        assert_int_equal(replica_device_applied(n->r, IF), 0);
}

/* Send everything FROM holds to TO (a first sync); returns what changed. */
static size_t sync_all(struct node *from, struct node *to) {
        struct replica_changes c = {}, applied = {};
        size_t n;

        assert_int_equal(replica_changes_since(from->r, (struct hlc_ts) {}, &c), 0);
        assert_int_equal(replica_merge(to->r, &c, &applied), 0);
        n = applied.n;
        if (replica_device_needs_apply(to->r, IF))
                node_apply(to);
        replica_changes_done(&c);
        replica_changes_done(&applied);
        return n;
}

/* ---- hybrid logical clock ---- */

/* hlc_now() that must succeed. */
static struct hlc_ts now_ok(struct hlc *c, uint64_t wall) {
        struct hlc_ts t;

        assert_int_equal(hlc_now(c, wall, &t), 0);
        return t;
}

static struct hlc_ts update_ok(struct hlc *c, struct hlc_ts remote, uint64_t wall) {
        struct hlc_ts t;

        assert_int_equal(hlc_update(c, remote, wall, UINT64_MAX, &t), 0);
        return t;
}

static void test_hlc_monotonic_backwards(void **state) {
        static const uint64_t walls[] = { 1000, 1000, 999, 500, 0, 1001, 1001, 2000, 1500 };
        struct hlc c;
        struct hlc_ts prev = {}, t;

        hlc_init(&c, 7);
        for (size_t i = 0; i < ELEMENTSOF(walls); i++) {
                t = now_ok(&c, walls[i]);
                assert_true(hlc_compare(t, prev) > 0);
                assert_true(t.wall_ms >= walls[i]);
                assert_int_equal(t.node, 7);
                prev = t;
        }
        /* Physical part never below the highest wall time seen. */
        assert_int_equal(prev.wall_ms, 2000);
}

static void test_hlc_logical_overflow(void **state) {
        struct hlc c;
        struct hlc_ts prev, t;

        hlc_init(&c, 1);
        prev = now_ok(&c, 5000);
        for (unsigned i = 0; i < 70000; i++) {
                t = now_ok(&c, 5000);
                assert_true(hlc_compare(t, prev) > 0);
                prev = t;
        }
        assert_int_equal(prev.wall_ms, 5001);
        assert_int_equal(prev.logical, 70000 - 65536);
}

static void test_hlc_update(void **state) {
        struct hlc c;
        struct hlc_ts local, remote, t;

        hlc_init(&c, 1);
        local = now_ok(&c, 1000);
        /* Remote ahead of both clocks: we move past it. */
        remote = (struct hlc_ts) { .wall_ms = 9000, .logical = 4, .node = 2 };
        t = update_ok(&c, remote, 1000);
        assert_true(hlc_compare(t, remote) > 0);
        assert_true(hlc_compare(t, local) > 0);
        assert_int_equal(t.wall_ms, 9000);
        assert_int_equal(t.logical, 5);
        t = now_ok(&c, 1001);
        assert_true(hlc_compare(t, remote) > 0);
        /* Same physical part on both: logical is past both. */
        remote = (struct hlc_ts) { .wall_ms = 9000, .logical = 50, .node = 2 };
        t = update_ok(&c, remote, 10);
        assert_int_equal(t.wall_ms, 9000);
        assert_int_equal(t.logical, 51);
        /* Remote behind: only our own counter moves. */
        remote = (struct hlc_ts) { .wall_ms = 100, .logical = 9, .node = 2 };
        t = update_ok(&c, remote, 10);
        assert_int_equal(t.wall_ms, 9000);
        assert_int_equal(t.logical, 52);
        /* Wall clock ahead of everything: it wins, counter resets. */
        t = update_ok(&c, remote, 20000);
        assert_int_equal(t.wall_ms, 20000);
        assert_int_equal(t.logical, 0);
        /* Clamped, never wrapping. */
        t = now_ok(&c, UINT64_MAX);
        assert_int_equal(t.wall_ms, HLC_WALL_MAX);
        assert_true(hlc_compare(now_ok(&c, UINT64_MAX), t) > 0);
}

/* A remote stamp beyond the caller's bound does not move the clock. */
static void test_hlc_update_bounded(void **state) {
        struct hlc c, before;
        struct hlc_ts t = { 1, 1, 1 }, remote = { .wall_ms = 10001, .logical = 0, .node = 2 };

        hlc_init(&c, 1);
        (void) now_ok(&c, 1000);
        before = c;
        assert_int_equal(hlc_update(&c, remote, 1000, 10000, &t), -ERANGE);
        assert_memory_equal(&c, &before, sizeof(c));
        assert_int_equal(t.wall_ms, 1); /* untouched */
        remote.wall_ms = 10000;
        assert_int_equal(hlc_update(&c, remote, 1000, 10000, &t), 0);
        assert_int_equal(t.wall_ms, 10000);
        assert_int_equal(t.logical, 1);
}

/* At the greatest timestamp there is no next one: every way of asking
 * fails, and no stamp is ever handed out twice. */
static void test_hlc_saturation(void **state) {
        struct hlc c, before;
        struct hlc_ts t, last, remote = { .wall_ms = HLC_WALL_MAX, .logical = UINT16_MAX, .node = 2 };

        hlc_init(&c, 1);
        /* Just below the end: the last stamp is still issued. */
        c.wall_ms = HLC_WALL_MAX;
        c.logical = UINT16_MAX - 1;
        last = now_ok(&c, HLC_WALL_MAX);
        assert_int_equal(last.wall_ms, HLC_WALL_MAX);
        assert_int_equal(last.logical, UINT16_MAX);
        before = c;
        t = (struct hlc_ts) { 1, 1, 1 };
        assert_int_equal(hlc_now(&c, HLC_WALL_MAX, &t), -EOVERFLOW);
        assert_int_equal(hlc_now(&c, UINT64_MAX, &t), -EOVERFLOW);
        assert_int_equal(hlc_now(&c, 5, &t), -EOVERFLOW);
        assert_int_equal(hlc_update(&c, remote, 5, UINT64_MAX, &t), -EOVERFLOW);
        assert_memory_equal(&c, &before, sizeof(c));
        assert_int_equal(t.wall_ms, 1);

        /* A remote stamp at the end drags a fresh clock there: the update
         * itself has no stamp past it. */
        hlc_init(&c, 1);
        assert_int_equal(hlc_update(&c, remote, 5, UINT64_MAX, &t), -EOVERFLOW);
        assert_int_equal(c.wall_ms, 0);
}

static void test_hlc_total_order(void **state) {
        struct hlc_ts a = { 10, 1, 1 }, b = { 10, 1, 2 }, c = { 10, 2, 0 }, d = { 11, 0, 0 };

        assert_true(hlc_compare(a, b) < 0);
        assert_true(hlc_compare(b, a) > 0);
        assert_true(hlc_compare(b, c) < 0);
        assert_true(hlc_compare(c, d) < 0);
        assert_int_equal(hlc_compare(a, a), 0);
        assert_true(hlc_ts_is_zero((struct hlc_ts) {}));
        assert_false(hlc_ts_is_zero(a));
}

static void test_node_id(void **state) {
        uint8_t k1[WG_KEY_LEN], k2[WG_KEY_LEN];

        key_fill(k1, 1, 0);
        key_fill(k2, 2, 0);
        assert_int_not_equal(replica_node_id(k1), 0);
        assert_int_equal(replica_node_id(k1), replica_node_id(k1));
        assert_int_not_equal(replica_node_id(k1), replica_node_id(k2));
}

/* ---- local polls ---- */

static void test_poll_first_and_steady(void **state) {
        _cleanup_(replica_freep) struct replica *r = NULL;
        _cleanup_(wg_device_freep) struct wg_device *d = dev_new();
        struct replica_changes c = {};
        struct wg_peer *p;
        struct wg_allowedip extra = aip("2001:db8::", 64), dup = aip("10.0.1.77", 24);

        assert_int_equal(replica_new(NODE_A, &r), 0);
        dev_set(d, 1, 1);
        dev_set(d, 2, 2);
        assert_int_equal(replica_apply_local_device(r, IF, d, 1000, false, &c), 0);
        assert_int_equal(c.n, 3);
        assert_int_equal(c.recs[0].type, REPLICA_REC_DEVICE);
        assert_int_equal(c.recs[0].device.listen_port, 51820);
        assert_int_equal(c.recs[0].device.version.node, NODE_A);
        assert_int_equal(c.recs[1].type, REPLICA_REC_PEER);
        assert_false(c.recs[1].peer.deleted);
        assert_int_equal(c.recs[1].peer.keepalive, 25);
        assert_int_equal(c.recs[1].peer.n_allowedips, 1);
        assert_true(hlc_ts_is_zero(c.recs[1].peer.endpoint_version));
        assert_int_equal(replica_n_records(r), 3);
        replica_changes_done(&c);
        assert_int_equal(c.n, 0);

        /* Same device: nothing. */
        assert_int_equal(poll(r, d, 1001, false), 0);

        /* What stays local never makes a version: counters, handshakes,
         * endpoints on a non-master, allowed-IP order, host bits and
         * duplicates, a not-yet-bound listen port. */
        p = dev_peer(d, 1);
        p->rx_bytes = 1234;
        p->tx_bytes = 99;
        p->last_handshake_time_sec = 1700000000;
        p->flags |= WG_PEER_HAS_ENDPOINT;
        p->endpoint.addr4.sin_family = AF_INET;
        p->endpoint.addr4.sin_port = htons(4000);
        assert_int_equal(wg_peer_add_allowedip(p, &extra), 0);
        assert_int_equal(poll(r, d, 1002, false), 1); /* the new allowed IP is real */
        /* Reordered, with a host-bit and a duplicate variant. */
        p = dev_peer(d, 1);
        p->allowedips[0] = extra;
        p->allowedips[1] = aip("10.0.1.0", 24);
        assert_int_equal(wg_peer_add_allowedip(p, &dup), 0);
        d->listen_port = 0;
        assert_int_equal(poll(r, d, 1003, false), 0);
}

static void test_poll_detects_each_change(void **state) {
        enum { PSK, KEEPALIVE, ALLOWEDIP, REMOVE, ADD, PORT, FWMARK, PRIVKEY, _N };
        struct wg_allowedip extra = aip("192.168.0.0", 16);

        for (int what = 0; what < _N; what++) {
                _cleanup_(replica_freep) struct replica *r = NULL;
                _cleanup_(wg_device_freep) struct wg_device *d = dev_new();
                struct replica_changes c = {};
                struct hlc_ts first;

                assert_int_equal(replica_new(NODE_A, &r), 0);
                dev_set(d, 1, 1);
                dev_set(d, 2, 2);
                assert_int_equal(poll(r, d, 1000, false), 3);
                first = replica_max_version(r, NODE_A);
                switch (what) {
                case PSK:
                        dev_set(d, 1, 9);
                        break;
                case KEEPALIVE:
                        dev_peer(d, 2)->persistent_keepalive_interval = 0;
                        break;
                case ALLOWEDIP:
                        assert_int_equal(wg_peer_add_allowedip(dev_peer(d, 2), &extra), 0);
                        break;
                case REMOVE:
                        dev_del(d, 1);
                        break;
                case ADD:
                        dev_set(d, 3, 3);
                        break;
                case PORT:
                        d->listen_port = 51821;
                        break;
                case FWMARK:
                        d->fwmark = 0x42;
                        break;
                case PRIVKEY:
                        d->private_key[5] ^= 1;
                        break;
                }
                /* Wall clock went back: still a newer version. */
                assert_int_equal(replica_apply_local_device(r, IF, d, 10, false, &c), 0);
                assert_int_equal(c.n, 1);
                assert_true(hlc_compare(c.recs[0].type == REPLICA_REC_PEER ? c.recs[0].peer.version
                                                                             : c.recs[0].device.version,
                                        first) > 0);
                assert_int_equal(c.recs[0].type, what >= PORT ? REPLICA_REC_DEVICE : REPLICA_REC_PEER);
                if (what == REMOVE) {
                        assert_true(c.recs[0].peer.deleted);
                        assert_true(wg_key_is_zero(c.recs[0].peer.preshared_key));
                        assert_int_equal(c.recs[0].peer.n_allowedips, 0);
                        assert_int_equal(desired_val(r, 1), -1);
                        /* The tombstone stays a record. */
                        assert_int_equal(replica_n_records(r), 3);
                }
                replica_changes_done(&c);
                assert_int_equal(poll(r, d, 11, false), 0);
        }
}

static void test_poll_public_key_only(void **state) {
        _cleanup_(replica_freep) struct replica *r = NULL;
        _cleanup_(wg_device_freep) struct wg_device *d = dev_new();
        uint8_t priv[WG_KEY_LEN];

        assert_int_equal(replica_new(NODE_A, &r), 0);
        /* Nothing to take the key from: no device record, peers still. */
        d->flags &= ~(uint32_t) WG_DEVICE_HAS_PRIVATE_KEY;
        memcpy(priv, d->private_key, WG_KEY_LEN);
        assert_int_equal(wg_key_public_from_private(d->public_key, priv), 0);
        dev_set(d, 1, 1);
        assert_int_equal(poll(r, d, 1000, false), 1);

        /* Once the key is replicated, a boringtun-style device with that
         * public key is the same device, and its port changes count. */
        d->flags |= WG_DEVICE_HAS_PRIVATE_KEY;
        assert_int_equal(poll(r, d, 1001, false), 1);
        d->flags &= ~(uint32_t) WG_DEVICE_HAS_PRIVATE_KEY;
        memset(d->private_key, 0, WG_KEY_LEN);
        assert_int_equal(poll(r, d, 1002, false), 0);
        d->listen_port = 4444;
        assert_int_equal(poll(r, d, 1003, false), 1);
        /* Another public key: we cannot tell the private key, so leave it. */
        d->public_key[0] ^= 1;
        d->listen_port = 5555;
        assert_int_equal(poll(r, d, 1004, false), 0);
}

static void test_poll_rejects_bad_input(void **state) {
        _cleanup_(replica_freep) struct replica *r = NULL;
        _cleanup_(wg_device_freep) struct wg_device *d = dev_new();
        struct wg_allowedip bad = aip("10.0.0.0", 33);
        struct wg_peer *p;

        assert_int_equal(replica_new(NODE_A, &r), 0);
        assert_int_equal(replica_apply_local_device(r, "bad/name", d, 1, false, NULL), -EINVAL);
        assert_int_equal(replica_apply_local_device(r, "", d, 1, false, NULL), -EINVAL);
        assert_int_equal(replica_apply_local_device(r, "0123456789abcdef", d, 1, false, NULL), -EINVAL);
        p = dev_set(d, 1, 1);
        assert_int_equal(wg_peer_add_allowedip(p, &bad), 0);
        assert_int_equal(replica_apply_local_device(r, IF, d, 1, false, NULL), -EINVAL);
        assert_int_equal(replica_n_records(r), 0);
        p->n_allowedips = 1;
        p = wg_device_add_peer(d); /* zero public key */
        assert_non_null(p);
        assert_int_equal(replica_apply_local_device(r, IF, d, 1, false, NULL), -EINVAL);
        assert_int_equal(replica_n_records(r), 0);
        assert_int_equal(replica_new(0, &(struct replica *) { NULL }), -EINVAL);
}

/* ---- merge: two gateways ---- */

enum op_kind { SET, DEL, A2B, B2A, BOTH, END };

struct op {
        enum op_kind kind;
        int node;                             /* 0: A, 1: B */
        uint32_t peer;
        uint8_t val;
        uint64_t wall;
};

struct scenario {
        const char *name;
        struct op ops[12];
        int expect[4];                        /* peers 1..4: psk tag, or -1 absent */
};

#define BASE { SET, 0, 1, 1, 1000 }, { BOTH }

static const struct scenario scenarios[] = {
        { "different peers on each side: union",
          { BASE, { SET, 0, 2, 2, 2000 }, { SET, 1, 3, 3, 2001 }, { BOTH }, { END } },
          { 1, 2, 3, -1 } },
        { "same peer on both, B later",
          { BASE, { SET, 0, 1, 5, 2000 }, { SET, 1, 1, 6, 3000 }, { A2B }, { B2A }, { END } },
          { 6, -1, -1, -1 } },
        { "same peer on both, B later, other exchange order",
          { BASE, { SET, 0, 1, 5, 2000 }, { SET, 1, 1, 6, 3000 }, { B2A }, { A2B }, { END } },
          { 6, -1, -1, -1 } },
        { "same peer on both, A later",
          { BASE, { SET, 1, 1, 6, 2000 }, { SET, 0, 1, 5, 3000 }, { BOTH }, { END } },
          { 5, -1, -1, -1 } },
        { "removal on A after an edit on B: tombstone wins",
          { BASE, { SET, 1, 1, 7, 2000 }, { DEL, 0, 1, 0, 3000 }, { B2A }, { A2B }, { END } },
          { -1, -1, -1, -1 } },
        { "removal on A after an edit on B, other order",
          { BASE, { SET, 1, 1, 7, 2000 }, { DEL, 0, 1, 0, 3000 }, { A2B }, { B2A }, { END } },
          { -1, -1, -1, -1 } },
        { "removal, then a later re-add on the other side wins",
          { BASE, { DEL, 0, 1, 0, 2000 }, { SET, 1, 1, 8, 3000 }, { BOTH }, { END } },
          { 8, -1, -1, -1 } },
        { "removal seen, re-added later on the same side",
          { BASE, { DEL, 0, 1, 0, 2000 }, { A2B }, { SET, 1, 1, 9, 3000 }, { B2A }, { END } },
          { 9, -1, -1, -1 } },
        { "partition: both edited several peers",
          { BASE, { SET, 0, 2, 2, 2000 }, { SET, 1, 2, 3, 2500 }, { DEL, 1, 1, 0, 2600 }, { SET, 0, 3, 4, 2700 },
            { SET, 1, 4, 5, 2800 }, { SET, 0, 4, 6, 2900 }, { BOTH }, { END } },
          { -1, 3, 4, 6 } },
        { "an edit made after seeing a change wins even with a slow clock",
          { { SET, 0, 1, 1, 900000 }, { A2B }, { SET, 1, 1, 2, 10 }, { B2A }, { END } },
          { 2, -1, -1, -1 } },
};

static void run_op(struct node *n, const struct op *op) {
        if (op->kind == SET)
                dev_set(n[op->node].dev, op->peer, op->val);
        else
                dev_del(n[op->node].dev, op->peer);
        /* A node's first poll also records its device. */
        assert_in_range(poll(n[op->node].r, n[op->node].dev, op->wall, false), 1, 2);
}

static void test_merge_scenarios(void **state) {
        for (size_t s = 0; s < ELEMENTSOF(scenarios); s++) {
                struct node n[2];

                node_init(&n[0], NODE_A);
                node_init(&n[1], NODE_B);
                print_message("scenario: %s\n", scenarios[s].name);
                for (const struct op *op = scenarios[s].ops; op->kind != END; op++) {
                        switch (op->kind) {
                        case SET:
                        case DEL:
                                run_op(n, op);
                                break;
                        case A2B:
                                sync_all(&n[0], &n[1]);
                                break;
                        case B2A:
                                sync_all(&n[1], &n[0]);
                                break;
                        case BOTH:
                                sync_all(&n[0], &n[1]);
                                sync_all(&n[1], &n[0]);
                                break;
                        default:
                                fail();
                        }
                }
                for (int node = 0; node < 2; node++)
                        for (uint32_t p = 1; p <= 4; p++)
                                assert_int_equal(desired_val(n[node].r, p), scenarios[s].expect[p - 1]);
                assert_same_state(n[0].r, n[1].r);
                /* Converged: exchanging again changes nothing, and polling
                 * the applied devices issues nothing (the echo rule). */
                assert_int_equal(sync_all(&n[0], &n[1]), 0);
                assert_int_equal(sync_all(&n[1], &n[0]), 0);
                assert_int_equal(poll(n[0].r, n[0].dev, 5000000, false), 0);
                assert_int_equal(poll(n[1].r, n[1].dev, 5000000, false), 0);
                node_done(&n[0]);
                node_done(&n[1]);
        }
}

/* The same concurrent changes merged in every order give the same state. */
static void test_merge_order_independent(void **state) {
        struct node a, b;
        struct replica_changes ca = {}, cb = {};
        const struct replica_changes *orders[2][2] = { { &ca, &cb }, { &cb, &ca } };
        struct replica *results[2];

        node_init(&a, NODE_A);
        node_init(&b, NODE_B);
        dev_set(a.dev, 1, 1);
        dev_set(a.dev, 2, 2);
        dev_set(b.dev, 2, 3);
        dev_set(b.dev, 3, 4);
        assert_int_equal(poll(a.r, a.dev, 100, false), 3);
        assert_int_equal(poll(b.r, b.dev, 200, false), 3);
        dev_del(a.dev, 1);
        assert_int_equal(poll(a.r, a.dev, 300, false), 1);
        assert_int_equal(replica_changes_since(a.r, (struct hlc_ts) {}, &ca), 0);
        assert_int_equal(replica_changes_since(b.r, (struct hlc_ts) {}, &cb), 0);
        for (int o = 0; o < 2; o++) {
                assert_int_equal(replica_new(0x33, &results[o]), 0);
                assert_int_equal(replica_merge(results[o], orders[o][0], NULL), 0);
                assert_int_equal(replica_merge(results[o], orders[o][1], NULL), 0);
        }
        assert_same_state(results[0], results[1]);
        /* And the two nodes themselves. */
        assert_int_equal(replica_merge(a.r, &cb, NULL), 0);
        assert_int_equal(replica_merge(b.r, &ca, NULL), 0);
        assert_same_state(a.r, b.r);
        assert_same_state(a.r, results[0]);
        replica_free(results[0]);
        replica_free(results[1]);
        replica_changes_done(&ca);
        replica_changes_done(&cb);
        node_done(&a);
        node_done(&b);
}

static void test_merge_idempotent(void **state) {
        struct node a, b;
        struct replica_changes c = {}, applied = {};
        _cleanup_(freep) uint8_t *before = NULL, *after = NULL;
        size_t lb, la;

        node_init(&a, NODE_A);
        node_init(&b, NODE_B);
        dev_set(a.dev, 1, 1);
        dev_set(a.dev, 2, 2);
        assert_int_equal(poll(a.r, a.dev, 100, false), 3);
        assert_int_equal(replica_changes_since(a.r, (struct hlc_ts) {}, &c), 0);
        assert_int_equal(replica_merge(b.r, &c, &applied), 0);
        assert_int_equal(applied.n, 3);
        assert_true(replica_device_needs_apply(b.r, IF));
        replica_changes_done(&applied);
        encode(b.r, &before, &lb);
        assert_int_equal(replica_merge(b.r, &c, &applied), 0);
        assert_int_equal(applied.n, 0);
        encode(b.r, &after, &la);
        assert_int_equal(la, lb);
        assert_memory_equal(before, after, la);
        /* Duplicates inside one batch fold to the newest. */
        assert_int_equal(replica_changes_since(a.r, (struct hlc_ts) {}, &c), 0);
        assert_int_equal(c.n, 6);
        assert_int_equal(replica_merge(b.r, &c, &applied), 0);
        assert_int_equal(applied.n, 0);
        replica_changes_done(&c);
        node_done(&a);
        node_done(&b);
}

/* An edit of a few peers applied alone (hamgr peer add / remove) leaves
 * the replica exactly as a poll of the whole device with that edit would:
 * a changed peer, a new one, a removed one; a removal of a peer never
 * held, or a peer as it already is, changes nothing; the device record is
 * not touched; and like a poll it waits while merged changes wait. */
/* Append KEY's removal to EDIT, as hamgr peer remove makes it. */
static void edit_remove(struct wg_device *edit, const uint8_t key[static WG_KEY_LEN]) {
        struct wg_peer *p = wg_device_add_peer(edit);

        assert_non_null(p);
        memcpy(p->public_key, key, WG_KEY_LEN);
        p->flags = WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REMOVE_ME;
}

static void test_apply_local_peers(void **state) {
        struct replica *full = NULL, *part = NULL;
        _cleanup_(wg_device_freep) struct wg_device *dev = dev_new(), *edit = NULL, *one = NULL;
        struct replica_changes c = {};
        struct wg_peer *p;
        uint8_t k3[WG_KEY_LEN], k9[WG_KEY_LEN];
        size_t n_full;

        assert_int_equal(replica_new(NODE_A, &full), 0);
        assert_int_equal(replica_new(NODE_A, &part), 0);
        for (uint32_t id = 1; id <= 3; id++)
                dev_set(dev, id, (uint8_t) id);
        assert_int_equal(poll(full, dev, 100, false), 4);
        assert_int_equal(poll(part, dev, 100, false), 4);
        assert_same_state(full, part);

        /* The edit: peer 2 changed, peer 4 new, peer 3 gone. */
        dev_set(dev, 2, 9);
        dev_set(dev, 4, 4);
        dev_del(dev, 3);
        n_full = poll(full, dev, 200, false);
        assert_int_equal(n_full, 3);

        edit = dev_new();
        assert_int_equal(replica_peer_for(part, IF, dev_peer(dev, 2)->public_key, false, &one), 0);
        assert_int_equal(one->n_peers, 1);
        key_fill(one->peers[0].preshared_key, 0x5000 + 9, 9); /* as dev_set() tags it */
        p = wg_device_add_peer(edit);
        assert_non_null(p);
        *p = one->peers[0];
        one->peers[0].allowedips = NULL;
        one->peers[0].n_allowedips = 0;
        p = wg_device_add_peer(edit);
        assert_non_null(p);
        *p = *dev_peer(dev, 4);
        p->allowedips = calloc(1, sizeof(*p->allowedips));
        assert_non_null(p->allowedips);
        p->allowedips[0] = dev_peer(dev, 4)->allowedips[0];
        key_fill(k3, 3, 0x77);
        edit_remove(edit, k3);
        assert_int_equal(replica_apply_local_peers(part, IF, edit, 200, false, &c), 0);
        assert_int_equal(c.n, n_full);
        replica_changes_done(&c);
        assert_same_state(full, part);

        /* No change: the same edit again, a removal of a key never held. */
        assert_int_equal(replica_apply_local_peers(part, IF, edit, 300, false, &c), 0);
        assert_int_equal(c.n, 0);
        wg_device_free(edit);
        edit = dev_new();
        key_fill(k9, 99, 0x77);
        edit_remove(edit, k9);
        assert_int_equal(replica_apply_local_peers(part, IF, edit, 300, false, &c), 0);
        assert_int_equal(c.n, 0);
        one = wg_device_free(one);
        assert_int_equal(replica_peer_for(part, IF, k3, false, &one), 0);
        assert_int_equal(one->n_peers, 0); /* removed: not live */
        assert_same_state(full, part);

        /* A merge waiting for the device refuses a poll, which would take
         * the device from before it for local edits, but not an edit
         * hamgr made itself: it is known exactly, and its version, newer
         * than the merged one, wins when the state is written. */
        {
                struct replica *other = NULL;
                struct replica_changes all = {};
                _cleanup_(wg_device_freep) struct wg_device *mine = dev_new();

                assert_int_equal(replica_new(NODE_B, &other), 0);
                dev_set(dev, 5, 5);
                assert_int_equal(poll(other, dev, 400, false), 5);
                assert_int_equal(replica_changes_since(other, (struct hlc_ts) {}, &all), 0);
                assert_int_equal(replica_merge(part, &all, NULL), 0);
                assert_true(replica_device_needs_apply(part, IF));
                assert_int_equal(replica_apply_local_device(part, IF, dev, 500, false, &c), -EAGAIN);
                dev_set(mine, 5, 6);
                assert_int_equal(replica_apply_local_peers(part, IF, mine, 500, false, &c), 0);
                assert_int_equal(c.n, 1);
                replica_changes_done(&c);
                assert_true(replica_device_needs_apply(part, IF));
                one = wg_device_free(one);
                assert_int_equal(replica_peer_for(part, IF, dev_peer(mine, 5)->public_key, false, &one), 0);
                assert_int_equal(one->n_peers, 1);
                assert_memory_equal(one->peers[0].preshared_key, dev_peer(mine, 5)->preshared_key, WG_KEY_LEN);
                replica_changes_done(&all);
                replica_free(other);
        }
        replica_free(full);
        replica_free(part);
}

/* The generation moves with every change of the interface's state (a
 * local poll that found one, a merge that changed something) and with
 * nothing else (reads, an idle poll, a merge of what is held, the apply's
 * confirmation): an apply written beside the loop trusts it to tell
 * whether the state moved on meanwhile. */
static void test_device_generation(void **state) {
        struct node a, b;
        struct replica_changes c = {}, applied = {};
        _cleanup_(wg_device_freep) struct wg_device *d = NULL;
        uint64_t g;

        node_init(&a, NODE_A);
        node_init(&b, NODE_B);
        assert_int_equal(replica_device_generation(a.r, IF), 0);
        dev_set(a.dev, 1, 1);
        assert_int_equal(poll(a.r, a.dev, 100, false), 2);
        g = replica_device_generation(a.r, IF);
        assert_true(g > 0);
        assert_int_equal(poll(a.r, a.dev, 200, false), 0);
        assert_int_equal(replica_device_for(a.r, IF, false, &d), 0);
        assert_true(replica_peer_live(a.r, IF, d->peers[0].public_key));
        assert_int_equal(replica_device_generation(a.r, IF), g);
        dev_set(a.dev, 1, 2);
        assert_int_equal(poll(a.r, a.dev, 300, false), 1);
        assert_true(replica_device_generation(a.r, IF) > g);

        assert_int_equal(replica_changes_since(a.r, (struct hlc_ts) {}, &c), 0);
        assert_int_equal(replica_merge(b.r, &c, &applied), 0);
        g = replica_device_generation(b.r, IF);
        assert_true(g > 0);
        replica_changes_done(&applied);
        assert_int_equal(replica_device_applied(b.r, IF), 0);
        assert_int_equal(replica_merge(b.r, &c, &applied), 0);
        assert_int_equal(applied.n, 0);
        assert_int_equal(replica_device_generation(b.r, IF), g);
        replica_changes_done(&applied);
        replica_changes_done(&c);
        assert_int_equal(replica_device_generation(b.r, "other0"), 0);
        node_done(&a);
        node_done(&b);
}

/* Several versions of one peer in one batch, in either order: the newest
 * of each register wins. */
static void test_merge_batch_duplicates(void **state) {
        struct replica_rec recs[3] = {};
        struct replica_changes c = { recs, 3 };

        for (int i = 0; i < 3; i++) {
                recs[i].type = REPLICA_REC_PEER;
                strcpy(recs[i].ifname, IF);
                key_fill(recs[i].peer.public_key, 1, 0x77);
                recs[i].peer.preshared_key[31] = (uint8_t) (10 + i);
        }
        recs[0].peer.version = (struct hlc_ts) { 20, 0, NODE_A };
        recs[1].peer.version = (struct hlc_ts) { 10, 0, NODE_B };
        recs[2].peer.version = (struct hlc_ts) { 5, 0, NODE_B };
        recs[2].peer.endpoint_version = (struct hlc_ts) { 30, 0, NODE_B };
        recs[2].peer.endpoint.addr4.sin_family = AF_INET;
        recs[2].peer.endpoint.addr4.sin_port = htons(7);
        for (int order = 0; order < 2; order++) {
                _cleanup_(replica_freep) struct replica *r = NULL;
                _cleanup_(wg_device_freep) struct wg_device *d = NULL;

                if (order == 1) {
                        struct replica_rec t = recs[0];

                        recs[0] = recs[2];
                        recs[2] = t;
                }
                assert_int_equal(replica_new(NODE_A, &r), 0);
                assert_int_equal(replica_merge(r, &c, NULL), 0);
                assert_int_equal(replica_n_records(r), 1);
                assert_int_equal(desired_val(r, 1), 10);
                assert_int_equal(replica_device_for(r, IF, true, &d), 0);
                assert_int_equal(ntohs(d->peers[0].endpoint.addr4.sin_port), 7);
        }
}

/* A node that was down through a removal replays its old records: the
 * tombstone beats them, on both sides, and the peer stays gone. */
static void test_tombstone_beats_stale_node(void **state) {
        struct node a, b;
        struct replica_changes stale = {}, applied = {};

        node_init(&a, NODE_A);
        node_init(&b, NODE_B);
        dev_set(a.dev, 1, 1);
        assert_int_equal(poll(a.r, a.dev, 100, false), 2);
        sync_all(&a, &b);
        assert_int_equal(replica_changes_since(b.r, (struct hlc_ts) {}, &stale), 0);
        dev_del(a.dev, 1);
        assert_int_equal(poll(a.r, a.dev, 200, false), 1);
        assert_int_equal(replica_merge(a.r, &stale, &applied), 0);
        assert_int_equal(applied.n, 0);
        assert_int_equal(desired_val(a.r, 1), -1);
        sync_all(&a, &b);
        assert_int_equal(desired_val(b.r, 1), -1);
        assert_int_equal(replica_merge(b.r, &stale, &applied), 0);
        assert_int_equal(applied.n, 0);
        assert_int_equal(desired_val(b.r, 1), -1);
        assert_null(dev_peer(b.dev, 1));
        assert_int_equal(poll(b.r, b.dev, 300, false), 0);
        replica_changes_done(&stale);
        node_done(&a);
        node_done(&b);
}

/* The echo rule: remote changes, applied to the device and observed back
 * with the local-only noise a backend adds, produce no local version. */
static void test_echo_rule(void **state) {
        struct node a, b;
        struct replica_changes c = {}, applied = {};
        _cleanup_(freep) uint8_t *before = NULL, *after = NULL;
        size_t lb, la;
        struct wg_peer *p;

        node_init(&a, NODE_A);
        node_init(&b, NODE_B);
        dev_set(b.dev, 9, 9); /* B had its own peer, replicated before */
        assert_int_equal(poll(b.r, b.dev, 50, false), 2);
        sync_all(&b, &a);
        dev_set(a.dev, 1, 1);
        dev_set(a.dev, 2, 2);
        dev_del(a.dev, 9);
        a.dev->fwmark = 7;
        assert_int_equal(poll(a.r, a.dev, 100, false), 4);
        assert_int_equal(replica_changes_since(a.r, replica_max_version(b.r, NODE_A), &c), 0);
        assert_int_equal(c.n, 4);
        assert_int_equal(replica_merge(b.r, &c, &applied), 0);
        assert_int_equal(applied.n, 4);
        replica_changes_done(&c);
        replica_changes_done(&applied);

        /* Not applied yet: the old device must not look like local edits. */
        assert_int_equal(replica_apply_local_device(b.r, IF, b.dev, 200, false, NULL), -EAGAIN);
        node_apply(&b);
        assert_false(replica_device_needs_apply(b.r, IF));
        assert_non_null(dev_peer(b.dev, 1));
        assert_null(dev_peer(b.dev, 9));
        assert_int_equal(b.dev->fwmark, 7);

        encode(b.r, &before, &lb);
        for (size_t i = 0; i < b.dev->n_peers; i++) {
                p = &b.dev->peers[i];
                p->rx_bytes = 1000 + i;
                p->last_handshake_time_sec = 1700000000;
                p->flags |= WG_PEER_HAS_ENDPOINT;
                p->endpoint.addr4.sin_family = AF_INET;
                p->endpoint.addr4.sin_port = htons((uint16_t) (3000 + i));
        }
        assert_int_equal(poll(b.r, b.dev, 300, false), 0);
        encode(b.r, &after, &la);
        assert_int_equal(la, lb);
        assert_memory_equal(before, after, la);
        node_done(&a);
        node_done(&b);
}

/* ---- revocation across restarts, bootstrap ---- */

/* What the daemon does at start-up and while bootstrapping: write the
 * desired device, but keep device peers the replica has never seen (added
 * while hamgr was not running); tombstoned ones go. */
static void node_apply_keep_unknown(struct node *n) {
        struct wg_device *d = NULL;

        assert_int_equal(replica_device_for(n->r, IF, false, &d), 0);
        for (size_t i = 0; i < n->dev->n_peers; i++) {
                const struct wg_peer *o = &n->dev->peers[i];
                struct wg_peer *p;
                bool known = false;

                for (size_t k = 0; k < d->n_peers; k++)
                        known |= memcmp(d->peers[k].public_key, o->public_key, WG_KEY_LEN) == 0;
                if (known || replica_peer_removed(n->r, IF, o->public_key))
                        continue;
                p = wg_device_add_peer(d);
                assert_non_null(p);
                *p = *o;
                p->allowedips = NULL;
                p->n_allowedips = 0;
                for (size_t a = 0; a < o->n_allowedips; a++)
                        assert_int_equal(wg_peer_add_allowedip(p, &o->allowedips[a]), 0);
        }
        wg_device_sort(d);
        wg_device_free(n->dev);
        n->dev = d;
        assert_int_equal(replica_device_applied(n->r, IF), 0);
}

static struct wg_device *dev_copy(const struct wg_device *src) {
        struct wg_device *d = dev_new();

        for (size_t i = 0; i < src->n_peers; i++) {
                struct wg_peer *p = wg_device_add_peer(d);

                assert_non_null(p);
                *p = src->peers[i];
                p->allowedips = NULL;
                p->n_allowedips = 0;
                for (size_t a = 0; a < src->peers[i].n_allowedips; a++)
                        assert_int_equal(wg_peer_add_allowedip(p, &src->peers[i].allowedips[a]), 0);
        }
        return d;
}

/* B restarts from a state that holds peer 1's tombstone, on a device
 * recreated from an old configuration that still lists peer 1. */
static void test_restart_drops_tombstoned_peer(void **state) {
        struct node a, b;
        _cleanup_(freep) uint8_t *buf = NULL;
        struct wg_device *old_conf;
        uint8_t k1[WG_KEY_LEN], k2[WG_KEY_LEN], k3[WG_KEY_LEN];
        size_t len;

        key_fill(k1, 1, 0x77);
        key_fill(k2, 2, 0x77);
        key_fill(k3, 3, 0x77);
        node_init(&a, NODE_A);
        node_init(&b, NODE_B);
        dev_set(a.dev, 1, 1);
        dev_set(a.dev, 2, 2);
        assert_int_equal(poll(a.r, a.dev, 1000, false), 3);
        sync_all(&a, &b);
        old_conf = dev_copy(b.dev);
        dev_del(a.dev, 1);
        assert_int_equal(poll(a.r, a.dev, 2000, false), 1);
        sync_all(&a, &b);
        assert_null(dev_peer(b.dev, 1));

        /* B stops; its device comes back from the old configuration, with
         * a peer added by hand while hamgr was down. */
        encode(b.r, &buf, &len);
        replica_free(b.r);
        assert_int_equal(replica_decode(buf, len, NODE_B, &b.r, NULL), 0);
        wg_device_free(b.dev);
        b.dev = old_conf;
        dev_set(b.dev, 3, 3);
        assert_true(replica_peer_removed(b.r, IF, k1));
        assert_false(replica_peer_removed(b.r, IF, k2));
        assert_false(replica_peer_removed(b.r, IF, k3));
        assert_false(replica_peer_removed(b.r, "wg9", k1));

        /* Start-up: tombstoned peers leave the device, unknown ones stay;
         * the first poll versions only the unknown one, at a wall time
         * behind A's, and the removal holds on both nodes. */
        node_apply_keep_unknown(&b);
        assert_null(dev_peer(b.dev, 1));
        assert_non_null(dev_peer(b.dev, 2));
        assert_non_null(dev_peer(b.dev, 3));
        assert_int_equal(poll(b.r, b.dev, 500, false), 1);
        sync_all(&b, &a);
        assert_int_equal(desired_val(a.r, 1), -1);
        assert_int_equal(desired_val(a.r, 3), 3);
        assert_true(replica_peer_removed(a.r, IF, k1));
        assert_same_state(a.r, b.r);
        node_done(&a);
        node_done(&b);
}

/* Why start-up must not version what it finds: a poll of the recreated
 * device gives the revoked peer a version newer than its tombstone. */
static void test_stale_device_poll_resurrects(void **state) {
        struct node a, b;
        struct wg_device *old_conf;

        node_init(&a, NODE_A);
        node_init(&b, NODE_B);
        dev_set(a.dev, 1, 1);
        assert_int_equal(poll(a.r, a.dev, 1000, false), 2);
        sync_all(&a, &b);
        old_conf = dev_copy(b.dev);
        dev_del(a.dev, 1);
        assert_int_equal(poll(a.r, a.dev, 2000, false), 1);
        sync_all(&a, &b);
        wg_device_free(b.dev);
        b.dev = old_conf;
        assert_int_equal(poll(b.r, b.dev, 3000, false), 1);
        sync_all(&b, &a);
        assert_int_equal(desired_val(a.r, 1), 1);
        node_done(&a);
        node_done(&b);
}

/* B lost its state: it versions nothing until it merged A's full state,
 * which removes the revoked peer from its device; then its own additions
 * replicate. */
static void test_bootstrap_waits_for_full_state(void **state) {
        struct node a, b;
        struct replica_changes c = {}, applied = {};
        uint8_t k1[WG_KEY_LEN];

        key_fill(k1, 1, 0x77);
        node_init(&a, NODE_A);
        node_init(&b, NODE_B);
        dev_set(a.dev, 1, 1);
        dev_set(a.dev, 2, 2);
        assert_int_equal(poll(a.r, a.dev, 10000, false), 3);
        dev_del(a.dev, 1);
        assert_int_equal(poll(a.r, a.dev, 20000, false), 1);

        /* B: fresh replica, device with the revoked peer 1, the live peer
         * 2 and peer 3 that A never saw. Its wall clock is behind A's. */
        replica_bootstrap_begin(b.r);
        assert_true(replica_bootstrapping(b.r));
        assert_false(replica_bootstrapping(a.r));
        dev_set(b.dev, 1, 1);
        dev_set(b.dev, 2, 2);
        dev_set(b.dev, 3, 3);
        for (uint64_t t = 100; t <= 400; t += 100) {
                assert_int_equal(replica_apply_local_device(b.r, IF, b.dev, t, false, &c), -EAGAIN);
                assert_int_equal(c.n, 0);
        }
        assert_int_equal(replica_n_records(b.r), 0);
        /* B's own (empty) catch-up to A changes nothing there. */
        assert_int_equal(sync_all(&b, &a), 0);

        /* A's full state: merged while bootstrapping, applied without
         * dropping peer 3, which the merge does not know. */
        assert_int_equal(replica_changes_since(a.r, (struct hlc_ts) {}, &c), 0);
        assert_int_equal(replica_merge(b.r, &c, &applied), 0);
        assert_int_equal(applied.n, 3);
        replica_changes_done(&c);
        replica_changes_done(&applied);
        assert_true(replica_peer_removed(b.r, IF, k1));
        assert_int_equal(replica_apply_local_device(b.r, IF, b.dev, 500, false, NULL), -EAGAIN);
        node_apply_keep_unknown(&b);
        assert_null(dev_peer(b.dev, 1));
        assert_non_null(dev_peer(b.dev, 3));
        assert_int_equal(replica_apply_local_device(b.r, IF, b.dev, 600, false, NULL), -EAGAIN);

        replica_bootstrap_end(b.r);
        assert_false(replica_bootstrapping(b.r));
        assert_int_equal(poll(b.r, b.dev, 700, false), 1);
        assert_int_equal(poll(b.r, b.dev, 800, false), 0);
        sync_all(&b, &a);
        assert_int_equal(desired_val(a.r, 1), -1);
        assert_int_equal(desired_val(a.r, 2), 2);
        assert_int_equal(desired_val(a.r, 3), 3);
        assert_same_state(a.r, b.r);
        node_done(&a);
        node_done(&b);
}

/* Two nodes without state: neither can give the other a full state; once
 * both gave up waiting, their devices merge into one state. */
static void test_bootstrap_fresh_pair_converges(void **state) {
        struct node a, b;

        node_init(&a, NODE_A);
        node_init(&b, NODE_B);
        replica_bootstrap_begin(a.r);
        replica_bootstrap_begin(b.r);
        dev_set(a.dev, 1, 1);
        dev_set(b.dev, 2, 2);
        assert_int_equal(replica_apply_local_device(a.r, IF, a.dev, 100, false, NULL), -EAGAIN);
        assert_int_equal(replica_apply_local_device(b.r, IF, b.dev, 100, false, NULL), -EAGAIN);
        assert_int_equal(sync_all(&a, &b), 0);
        assert_int_equal(sync_all(&b, &a), 0);

        replica_bootstrap_end(a.r);
        assert_int_equal(poll(a.r, a.dev, 5000, false), 2);
        sync_all(&a, &b); /* B still waits: A's records apply, B's peer 2 stays */
        assert_int_equal(replica_apply_local_device(b.r, IF, b.dev, 5100, false, NULL), -EAGAIN);
        replica_bootstrap_end(b.r);
        assert_int_equal(poll(b.r, b.dev, 5200, false), 0);
        dev_set(b.dev, 2, 2);
        assert_int_equal(poll(b.r, b.dev, 5300, false), 1);
        sync_all(&b, &a);
        assert_int_equal(desired_val(a.r, 1), 1);
        assert_int_equal(desired_val(a.r, 2), 2);
        assert_int_equal(desired_val(b.r, 1), 1);
        assert_same_state(a.r, b.r);
        node_done(&a);
        node_done(&b);
}

static void set_endpoint(struct wg_peer *p, const char *s) {
        union wg_endpoint e;

        assert_int_equal(wg_endpoint_parse(s, &e), 0);
        p->endpoint = e;
        p->flags |= WG_PEER_HAS_ENDPOINT;
}

static void test_endpoints_from_master_only(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *want = NULL;
        struct node a, b;
        struct replica_changes c = {};
        char buf[64];

        node_init(&a, NODE_A);
        node_init(&b, NODE_B);
        dev_set(a.dev, 1, 1);
        set_endpoint(dev_peer(a.dev, 1), "198.51.100.1:4000");
        /* Backup: the endpoint stays local. */
        assert_int_equal(poll(a.r, a.dev, 100, false), 2);
        assert_int_equal(replica_device_for(a.r, IF, true, &want), 0);
        assert_false(dev_peer(want, 1)->flags & WG_PEER_HAS_ENDPOINT);
        want = wg_device_free(want);
        /* Master: the endpoint is learned, with its own version. */
        assert_int_equal(replica_apply_local_device(a.r, IF, a.dev, 200, true, &c), 0);
        assert_int_equal(c.n, 1);
        assert_false(hlc_ts_is_zero(c.recs[0].peer.endpoint_version));
        assert_true(hlc_compare(c.recs[0].peer.endpoint_version, c.recs[0].peer.version) > 0);
        replica_changes_done(&c);
        assert_int_equal(poll(a.r, a.dev, 201, true), 0);
        set_endpoint(dev_peer(a.dev, 1), "[2001:db8::5]:4001");
        assert_int_equal(poll(a.r, a.dev, 202, true), 1);

        sync_all(&a, &b);
        assert_int_equal(replica_device_for(b.r, IF, true, &want), 0);
        assert_true(dev_peer(want, 1)->flags & WG_PEER_HAS_ENDPOINT);
        assert_string_equal(wg_endpoint_to_string(&dev_peer(want, 1)->endpoint, buf, sizeof(buf)),
                            "[2001:db8::5]:4001");
        want = wg_device_free(want);

        /* B, a backup, sees another endpoint: not replicated. */
        set_endpoint(dev_peer(b.dev, 1), "203.0.113.9:9");
        assert_int_equal(poll(b.r, b.dev, 300, false), 0);
        /* An endpoint change does not bump the peer's main version: a
         * concurrent key change on the other node still wins. */
        dev_set(b.dev, 1, 4);
        assert_int_equal(poll(b.r, b.dev, 400, false), 1);
        set_endpoint(dev_peer(a.dev, 1), "198.51.100.2:4002");
        assert_int_equal(poll(a.r, a.dev, 500, true), 1);
        sync_all(&a, &b);
        sync_all(&b, &a);
        assert_same_state(a.r, b.r);
        assert_int_equal(desired_val(a.r, 1), 4);
        assert_int_equal(replica_device_for(a.r, IF, true, &want), 0);
        assert_string_equal(wg_endpoint_to_string(&dev_peer(want, 1)->endpoint, buf, sizeof(buf)),
                            "198.51.100.2:4002");
        node_done(&a);
        node_done(&b);
}

/* The wall-clock part of an endpoint's version is when the master saw it:
 * a passive node compares it with endpoints it learnt itself. */
static void test_endpoint_version(void **state) {
        _cleanup_(replica_freep) struct replica *r = NULL;
        _cleanup_(wg_device_freep) struct wg_device *d = dev_new();
        uint8_t k1[WG_KEY_LEN], k2[WG_KEY_LEN], k9[WG_KEY_LEN];

        key_fill(k1, 1, 0x77);
        key_fill(k2, 2, 0x77);
        key_fill(k9, 9, 0x77);
        assert_int_equal(replica_new(NODE_A, &r), 0);
        assert_true(hlc_ts_is_zero(replica_endpoint_version(r, IF, k1)));
        dev_set(d, 1, 1);
        dev_set(d, 2, 2);
        set_endpoint(dev_peer(d, 1), "198.51.100.1:4000");
        assert_int_equal(poll(r, d, 1000, true), 3);
        assert_int_equal(replica_endpoint_version(r, IF, k1).wall_ms, 1000);
        assert_int_equal(replica_endpoint_version(r, IF, k1).node, NODE_A);
        /* No endpoint, no such peer, no such interface: zero. */
        assert_true(hlc_ts_is_zero(replica_endpoint_version(r, IF, k2)));
        assert_true(hlc_ts_is_zero(replica_endpoint_version(r, IF, k9)));
        assert_true(hlc_ts_is_zero(replica_endpoint_version(r, "wg1", k1)));
        /* Unchanged: the version stays; moved: a new one. */
        assert_int_equal(poll(r, d, 2000, true), 0);
        assert_int_equal(replica_endpoint_version(r, IF, k1).wall_ms, 1000);
        set_endpoint(dev_peer(d, 1), "198.51.100.1:4001");
        assert_int_equal(poll(r, d, 3000, true), 1);
        assert_int_equal(replica_endpoint_version(r, IF, k1).wall_ms, 3000);
        /* A removed peer has none. */
        dev_del(d, 1);
        assert_int_equal(poll(r, d, 4000, true), 1);
        assert_true(hlc_ts_is_zero(replica_endpoint_version(r, IF, k1)));
}

/* fe80::5 on link 1 and on link 2 are two hosts: a move between them is an
 * endpoint change, and the scope is what is replicated. */
static void test_endpoint_scope_is_a_change(void **state) {
        _cleanup_(wg_device_freep) struct wg_device *want = NULL;
        struct node a, b;

        node_init(&a, NODE_A);
        node_init(&b, NODE_B);
        dev_set(a.dev, 1, 1);
        set_endpoint(dev_peer(a.dev, 1), "[fe80::5%1]:4001");
        assert_int_equal(poll(a.r, a.dev, 100, true), 2);
        assert_int_equal(poll(a.r, a.dev, 101, true), 0);
        set_endpoint(dev_peer(a.dev, 1), "[fe80::5%2]:4001");
        assert_int_equal(poll(a.r, a.dev, 102, true), 1);
        sync_all(&a, &b);
        assert_int_equal(replica_device_for(b.r, IF, true, &want), 0);
        assert_int_equal(dev_peer(want, 1)->endpoint.addr6.sin6_scope_id, 2);
        node_done(&a);
        node_done(&b);
}

static void test_device_for(void **state) {
        _cleanup_(replica_freep) struct replica *r = NULL;
        _cleanup_(wg_device_freep) struct wg_device *d = dev_new(), *want = NULL;

        assert_int_equal(replica_new(NODE_A, &r), 0);
        assert_int_equal(replica_device_for(r, IF, false, &want), -ENOENT);
        dev_set(d, 2, 2);
        dev_set(d, 1, 1);
        dev_set(d, 3, 3);
        d->fwmark = 9;
        assert_int_equal(poll(r, d, 100, false), 4);
        dev_del(d, 2);
        assert_int_equal(poll(r, d, 101, false), 1);
        assert_int_equal(replica_device_for(r, IF, false, &want), 0);
        assert_string_equal(want->name, IF);
        assert_int_equal(want->n_peers, 2);
        assert_true(memcmp(want->peers[0].public_key, want->peers[1].public_key, WG_KEY_LEN) < 0);
        assert_int_equal(want->flags & WG_DEVICE_HAS_PRIVATE_KEY, WG_DEVICE_HAS_PRIVATE_KEY);
        assert_memory_equal(want->private_key, d->private_key, WG_KEY_LEN);
        assert_int_equal(want->fwmark, 9);
        assert_int_equal(want->listen_port, 51820);
        assert_true(want->peers[0].flags & WG_PEER_HAS_PRESHARED_KEY);
        assert_true(want->peers[0].flags & WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL);
        assert_int_equal(want->peers[0].n_allowedips, 1);
        assert_int_equal(replica_device_applied(r, "nope"), -ENOENT);
}

static void test_changes_since(void **state) {
        _cleanup_(replica_freep) struct replica *r = NULL;
        _cleanup_(wg_device_freep) struct wg_device *d = dev_new();
        struct replica_changes all = {}, later = {};
        struct hlc_ts mark, prev = {};

        assert_int_equal(replica_new(NODE_A, &r), 0);
        dev_set(d, 1, 1);
        dev_set(d, 2, 2);
        assert_int_equal(poll(r, d, 100, false), 3);
        mark = replica_max_version(r, NODE_A);
        assert_int_equal(mark.node, NODE_A);
        assert_true(hlc_ts_is_zero(replica_max_version(r, NODE_B)));
        dev_set(d, 2, 5);
        assert_int_equal(poll(r, d, 200, false), 1);
        dev_del(d, 1);
        assert_int_equal(poll(r, d, 300, false), 1);

        assert_int_equal(replica_changes_since(r, (struct hlc_ts) {}, &all), 0);
        assert_int_equal(all.n, 3);
        for (size_t i = 0; i < all.n; i++) {
                struct hlc_ts v = all.recs[i].type == REPLICA_REC_PEER ? all.recs[i].peer.version
                                                                        : all.recs[i].device.version;

                assert_true(hlc_compare(v, prev) >= 0);
                prev = v;
        }
        assert_int_equal(replica_changes_since(r, mark, &later), 0);
        assert_int_equal(later.n, 2);
        assert_int_equal(later.recs[0].peer.preshared_key[31], 5);
        assert_true(later.recs[1].peer.deleted);
        replica_changes_done(&later);
        assert_int_equal(replica_changes_since(r, replica_max_version(r, NODE_A), &later), 0);
        assert_int_equal(later.n, 0);
        replica_changes_done(&all);
}

/* ---- what another node may send ---- */

#define NOW UINT64_C(1700000000000)

/* A live peer record of key ID, main version V, no endpoint. */
static struct replica_rec peer_rec(uint32_t id, struct hlc_ts v) {
        struct replica_rec rec = { .type = REPLICA_REC_PEER, .ifname = IF };

        key_fill(rec.peer.public_key, id, 0x77);
        rec.peer.version = v;
        return rec;
}

static void rec_endpoint(struct replica_rec *rec, const char *ep, struct hlc_ts v) {
        union wg_endpoint e;

        assert_int_equal(wg_endpoint_parse(ep, &e), 0);
        rec->peer.endpoint = e;
        rec->peer.endpoint_version = v;
}

/* Merge RECS as a batch SENDER sent at our wall time NOW_MS; C is the
 * other configured node it may relay for. */
static int merge_from(struct replica *r, struct replica_rec *recs, size_t n, uint64_t sender, uint64_t now_ms,
                      int64_t offset_ms, const char **why) {
        static const uint64_t relay[] = { NODE_C };
        struct replica_changes c = { recs, n };
        struct replica_source src = {
                .sender = sender, .relay = relay, .n_relay = 1, .now_ms = now_ms, .offset_ms = offset_ms,
        };

        *why = NULL;
        return replica_merge_from(r, &c, &src, NULL, why);
}

/* The refused batch changed nothing: no record, and the clock was not
 * moved (the next local version is at our own wall time). */
static void assert_untouched(struct replica *r, uint64_t now_ms) {
        _cleanup_(wg_device_freep) struct wg_device *d = dev_new();
        struct replica_changes c = {};

        assert_int_equal(replica_n_records(r), 0);
        assert_int_equal(replica_apply_local_device(r, IF, d, now_ms, false, &c), 0);
        assert_int_equal(c.n, 1);
        assert_int_equal(c.recs[0].device.version.wall_ms, now_ms);
        assert_int_equal(c.recs[0].device.version.logical, 0);
        replica_changes_done(&c);
}

static void test_merge_from_future(void **state) {
        const char *why;
        struct replica_rec rec;
        uint64_t lim = NOW + REPLICA_FUTURE_TOLERANCE_MS;

        /* Within the tolerance of our own clock: accepted. */
        {
                _cleanup_(replica_freep) struct replica *r = NULL;

                assert_int_equal(replica_new(NODE_B, &r), 0);
                rec = peer_rec(1, (struct hlc_ts) { lim, UINT16_MAX, NODE_A });
                assert_int_equal(merge_from(r, &rec, 1, NODE_A, NOW, 0, &why), 0);
                assert_int_equal(replica_n_records(r), 1);
        }
        /* One millisecond further: the batch is refused whole, the good
         * record in it too, and the clock did not move. */
        {
                _cleanup_(replica_freep) struct replica *r = NULL;
                struct replica_rec recs[2] = {
                        peer_rec(1, (struct hlc_ts) { NOW, 0, NODE_A }),
                        peer_rec(2, (struct hlc_ts) { lim + 1, 0, NODE_A }),
                };

                assert_int_equal(replica_new(NODE_B, &r), 0);
                assert_int_equal(merge_from(r, recs, 2, NODE_A, NOW, 0, &why), -EPERM);
                assert_string_equal(why, "version too far in the future");
                assert_untouched(r, NOW);
        }
        /* The end of time, the old way to lock a record: refused. */
        {
                _cleanup_(replica_freep) struct replica *r = NULL;

                assert_int_equal(replica_new(NODE_B, &r), 0);
                rec = peer_rec(1, (struct hlc_ts) { HLC_WALL_MAX, UINT16_MAX, NODE_A });
                assert_int_equal(merge_from(r, &rec, 1, NODE_A, NOW, 0, &why), -EPERM);
                assert_untouched(r, NOW);
        }
        /* An endpoint register is bounded like the main one. */
        {
                _cleanup_(replica_freep) struct replica *r = NULL;

                assert_int_equal(replica_new(NODE_B, &r), 0);
                rec = peer_rec(1, (struct hlc_ts) { NOW, 0, NODE_A });
                rec_endpoint(&rec, "198.51.100.1:4000", (struct hlc_ts) { lim + 1, 0, NODE_A });
                assert_int_equal(merge_from(r, &rec, 1, NODE_A, NOW, 0, &why), -EPERM);
                assert_string_equal(why, "version too far in the future");
                assert_untouched(r, NOW);
        }
        /* A sender whose clock is ahead: its offset widens the bound... */
        {
                _cleanup_(replica_freep) struct replica *r = NULL;

                assert_int_equal(replica_new(NODE_B, &r), 0);
                rec = peer_rec(1, (struct hlc_ts) { lim + 60000, 0, NODE_A });
                assert_int_equal(merge_from(r, &rec, 1, NODE_A, NOW, 59999, &why), -EPERM);
                assert_int_equal(merge_from(r, &rec, 1, NODE_A, NOW, 60000, &why), 0);
        }
        /* ... but only up to REPLICA_OFFSET_MAX_MS, whatever it claims
         * in its heartbeats; and a clock behind counts as ours. */
        assert_int_equal(replica_future_limit(NOW, INT64_MAX), lim + REPLICA_OFFSET_MAX_MS);
        assert_int_equal(replica_future_limit(NOW, REPLICA_OFFSET_MAX_MS + 1), lim + REPLICA_OFFSET_MAX_MS);
        assert_int_equal(replica_future_limit(NOW, -3600000), lim);
        assert_int_equal(replica_future_limit(NOW, INT64_MIN), lim);
        assert_int_equal(replica_future_limit(UINT64_MAX, INT64_MAX), HLC_WALL_MAX);
        {
                _cleanup_(replica_freep) struct replica *r = NULL;

                assert_int_equal(replica_new(NODE_B, &r), 0);
                rec = peer_rec(1, (struct hlc_ts) { lim + REPLICA_OFFSET_MAX_MS + 1, 0, NODE_A });
                assert_int_equal(merge_from(r, &rec, 1, NODE_A, NOW, INT64_MAX, &why), -EPERM);
                rec.peer.version.wall_ms = lim + 1;
                assert_int_equal(merge_from(r, &rec, 1, NODE_A, NOW, -5000, &why), -EPERM);
        }
}

/* B's clock is eight seconds ahead of A's; A merges B's edit, then edits
 * the same peer: its version carries B's time, further ahead of A's own
 * clock than the tolerance allows from A's offset alone (-8 s), and B must
 * still take it, or an edit after a merge would never come back. */
static void test_merge_from_carries_our_time(void **state) {
        struct node a, b;
        struct replica_changes c = {}, applied = {};
        const char *why;

        node_init(&a, NODE_A);
        node_init(&b, NODE_B);
        dev_set(b.dev, 1, 1);
        assert_int_equal(replica_apply_local_device(b.r, IF, b.dev, NOW + 8000, false, &c), 0);
        assert_int_equal(merge_from(a.r, c.recs, c.n, NODE_B, NOW, 8000, &why), 0);
        replica_changes_done(&c);
        node_apply(&a);
        dev_set(a.dev, 1, 2);
        assert_int_equal(replica_apply_local_device(a.r, IF, a.dev, NOW + 1, false, &c), 0);
        assert_int_equal(c.n, 1);
        assert_true(c.recs[0].peer.version.wall_ms >= NOW + 8000);
        assert_true(8000 > REPLICA_FUTURE_TOLERANCE_MS);
        assert_int_equal(replica_merge_from(b.r, &c, &(struct replica_source) {
                .sender = NODE_A, .now_ms = NOW + 8000, .offset_ms = -8000 }, &applied, &why), 0);
        assert_int_equal(applied.n, 1);
        replica_changes_done(&applied);
        replica_changes_done(&c);
        node_done(&a);
        node_done(&b);
}

static void test_merge_from_writers(void **state) {
        const char *why;
        struct replica_rec rec;

        /* A writer that is not a configured node: refused, also when it
         * only wrote the endpoint register. */
        {
                _cleanup_(replica_freep) struct replica *r = NULL;

                assert_int_equal(replica_new(NODE_B, &r), 0);
                rec = peer_rec(1, (struct hlc_ts) { NOW, 0, NODE_X });
                assert_int_equal(merge_from(r, &rec, 1, NODE_A, NOW, 0, &why), -EPERM);
                assert_string_equal(why, "record written by a node the sender may not write for");
                rec = peer_rec(1, (struct hlc_ts) { NOW, 0, NODE_A });
                rec_endpoint(&rec, "198.51.100.1:4000", (struct hlc_ts) { NOW, 1, NODE_X });
                assert_int_equal(merge_from(r, &rec, 1, NODE_A, NOW, 0, &why), -EPERM);
                assert_string_equal(why, "record written by a node the sender may not write for");
                assert_untouched(r, NOW);
        }
        /* The sender's own, relayed from another configured node, and ours
         * coming back: accepted. */
        {
                _cleanup_(replica_freep) struct replica *r = NULL;
                struct replica_rec recs[3] = {
                        peer_rec(1, (struct hlc_ts) { NOW, 0, NODE_A }),
                        peer_rec(2, (struct hlc_ts) { NOW, 0, NODE_C }),
                        peer_rec(3, (struct hlc_ts) { NOW, 0, NODE_B }),
                };

                assert_int_equal(replica_new(NODE_B, &r), 0);
                rec_endpoint(&recs[0], "198.51.100.1:4000", (struct hlc_ts) { NOW, 1, NODE_C });
                assert_int_equal(merge_from(r, recs, 3, NODE_A, NOW, 0, &why), 0);
                assert_int_equal(replica_n_records(r), 3);
        }
        /* A node no longer configured left records we hold: they may keep
         * travelling (a relayed update of them too), but only those. */
        {
                _cleanup_(replica_freep) struct replica *r = NULL;
                struct replica_changes c = { &rec, 1 };

                assert_int_equal(replica_new(NODE_B, &r), 0);
                rec = peer_rec(1, (struct hlc_ts) { NOW - 10, 0, NODE_X });
                assert_int_equal(replica_merge(r, &c, NULL), 0); /* from our own state file */
                rec = peer_rec(2, (struct hlc_ts) { NOW, 0, NODE_X });
                assert_int_equal(merge_from(r, &rec, 1, NODE_A, NOW, 0, &why), 0);
                assert_int_equal(replica_n_records(r), 2);
                rec = peer_rec(3, (struct hlc_ts) { NOW, 0, NODE_X - 1 });
                assert_int_equal(merge_from(r, &rec, 1, NODE_A, NOW, 0, &why), -EPERM);
                assert_int_equal(replica_n_records(r), 2);
        }
        /* Without a relay list, a sender writes only for itself (and us). */
        {
                _cleanup_(replica_freep) struct replica *r = NULL;
                struct replica_changes c = { &rec, 1 };

                assert_int_equal(replica_new(NODE_B, &r), 0);
                rec = peer_rec(1, (struct hlc_ts) { NOW, 0, NODE_C });
                assert_int_equal(replica_merge_from(r, &c, &(struct replica_source) {
                        .sender = NODE_A, .now_ms = NOW }, NULL, &why), -EPERM);
                assert_int_equal(replica_merge_from(r, &c, &(struct replica_source) {
                        .sender = NODE_C, .now_ms = NOW }, NULL, &why), 0);
                assert_int_equal(replica_merge_from(r, &c, &(struct replica_source) {
                        .sender = 0, .now_ms = NOW }, NULL, &why), -EINVAL);
        }
}

static void test_merge_from_endpoints(void **state) {
        static const struct {
                const char *ep, *why;
        } bad[] = {
                { "0.0.0.0:51820", "endpoint address is unspecified" },
                { "0.1.2.3:51820", "endpoint address is unspecified" },
                { "127.0.0.1:51820", "endpoint address is loopback" },
                { "127.255.0.9:51820", "endpoint address is loopback" },
                { "224.0.0.1:51820", "endpoint address is multicast" },
                { "239.255.255.250:51820", "endpoint address is multicast" },
                { "255.255.255.255:51820", "endpoint address is broadcast" },
                { "198.51.100.1:0", "endpoint port is 0" },
                { "[::]:51820", "endpoint address is unspecified" },
                { "[::1]:51820", "endpoint address is loopback" },
                { "[ff02::1]:51820", "endpoint address is multicast" },
                { "[::ffff:127.0.0.1]:51820", "endpoint address is loopback" },
                { "[::ffff:0.0.0.0]:51820", "endpoint address is unspecified" },
                { "[::ffff:224.1.2.3]:51820", "endpoint address is multicast" },
                { "[2001:db8::1]:0", "endpoint port is 0" },
        };
        static const char *const good[] = {
                "198.51.100.1:51820", "1.0.0.0:1", "223.255.255.255:65535", "[2001:db8::1]:51820",
                "[::ffff:198.51.100.7]:51820", "[::2]:1",
        };
        const char *why;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_(replica_freep) struct replica *r = NULL;
                struct replica_rec recs[2] = {
                        peer_rec(1, (struct hlc_ts) { NOW, 0, NODE_A }),
                        peer_rec(2, (struct hlc_ts) { NOW, 0, NODE_A }),
                };
                union wg_endpoint e;

                assert_int_equal(replica_new(NODE_B, &r), 0);
                rec_endpoint(&recs[0], "198.51.100.1:4000", (struct hlc_ts) { NOW, 1, NODE_A });
                rec_endpoint(&recs[1], bad[i].ep, (struct hlc_ts) { NOW, 2, NODE_A });
                assert_int_equal(merge_from(r, recs, 2, NODE_A, NOW, 0, &why), -EPERM);
                assert_string_equal(why, bad[i].why);
                assert_untouched(r, NOW);
                assert_int_equal(wg_endpoint_parse(bad[i].ep, &e), 0);
                assert_string_equal(replica_endpoint_refusal(&e), bad[i].why);
        }
        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                _cleanup_(replica_freep) struct replica *r = NULL;
                struct replica_rec rec = peer_rec(1, (struct hlc_ts) { NOW, 0, NODE_A });

                assert_int_equal(replica_new(NODE_B, &r), 0);
                rec_endpoint(&rec, good[i], (struct hlc_ts) { NOW, 1, NODE_A });
                assert_int_equal(merge_from(r, &rec, 1, NODE_A, NOW, 0, &why), 0);
                assert_false(hlc_ts_is_zero(replica_endpoint_version(r, IF, rec.peer.public_key)));
        }
        assert_non_null(replica_endpoint_refusal(&(union wg_endpoint) {}));

        /* A master does not replicate an endpoint its peers would refuse:
         * it counts as none seen, and the good one stays. */
        {
                _cleanup_(replica_freep) struct replica *r = NULL;
                _cleanup_(wg_device_freep) struct wg_device *d = dev_new();
                struct wg_peer *p;

                assert_int_equal(replica_new(NODE_A, &r), 0);
                p = dev_set(d, 1, 1);
                p->flags |= WG_PEER_HAS_ENDPOINT;
                assert_int_equal(wg_endpoint_parse("127.0.0.1:4000", &p->endpoint), 0);
                assert_int_equal(poll(r, d, NOW, true), 2);
                assert_true(hlc_ts_is_zero(replica_endpoint_version(r, IF, p->public_key)));
                assert_int_equal(wg_endpoint_parse("198.51.100.1:4000", &p->endpoint), 0);
                assert_int_equal(poll(r, d, NOW + 1, true), 1);
                assert_int_equal(replica_endpoint_version(r, IF, p->public_key).wall_ms, NOW + 1);
                assert_int_equal(wg_endpoint_parse("[::1]:4000", &p->endpoint), 0);
                assert_int_equal(poll(r, d, NOW + 2, true), 0);
                assert_int_equal(replica_endpoint_version(r, IF, p->public_key).wall_ms, NOW + 1);
        }
}

/* B2 replaces B under a new key: A still holds records B wrote (a device
 * record, a peer, an endpoint register on A's own peer). A new node that
 * never held them refuses them; once A took them over, content unchanged,
 * it accepts, and a second take-over finds nothing. */
static void test_adopt_orphans(void **state) {
        _cleanup_(replica_freep) struct replica *a = NULL, *b2 = NULL;
        _cleanup_(wg_device_freep) struct wg_device *before = NULL, *after = NULL;
        struct replica_rec recs[3] = {
                { .type = REPLICA_REC_DEVICE, .ifname = IF, .device = { .version = { NOW, 0, NODE_B } } },
                peer_rec(1, (struct hlc_ts) { NOW, 1, NODE_B }),
                peer_rec(2, (struct hlc_ts) { NOW, 2, NODE_A }),
        };
        struct replica_changes c = { recs, 3 }, all = {}, made = {};
        static const uint64_t known[] = { NODE_C };
        const char *why;

        rec_endpoint(&recs[2], "198.51.100.1:4000", (struct hlc_ts) { NOW, 3, NODE_B });
        rec_endpoint(&recs[1], "198.51.100.2:4000", (struct hlc_ts) { NOW, 4, NODE_A });
        recs[0].device.listen_port = 51820;
        assert_int_equal(replica_new(NODE_A, &a), 0);
        assert_int_equal(replica_merge(a, &c, NULL), 0);
        assert_int_equal(replica_device_applied(a, IF), 0);
        assert_int_equal(replica_device_for(a, IF, true, &before), 0);

        assert_int_equal(replica_changes_since(a, (struct hlc_ts) {}, &all), 0);
        assert_int_equal(replica_new(NODE_C, &b2), 0);
        assert_int_equal(replica_merge_from(b2, &all, &(struct replica_source) {
                .sender = NODE_A, .now_ms = NOW }, NULL, &why), -EPERM);
        replica_changes_done(&all);

        /* Nothing to take over while B is configured. */
        assert_int_equal(replica_adopt_orphans(a, (const uint64_t[]) { NODE_B }, 1, NOW, &made), 0);
        assert_int_equal(made.n, 0);
        assert_int_equal(replica_adopt_orphans(a, known, 1, NOW - 1000, &made), 0);
        assert_int_equal(made.n, 3);
        for (size_t i = 0; i < made.n; i++) {
                const struct replica_rec *m = &made.recs[i];
                struct hlc_ts v = m->type == REPLICA_REC_DEVICE ? m->device.version : m->peer.version;

                assert_int_equal(v.node, NODE_A);
                if (m->type == REPLICA_REC_PEER) {
                        assert_int_equal(m->peer.endpoint_version.node, NODE_A);
                        if (hlc_compare(m->peer.endpoint_version, v) > 0)
                                v = m->peer.endpoint_version;
                }
                /* Newer than anything held, although the wall clock is behind. */
                assert_true(hlc_compare(v, (struct hlc_ts) { NOW, 4, NODE_A }) > 0);
        }
        replica_changes_done(&made);
        assert_true(hlc_ts_is_zero(replica_max_version(a, NODE_B)));
        assert_true(replica_device_needs_apply(a, IF));
        assert_int_equal(replica_device_applied(a, IF), 0);
        assert_int_equal(replica_device_for(a, IF, true, &after), 0);
        assert_int_equal(after->n_peers, before->n_peers);
        assert_int_equal(after->listen_port, 51820);
        for (size_t i = 0; i < after->n_peers; i++) {
                assert_memory_equal(after->peers[i].public_key, before->peers[i].public_key, WG_KEY_LEN);
                assert_memory_equal(&after->peers[i].endpoint, &before->peers[i].endpoint, sizeof(union wg_endpoint));
        }

        assert_int_equal(replica_changes_since(a, (struct hlc_ts) {}, &all), 0);
        assert_int_equal(replica_merge_from(b2, &all, &(struct replica_source) {
                .sender = NODE_A, .now_ms = NOW }, NULL, &why), 0);
        replica_changes_done(&all);
        assert_same_state(a, b2);
        assert_int_equal(replica_adopt_orphans(a, known, 1, NOW, &made), 0);
        assert_int_equal(made.n, 0);
}

/* A clock already at the end of time (a state file written before the
 * bound existed): a local change is refused loudly, never stamped with a
 * version it already used; a poll that finds nothing new still succeeds. */
static void test_saturated_clock_refuses_edits(void **state) {
        _cleanup_(replica_freep) struct replica *r = NULL;
        _cleanup_(wg_device_freep) struct wg_device *d = NULL;
        _cleanup_(freep) uint8_t *before = NULL, *after = NULL;
        struct replica_rec rec = peer_rec(9, (struct hlc_ts) { HLC_WALL_MAX, UINT16_MAX, NODE_A });
        struct replica_changes c = { &rec, 1 }, made = {};
        size_t lb, la;

        assert_int_equal(replica_new(NODE_B, &r), 0);
        assert_int_equal(replica_merge(r, &c, NULL), 0);
        assert_int_equal(replica_device_applied(r, IF), 0);
        assert_int_equal(replica_device_for(r, IF, false, &d), 0);
        encode(r, &before, &lb);
        assert_int_equal(replica_apply_local_device(r, IF, d, NOW, false, &made), 0); /* nothing new */
        assert_int_equal(made.n, 0);
        dev_set(d, 1, 1);
        assert_int_equal(replica_apply_local_device(r, IF, d, NOW, false, &made), -EOVERFLOW);
        assert_int_equal(replica_apply_local_device(r, IF, d, UINT64_MAX, false, &made), -EOVERFLOW);
        assert_int_equal(made.n, 0);
        encode(r, &after, &la);
        assert_int_equal(la, lb);
        assert_memory_equal(before, after, la);
}

static void test_merge_rejects_invalid(void **state) {
        _cleanup_(replica_freep) struct replica *r = NULL;
        struct replica_rec rec = { .type = REPLICA_REC_PEER, .ifname = IF };
        struct replica_changes c = { &rec, 1 };
        struct wg_allowedip a = aip("10.1.1.1", 24);

        assert_int_equal(replica_new(NODE_A, &r), 0);
        key_fill(rec.peer.public_key, 1, 1);
        assert_int_equal(replica_merge(r, &c, NULL), -EINVAL); /* zero version */
        rec.peer.version = (struct hlc_ts) { 10, 0, NODE_B };
        rec.peer.allowedips = &a;
        rec.peer.n_allowedips = 1;
        assert_int_equal(replica_merge(r, &c, NULL), -EINVAL); /* host bits */
        a = aip("10.1.1.0", 24);
        rec.peer.deleted = true;
        assert_int_equal(replica_merge(r, &c, NULL), -EINVAL); /* tombstone with data */
        rec.peer.deleted = false;
        strcpy(rec.ifname, "a b");
        assert_int_equal(replica_merge(r, &c, NULL), -EINVAL);
        assert_int_equal(replica_n_records(r), 0);
        strcpy(rec.ifname, IF);
        assert_int_equal(replica_merge(r, &c, NULL), 0);
        assert_int_equal(replica_n_records(r), 1);
}

/* A loaded replica's clock is past everything it holds, and its
 * interfaces wait to be applied. */
static void test_decode_restores_clock(void **state) {
        _cleanup_(replica_freep) struct replica *a = NULL, *b = NULL;
        _cleanup_(wg_device_freep) struct wg_device *d = dev_new();
        _cleanup_(freep) uint8_t *buf = NULL;
        struct replica_changes c = {};
        size_t len;
        const char *why = NULL;

        assert_int_equal(replica_new(NODE_A, &a), 0);
        dev_set(d, 1, 1);
        assert_int_equal(poll(a, d, 900000000, false), 2);
        encode(a, &buf, &len);
        assert_int_equal(replica_decode(buf, len, NODE_A, &b, &why), 0);
        assert_same_state(a, b);
        assert_true(replica_device_needs_apply(b, IF));
        assert_int_equal(replica_apply_local_device(b, IF, d, 5, false, NULL), -EAGAIN);
        assert_int_equal(replica_device_applied(b, IF), 0);
        dev_set(d, 1, 2);
        assert_int_equal(replica_apply_local_device(b, IF, d, 5, false, &c), 0);
        assert_int_equal(c.n, 1);
        assert_true(c.recs[0].peer.version.wall_ms >= 900000000);
        replica_changes_done(&c);
}

/* ---- encoding ---- */

static void full_changes(struct replica_changes *c) {
        _cleanup_(replica_freep) struct replica *r = NULL;
        _cleanup_(wg_device_freep) struct wg_device *d = dev_new();
        struct wg_allowedip v6 = aip("2001:db8:1::", 48), host = aip("192.0.2.1", 32);

        assert_int_equal(replica_new(NODE_A, &r), 0);
        dev_set(d, 1, 1);
        dev_set(d, 2, 2);
        dev_set(d, 3, 3);
        assert_int_equal(wg_peer_add_allowedip(dev_peer(d, 1), &v6), 0);
        assert_int_equal(wg_peer_add_allowedip(dev_peer(d, 1), &host), 0);
        set_endpoint(dev_peer(d, 1), "[fe80::1%3]:51820");
        set_endpoint(dev_peer(d, 2), "192.0.2.7:1");
        assert_int_equal(poll(r, d, 1700000000000, true), 4);
        dev_del(d, 3);
        assert_int_equal(poll(r, d, 1700000000001, true), 1);
        assert_int_equal(replica_changes_since(r, (struct hlc_ts) {}, c), 0);
        assert_int_equal(c->n, 4);
}

static void test_encode_round_trip(void **state) {
        struct replica_changes c = {}, back = {};
        _cleanup_(freep) uint8_t *buf = NULL, *buf2 = NULL;
        size_t len, len2;
        const char *why = NULL;

        full_changes(&c);
        assert_int_equal(replica_changes_encode(&c, &buf, &len), 0);
        assert_int_equal(replica_changes_decode(buf, len, &back, &why), 0);
        assert_int_equal(back.n, c.n);
        for (size_t i = 0; i < c.n; i++) {
                assert_int_equal(back.recs[i].type, c.recs[i].type);
                assert_string_equal(back.recs[i].ifname, c.recs[i].ifname);
                if (c.recs[i].type == REPLICA_REC_DEVICE) {
                        assert_int_equal(hlc_compare(back.recs[i].device.version, c.recs[i].device.version), 0);
                        assert_memory_equal(back.recs[i].device.private_key, c.recs[i].device.private_key,
                                            WG_KEY_LEN);
                        assert_int_equal(back.recs[i].device.listen_port, c.recs[i].device.listen_port);
                        assert_int_equal(back.recs[i].device.fwmark, c.recs[i].device.fwmark);
                        continue;
                }
                assert_int_equal(hlc_compare(back.recs[i].peer.version, c.recs[i].peer.version), 0);
                assert_int_equal(hlc_compare(back.recs[i].peer.endpoint_version, c.recs[i].peer.endpoint_version), 0);
                assert_memory_equal(&back.recs[i].peer.endpoint, &c.recs[i].peer.endpoint, sizeof(union wg_endpoint));
                assert_int_equal(back.recs[i].peer.n_allowedips, c.recs[i].peer.n_allowedips);
                assert_int_equal(back.recs[i].peer.deleted, c.recs[i].peer.deleted);
        }
        assert_int_equal(replica_changes_encode(&back, &buf2, &len2), 0);
        assert_int_equal(len2, len);
        assert_memory_equal(buf, buf2, len);
        replica_changes_done(&back);
        /* Empty list. */
        free(buf);
        c.n = 0;
        assert_int_equal(replica_changes_encode(&c, &buf, &len), 0);
        assert_int_equal(len, 5);
        assert_int_equal(replica_changes_decode(buf, len, &back, &why), 0);
        assert_int_equal(back.n, 0);
        c.n = 4;
        replica_changes_done(&c);
}

static void test_decode_every_truncation(void **state) {
        struct replica_changes c = {}, back = { (struct replica_rec *) 0x1, 42 };
        _cleanup_(freep) uint8_t *buf = NULL;
        size_t len;

        full_changes(&c);
        assert_int_equal(replica_changes_encode(&c, &buf, &len), 0);
        for (size_t l = 0; l < len; l++) {
                const char *why = NULL;

                assert_int_equal(replica_changes_decode(buf, l, &back, &why), -EBADMSG);
                assert_non_null(why);
                assert_int_equal(back.n, 42);
        }
        replica_changes_done(&c);
}

/* One peer record for "wg0" with no endpoint and one allowed IP. Offsets:
 * 0 format, 1 count, 5 type, 6 name length, 7 name, 10 public key,
 * 42 version (42 wall, 50 logical, 52 node), 60 flags, 61 preshared key,
 * 93 keepalive, 95 endpoint version, 113 endpoint family, 114 allowed IP
 * count, 116 first allowed IP (family, 4 bytes, cidr). */
static size_t one_peer(uint8_t *buf) {
        static const uint8_t msg[] = {
                1, 0, 0, 0, 1,
                2, 3, 'w', 'g', '0',
                1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26,
                27, 28, 29, 30, 31, 32,
                0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9,
                0,
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                0, 25,
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                0,
                0, 1,
                4, 10, 0, 0, 0, 8,
        };

        memcpy(buf, msg, sizeof(msg));
        return sizeof(msg);
}

static void test_decode_rejects(void **state) {
        static const struct {
                const char *name;
                size_t off;
                uint8_t val;
        } cases[] = {
                { "format version", 0, 2 },
                { "count too big for the message", 4, 2 },
                { "count over the limit", 1, 0x10 },
                { "record type", 5, 3 },
                { "name length zero", 6, 0 },
                { "name length 16", 6, 16 },
                { "slash in name", 8, '/' },
                { "space in name", 8, ' ' },
                { "NUL in name", 8, 0 },
                { "zero version", 49, 0 },            /* with node zeroed below */
                { "wall time beyond 2^48", 43, 1 },
                { "reserved flag", 60, 2 },
                { "tombstone with keepalive", 60, 1 },
                { "endpoint version without endpoint", 112, 1 },
                { "endpoint family", 113, 5 },
                { "allowed IP count over the limit", 114, 0x28 }, /* 0x2801 */
                { "allowed IP family", 116, 5 },
                { "host bits", 119, 1 },
                { "cidr over 32", 121, 33 },
        };
        uint8_t buf[256], two[512];
        struct replica_changes c = {};
        const char *why;
        size_t len;

        len = one_peer(buf);
        why = NULL;
        assert_int_equal(replica_changes_decode(buf, len, &c, &why), 0);
        assert_int_equal(c.n, 1);
        assert_int_equal(c.recs[0].peer.version.wall_ms, 100);
        assert_int_equal(c.recs[0].peer.version.node, 9);
        assert_int_equal(c.recs[0].peer.keepalive, 25);
        replica_changes_done(&c);

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                len = one_peer(buf);
                buf[cases[i].off] = cases[i].val;
                if (cases[i].off == 49)
                        buf[59] = 0;
                why = NULL;
                print_message("reject: %s\n", cases[i].name);
                assert_int_equal(replica_changes_decode(buf, len, &c, &why), -EBADMSG);
                assert_non_null(why);
        }

        /* A trailing byte. */
        len = one_peer(buf);
        buf[len++] = 0;
        assert_int_equal(replica_changes_decode(buf, len, &c, &why), -EBADMSG);

        /* Two allowed IPs out of order, then duplicated. */
        len = one_peer(buf);
        buf[115] = 2;
        memcpy(buf + len, (const uint8_t[]) { 4, 9, 0, 0, 0, 8 }, 6);
        assert_int_equal(replica_changes_decode(buf, len + 6, &c, &why), -EBADMSG);
        memcpy(buf + len, (const uint8_t[]) { 4, 10, 0, 0, 0, 8 }, 6);
        assert_int_equal(replica_changes_decode(buf, len + 6, &c, &why), -EBADMSG);
        memcpy(buf + len, (const uint8_t[]) { 4, 11, 0, 0, 0, 8 }, 6);
        assert_int_equal(replica_changes_decode(buf, len + 6, &c, &why), 0);
        replica_changes_done(&c);

        /* Two records: the count must match. */
        len = one_peer(buf);
        memcpy(two, buf, len);
        memcpy(two + len, buf + 5, len - 5);
        two[4] = 2;
        assert_int_equal(replica_changes_decode(two, 2 * len - 5, &c, &why), 0);
        assert_int_equal(c.n, 2);
        replica_changes_done(&c);
        two[4] = 1;
        assert_int_equal(replica_changes_decode(two, 2 * len - 5, &c, &why), -EBADMSG);
        two[4] = 3;
        assert_int_equal(replica_changes_decode(two, 2 * len - 5, &c, &why), -EBADMSG);
}

/* ---- streaming catch-up and tombstone collection ---- */

/* N tombstones (or live peers without allowed IPs) written by NODE at wall
 * times from WALL on, as records to merge. */
static void make_records(struct replica_changes *c, size_t n, uint64_t node, uint64_t wall, bool deleted) {
        c->recs = calloc(n, sizeof(*c->recs));
        assert_non_null(c->recs);
        c->n = n;
        for (size_t i = 0; i < n; i++) {
                struct replica_rec *rec = &c->recs[i];

                rec->type = REPLICA_REC_PEER;
                strcpy(rec->ifname, IF);
                key_fill(rec->peer.public_key, (uint32_t) i + 1, 0x33);
                rec->peer.version = (struct hlc_ts) { wall + i, 0, node };
                rec->peer.deleted = deleted;
                if (!deleted)
                        key_fill(rec->peer.preshared_key, (uint32_t) i, 1);
        }
}

/* Stream FROM to TO in batches of at most MAX_RECORDS / MAX_BYTES from
 * *WATERMARK, stopping after STOP_AFTER batches (0: to the end); checks the
 * bounds and the key order, and updates *WATERMARK as a receiver does.
 * Returns the number of batches. */
static size_t stream(struct replica *from, struct replica *to, struct hlc_ts *watermark, uint64_t skip,
                     size_t max_records, size_t max_bytes, size_t stop_after) {
        struct replica_cursor cur = replica_cursor_at(*watermark);
        size_t batches = 0;

        for (;;) {
                struct replica_changes c = {};
                _cleanup_(freep) uint8_t *buf = NULL;
                size_t len;
                bool complete = false;

                assert_int_equal(replica_changes_batch(from, &cur, skip, max_records, max_bytes, &c, &cur, &complete), 0);
                if (c.n == 0)
                        return batches;
                assert_true(c.n <= max_records);
                assert_int_equal(replica_changes_encode(&c, &buf, &len), 0);
                assert_true(len <= max_bytes);
                for (size_t i = 0; i < c.n; i++) {
                        struct hlc_ts k = c.recs[i].peer.version;

                        if (hlc_compare(c.recs[i].peer.endpoint_version, k) > 0)
                                k = c.recs[i].peer.endpoint_version;
                        if (c.recs[i].type == REPLICA_REC_DEVICE)
                                k = c.recs[i].device.version;
                        assert_true(hlc_compare(k, *watermark) >= 0);
                        *watermark = k;
                        if (skip)
                                assert_int_not_equal(k.node, skip);
                }
                assert_int_equal(replica_merge(to, &c, NULL), 0);
                assert_true(hlc_compare(*watermark, replica_changes_last_key(&c)) == 0);
                assert_true(hlc_compare(cur.key, *watermark) == 0);
                replica_changes_done(&c);
                if (++batches == stop_after)
                        return batches;
        }
}

static void test_batch_bounded_ordered(void **state) {
        _cleanup_(replica_freep) struct replica *a = NULL, *b = NULL;
        struct replica_changes recs = {};
        struct hlc_ts w = {};

        assert_int_equal(replica_new(NODE_A, &a), 0);
        assert_int_equal(replica_new(NODE_B, &b), 0);
        make_records(&recs, 3000, NODE_A, 1000, false);
        /* Inserted in an order unrelated to their versions. */
        for (size_t i = 0; i < recs.n; i += 2)
                recs.recs[i].peer.version.wall_ms += 5000;
        assert_int_equal(replica_merge(a, &recs, NULL), 0);
        replica_changes_done(&recs);
        /* By records, then by bytes. */
        assert_int_equal(stream(a, b, &w, 0, 256, 1u << 20, 0), 12);
        assert_same_state(a, b);
        replica_free(b);
        assert_int_equal(replica_new(NODE_B, &b), 0);
        w = (struct hlc_ts) {};
        assert_true(stream(a, b, &w, 0, 100000, 8192, 0) >= 3000 * 110 / 8192);
        assert_same_state(a, b);
        /* One record larger than the byte bound still goes, alone. */
        {
                struct replica_changes c = {};

                struct replica_cursor zero = {};

                assert_int_equal(replica_changes_batch(a, &zero, 0, 10, 1, &c, NULL, NULL), 0);
                assert_int_equal(c.n, 1);
                assert_int_equal(replica_changes_batch(a, &zero, 0, 0, 1, &c, NULL, NULL), -EINVAL);
                replica_changes_done(&c);
        }
}

/* A stream cut after some batches resumes from the receiver's watermark
 * and ends with the same state; nothing at or below it is sent again. */
static void test_batch_resume(void **state) {
        _cleanup_(replica_freep) struct replica *a = NULL, *b = NULL;
        struct replica_changes recs = {}, again = {};
        struct hlc_ts w = {};

        assert_int_equal(replica_new(NODE_A, &a), 0);
        assert_int_equal(replica_new(NODE_B, &b), 0);
        make_records(&recs, 1000, NODE_A, 1000, false);
        assert_int_equal(replica_merge(a, &recs, NULL), 0);
        replica_changes_done(&recs);
        assert_int_equal(stream(a, b, &w, 0, 100, 1u << 20, 3), 3);
        assert_int_equal(replica_n_records(b), 300);
        /* New records (a local edit) while disconnected. */
        make_records(&recs, 10, NODE_A, 90000, true);
        assert_int_equal(replica_merge(a, &recs, NULL), 0);
        replica_changes_done(&recs);
        {
                struct replica_cursor at = replica_cursor_at(w);

                assert_int_equal(replica_changes_batch(a, &at, 0, 100000, 1u << 30, &again, NULL, NULL), 0);
        }
        /* 700 never sent, 10 sent but rewritten since, and the last one
         * merged again (records tied at the watermark are resent). */
        assert_int_equal(again.n, 711);
        replica_changes_done(&again);
        /* From the position of the last record merged: nothing twice. */
        {
                struct replica_cursor at = replica_cursor_at(w);
                struct replica_changes c = {};

                assert_int_equal(replica_changes_batch(a, &at, 0, 1, 1u << 30, &c, &at, NULL), 0);
                assert_int_equal(replica_cursor_compare(&at, &(struct replica_cursor) { .key = w }) > 0, true);
                {
                        struct replica_cursor last = replica_changes_last_cursor(&c);

                        assert_int_equal(replica_cursor_compare(&at, &last), 0);
                }
                replica_changes_done(&c);
                assert_int_equal(replica_changes_batch(a, &at, 0, 100000, 1u << 30, &again, NULL, NULL), 0);
                assert_int_equal(again.n, 710);
                replica_changes_done(&again);
        }
        assert_int_equal(stream(a, b, &w, 0, 100, 1u << 20, 0), 8);
        assert_same_state(a, b);
        /* Caught up: only the record at the watermark comes again. */
        assert_int_equal(stream(a, b, &w, 0, 100, 1u << 20, 0), 1);
}

/* One poll versions all its changes alike: 1000 records of one key (on two
 * interfaces, with a device record) still stream in order, each once, and
 * only the batch that ends the run says the key is complete. */
static void test_batch_ties(void **state) {
        _cleanup_(replica_freep) struct replica *a = NULL, *b = NULL;
        struct replica_changes recs = {};
        struct replica_cursor cur = {};
        size_t total = 0, batches = 0;

        assert_int_equal(replica_new(NODE_A, &a), 0);
        assert_int_equal(replica_new(NODE_B, &b), 0);
        make_records(&recs, 1001, NODE_A, 1000, false);
        for (size_t i = 0; i < recs.n; i++) {
                recs.recs[i].peer.version = (struct hlc_ts) { 5000, 3, NODE_A };
                if (i % 2)
                        strcpy(recs.recs[i].ifname, "wg1");
        }
        recs.recs[1000].type = REPLICA_REC_DEVICE;
        recs.recs[1000].device = (struct replica_device) { .version = { 5000, 3, NODE_A }, .listen_port = 1 };
        assert_int_equal(replica_merge(a, &recs, NULL), 0);
        replica_changes_done(&recs);
        for (;;) {
                struct replica_changes c = {};
                bool complete = true;

                assert_int_equal(replica_changes_batch(a, &cur, 0, 64, 1u << 20, &c, &cur, &complete), 0);
                if (c.n == 0)
                        break;
                batches++;
                total += c.n;
                assert_int_equal(complete, total == 1001);
                assert_int_equal(replica_merge(b, &c, NULL), 0);
                replica_changes_done(&c);
        }
        assert_int_equal(total, 1001);
        assert_int_equal(batches, 16);
        assert_same_state(a, b);
        /* Resuming from the tied watermark sends the whole run again: correct,
         * if not cheap. */
        cur = replica_cursor_at((struct hlc_ts) { 5000, 3, NODE_A });
        assert_int_equal(replica_changes_batch(a, &cur, 0, 5000, 1u << 20, &recs, NULL, NULL), 0);
        assert_int_equal(recs.n, 1001);
        replica_changes_done(&recs);
        cur = replica_cursor_at((struct hlc_ts) { 5000, 4, NODE_A });
        assert_int_equal(replica_changes_batch(a, &cur, 0, 5000, 1u << 20, &recs, NULL, NULL), 0);
        assert_int_equal(recs.n, 0);
}

/* Records only the receiver wrote are not sent back to it; mixed ones are. */
static void test_batch_skips_receiver(void **state) {
        _cleanup_(replica_freep) struct replica *a = NULL, *b = NULL;
        struct replica_changes ra = {}, rb = {}, c = {};

        assert_int_equal(replica_new(NODE_A, &a), 0);
        assert_int_equal(replica_new(NODE_B, &b), 0);
        make_records(&ra, 10, NODE_A, 1000, false);
        make_records(&rb, 20, NODE_B, 2000, false);
        for (size_t i = 0; i < rb.n; i++)
                key_fill(rb.recs[i].peer.public_key, (uint32_t) i + 100, 0x44);
        assert_int_equal(replica_merge(a, &ra, NULL), 0);
        assert_int_equal(replica_merge(a, &rb, NULL), 0);
        assert_int_equal(replica_merge(b, &rb, NULL), 0);
        assert_int_equal(replica_changes_batch(a, &(struct replica_cursor) {}, NODE_B, 1000, 1u << 20, &c, NULL, NULL), 0);
        assert_int_equal(c.n, 10);
        for (size_t i = 0; i < c.n; i++)
                assert_int_equal(c.recs[i].peer.version.node, NODE_A);
        replica_changes_done(&c);
        assert_int_equal(replica_changes_batch(a, &(struct replica_cursor) {}, 0, 1000, 1u << 20, &c, NULL, NULL), 0);
        assert_int_equal(c.n, 30);
        replica_changes_done(&c);
        replica_changes_done(&ra);
        replica_changes_done(&rb);
}

static size_t tombstones(const struct replica *r) {
        struct replica_changes c = {};
        size_t n = 0;

        assert_int_equal(replica_changes_since(r, (struct hlc_ts) {}, &c), 0);
        for (size_t i = 0; i < c.n; i++)
                n += c.recs[i].type == REPLICA_REC_PEER && c.recs[i].peer.deleted;
        replica_changes_done(&c);
        return n;
}

static void test_collect_rules(void **state) {
        _cleanup_(replica_freep) struct replica *a = NULL;
        struct replica_changes own = {}, theirs = {}, third = {};
        struct replica_ack acks[2] = { { NODE_B, {} }, { 0xc, {} } };
        size_t n = 99;

        assert_int_equal(replica_new(NODE_A, &a), 0);
        /* 10 own tombstones at wall 1000.., 10 of B's at 2000.., 10 of a
         * third node's at 3000.. */
        make_records(&own, 10, NODE_A, 1000, true);
        make_records(&theirs, 10, NODE_B, 2000, true);
        make_records(&third, 10, 0xc, 3000, true);
        for (size_t i = 0; i < 10; i++) {
                key_fill(theirs.recs[i].peer.public_key, (uint32_t) i + 100, 0x33);
                key_fill(third.recs[i].peer.public_key, (uint32_t) i + 200, 0x33);
        }
        assert_int_equal(replica_merge(a, &own, NULL), 0);
        assert_int_equal(replica_merge(a, &theirs, NULL), 0);
        assert_int_equal(replica_merge(a, &third, NULL), 0);
        assert_int_equal(tombstones(a), 30);

        /* Nobody acknowledged anything: nothing goes, however old. */
        assert_int_equal(replica_collect_tombstones(a, UINT64_C(1) << 40, acks, 2, &n), 0);
        assert_int_equal(n, 0);
        /* Acknowledged by B only: C has not, nothing goes. */
        acks[0].acked = (struct hlc_ts) { 1005, 0, NODE_A };
        assert_int_equal(replica_collect_tombstones(a, UINT64_C(1) << 40, acks, 2, &n), 0);
        assert_int_equal(n, 0);
        /* Both acknowledged up to own tombstone 5: those 6 go (wall
         * 1000..1005), but only once older than the horizon. */
        acks[1].acked = (struct hlc_ts) { 1005, 0, NODE_A };
        assert_int_equal(replica_collect_tombstones(a, 1003, acks, 2, &n), 0);
        assert_int_equal(n, 3);
        assert_int_equal(replica_collect_tombstones(a, UINT64_C(1) << 40, acks, 2, &n), 0);
        assert_int_equal(n, 3);
        assert_int_equal(tombstones(a), 24);
        /* Acknowledged past everything by both: our own go; B's and C's
         * stay, since with three nodes our stream proves nothing about them. */
        acks[0].acked = acks[1].acked = (struct hlc_ts) { 9999, 0, NODE_A };
        assert_int_equal(replica_collect_tombstones(a, UINT64_C(1) << 40, acks, 2, &n), 0);
        assert_int_equal(n, 4);
        assert_int_equal(tombstones(a), 20);
        /* In a pair, the other node's own tombstones go once old: it holds
         * them (or newer) itself. A third node's never. */
        assert_int_equal(replica_collect_tombstones(a, 2005, acks, 1, &n), 0);
        assert_int_equal(n, 5);
        assert_int_equal(replica_collect_tombstones(a, UINT64_C(1) << 40, acks, 1, &n), 0);
        assert_int_equal(n, 5);
        assert_int_equal(tombstones(a), 10);
        assert_int_equal(replica_collect_tombstones(NULL, 0, acks, 1, &n), -EINVAL);
        replica_changes_done(&own);
        replica_changes_done(&theirs);
        replica_changes_done(&third);
}

/* What the acknowledgement rule protects: B was offline while A removed a
 * peer. A keeps the tombstone however old it is, until B acknowledged it;
 * B's stale live record then loses against it. After B acknowledged, its
 * record is the tombstone (or newer), so there is nothing to resurrect. */
static void test_collect_offline_node(void **state) {
        struct node a, b;
        struct replica_ack ack = { NODE_B, {} };
        struct hlc_ts w = {};
        size_t n;

        node_init(&a, NODE_A);
        node_init(&b, NODE_B);
        dev_set(a.dev, 1, 1);
        assert_int_equal(poll(a.r, a.dev, 100, false), 2);
        sync_all(&a, &b);
        ack.acked = replica_max_version(a.r, NODE_A);
        /* B goes offline; A removes the peer; a year passes. */
        dev_del(a.dev, 1);
        assert_int_equal(poll(a.r, a.dev, 200, false), 1);
        assert_int_equal(replica_collect_tombstones(a.r, UINT64_C(1) << 40, &ack, 1, &n), 0);
        assert_int_equal(n, 0);
        /* B returns and streams its full state to A: the stale record loses. */
        assert_int_equal(stream(b.r, a.r, &w, 0, 10, 1u << 20, 0), 1);
        assert_int_equal(desired_val(a.r, 1), -1);
        /* A streams to B from B's watermark; B acknowledges; then A drops it. */
        w = replica_max_version(b.r, NODE_A);
        assert_int_equal(stream(a.r, b.r, &w, NODE_B, 10, 1u << 20, 0), 1);
        assert_int_equal(desired_val(b.r, 1), -1);
        ack.acked = w;
        assert_int_equal(replica_collect_tombstones(a.r, UINT64_C(1) << 40, &ack, 1, &n), 0);
        assert_int_equal(n, 1);
        /* B's full state no longer brings it back: B holds the tombstone. */
        w = (struct hlc_ts) {};
        stream(b.r, a.r, &w, 0, 10, 1u << 20, 0);
        assert_int_equal(desired_val(a.r, 1), -1);
        node_done(&a);
        node_done(&b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_hlc_monotonic_backwards),
                cmocka_unit_test(test_hlc_logical_overflow),
                cmocka_unit_test(test_hlc_update),
                cmocka_unit_test(test_hlc_update_bounded),
                cmocka_unit_test(test_hlc_saturation),
                cmocka_unit_test(test_hlc_total_order),
                cmocka_unit_test(test_node_id),
                cmocka_unit_test(test_poll_first_and_steady),
                cmocka_unit_test(test_poll_detects_each_change),
                cmocka_unit_test(test_poll_public_key_only),
                cmocka_unit_test(test_poll_rejects_bad_input),
                cmocka_unit_test(test_merge_scenarios),
                cmocka_unit_test(test_merge_order_independent),
                cmocka_unit_test(test_merge_idempotent),
                cmocka_unit_test(test_device_generation),
                cmocka_unit_test(test_apply_local_peers),
                cmocka_unit_test(test_merge_batch_duplicates),
                cmocka_unit_test(test_tombstone_beats_stale_node),
                cmocka_unit_test(test_echo_rule),
                cmocka_unit_test(test_restart_drops_tombstoned_peer),
                cmocka_unit_test(test_stale_device_poll_resurrects),
                cmocka_unit_test(test_bootstrap_waits_for_full_state),
                cmocka_unit_test(test_bootstrap_fresh_pair_converges),
                cmocka_unit_test(test_endpoints_from_master_only),
                cmocka_unit_test(test_endpoint_version),
                cmocka_unit_test(test_endpoint_scope_is_a_change),
                cmocka_unit_test(test_device_for),
                cmocka_unit_test(test_changes_since),
                cmocka_unit_test(test_merge_rejects_invalid),
                cmocka_unit_test(test_merge_from_future),
                cmocka_unit_test(test_merge_from_carries_our_time),
                cmocka_unit_test(test_merge_from_writers),
                cmocka_unit_test(test_merge_from_endpoints),
                cmocka_unit_test(test_saturated_clock_refuses_edits),
                cmocka_unit_test(test_adopt_orphans),
                cmocka_unit_test(test_decode_restores_clock),
                cmocka_unit_test(test_encode_round_trip),
                cmocka_unit_test(test_decode_every_truncation),
                cmocka_unit_test(test_decode_rejects),
                cmocka_unit_test(test_batch_bounded_ordered),
                cmocka_unit_test(test_batch_resume),
                cmocka_unit_test(test_batch_ties),
                cmocka_unit_test(test_batch_skips_receiver),
                cmocka_unit_test(test_collect_rules),
                cmocka_unit_test(test_collect_offline_node),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
