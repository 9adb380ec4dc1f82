/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Routes that move with the virtual IPs (virtual_routes), via libnl-route.
 * Thin: no policy. Every route is installed with protocol
 * VRRP_ROUTE_PROTOCOL and removed only with it, so a route of the same
 * shape that someone else installed (`ip route add` uses "boot") is never
 * taken away.
 */

#include <stdint.h>

#include "common/ipaddr.h"

struct nl_sock;

/* RTPROT_STATIC: "ip route show proto static" lists them. */
#define VRRP_ROUTE_PROTOCOL 4

struct vrrp_route {
        struct ip_prefix dst;        /* network address (no host bits) and length */
        struct ip_address gateway;   /* family AF_UNSPEC: none (a link route) */
        struct ip_address src;       /* preferred source; AF_UNSPEC: none */
        int ifindex;                 /* 0: none (blackhole, unreachable, prohibit) */
        uint32_t table;              /* 1..2^32-1, RT_TABLE_MAIN is 254 */
        uint32_t metric;             /* the kernel's "priority" */
        uint8_t type;                /* RTN_UNICAST, RTN_BLACKHOLE, RTN_UNREACHABLE, RTN_PROHIBIT */
};

/*
 * Add R (create, exclusive). Returns 0 when added, 1 when the very route
 * was already there (left by a previous run, or added by hand: it counts
 * as installed), -EEXIST when a different route holds its place (same
 * destination, table and metric), or another -errno from the kernel
 * (-ENETUNREACH: the gateway is not on a connected network, -ENODEV...).
 */
int vrrp_route_add(struct nl_sock *sk, const struct vrrp_route *r);

/* Remove R if it is there with VRRP_ROUTE_PROTOCOL. Returns 1 when
 * removed, 0 when there was none (also when its device is gone, which
 * took the route with it), or -errno. */
int vrrp_route_remove(struct nl_sock *sk, const struct vrrp_route *r);

/* Returns 1 if a route like R (whatever its protocol) is in R's table, 0 if
 * not, or -errno. */
int vrrp_route_present(struct nl_sock *sk, const struct vrrp_route *r);
