/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The replica decoders on arbitrary bytes. The first byte picks the
 * target: 0, the record decoder (wire and file payload); 1, the state
 * file decoder on raw bytes; 2, the state file decoder on the rest sealed
 * with the right key (so the fuzzer reaches past the tag).
 *
 * Whatever the record decoder accepts is canonical (re-encodes to the same
 * bytes), merges idempotently, survives a replica round trip unchanged,
 * and is echo-free: the device built from it, observed back, makes no new
 * version. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "sync/replica.h"
#include "sync/store.h"

#define NODE UINT64_C(0x5eed)

static const uint8_t key[REPLICA_STORE_KEY_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8 };

static void check_same(const uint8_t *a, size_t la, const uint8_t *b, size_t lb) {
        if (la != lb || memcmp(a, b, la) != 0)
                abort();
}

static void check_replica_round_trip(const struct replica *r) {
        _cleanup_(replica_freep) struct replica *back = NULL;
        _cleanup_(freep) uint8_t *e1 = NULL, *e2 = NULL;
        size_t l1, l2;
        const char *why = NULL;

        if (replica_encode(r, &e1, &l1) < 0)
                abort();
        if (replica_decode(e1, l1, NODE, &back, &why) < 0)
                abort();
        if (replica_encode(back, &e2, &l2) < 0)
                abort();
        check_same(e1, l1, e2, l2);
}

static void check_echo(struct replica *r, const struct replica_changes *c) {
        for (size_t i = 0; i < c->n; i++) {
                _cleanup_(wg_device_freep) struct wg_device *d = NULL;
                struct replica_changes made = {};

                if (replica_device_for(r, c->recs[i].ifname, false, &d) < 0)
                        abort();
                if (replica_device_applied(r, c->recs[i].ifname) < 0)
                        abort();
                if (replica_apply_local_device(r, c->recs[i].ifname, d, 0, false, &made) < 0)
                        abort();
                if (made.n != 0)
                        abort();
        }
}

static void fuzz_changes(const uint8_t *data, size_t size) {
        _cleanup_(replica_freep) struct replica *r = NULL;
        _cleanup_(freep) uint8_t *enc = NULL, *before = NULL, *after = NULL;
        struct replica_changes c = {}, applied = {};
        size_t len, lb, la;
        const char *why = NULL;
        int k;

        k = replica_changes_decode(data, size, &c, &why);
        if (k == -EBADMSG) {
                if (!why)
                        abort();
                return;
        }
        if (k < 0)
                return;
        if (replica_changes_encode(&c, &enc, &len) < 0)
                abort();
        check_same(data, size, enc, len);

        if (replica_new(NODE, &r) < 0)
                abort();
        if (replica_merge(r, &c, &applied) < 0)
                abort();
        if (applied.n > c.n)
                abort();
        replica_changes_done(&applied);
        if (replica_encode(r, &before, &lb) < 0)
                abort();
        if (replica_merge(r, &c, &applied) < 0 || applied.n != 0)
                abort();
        if (replica_encode(r, &after, &la) < 0)
                abort();
        check_same(before, lb, after, la);
        check_replica_round_trip(r);
        check_echo(r, &c);
        replica_changes_done(&c);
}

static void fuzz_store(const uint8_t *data, size_t size) {
        _cleanup_(replica_freep) struct replica *r = NULL;
        const char *why = NULL;

        if (replica_store_decode(data, size, key, NODE, &r, &why) == -EBADMSG && !why)
                abort();
}

static void fuzz_sealed(const uint8_t *data, size_t size) {
        _cleanup_(replica_freep) struct replica *r = NULL, *direct = NULL;
        _cleanup_(freep) uint8_t *img = NULL;
        const char *why = NULL;
        size_t len;
        int k1, k2;

        if (replica_store_seal(key, data, size, &img, &len) < 0)
                return;
        k1 = replica_store_decode(img, len, key, NODE, &r, &why);
        k2 = replica_decode(data, size, NODE, &direct, &why);
        if ((k1 == 0) != (k2 == 0))
                abort();
        if (k1 == 0)
                check_replica_round_trip(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        switch (data[0] % 3) {
        case 0:
                fuzz_changes(data + 1, size - 1);
                break;
        case 1:
                fuzz_store(data + 1, size - 1);
                break;
        default:
                fuzz_sealed(data + 1, size - 1);
                break;
        }
        return 0;
}
