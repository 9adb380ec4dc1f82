/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Format of the replica's state file, STATE_DIR/replica.state, from which a
 * node that restarts while its peer is down starts. Bytes in, bytes out:
 * reading and writing the file is hamgr/sync-file.h.
 *
 * It is encrypted, so that a copied backup does not hold WireGuard keys in
 * the clear: the key is derived (crypto_kdf, BLAKE2b, context "hamgrst1",
 * subkey 1) from the node's sync private key, which lives elsewhere. The
 * file is
 *   "HMGRREPL", u8 format (1), 3 zero bytes, 24-byte random nonce,
 *   XChaCha20-Poly1305 (IETF) of replica_encode(), with those 36 header
 *   bytes as associated data,
 * so truncation, any flipped bit (header included) and another node's key
 * all fail the tag; nothing is decoded before the whole file authenticated.
 */

#include <stddef.h>
#include <stdint.h>

#include "sync/replica.h"

#define REPLICA_STORE_KEY_LEN 32
#define REPLICA_STORE_HEADER_LEN 36
/* Far above a million peers' worth; a bigger file is refused unread. */
#define REPLICA_STORE_SIZE_MAX (UINT64_C(1) << 30)

/* Encrypt PLAIN as a state file image under SYNC_PRIVATE_KEY with a fresh
 * nonce. Returns 0 and a new buffer, or -ENOMEM/-EIO/-E2BIG. */
int replica_store_seal(const uint8_t sync_private_key[static REPLICA_STORE_KEY_LEN], const uint8_t *plain,
                       size_t len, uint8_t **ret, size_t *ret_len);

/* The state file image of R. Returns 0 and a new buffer, or -errno. */
int replica_store_encode(const uint8_t sync_private_key[static REPLICA_STORE_KEY_LEN], const struct replica *r,
                         uint8_t **ret, size_t *ret_len);

/* Authenticate, decrypt and decode a state file image into a new replica
 * for NODE (replica_decode()). Returns 0; -EBADMSG with a static reason in
 * *ret_reason (when not NULL) for a truncated file, a bad magic or format,
 * a failed tag (corruption or another key) or a bad encoding; -EINVAL or
 * -ENOMEM. *ret is untouched on failure. */
int replica_store_decode(const uint8_t *buf, size_t len, const uint8_t sync_private_key[static REPLICA_STORE_KEY_LEN],
                         uint64_t node, struct replica **ret, const char **ret_reason);
