/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The file edge of replication: reading the sync key file and reading and
 * writing the replica's state file. The contents are the pure sync/ core's
 * (sync_key_parse(), replica_store_encode(), replica_store_decode()); only
 * open/read/write/rename live here.
 *
 * State file writes are atomic: a new file replica.state.tmp (O_EXCL, mode
 * 0600; a leftover of a crash is removed first), written whole, fsync()ed,
 * renamed over replica.state, then the directory fsync()ed so the rename
 * itself survives a power loss. A crash at any point leaves the old file or
 * the new one. Loading ignores the temporary file.
 */

#include <stdint.h>

#include "sync/replica.h"
#include "sync/store.h"
#include "sync/sync_proto.h"

#define REPLICA_STORE_FILE "replica.state"
#define REPLICA_STORE_TMP "replica.state.tmp"

/* Read and parse the key file at PATH. Refuses a file that is not a regular
 * file (without blocking on a FIFO), whose mode grants group or other any
 * access, or that is owned by neither root nor the caller (-EPERM), since
 * the private key authenticates this node to its peers. Returns 0, -EPERM,
 * -EBADMSG or the -errno of open/read, with *ret_reason set on every failure
 * (ret_reason may be NULL). ret_private is untouched on failure. */
int sync_key_load(const char *path, uint8_t ret_private[static SYNC_KEY_LEN], const char **ret_reason);

/* Write R to DIR/replica.state atomically (above). DIR must exist.
 * Returns 0 or -errno; on failure the previous file is intact. */
int replica_store_save(const char *dir, const uint8_t sync_private_key[static REPLICA_STORE_KEY_LEN],
                       const struct replica *r);

/* Write IMG, an image replica_store_encode() or replica_store_seal()
 * made, as DIR/replica.state atomically (above): what
 * replica_store_save() does after encoding, for a caller that encodes on
 * one thread and writes on another. Returns 0 or -errno. */
int replica_store_write(const char *dir, const uint8_t *img, size_t len);

/* Load DIR/replica.state as replica_store_decode() does. Returns 0;
 * -ENOENT when there is no state file; -EBADMSG with a reason (also for
 * a file that is not a regular file or is too big); other -errno. *ret is
 * untouched on failure. */
int replica_store_load(const char *dir, const uint8_t sync_private_key[static REPLICA_STORE_KEY_LEN], uint64_t node,
                       struct replica **ret, const char **ret_reason);
