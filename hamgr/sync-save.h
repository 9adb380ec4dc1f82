/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The replica's state file written beside the event loop. At 100,000 peers
 * a save is a 12 MB encryption, write and two fsync()s, 50 to 200 ms; on
 * the loop, a change merged from another node would wait that long before
 * the completion of its device write is seen, and every merge would stall
 * VRRP as long. The replica is encoded on the loop (its snapshot, ~10 ms),
 * then encrypted and written in a thread of its own.
 *
 * Saves are numbered: each request takes the state as it is when the save
 * starts, so one save covers every request made before it started. While
 * one runs, requests only mark the state dirty; one more save follows
 * when it ends. What a node acknowledges to another waits for the save
 * that covers it (docs/sync-protocol.md).
 */

#include <stdint.h>
#include <systemd/sd-event.h>

#include "sync/replica.h"
#include "sync/store.h"

struct sync_saver;

/* Called on the loop when the save numbered GEN ended with R (0 or
 * -errno); every request up to GEN is covered by it. */
typedef void (*sync_saver_cb_t)(uint64_t gen, int r, void *userdata);

/* A saver of REPLICA (which must outlive it) to DIR/replica.state under
 * KEY (copied), calling CB(USERDATA) on E. Returns 0 or -errno; *RET
 * untouched on failure. */
int sync_saver_new(sd_event *e, const char *dir, const uint8_t key[static REPLICA_STORE_KEY_LEN],
                   const struct replica *replica, sync_saver_cb_t cb, void *userdata, struct sync_saver **ret);

/* Ask for the state as it is now to be saved. Returns the number of the
 * save that will cover it; the callback reports it (at once, from this
 * call, if no thread could be started and the save ran on the loop). */
uint64_t sync_saver_request(struct sync_saver *sv);

/* The number of the last save that ended (successfully or not). */
uint64_t sync_saver_done(const struct sync_saver *sv);

/* The number of the last save asked for: the one that covers everything
 * saved so far. */
uint64_t sync_saver_requested(const struct sync_saver *sv);

/* Wait for the save in flight, then save the state as it is now on the
 * calling thread; the callback runs for both. Returns the result of the
 * last save. For a stop, and when acknowledgements pile up. */
int sync_saver_flush(struct sync_saver *sv);

/* Wait for the save in flight (without calling back) and free. Accepts
 * NULL; returns NULL. */
struct sync_saver *sync_saver_free(struct sync_saver *sv);
