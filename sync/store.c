/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

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
