/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * WireGuard interfaces that follow a VRRP instance or group. While the
 * followed instance (every member, for a group) is MASTER the interface is
 * up, its peers have their last known endpoints and were kicked into a
 * handshake from the virtual IP; otherwise it is down and sends nothing.
 * Endpoints are learned while MASTER and kept in state_dir.
 */

#include <stdbool.h>
#include <stdint.h>

struct hamgr_daemon;
struct wg_follower;
struct buf;

/* Create the followers of D's configuration and put every interface in the
 * passive state (link down). Returns 0 or -errno. */
int wg_followers_start(struct hamgr_daemon *d);

/* Take over or release where the followed state changed. Cheap when
 * nothing changed; called after every batch of VRRP transitions. */
void wg_followers_update(struct hamgr_daemon *d);

/* Links changed: a passive interface that came up is taken down again; an
 * active one that was re-created (wireguard-go restarted) is taken over
 * again a second later. */
void wg_followers_links_changed(struct hamgr_daemon *d);

/*
 * INSTANCE (member of GROUP, or NULL) stayed MASTER while another node was
 * master too (a partition, a frozen node), and the other has yielded now:
 * clients may have handshaken with it, and this node lacks those sessions.
 * Active followers of either take over again: endpoints restored, every
 * peer kicked into a handshake. At most once a second per follower.
 */
void wg_followers_rekick(struct hamgr_daemon *d, const char *instance, const char *group);

/* Release the followers whose instance or group is no longer MASTER, and
 * nothing else. Called before the VIPs are removed. */
void wg_followers_release_lost(struct hamgr_daemon *d);

/* Release everything (link down, routes restored, endpoints saved) and
 * free the followers. */
void wg_followers_stop(struct hamgr_daemon *d);

/* True while a takeover of IFNAME is in progress: keepalives are
 * temporarily 0 then, which must not be read as an edit. */
bool wg_follower_busy(struct hamgr_daemon *d, const char *ifname);

/* True when the follower of IFNAME is active (this node serves its tunnels). */
bool wg_follower_active(struct hamgr_daemon *d, const char *ifname);

/* Endpoints replicated from the master: remember those of DEV's peers for
 * the next takeover of IFNAME (saved with the follower's store). */
void wg_follower_learn(struct hamgr_daemon *d, const char *ifname, const struct wg_device *dev);

/* Append the followers' status as a JSON array (no trailing comma). */
void wg_followers_status_json(struct hamgr_daemon *d, struct buf *b);

/* Follow the daemon's (new) configuration: followers whose interface,
 * backend, followed name and source address are unchanged keep running;
 * removed ones are released; new ones start passive. Call while the old
 * configuration is still allocated. Returns 0 or -errno. */
int wg_followers_reload(struct hamgr_daemon *d);

/* Append one line per follower for the text status. */
void wg_followers_status_text(struct hamgr_daemon *d, struct buf *b);
