/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The sync handshake's message parsers where fuzz_sync_frame does not go:
 * the initiator's reading of message 2, and the key file. Byte 0 picks the
 * mode (modulo 3), the rest is the data:
 *   0  sync_key_parse(): a key it accepts must be the canonical base64 of
 *      the key it returns (one line, optional final newline).
 *   1  a real handshake between two nodes, whose message 2 is XORed with
 *      the data (longer data extends it, shorter cuts it) before the
 *      initiator reads it: it must succeed exactly when nothing changed,
 *      and then agree on the keys with the responder.
 *   2  the same for message 1 on its way to the responder.
 * Random bytes never make a valid message (every one carries an AEAD tag
 * over a transcript with fresh ephemeral keys), so the fuzzer mutates real
 * ones; the property holds whatever ephemeral keys a run picks. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/macro.h"
#include "sync/sync_proto.h"

#define check(x)                 \
        do {                     \
                if (!(x))        \
                        abort(); \
        } while (0)

static uint8_t a_priv[SYNC_KEY_LEN], a_pub[SYNC_KEY_LEN], b_priv[SYNC_KEY_LEN], b_pub[SYNC_KEY_LEN];

static void keys_init(void) {
        static bool done;

        if (done)
                return;
        check(sodium_init() >= 0);
        memset(a_priv, 0x41, sizeof(a_priv));
        memset(b_priv, 0x42, sizeof(b_priv));
        check(wg_key_public_from_private(a_pub, a_priv) == 0);
        check(wg_key_public_from_private(b_pub, b_priv) == 0);
        done = true;
}

static void mode_key(const uint8_t *data, size_t size) {
        uint8_t key[SYNC_KEY_LEN];
        char b64[WG_KEY_B64_LEN];
        const char *reason = NULL;
        int r;

        r = sync_key_parse((const char *) data, size, key, &reason);
        if (r < 0) {
                check(r == -EBADMSG && reason);
                return;
        }
        check(size == WG_KEY_B64_LEN - 1 || (size == WG_KEY_B64_LEN && data[size - 1] == '\n'));
        check(!sodium_is_zero(key, sizeof(key)));
        wg_key_to_base64(b64, key);
        check(memcmp(b64, data, WG_KEY_B64_LEN - 1) == 0);
        sodium_memzero(key, sizeof(key));
}

/* MSG (LEN bytes) XOR DATA, extended by DATA when DATA is longer; the
 * length of the result is SIZE, or LEN when SIZE is 0. Returns whether
 * the result differs from MSG. */
static bool tamper(uint8_t *out, const uint8_t *msg, size_t len, const uint8_t *data, size_t size,
                   size_t *ret_len) {
        size_t n = size ? size : len;
        bool changed = n != len;

        for (size_t i = 0; i < n; i++) {
                uint8_t m = i < len ? msg[i] : 0;
                uint8_t x = i < size ? data[i] : 0;

                out[i] = i < len ? m ^ x : x;
                changed |= i < len && x != 0;
        }
        *ret_len = n;
        return changed;
}

static bool keys_match(const struct sync_keys *initiator, const struct sync_keys *responder) {
        return memcmp(initiator->send, responder->recv, SYNC_KEY_LEN) == 0 &&
               memcmp(initiator->recv, responder->send, SYNC_KEY_LEN) == 0 &&
               memcmp(initiator->hash, responder->hash, sizeof(initiator->hash)) == 0;
}

static void mode_handshake(const uint8_t *data, size_t size, bool tamper_msg2) {
        static uint8_t bad[4096];
        static uint64_t timestamp;
        struct sync_initiator hs;
        struct sync_peer peers[1] = {};
        struct sync_keys ka, kb;
        uint8_t msg1[SYNC_MSG1_LEN], msg2[SYNC_MSG2_LEN];
        const char *reason = NULL;
        size_t len;
        bool changed;
        int r;

        if (size > sizeof(bad))
                return;
        memcpy(peers[0].public_key, a_pub, SYNC_KEY_LEN);
        check(sync_handshake_initiate(&hs, a_priv, b_pub, ++timestamp, msg1) == 0);

        if (!tamper_msg2) {
                changed = tamper(bad, msg1, sizeof(msg1), data, size, &len);
                r = sync_handshake_respond(b_priv, peers, 1, bad, len, msg2, &kb, NULL, &reason);
                if (changed) {
                        check(r == -EBADMSG && reason && peers[0].last_timestamp == 0);
                        sync_initiator_wipe(&hs);
                        return;
                }
                check(r == 0 && peers[0].last_timestamp == timestamp);
                check(sync_handshake_finish(&hs, msg2, sizeof(msg2), &ka, NULL) == 0);
                check(keys_match(&ka, &kb));
                return;
        }

        check(sync_handshake_respond(b_priv, peers, 1, msg1, sizeof(msg1), msg2, &kb, NULL, NULL) == 0);
        changed = tamper(bad, msg2, sizeof(msg2), data, size, &len);
        r = sync_handshake_finish(&hs, bad, len, &ka, &reason);
        if (changed)
                check(r == -EBADMSG && reason);
        else
                check(r == 0 && keys_match(&ka, &kb));
        /* Single use, success or not. */
        check(sync_handshake_finish(&hs, msg2, sizeof(msg2), &ka, NULL) == -EBADMSG);
        sodium_memzero(&ka, sizeof(ka));
        sodium_memzero(&kb, sizeof(kb));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        keys_init();
        switch (data[0] % 3) {
        case 0:
                mode_key(data + 1, size - 1);
                break;
        case 1:
                mode_handshake(data + 1, size - 1, true);
                break;
        default:
                mode_handshake(data + 1, size - 1, false);
                break;
        }
        return 0;
}
