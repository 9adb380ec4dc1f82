/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* Gratuitous ARP (IPv4) and unsolicited neighbour advertisements (IPv6),
 * sent when an instance becomes MASTER so that neighbours update their
 * caches to this node's MAC at once. */

#include <netinet/in.h>
#include <stdint.h>

/* Send one gratuitous ARP request for ADDR out of IFINDEX, from MAC,
 * to the broadcast address. Returns 0 or -errno. */
int vrrp_announce_garp(int ifindex, const uint8_t mac[static 6], const struct in_addr *addr);

/* Send one unsolicited neighbour advertisement for ADDR out of IFINDEX to
 * ff02::1, override flag set, target link-layer option MAC, hop limit 255.
 * Returns 0 or -errno. */
int vrrp_announce_na(int ifindex, const uint8_t mac[static 6], const struct in6_addr *addr);
