/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* Virtual IP addresses on an interface, via libnl-route. Thin: no policy. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/ipaddr.h"

struct nl_sock;

/* A libnl error code (negative NLE_*) as the -errno the kernel meant, for
 * the codes these calls and vrrp/route.c meet; -EIO for others, 0 for 0. */
int vrrp_nl_errno(int nlerr);

/* Connect a NETLINK_ROUTE socket for the calls below. Returns 0 or -errno. */
int vrrp_address_socket_open(struct nl_sock **ret);
/* Accepts NULL. */
void vrrp_address_socket_close(struct nl_sock *sk);

/* Add P to IFINDEX (IPv6: IFA_F_NODAD, so it is usable at once). An address
 * already present counts as success. Returns 0 or -errno. */
int vrrp_address_add(struct nl_sock *sk, int ifindex, const struct ip_prefix *p);

/* Remove P from IFINDEX. An address already absent counts as success.
 * Returns 0 or -errno. */
int vrrp_address_remove(struct nl_sock *sk, int ifindex, const struct ip_prefix *p);

/* Returns 1 if ADDR (any prefix length) is configured on IFINDEX, 0 if not, or -errno. */
int vrrp_address_present(struct nl_sock *sk, int ifindex, const struct ip_address *addr);

/*
 * The address an advertisement of FAMILY is sent from on IFINDEX: for IPv4
 * the first address that is not one of EXCLUDE (the virtual IPs), a primary
 * (non-secondary) one if there is any; for IPv6 the first link-local address
 * that is not one of EXCLUDE and not tentative (or DAD-failed). EXCLUDE
 * entries match on the address alone, whatever their prefix length.
 * Returns 0 and *ret, -ENOENT if there is none (IPv6: also while the
 * link-local address is still tentative), or -errno.
 */
int vrrp_address_primary(struct nl_sock *sk, int ifindex, int family, const struct ip_prefix *exclude,
                         size_t n_exclude, struct ip_address *ret);
