/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The sync protocol's parsers on arbitrary bytes. The first input byte
 * picks the mode (modulo 4), the rest is the data:
 *   0  sync_frame_parse(); whatever it accepts must rebuild byte for byte.
 *   1  sync_handshake_respond() on a message 1.
 *   2  a responder session fed the bytes in chunks (handshake, then stream).
 *   3  records [len][tag][plaintext] encrypted by a well-behaved sender and
 *      fed to an established session: every frame it delivers must be what
 *      sync_frame_parse() says about the plaintext, and nothing may be
 *      delivered after a refusal.
 * Keys are fixed so a seed holding a real message 1 (tests/fuzz/corpus)
 * gets through the handshake. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/macro.h"
#include "sync/sync_proto.h"

/* Node A (initiator) and B (responder): private keys 0x41.. and 0x42..,
 * clamped by X25519 itself. */
static uint8_t a_priv[SYNC_KEY_LEN], a_pub[SYNC_KEY_LEN], b_priv[SYNC_KEY_LEN];

static void keys_init(void) {
        static bool done;

        if (done)
                return;
        if (sodium_init() < 0)
                abort();
        memset(a_priv, 0x41, sizeof(a_priv));
        memset(b_priv, 0x42, sizeof(b_priv));
        if (wg_key_public_from_private(a_pub, a_priv) < 0)
                abort();
        done = true;
}

static void mode_parse(const uint8_t *data, size_t size) {
        struct sync_frame f;
        const char *reason = NULL;
        uint8_t *buf = NULL;
        size_t len;
        int r;

        r = sync_frame_parse(data, size, &f, &reason);
        if (r < 0) {
                if (r != -EBADMSG || !reason)
                        abort();
                return;
        }
        if (!sync_frame_type_to_string(f.type))
                abort();
        if (f.type == SYNC_FRAME_CHANGES && (f.changes.data < data || f.changes.data + f.changes.len != data + size))
                abort();
        r = sync_frame_build(&f, &buf, &len);
        if (r == -ENOMEM)
                return;
        if (r < 0 || len != size || memcmp(buf, data, size) != 0)
                abort();
        free(buf);
}

static void mode_respond(const uint8_t *data, size_t size) {
        struct sync_peer peers[2] = {};
        uint8_t msg2[SYNC_MSG2_LEN];
        struct sync_keys keys;
        const char *reason = NULL;
        size_t peer = SIZE_MAX;
        int r;

        memset(peers[0].public_key, 0x09, SYNC_KEY_LEN);
        memcpy(peers[1].public_key, a_pub, SYNC_KEY_LEN);
        r = sync_handshake_respond(b_priv, peers, 2, data, size, msg2, &keys, &peer, &reason);
        if (r < 0) {
                if (r != -EBADMSG || !reason || peers[1].last_timestamp != 0)
                        abort();
                return;
        }
        if (size != SYNC_MSG1_LEN || peer != 1 || peers[1].last_timestamp == 0 || msg2[0] != SYNC_PROTO_VERSION)
                abort();
        /* The same message twice is a replay. */
        r = sync_handshake_respond(b_priv, peers, 2, data, size, msg2, &keys, &peer, &reason);
        if (r != -EBADMSG)
                abort();
        sodium_memzero(&keys, sizeof(keys));
}

static void mode_session(const uint8_t *data, size_t size) {
        struct sync_peer peers[1] = {};
        struct sync_session *s = NULL;
        size_t off = 0;
        bool failed = false;

        memcpy(peers[0].public_key, a_pub, SYNC_KEY_LEN);
        if (sync_session_new_responder(&s, b_priv, peers, 1) < 0)
                abort();
        /* Chunk sizes come from the data itself: byte k says how many of
         * the following bytes form the next chunk. */
        while (off < size && !failed) {
                size_t n = MIN((size_t) data[off] + 1, size - off - 1);
                const char *reason = NULL;
                struct sync_frame f;
                int r;

                off++;
                r = sync_session_feed(s, data + off, n);
                if (r < 0)
                        break;
                off += n;
                while ((r = sync_session_next_frame(s, &f, &reason)) == 1)
                        if (!sync_frame_type_to_string(f.type))
                                abort();
                if (r < 0) {
                        if (r != -EBADMSG || !reason)
                                abort();
                        failed = true;
                }
        }
        if (failed && sync_session_feed(s, data, 0) != -ESHUTDOWN)
                abort();
        (void) sync_session_end(s, NULL);
        sync_session_free(s);
}

static void mode_stream(const uint8_t *data, size_t size) {
        static const uint8_t tags[] = {
                crypto_secretstream_xchacha20poly1305_TAG_MESSAGE,
                crypto_secretstream_xchacha20poly1305_TAG_PUSH,
                crypto_secretstream_xchacha20poly1305_TAG_REKEY,
                crypto_secretstream_xchacha20poly1305_TAG_FINAL,
        };
        crypto_secretstream_xchacha20poly1305_state tx;
        uint8_t header[SYNC_STREAM_HEADER_LEN], *c = NULL;
        struct sync_keys keys = {};
        struct sync_session *s = NULL;
        uint8_t *hdr_out = NULL;
        size_t off = 0, hdr_len;
        bool dead = false;

        memset(keys.recv, 0x5a, sizeof(keys.recv));
        memset(keys.send, 0xa5, sizeof(keys.send));
        if (sync_session_new_established(&s, &keys, false, a_pub) < 0)
                abort();
        /* Our own header is queued; drain it so encode is not involved. */
        if (sync_session_take_output(s, &hdr_out, &hdr_len) != 1 || hdr_len != SYNC_STREAM_HEADER_LEN)
                abort();
        free(hdr_out);

        crypto_secretstream_xchacha20poly1305_init_push(&tx, header, keys.recv);
        if (sync_session_feed(s, header, sizeof(header)) < 0)
                abort();

        while (off + 2 <= size) {
                size_t len = MIN((size_t) data[off], size - off - 2);
                uint8_t tag = tags[data[off + 1] % ELEMENTSOF(tags)];
                const uint8_t *plain = data + off + 2;
                struct sync_frame want, got;
                const char *reason = NULL, *preason = NULL;
                bool ok;
                int r;

                off += 2 + len;
                c = malloc(4 + len + SYNC_FRAME_OVERHEAD);
                if (!c)
                        break;
                c[0] = 0;
                c[1] = 0;
                c[2] = (uint8_t) ((len + SYNC_FRAME_OVERHEAD) >> 8);
                c[3] = (uint8_t) (len + SYNC_FRAME_OVERHEAD);
                crypto_secretstream_xchacha20poly1305_push(&tx, c + 4, NULL, plain, len, c, 4, tag);
                r = sync_session_feed(s, c, 4 + len + SYNC_FRAME_OVERHEAD);
                free(c);
                if (r < 0) {
                        if (!dead)
                                abort();
                        break;
                }
                r = sync_session_next_frame(s, &got, &reason);
                ok = sync_frame_parse(plain, len, &want, &preason) == 0 &&
                     (tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL) == (want.type == SYNC_FRAME_CLOSE) &&
                     (tag == crypto_secretstream_xchacha20poly1305_TAG_MESSAGE ||
                      tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL) &&
                     len >= 2;
                if (dead) {
                        if (r != -EBADMSG)
                                abort();
                        break;
                }
                if (ok) {
                        if (r != 1 || got.type != want.type)
                                abort();
                        if (got.type == SYNC_FRAME_CLOSE)
                                dead = true;   /* anything after it is refused */
                } else {
                        if (r != -EBADMSG || !reason)
                                abort();
                        dead = true;
                }
        }
        sodium_memzero(&tx, sizeof(tx));
        sync_session_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        keys_init();
        switch (data[0] % 4) {
        case 0:
                mode_parse(data + 1, size - 1);
                break;
        case 1:
                mode_respond(data + 1, size - 1);
                break;
        case 2:
                mode_session(data + 1, size - 1);
                break;
        default:
                mode_stream(data + 1, size - 1);
                break;
        }
        return 0;
}
