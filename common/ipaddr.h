/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

union in_addr_union {
        struct in_addr in;
        struct in6_addr in6;
        uint8_t bytes[16];
};

/* An IPv4 or IPv6 address; family is AF_INET or AF_INET6. */
struct ip_address {
        int family;
        union in_addr_union addr;
};

/* An address with a prefix length, as a virtual IP is configured. */
struct ip_prefix {
        struct ip_address address;
        uint8_t prefixlen;
};

/* Length in bytes of an address of FAMILY: 4, 16, or 0 for anything else. */
size_t ip_family_addr_len(int family);

/* Parse "10.0.0.1" or "2001:db8::1". Returns 0, or -EINVAL leaving *ret untouched. */
int ip_address_parse(const char *s, struct ip_address *ret);

/* Parse "10.0.0.1/24" or "2001:db8::1/64"; a missing prefix means a host
 * prefix (/32, /128). Returns 0, or -EINVAL leaving *ret untouched. */
int ip_prefix_parse(const char *s, struct ip_prefix *ret);

/* Format into BUF (INET6_ADDRSTRLEN is enough); returns BUF, or "?" on a bad family. */
const char *ip_address_to_string(const struct ip_address *a, char *buf, size_t len);

/* Compare as unsigned integers in network byte order, as VRRP's tie-break
 * does. Addresses of different families order by family. Returns <0, 0, >0. */
int ip_address_compare(const struct ip_address *a, const struct ip_address *b);

bool ip_address_equal(const struct ip_address *a, const struct ip_address *b);

bool ip_address_is_link_local(const struct ip_address *a);
