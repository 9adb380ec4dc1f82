/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The replica's encrypted state file: round trip, no keys in the clear,
 * mode 0600, every flipped byte and every truncation refused without
 * touching the output, another node's key refused, crash leftovers, and a
 * failed save that leaves the previous file in place. */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/macro.h"
#include "hamgr/sync-file.h"
#include "sync/replica.h"
#include "sync/store.h"

#define NODE UINT64_C(0x1234)
#define IF "wg0"

static uint8_t sync_key[REPLICA_STORE_KEY_LEN];

static void key_fill(uint8_t key[static WG_KEY_LEN], uint32_t id, uint8_t tag) {
        memset(key, tag, WG_KEY_LEN);
        key[0] = (uint8_t) (id >> 24);
        key[1] = (uint8_t) (id >> 16);
        key[2] = (uint8_t) (id >> 8);
        key[3] = (uint8_t) id;
}

/* A replica with a device record, peers with keys, allowed IPs and an
 * endpoint, and a tombstone; PSK_TAG varies the preshared keys. */
static struct replica *replica_sample(uint8_t psk_tag) {
        struct replica *r = NULL;
        struct wg_device *d = calloc(1, sizeof(*d));

        assert_non_null(d);
        assert_int_equal(replica_new(NODE, &r), 0);
        strcpy(d->name, IF);
        key_fill(d->private_key, 0xabcdef, 0xa5);
        d->listen_port = 51820;
        d->flags = WG_DEVICE_HAS_PRIVATE_KEY | WG_DEVICE_HAS_LISTEN_PORT;
        for (uint32_t i = 1; i <= 3; i++) {
                struct wg_peer *p = wg_device_add_peer(d);
                struct wg_allowedip a = { .family = AF_INET, .cidr = 24 };

                assert_non_null(p);
                key_fill(p->public_key, i, 0x70);
                key_fill(p->preshared_key, i, psk_tag);
                p->flags = WG_PEER_HAS_PUBLIC_KEY | WG_PEER_HAS_PRESHARED_KEY | WG_PEER_HAS_ENDPOINT;
                p->endpoint.addr4.sin_family = AF_INET;
                p->endpoint.addr4.sin_port = htons((uint16_t) (1000 + i));
                a.ip.bytes[0] = 10;
                a.ip.bytes[2] = (uint8_t) i;
                assert_int_equal(wg_peer_add_allowedip(p, &a), 0);
        }
        assert_int_equal(replica_apply_local_device(r, IF, d, 1700000000000, true, NULL), 0);
        d->n_peers = 2;
        free(d->peers[2].allowedips);
        assert_int_equal(replica_apply_local_device(r, IF, d, 1700000000001, true, NULL), 0);
        wg_device_free(d);
        return r;
}

static void assert_same_state(const struct replica *a, const struct replica *b) {
        _cleanup_(freep) uint8_t *ea = NULL, *eb = NULL;
        size_t la, lb;

        assert_int_equal(replica_encode(a, &ea, &la), 0);
        assert_int_equal(replica_encode(b, &eb, &lb), 0);
        assert_int_equal(la, lb);
        assert_memory_equal(ea, eb, la);
}

static char *tmpdir_new(void) {
        char *t = strdup("/tmp/hamgr-store-XXXXXX");

        assert_non_null(t);
        assert_non_null(mkdtemp(t));
        return t;
}

static char *path_in(const char *dir, const char *name) {
        char *p;

        assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
        return p;
}

static void rm_rf(const char *dir) {
        char *cmd;

        assert_true(asprintf(&cmd, "rm -rf '%s'", dir) > 0);
        assert_int_equal(system(cmd), 0);
        free(cmd);
}

static uint8_t *read_file(const char *path, size_t *len) {
        FILE *f = fopen(path, "rb");
        uint8_t *buf = malloc(1 << 20);

        assert_non_null(f);
        assert_non_null(buf);
        *len = fread(buf, 1, 1 << 20, f);
        fclose(f);
        return buf;
}

static void write_file(const char *path, const void *p, size_t len) {
        FILE *f = fopen(path, "wb");

        assert_non_null(f);
        assert_int_equal(fwrite(p, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
}

static bool contains(const uint8_t *hay, size_t n, const uint8_t *needle, size_t m) {
        for (size_t i = 0; i + m <= n; i++)
                if (memcmp(hay + i, needle, m) == 0)
                        return true;
        return false;
}

static void test_round_trip(void **state) {
        _cleanup_(replica_freep) struct replica *r = replica_sample(0x33), *back = NULL;
        _cleanup_(freep) char *dir = tmpdir_new(), *file = path_in(dir, REPLICA_STORE_FILE);
        _cleanup_(freep) uint8_t *img = NULL;
        uint8_t priv[WG_KEY_LEN], psk[WG_KEY_LEN];
        const char *why = NULL;
        struct stat st;
        size_t len;
        mode_t old;

        assert_int_equal(replica_store_load(dir, sync_key, NODE, &back, &why), -ENOENT);
        /* Whatever the umask, the file is 0600. */
        old = umask(0);
        assert_int_equal(replica_store_save(dir, sync_key, r), 0);
        umask(old);
        assert_int_equal(stat(file, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(replica_store_load(dir, sync_key, NODE, &back, &why), 0);
        assert_same_state(r, back);
        assert_true(replica_device_needs_apply(back, IF));
        back = replica_free(back);

        /* No key in the clear, in the file. */
        img = read_file(file, &len);
        assert_memory_equal(img, "HMGRREPL", 8);
        key_fill(priv, 0xabcdef, 0xa5);
        key_fill(psk, 1, 0x33);
        assert_false(contains(img, len, priv, sizeof(priv)));
        assert_false(contains(img, len, psk, sizeof(psk)));

        /* Saving again replaces it whole; the temporary file is gone. */
        r = replica_free(r);
        r = replica_sample(0x44);
        old = umask(0277);
        assert_int_equal(replica_store_save(dir, sync_key, r), 0);
        umask(old);
        assert_int_equal(stat(file, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        free(file);
        file = path_in(dir, REPLICA_STORE_TMP);
        assert_int_equal(access(file, F_OK), -1);
        assert_int_equal(replica_store_load(dir, sync_key, NODE, &back, &why), 0);
        assert_same_state(r, back);
        rm_rf(dir);
}

static void test_every_flip_and_truncation(void **state) {
        _cleanup_(replica_freep) struct replica *r = replica_sample(0x33);
        _cleanup_(freep) uint8_t *img = NULL;
        struct replica *sentinel = (struct replica *) 0x1, *back = sentinel;
        size_t len;

        assert_int_equal(replica_store_encode(sync_key, r, &img, &len), 0);
        assert_int_equal(replica_store_decode(img, len, sync_key, NODE, &back, NULL), 0);
        assert_same_state(r, back);
        back = replica_free(back);
        back = sentinel;

        for (size_t i = 0; i < len; i++)
                for (unsigned bit = 0; bit < 8; bit += 7) {
                        const char *why = NULL;

                        img[i] ^= (uint8_t) (1u << bit);
                        assert_int_equal(replica_store_decode(img, len, sync_key, NODE, &back, &why), -EBADMSG);
                        assert_non_null(why);
                        assert_ptr_equal(back, sentinel);
                        img[i] ^= (uint8_t) (1u << bit);
                }
        for (size_t l = 0; l < len; l++) {
                const char *why = NULL;

                assert_int_equal(replica_store_decode(img, l, sync_key, NODE, &back, &why), -EBADMSG);
                assert_non_null(why);
                assert_ptr_equal(back, sentinel);
        }
        /* One appended byte, too. */
        img = realloc(img, len + 1);
        assert_non_null(img);
        img[len] = 0;
        assert_int_equal(replica_store_decode(img, len + 1, sync_key, NODE, &back, NULL), -EBADMSG);
        assert_ptr_equal(back, sentinel);
}

/* The same through the file: a corrupt file is reported, nothing loaded. */
static void test_corrupt_file(void **state) {
        _cleanup_(replica_freep) struct replica *r = replica_sample(0x33);
        _cleanup_(freep) char *dir = tmpdir_new(), *file = path_in(dir, REPLICA_STORE_FILE);
        _cleanup_(freep) uint8_t *img = NULL;
        struct replica *sentinel = (struct replica *) 0x1, *back = sentinel;
        const char *why;
        size_t len;

        assert_int_equal(replica_store_save(dir, sync_key, r), 0);
        img = read_file(file, &len);
        img[len / 2] ^= 0x40;
        write_file(file, img, len);
        why = NULL;
        assert_int_equal(replica_store_load(dir, sync_key, NODE, &back, &why), -EBADMSG);
        assert_non_null(strstr(why, "authentication"));
        assert_ptr_equal(back, sentinel);
        write_file(file, img, 20);
        why = NULL;
        assert_int_equal(replica_store_load(dir, sync_key, NODE, &back, &why), -EBADMSG);
        assert_non_null(strstr(why, "truncated"));
        write_file(file, "", 0);
        assert_int_equal(replica_store_load(dir, sync_key, NODE, &back, &why), -EBADMSG);
        img[len / 2] ^= 0x40;
        img[0] = 'X';
        write_file(file, img, len);
        why = NULL;
        assert_int_equal(replica_store_load(dir, sync_key, NODE, &back, &why), -EBADMSG);
        assert_non_null(strstr(why, "magic"));
        img[0] = 'H';
        img[8] = 2;
        write_file(file, img, len);
        why = NULL;
        assert_int_equal(replica_store_load(dir, sync_key, NODE, &back, &why), -EBADMSG);
        assert_non_null(strstr(why, "format"));
        assert_ptr_equal(back, sentinel);

        /* Not a regular file, or a link: refused. */
        assert_int_equal(unlink(file), 0);
        assert_int_equal(mkdir(file, 0700), 0);
        assert_int_equal(replica_store_load(dir, sync_key, NODE, &back, &why), -EBADMSG);
        assert_int_equal(rmdir(file), 0);
        assert_int_equal(symlink("/etc/hostname", file), 0);
        assert_int_equal(replica_store_load(dir, sync_key, NODE, &back, &why), -EBADMSG);
        assert_ptr_equal(back, sentinel);
        rm_rf(dir);
}

/* Authenticated, but not a replica encoding: caught by the decoder. */
static void test_sealed_garbage(void **state) {
        static const uint8_t garbage[] = { 1, 0, 0, 0, 1, 9, 9, 9 };
        _cleanup_(freep) uint8_t *img = NULL;
        struct replica *back = NULL;
        const char *why = NULL;
        size_t len;

        assert_int_equal(replica_store_seal(sync_key, garbage, sizeof(garbage), &img, &len), 0);
        assert_int_equal(replica_store_decode(img, len, sync_key, NODE, &back, &why), -EBADMSG);
        assert_non_null(why);
        assert_null(back);
        free(img);
        img = NULL;
        /* An empty replica is a valid state. */
        assert_int_equal(replica_store_seal(sync_key, (const uint8_t[]) { 1, 0, 0, 0, 0 }, 5, &img, &len), 0);
        assert_int_equal(replica_store_decode(img, len, sync_key, NODE, &back, &why), 0);
        assert_int_equal(replica_n_records(back), 0);
        replica_free(back);
}

static void test_wrong_key(void **state) {
        _cleanup_(replica_freep) struct replica *r = replica_sample(0x33);
        _cleanup_(freep) char *dir = tmpdir_new();
        uint8_t other[REPLICA_STORE_KEY_LEN];
        struct replica *back = NULL;
        const char *why = NULL;

        memcpy(other, sync_key, sizeof(other));
        other[31] ^= 0x80;
        assert_int_equal(replica_store_save(dir, sync_key, r), 0);
        assert_int_equal(replica_store_load(dir, other, NODE, &back, &why), -EBADMSG);
        assert_non_null(strstr(why, "another key"));
        assert_null(back);
        assert_int_equal(replica_store_load(dir, sync_key, NODE, &back, &why), 0);
        replica_free(back);
        rm_rf(dir);
}

/* A crash between creating the temporary file and the rename leaves it
 * behind: loading ignores it, the next save replaces it. */
static void test_leftover_temp_file(void **state) {
        _cleanup_(replica_freep) struct replica *r = replica_sample(0x33), *r2 = replica_sample(0x55), *back = NULL;
        _cleanup_(freep) char *dir = tmpdir_new(), *tmp = path_in(dir, REPLICA_STORE_TMP);
        const char *why = NULL;
        struct stat st;

        assert_int_equal(replica_store_save(dir, sync_key, r), 0);
        write_file(tmp, "half a file", 11);
        assert_int_equal(chmod(tmp, 0644), 0);
        assert_int_equal(replica_store_load(dir, sync_key, NODE, &back, &why), 0);
        assert_same_state(r, back);
        back = replica_free(back);
        assert_int_equal(replica_store_save(dir, sync_key, r2), 0);
        assert_int_equal(stat(tmp, &st), -1);
        assert_int_equal(errno, ENOENT);
        assert_int_equal(replica_store_load(dir, sync_key, NODE, &back, &why), 0);
        assert_same_state(r2, back);
        rm_rf(dir);
}

/* A save that fails leaves the previous state file as it was. */
static void test_failed_save_keeps_old(void **state) {
        _cleanup_(replica_freep) struct replica *r = replica_sample(0x33), *r2 = replica_sample(0x55), *back = NULL;
        _cleanup_(freep) char *dir = tmpdir_new(), *tmp = path_in(dir, REPLICA_STORE_TMP), *inner = NULL;
        const char *why = NULL;

        assert_int_equal(replica_store_save(dir, sync_key, r), 0);
        /* A temporary path that cannot be removed or created. */
        assert_int_equal(mkdir(tmp, 0700), 0);
        inner = path_in(tmp, "x");
        write_file(inner, "x", 1);
        assert_true(replica_store_save(dir, sync_key, r2) < 0);
        assert_int_equal(replica_store_load(dir, sync_key, NODE, &back, &why), 0);
        assert_same_state(r, back);
        back = replica_free(back);
        assert_int_equal(replica_store_save("/nonexistent/hamgr", sync_key, r2), -ENOENT);
        assert_int_equal(replica_store_save(inner, sync_key, r2), -ENOTDIR);
        rm_rf(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_every_flip_and_truncation),
                cmocka_unit_test(test_corrupt_file),
                cmocka_unit_test(test_sealed_garbage),
                cmocka_unit_test(test_wrong_key),
                cmocka_unit_test(test_leftover_temp_file),
                cmocka_unit_test(test_failed_save_keeps_old),
        };

        for (size_t i = 0; i < sizeof(sync_key); i++)
                sync_key[i] = (uint8_t) (i * 7 + 1);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
