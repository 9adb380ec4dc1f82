/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * An instance's virtual_routes on the event loop: added after the virtual
 * IPs on becoming MASTER (a gateway or preferred source may be a VIP),
 * removed before them on leaving MASTER. Failures are logged per route and
 * never stop the VIPs or the other routes.
 */

#include <stdbool.h>

struct buf;
struct hamgr_instance;
struct hamgr_vrrp_config;

/* Per route of inst->config->virtual_routes, same index. */
struct instance_route_state {
        bool installed;              /* added (or found in place) and not removed since */
        int error;                   /* last failure to add, -errno; 0 if none */
};

/* Add every route, in order. */
void instance_routes_install(struct hamgr_instance *inst);

/* While MASTER, try again the routes that failed: called on link and
 * address changes, as a route's device may just have come up (a followed
 * WireGuard interface does, late in the takeover) or its gateway become
 * reachable. A failure repeated is not logged again. */
void instance_routes_retry(struct hamgr_instance *inst);

/* Remove every route, in reverse order. Routes already gone are fine. */
void instance_routes_remove(struct hamgr_instance *inst);

/* Before start: remove routes a previous run left (only those installed
 * with hamgr's route protocol, exactly as configured). */
void instance_routes_remove_stale(struct hamgr_instance *inst);

/* After a reload put the new config in inst->config (OLD is the one it
 * replaced, same interface): while MASTER, routes no longer configured are
 * removed, then new ones and kept ones not installed are added; installed
 * unchanged routes stay untouched. */
void instance_routes_reconfigure(struct hamgr_instance *inst, const struct hamgr_vrrp_config *old);

/* Free the per-route state. */
void instance_routes_free(struct hamgr_instance *inst);

struct json_object;

/* The instance's virtual routes for status --json, a new JSON array in
 * *ret. Returns 0 or -ENOMEM. */
int instance_routes_status_json(const struct hamgr_instance *inst, struct json_object **ret);
