/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* Spoke side endpoint failover: rotate a peer among candidate gateway
 * endpoints when it goes stale (see hamgr.conf(5), "endpoints"). */

struct hamgr_daemon;
struct buf;
struct endpoint_rt;

/* Start watching every configured peer. Returns 0 or -errno. */
int endpoints_start(struct hamgr_daemon *d);

/* Stop watching and free. */
void endpoints_stop(struct hamgr_daemon *d);

struct json_object;

/* The watched peers' status as a new JSON array in *ret. Returns 0 or -ENOMEM. */
int endpoints_status_json(struct hamgr_daemon *d, struct json_object **ret);

/* Restart the watchers from the daemon's (new) configuration. */
int endpoints_reload(struct hamgr_daemon *d);

/* Append one line per watched peer for the text status. */
void endpoints_status_text(struct hamgr_daemon *d, struct buf *b);
