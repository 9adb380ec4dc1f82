/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The state file written beside the loop (hamgr/sync-save.c): each save
 * numbered and reported on the loop, requests made while one runs covered
 * by one more save of the state as it is then, a failure reported with its
 * errno, a flush that waits and saves on the caller's thread, and a free
 * that waits for the save in flight without calling back. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/macro.h"
#include "hamgr/sync-file.h"
#include "hamgr/sync-save.h"
#include "sync/replica.h"

#define NODE UINT64_C(0x5151)
#define IF "wg0"

static const uint8_t sync_key[REPLICA_STORE_KEY_LEN] = { 7, 7, 7 };

struct seen {
        uint64_t gen[8];
        int r[8];
        size_t n;
};

static void on_saved(uint64_t gen, int r, void *userdata) {
        struct seen *seen = userdata;

        assert_true(seen->n < ELEMENTSOF(seen->gen));
        seen->gen[seen->n] = gen;
        seen->r[seen->n] = r;
        seen->n++;
}

static void wait_saved(sd_event *e, const struct seen *seen, size_t n) {
        for (int i = 0; i < 500 && seen->n < n; i++)
                assert_true(sd_event_run(e, 10 * 1000) >= 0);
        assert_int_equal(seen->n, n);
}

/* N peers on IF, versioned at NOW_MS. */
static void replica_peers(struct replica *r, uint32_t n, uint64_t now_ms) {
        struct wg_device *d = calloc(1, sizeof(*d));

        assert_non_null(d);
        strcpy(d->name, IF);
        memset(d->private_key, 0x42, WG_KEY_LEN);
        d->flags = WG_DEVICE_HAS_PRIVATE_KEY;
        for (uint32_t i = 0; i < n; i++) {
                struct wg_peer *p = wg_device_add_peer(d);

                assert_non_null(p);
                memset(p->public_key, 0x10 + (int) i, WG_KEY_LEN);
                p->flags = WG_PEER_HAS_PUBLIC_KEY;
        }
        assert_int_equal(replica_apply_local_device(r, IF, d, now_ms, false, NULL), 0);
        wg_device_free(d);
}

static size_t records_on_disk(const char *dir) {
        _cleanup_(replica_freep) struct replica *back = NULL;
        const char *why = NULL;

        assert_int_equal(replica_store_load(dir, sync_key, NODE, &back, &why), 0);
        return replica_n_records(back);
}

static char *tmpdir_new(void) {
        char *dir = strdup("/tmp/hamgr-test-sync-save.XXXXXX");

        assert_non_null(dir);
        assert_non_null(mkdtemp(dir));
        return dir;
}

static void tmpdir_remove(char *dir) {
        char path[256];

        snprintf(path, sizeof(path), "%s/%s", dir, REPLICA_STORE_FILE);
        (void) unlink(path);
        snprintf(path, sizeof(path), "%s/%s", dir, REPLICA_STORE_TMP);
        (void) unlink(path);
        assert_int_equal(rmdir(dir), 0);
        free(dir);
}

static void test_save_coalesced(void **state) {
        _cleanup_(replica_freep) struct replica *r = NULL;
        struct sync_saver *sv = NULL;
        struct seen seen = {};
        char *dir = tmpdir_new();
        sd_event *e = NULL;

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(replica_new(NODE, &r), 0);
        replica_peers(r, 2, 1700000000000);
        assert_int_equal(sync_saver_new(e, dir, sync_key, r, on_saved, &seen, &sv), 0);
        assert_int_equal(sync_saver_done(sv), 0);
        /* The first starts a save of 3 records; the next two, made while it
         * runs, are covered by one more save, of the state as it is once
         * the first ended. */
        assert_int_equal(sync_saver_request(sv), 1);
        replica_peers(r, 4, 1700000000001);
        assert_int_equal(sync_saver_request(sv), 2);
        assert_int_equal(sync_saver_request(sv), 3);
        assert_int_equal(sync_saver_requested(sv), 3);
        assert_int_equal(seen.n, 0); /* only the loop reports */
        wait_saved(e, &seen, 2);
        assert_int_equal(seen.gen[0], 1);
        assert_int_equal(seen.r[0], 0);
        assert_int_equal(seen.gen[1], 3);
        assert_int_equal(seen.r[1], 0);
        assert_int_equal(sync_saver_done(sv), 3);
        assert_int_equal(records_on_disk(dir), replica_n_records(r));
        assert_int_equal(replica_n_records(r), 5);
        /* Nothing more runs. */
        assert_int_equal(sd_event_run(e, 50 * 1000), 0);
        assert_int_equal(seen.n, 2);

        /* A flush waits for the save in flight, then saves on this thread. */
        assert_int_equal(sync_saver_request(sv), 4);
        replica_peers(r, 6, 1700000000002);
        assert_int_equal(sync_saver_flush(sv), 0);
        assert_int_equal(seen.n, 4);
        assert_int_equal(seen.gen[2], 4);
        assert_int_equal(seen.gen[3], 5);
        assert_int_equal(sync_saver_done(sv), 5);
        assert_int_equal(records_on_disk(dir), replica_n_records(r));

        /* Freed with a save in flight: waited for, not reported. */
        assert_int_equal(sync_saver_request(sv), 6);
        sv = sync_saver_free(sv);
        assert_null(sv);
        assert_int_equal(seen.n, 4);
        assert_int_equal(sd_event_run(e, 50 * 1000), 0);
        assert_int_equal(seen.n, 4);
        assert_null(sync_saver_free(NULL));
        sd_event_unref(e);
        tmpdir_remove(dir);
}

static void test_save_failure(void **state) {
        _cleanup_(replica_freep) struct replica *r = NULL;
        struct sync_saver *sv = NULL;
        struct seen seen = {};
        sd_event *e = NULL;

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(replica_new(NODE, &r), 0);
        replica_peers(r, 1, 1700000000000);
        assert_int_equal(sync_saver_new(e, "/nonexistent/hamgr", sync_key, r, on_saved, &seen, &sv), 0);
        assert_int_equal(sync_saver_request(sv), 1);
        wait_saved(e, &seen, 1);
        assert_int_equal(seen.gen[0], 1);
        assert_int_equal(seen.r[0], -ENOENT);
        assert_int_equal(sync_saver_flush(sv), -ENOENT);
        sync_saver_free(sv);
        assert_int_equal(sync_saver_new(NULL, "/tmp", sync_key, r, on_saved, &seen, &sv), -EINVAL);
        sd_event_unref(e);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_save_coalesced),
                cmocka_unit_test(test_save_failure),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
