/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * WireGuard interfaces that follow a VRRP instance or group. While the
 * followed instance (every member, for a group) is MASTER the interface is
 * up, its peers have their last known endpoints and were kicked into a
 * handshake from the virtual IP; otherwise it is down and sends nothing.
 * Endpoints are learned while MASTER, from the device while passive (what
 * the operator configured there, before clearing it) and from
 * replication, the newest winning, and kept in state_dir. Only a link
 * verified to be WireGuard is ever taken up or down.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hamgr_daemon;
struct hamgr_config;
struct hamgr_wireguard_config;
struct wg_follower;
struct buf;

/* Whether W's interface is a WireGuard one (wg_interface_check()): 0 when
 * it is, -ENODEV when it does not exist, -EMEDIUMTYPE when it is another
 * kind of link, or -errno when that cannot be told. WHY (LEN bytes) gets
 * one sentence for the operator naming the interface and what it is. */
int wg_interface_verify(const struct hamgr_wireguard_config *w, char *why, size_t len);

/* Log an error for each wireguard entry of C whose interface exists and is
 * not WireGuard (a warning when that cannot be told). Returns 0, or
 * -EMEDIUMTYPE when any is not: then hamgr must not start (or reload). */
int wg_followers_check(const struct hamgr_config *c);

/* Create the followers of D's configuration and put every interface in the
 * passive state (link down). Refuses (-EMEDIUMTYPE, see
 * wg_followers_check()) before touching any link when an entry names an
 * interface that is not WireGuard. Later, a link is only taken up or down
 * once verified to be WireGuard. Returns 0 or -errno. */
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

/* True when IFNAME has a follower and it is passive (the link is down: this
 * node does not serve its tunnels, and learns no endpoint on it). */
bool wg_follower_passive(struct hamgr_daemon *d, const char *ifname);

/* True when the follower of IFNAME has brought its link up (a takeover
 * past its link-up step, or active): only then is a down link a fault. A
 * takeover keeps the link down on purpose while it stages endpoints, which
 * takes long with many peers or a slow machine. */
bool wg_follower_link_expected_up(struct hamgr_daemon *d, const char *ifname);

/* Endpoints replicated from the master: remember those of DEV's peers for
 * the next takeover of IFNAME (saved with the follower's store), each
 * unless this node learned another endpoint for that peer later (one set
 * on its device by the operator, say). LEARNED_MS[i] is the wall-clock
 * time (ms) DEV->peers[i]'s endpoint was learned; NULL: now. */
void wg_follower_learn(struct hamgr_daemon *d, const char *ifname, const struct wg_device *dev,
                       const uint64_t *learned_ms);

struct json_object;

/* The followers' status as a new JSON array in *ret. Returns 0 or -ENOMEM. */
int wg_followers_status_json(struct hamgr_daemon *d, struct json_object **ret);

/* Follow the daemon's (new) configuration: followers whose interface,
 * backend, followed name and source address are unchanged keep running;
 * removed ones are released; new ones start passive. Call while the old
 * configuration is still allocated. Returns 0 or -errno. */
int wg_followers_reload(struct hamgr_daemon *d);

/* Append one line per follower for the text status. */
void wg_followers_status_text(struct hamgr_daemon *d, struct buf *b);
