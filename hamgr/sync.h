/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* Replication of WireGuard state between gateways (see
 * docs/sync-protocol.md and hamgr.conf(5), "sync"). */

#include <stdbool.h>
#include <stdint.h>

struct hamgr_daemon;
struct hamgr_sync;
struct buf;

/* Start replication when the configuration has a sync section: load the
 * key and the replicated state, restore the devices from it, listen, dial
 * the peers, poll the devices. Returns 0 (also when there is no sync
 * section) or -errno. */
int sync_start(struct hamgr_daemon *d);

/* Close the connections (with CLOSE frames), save the state, free. */
void sync_stop(struct hamgr_daemon *d);

/* Poll the WireGuard devices now (after a local change through the
 * control socket), pushing what changed to the peers as soon as the read
 * is done: reads run in worker threads, and one in flight is followed by
 * another. */
void sync_poll_now(struct hamgr_daemon *d);

/* Whether replication started without its state and still waits for a
 * peer's full state (or bootstrap_grace_s): local changes are not
 * versioned meanwhile, so the control socket refuses peer edits. */
bool sync_bootstrapping(struct hamgr_daemon *d);

/* Whether IFNAME's device waits for a whole write of the replicated state
 * (after a catch-up, or changes merged while one ran): that write would
 * undo a peer edit made now, so the control socket refuses them. */
bool sync_device_busy(struct hamgr_daemon *d, const char *ifname);

/* hamgr is about to write IFNAME's device (the takeover, the release,
 * the endpoint watchers; the control socket uses sync_local_write_begin()):
 * a read of it started before, still in flight, shows it from before and
 * must not be versioned. NULL: every interface. */
void sync_device_written(struct hamgr_daemon *d, const char *ifname);

/* Whether the periodic poll of IFNAME's device found its configuration
 * (everything a read lists but handshake times and traffic counters) the
 * same in a read that had ended by FROM_USEC and in one that started at or
 * after TO_USEC, hamgr having changed nothing of it between
 * (CLOCK_MONOTONIC). A change made and undone between them is not seen.
 * False when the interface is not polled (no sync). */
bool sync_device_unchanged_between(struct hamgr_daemon *d, const char *ifname, uint64_t from_usec,
                                   uint64_t to_usec);

/* The control socket starts / ended a write of the peer KEY of IFNAME's
 * device beside the loop. Meanwhile merged changes wait for a whole write
 * after the last such write ends (written at once, they could land before
 * it and be undone by it), and reads in flight are not versioned; the next
 * read compares KEY with the replica, and the other peers only if they
 * changed. Each begin takes one end; an end without a begin (a reload
 * restarted replication) is ignored. */
void sync_local_write_begin(struct hamgr_daemon *d, const char *ifname, const uint8_t key[static 32]);
void sync_local_write_end(struct hamgr_daemon *d, const char *ifname, const uint8_t key[static 32]);

struct wg_peer;
/* The control socket just wrote CHANGE (one peer, set semantics:
 * REMOVE_ME, or flagged fields) to IFNAME's device: version and push it
 * without reading the device, which at many peers costs far more than the
 * change (also when merged changes wait to be written: the edit is newer
 * and wins). Falls back to sync_poll_now() during a takeover of IFNAME or
 * when anything fails. */
void sync_local_peer(struct hamgr_daemon *d, const char *ifname, const struct wg_peer *change);

struct json_object;

/* The sync status as a new JSON object in *ret; NULL (JSON null) without a
 * sync section. Returns 0 or -ENOMEM. */
int sync_status_json(struct hamgr_daemon *d, struct json_object **ret);

/* The replicated peers as a new JSON array in *ret: interface, key,
 * version, origin node, removed, whether every sync peer confirmed it.
 * Returns 0 or -ENOMEM. */
int sync_peers_json(struct hamgr_daemon *d, struct json_object **ret);

/* Append the sync lines of the text status. */
void sync_status_text(struct hamgr_daemon *d, struct buf *b);

/* Follow a reloaded configuration: unchanged sync settings keep their
 * connections; changed ones restart replication (the state is saved and
 * loaded again). Call while the old configuration is still allocated. */
int sync_reload(struct hamgr_daemon *d);
