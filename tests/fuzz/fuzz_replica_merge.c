/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Last-writer-wins merging under the rules for what another node may send
 * (replica_merge_from()). The input is a script of writes by two nodes, A
 * and B, each stamped by its own hybrid logical clock at a wall time the
 * input picks (also backwards, also at the end of time): device records,
 * peers, tombstones, endpoint registers, on two interfaces and four keys.
 * Each node's writes form its record stream. Replicas of a third node then
 * receive the streams
 *  - A then B, and B then A, each stream one batch (commutativity);
 *  - in the input's interleaving, each run of one writer a batch;
 *  - record by record, in the input's interleaving and in reverse;
 *  - relayed: everything the first replica holds, sent by A, which may
 *    relay B's records;
 * and must all encode to the same bytes (convergence). Merging a stream
 * again changes nothing (idempotence). A stamp is never handed out twice:
 * a writer's stamps strictly increase, and hlc_now() fails only at the
 * greatest timestamp. A copy of a stream with one version moved past the
 * future bound is refused whole and leaves the replica as it was. */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "sync/replica.h"

#define NODE_A UINT64_C(0x00000000000000a1)
#define NODE_B UINT64_C(0xb200000000000000)
#define NODE_R UINT64_C(0x0000000000000c3c)
#define OP_LEN 5
#define OPS_MAX 512

static const char *const ifnames[] = { "wg0", "wg1" };

struct script {
        struct replica_rec recs[OPS_MAX];     /* in input order */
        uint8_t writer[OPS_MAX];              /* 0: A, 1: B */
        size_t n;
        uint64_t max_wall;
};

static void check(bool ok) {
        if (!ok)
                abort();
}

static void key_fill(uint8_t key[static WG_KEY_LEN], uint8_t id, uint8_t tag) {
        memset(key, tag, WG_KEY_LEN);
        key[0] = id;
}

/* Op bytes: b0 bit 0 writer, bits 1-2 key, bit 3 interface, bit 4 device
 * record, bit 5 tombstone, bit 6 endpoint written; b1..b2 wall step
 * (signed: clocks go back too); b3 value; b4 endpoint address. */
static bool op_record(const uint8_t *op, struct hlc clocks[static 2], struct script *s) {
        uint8_t w = op[0] & 1, val = op[3];
        struct replica_rec *rec = &s->recs[s->n];
        struct hlc *c = &clocks[w];
        struct hlc before = *c;
        int16_t step = (int16_t) (op[1] << 8 | op[2]);
        uint64_t wall = c->wall_ms + (uint64_t) (int64_t) step;
        struct hlc_ts v, ev = {};

        if (hlc_now(c, wall, &v) < 0) {
                /* Only at the very end, and nothing moved. */
                check(before.wall_ms == HLC_WALL_MAX && before.logical == UINT16_MAX);
                check(memcmp(&before, c, sizeof(before)) == 0);
                return false;
        }
        check(hlc_compare(v, (struct hlc_ts) { before.wall_ms, before.logical, before.node }) > 0);
        if ((op[0] & 0x50) == 0x40 && hlc_now(c, wall, &ev) < 0)
                return false;
        s->max_wall = MAX(s->max_wall, MAX(v.wall_ms, ev.wall_ms));

        *rec = (struct replica_rec) {};
        memcpy(rec->ifname, ifnames[(op[0] >> 3) & 1], 4);
        if (op[0] & 0x10) {
                rec->type = REPLICA_REC_DEVICE;
                rec->device.version = v;
                key_fill(rec->device.private_key, val, 0xd0);
                rec->device.listen_port = (uint16_t) (51820 + val);
                rec->device.fwmark = val;
        } else {
                struct replica_peer *p = &rec->peer;

                rec->type = REPLICA_REC_PEER;
                key_fill(p->public_key, (uint8_t) (1 + ((op[0] >> 1) & 3)), 0x77);
                p->version = v;
                p->deleted = op[0] & 0x20;
                if (!p->deleted) {
                        key_fill(p->preshared_key, val, 0x55);
                        p->keepalive = val;
                        p->allowedips = calloc(1, sizeof(*p->allowedips));
                        if (!p->allowedips)
                                return false;
                        p->allowedips[0].family = AF_INET;
                        p->allowedips[0].ip.bytes[0] = 10;
                        p->allowedips[0].ip.bytes[1] = val;
                        p->allowedips[0].cidr = 16;
                        p->n_allowedips = 1;
                }
                if (!hlc_ts_is_zero(ev)) {
                        p->endpoint_version = ev;
                        p->endpoint.addr4.sin_family = AF_INET;
                        p->endpoint.addr4.sin_addr.s_addr = htonl(UINT32_C(0xc6336400) | op[4]); /* 198.51.100.x */
                        p->endpoint.addr4.sin_port = htons((uint16_t) (1 + val));
                }
        }
        s->writer[s->n++] = w;
        return true;
}

static void script_done(struct script *s) {
        for (size_t i = 0; i < s->n; i++)
                free(s->recs[i].peer.allowedips);
}

/* A writer's stream, as its own list (records shared with S, not owned). */
static size_t stream(const struct script *s, uint8_t w, struct replica_rec *out) {
        size_t n = 0;

        for (size_t i = 0; i < s->n; i++)
                if (s->writer[i] == w)
                        out[n++] = s->recs[i];
        return n;
}

static int merge(struct replica *r, struct replica_rec *recs, size_t n, uint64_t sender, uint64_t now,
                 size_t *ret_applied) {
        uint64_t relay = sender == NODE_A ? NODE_B : NODE_A;
        struct replica_changes c = { recs, n }, applied = {};
        struct replica_source src = { .sender = sender, .relay = &relay, .n_relay = 1, .now_ms = now };
        const char *why = NULL;
        int k;

        k = replica_merge_from(r, &c, &src, &applied, &why);
        check(k != -EPERM || why);
        if (ret_applied)
                *ret_applied = applied.n;
        replica_changes_done(&applied);
        return k;
}

static void encode(const struct replica *r, uint8_t **buf, size_t *len) {
        check(replica_encode(r, buf, len) == 0);
}

static void check_same(const struct replica *a, const struct replica *b) {
        _cleanup_(freep) uint8_t *ea = NULL, *eb = NULL;
        size_t la, lb;

        encode(a, &ea, &la);
        encode(b, &eb, &lb);
        check(la == lb && memcmp(ea, eb, la) == 0);
}

static struct replica *fresh(void) {
        struct replica *r = NULL;

        check(replica_new(NODE_R, &r) == 0);
        return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static struct script s;
        static struct replica_rec sa[OPS_MAX], sb[OPS_MAX];
        struct replica *r[6] = {};
        struct hlc clocks[2];
        struct replica_changes all = {};
        size_t na, nb, applied;
        uint64_t now;

        if (size < 1)
                return 0;
        s = (struct script) {};
        hlc_init(&clocks[0], NODE_A);
        hlc_init(&clocks[1], NODE_B);
        /* Header: where the clocks start (bit 0: near the end of time,
         * where stamps run out) and whether one stream gets a poisoned
         * copy (bit 1). */
        clocks[0].wall_ms = clocks[1].wall_ms = data[0] & 1 ? HLC_WALL_MAX : UINT64_C(1700000000000);
        if (data[0] & 1)
                clocks[0].logical = clocks[1].logical = UINT16_MAX - 64;
        for (size_t off = 1; off + OP_LEN <= size && s.n < OPS_MAX; off += OP_LEN)
                if (!op_record(data + off, clocks, &s))
                        break;
        /* Whatever was stamped is within the bound at the newest wall time. */
        now = s.max_wall;
        na = stream(&s, 0, sa);
        nb = stream(&s, 1, sb);

        for (size_t i = 0; i < ELEMENTSOF(r); i++)
                r[i] = fresh();
        /* A then B; B then A. */
        check(merge(r[0], sa, na, NODE_A, now, NULL) == 0);
        check(merge(r[0], sb, nb, NODE_B, now, NULL) == 0);
        check(merge(r[1], sb, nb, NODE_B, now, NULL) == 0);
        check(merge(r[1], sa, na, NODE_A, now, NULL) == 0);
        /* Runs of one writer, in input order. */
        for (size_t a = 0, b; a < s.n; a = b) {
                for (b = a + 1; b < s.n && s.writer[b] == s.writer[a]; b++)
                        ;
                check(merge(r[2], s.recs + a, b - a, s.writer[a] ? NODE_B : NODE_A, now, NULL) == 0);
        }
        /* Record by record, forwards and backwards. */
        for (size_t i = 0; i < s.n; i++)
                check(merge(r[3], &s.recs[i], 1, s.writer[i] ? NODE_B : NODE_A, now, NULL) == 0);
        for (size_t i = s.n; i-- > 0;)
                check(merge(r[4], &s.recs[i], 1, s.writer[i] ? NODE_B : NODE_A, now, NULL) == 0);
        /* Relayed: A sends all it would hold, B's records included. */
        check(replica_changes_since(r[1], (struct hlc_ts) {}, &all) == 0);
        check(merge(r[5], all.recs, all.n, NODE_A, now, NULL) == 0);
        replica_changes_done(&all);

        for (size_t i = 1; i < ELEMENTSOF(r); i++)
                check_same(r[0], r[i]);

        /* Idempotent: nothing changes the second time. */
        check(merge(r[0], sa, na, NODE_A, now, &applied) == 0 && applied == 0);
        check(merge(r[0], sb, nb, NODE_B, now, &applied) == 0 && applied == 0);
        check_same(r[0], r[1]);

        /* A stream with one version past the bound is refused whole. */
        if ((data[0] & 2) && na > 0 && now < HLC_WALL_MAX - REPLICA_FUTURE_TOLERANCE_MS) {
                struct hlc_ts *v = sa[na - 1].type == REPLICA_REC_DEVICE ? &sa[na - 1].device.version
                                                                          : &sa[na - 1].peer.version;
                struct replica *t = fresh();

                v->wall_ms = replica_future_limit(now, 0) + 1;
                check(merge(t, sa, na, NODE_A, now, NULL) == -EPERM);
                check(replica_n_records(t) == 0);
                check(merge(r[0], sa, na, NODE_A, now, NULL) == -EPERM);
                check_same(r[0], r[1]);
                replica_free(t);
        }

        for (size_t i = 0; i < ELEMENTSOF(r); i++)
                replica_free(r[i]);
        script_done(&s);
        return 0;
}
