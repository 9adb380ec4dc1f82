/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Thin netlink helpers for the WireGuard takeover: bring a link up or
 * down, and make a virtual IP the preferred source of the routes out of
 * its interface (so WireGuard packets leave from the VIP, which is what
 * clients have as the endpoint), with an exact restore.
 */

#include <stdbool.h>

#include "common/ipaddr.h"

struct nl_sock;
struct route_src_override;

/* Set or clear IFF_UP on IFINDEX. Returns 0 or -errno. */
int route_link_set_up(struct nl_sock *sk, int ifindex, bool up);

/*
 * For every main-table route of SRC's family whose next hop leaves through
 * IFINDEX, replace it with the same route with preferred source SRC. The
 * originals are kept in *ret for route_src_restore(). Routes that cannot
 * be changed are skipped (counted in *ret_failed when not NULL).
 * Returns 0 or -errno (then nothing was changed).
 */
int route_src_override(struct nl_sock *sk, int ifindex, const struct ip_address *src,
                       struct route_src_override **ret, unsigned *ret_failed);

/* Put the original routes back (routes gone meanwhile are skipped) and
 * free O. Accepts NULL. */
void route_src_restore(struct nl_sock *sk, struct route_src_override *o);

/*
 * SRC, an IPv4 virtual IP about to be removed from IFINDEX, is the preferred
 * source of main-table routes out of IFINDEX that nobody will restore (a
 * previous run overrode them and died): removing the address would make
 * the kernel delete them, the connected route of the link among them. Give
 * each the interface's primary address (one in the route's prefix if any)
 * as source instead. The prefix route the kernel made for SRC itself (SRC
 * a primary address, alone in its subnet) is left as it is: it goes with
 * the address. No-op for IPv6, which keeps such routes.
 * Returns the number of routes changed, or -errno.
 */
int route_src_disown(struct nl_sock *sk, int ifindex, const struct ip_address *src);

/* Number of routes changed by O. */
unsigned route_src_count(const struct route_src_override *o);
