/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "common/macro.h"
#include "sync/store.h"

static const uint8_t store_magic[8] = { 'H', 'M', 'G', 'R', 'R', 'E', 'P', 'L' };
#define STORE_FORMAT 1
#define STORE_NONCE_OFF 12

/* Wipe-and-free for buffers that held keys in the clear. */
struct secret_buf {
        uint8_t *p;
        size_t len;
};

static void secret_buf_done(struct secret_buf *b) {
        if (b->p)
                sodium_memzero(b->p, b->len);
        free(b->p);
        *b = (struct secret_buf) {};
}

static int derive_key(const uint8_t sync_private_key[static REPLICA_STORE_KEY_LEN],
                      uint8_t ret[static crypto_aead_xchacha20poly1305_ietf_KEYBYTES]) {
        static const char ctx[crypto_kdf_CONTEXTBYTES] = { 'h', 'a', 'm', 'g', 'r', 's', 't', '1' };

        if (sodium_init() < 0)
                return -EIO;
        if (crypto_kdf_derive_from_key(ret, crypto_aead_xchacha20poly1305_ietf_KEYBYTES, 1, ctx,
                                       sync_private_key) != 0)
                return -EIO;
        return 0;
}

int replica_store_seal(const uint8_t sync_private_key[static REPLICA_STORE_KEY_LEN], const uint8_t *plain,
                       size_t len, uint8_t **ret, size_t *ret_len) {
        uint8_t key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
        unsigned long long clen;
        uint8_t *out;
        size_t total;
        int r;

        if (!sync_private_key || (!plain && len > 0) || !ret || !ret_len)
                return -EINVAL;
        if (len > REPLICA_STORE_SIZE_MAX - REPLICA_STORE_HEADER_LEN - crypto_aead_xchacha20poly1305_ietf_ABYTES)
                return -E2BIG;
        total = REPLICA_STORE_HEADER_LEN + len + crypto_aead_xchacha20poly1305_ietf_ABYTES;
        r = derive_key(sync_private_key, key);
        if (r < 0)
                return r;
        out = calloc(1, total);
        if (!out) {
                sodium_memzero(key, sizeof(key));
                return -ENOMEM;
        }
        memcpy(out, store_magic, sizeof(store_magic));
        out[8] = STORE_FORMAT;
        randombytes_buf(out + STORE_NONCE_OFF, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
        crypto_aead_xchacha20poly1305_ietf_encrypt(out + REPLICA_STORE_HEADER_LEN, &clen, plain, len, out,
                                                   REPLICA_STORE_HEADER_LEN, NULL, out + STORE_NONCE_OFF, key);
        sodium_memzero(key, sizeof(key));
        *ret = out;
        *ret_len = REPLICA_STORE_HEADER_LEN + (size_t) clen;
        return 0;
}

int replica_store_encode(const uint8_t sync_private_key[static REPLICA_STORE_KEY_LEN], const struct replica *r,
                         uint8_t **ret, size_t *ret_len) {
        _cleanup_(secret_buf_done) struct secret_buf plain = {};
        int k;

        if (!r)
                return -EINVAL;
        k = replica_encode(r, &plain.p, &plain.len);
        if (k < 0)
                return k;
        return replica_store_seal(sync_private_key, plain.p, plain.len, ret, ret_len);
}

int replica_store_decode(const uint8_t *buf, size_t len, const uint8_t sync_private_key[static REPLICA_STORE_KEY_LEN],
                         uint64_t node, struct replica **ret, const char **ret_reason) {
        _cleanup_(secret_buf_done) struct secret_buf plain = {};
        uint8_t key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
        unsigned long long plen;
        const char *why;
        int r;

        if ((!buf && len > 0) || !sync_private_key || !ret)
                return -EINVAL;
        if (len < REPLICA_STORE_HEADER_LEN + crypto_aead_xchacha20poly1305_ietf_ABYTES) {
                why = "state file truncated";
                goto bad;
        }
        if (memcmp(buf, store_magic, sizeof(store_magic)) != 0) {
                why = "not a replica state file (bad magic)";
                goto bad;
        }
        if (buf[8] != STORE_FORMAT || buf[9] != 0 || buf[10] != 0 || buf[11] != 0) {
                why = "unsupported state file format";
                goto bad;
        }
        plain.len = len - REPLICA_STORE_HEADER_LEN - crypto_aead_xchacha20poly1305_ietf_ABYTES;
        plain.p = malloc(plain.len > 0 ? plain.len : 1);
        if (!plain.p)
                return -ENOMEM;
        r = derive_key(sync_private_key, key);
        if (r < 0)
                return r;
        r = crypto_aead_xchacha20poly1305_ietf_decrypt(plain.p, &plen, NULL, buf + REPLICA_STORE_HEADER_LEN,
                                                       len - REPLICA_STORE_HEADER_LEN, buf,
                                                       REPLICA_STORE_HEADER_LEN, buf + STORE_NONCE_OFF, key);
        sodium_memzero(key, sizeof(key));
        if (r != 0) {
                why = "state file authentication failed (corrupt, or written with another key)";
                goto bad;
        }
        r = replica_decode(plain.p, (size_t) plen, node, ret, &why);
        if (r == -EBADMSG)
                goto bad;
        return r;
bad:
        if (ret_reason)
                *ret_reason = why;
        return -EBADMSG;
}

static int write_all(int fd, const uint8_t *p, size_t len) {
        while (len > 0) {
                ssize_t n = write(fd, p, len);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

int replica_store_save(const char *dir, const uint8_t sync_private_key[static REPLICA_STORE_KEY_LEN],
                       const struct replica *r) {
        _cleanup_(closep) int dfd = -1, fd = -1;
        _cleanup_(freep) uint8_t *img = NULL;
        size_t len;
        int k;

        if (!dir || !sync_private_key || !r)
                return -EINVAL;
        k = replica_store_encode(sync_private_key, r, &img, &len);
        if (k < 0)
                return k;
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        /* Only hamgr writes here: a temporary file that exists is a
         * leftover of a crash, never someone else's write in progress. */
        if (unlinkat(dfd, REPLICA_STORE_TMP, 0) < 0 && errno != ENOENT)
                return -errno;
        fd = openat(dfd, REPLICA_STORE_TMP, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        /* The umask may only have narrowed the mode, but say it exactly. */
        if (fchmod(fd, 0600) < 0)
                goto fail_errno;
        k = write_all(fd, img, len);
        if (k < 0)
                goto fail;
        if (fsync(fd) < 0)
                goto fail_errno;
        if (close(TAKE_FD(fd)) < 0)
                goto fail_errno;
        if (renameat(dfd, REPLICA_STORE_TMP, dfd, REPLICA_STORE_FILE) < 0)
                goto fail_errno;
        /* The rename is in the directory: without this a power loss may
         * bring back the old file, or none. */
        if (fsync(dfd) < 0)
                return -errno;
        return 0;
fail_errno:
        k = -errno;
fail:
        (void) unlinkat(dfd, REPLICA_STORE_TMP, 0);
        return k;
}

int replica_store_load(const char *dir, const uint8_t sync_private_key[static REPLICA_STORE_KEY_LEN], uint64_t node,
                       struct replica **ret, const char **ret_reason) {
        _cleanup_(closep) int dfd = -1, fd = -1;
        _cleanup_(freep) uint8_t *img = NULL;
        struct stat st;
        size_t len, got = 0;

        if (!dir || !sync_private_key || !ret)
                return -EINVAL;
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        fd = openat(dfd, REPLICA_STORE_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0) {
                if (errno == ELOOP && ret_reason)
                        *ret_reason = "state file is a symbolic link";
                return errno == ELOOP ? -EBADMSG : -errno;
        }
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode)) {
                if (ret_reason)
                        *ret_reason = "state file is not a regular file";
                return -EBADMSG;
        }
        if ((uint64_t) st.st_size > REPLICA_STORE_SIZE_MAX) {
                if (ret_reason)
                        *ret_reason = "state file too big";
                return -EBADMSG;
        }
        len = (size_t) st.st_size;
        img = malloc(len > 0 ? len : 1);
        if (!img)
                return -ENOMEM;
        /* Read what fstat() announced; a file that changes size under us
         * then fails the tag rather than being read half. */
        while (got < len) {
                ssize_t n = read(fd, img + got, len - got);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                got += (size_t) n;
        }
        return replica_store_decode(img, got, sync_private_key, node, ret, ret_reason);
}
