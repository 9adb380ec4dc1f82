/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ipaddr.h"

size_t ip_family_addr_len(int family) {
        switch (family) {
        case AF_INET:
                return 4;
        case AF_INET6:
                return 16;
        default:
                return 0;
        }
}

int ip_address_parse(const char *s, struct ip_address *ret) {
        struct ip_address a = {};

        if (!s)
                return -EINVAL;
        if (inet_pton(AF_INET, s, &a.addr.in) == 1)
                a.family = AF_INET;
        else if (inet_pton(AF_INET6, s, &a.addr.in6) == 1)
                a.family = AF_INET6;
        else
                return -EINVAL;
        *ret = a;
        return 0;
}

int ip_prefix_parse(const char *s, struct ip_prefix *ret) {
        char buf[INET6_ADDRSTRLEN + 8];
        struct ip_prefix p = {};
        const char *slash;
        unsigned long len;
        char *end;
        int r;

        if (!s || strlen(s) >= sizeof(buf))
                return -EINVAL;
        slash = strchr(s, '/');
        if (!slash) {
                r = ip_address_parse(s, &p.address);
                if (r < 0)
                        return r;
                p.prefixlen = ip_family_addr_len(p.address.family) * 8;
                *ret = p;
                return 0;
        }
        memcpy(buf, s, slash - s);
        buf[slash - s] = '\0';
        r = ip_address_parse(buf, &p.address);
        if (r < 0)
                return r;
        if (slash[1] < '0' || slash[1] > '9')
                return -EINVAL;
        errno = 0;
        len = strtoul(slash + 1, &end, 10);
        if (errno != 0 || *end != '\0' || len > ip_family_addr_len(p.address.family) * 8)
                return -EINVAL;
        p.prefixlen = (uint8_t) len;
        *ret = p;
        return 0;
}

const char *ip_address_to_string(const struct ip_address *a, char *buf, size_t len) {
        if (!a || !inet_ntop(a->family, &a->addr, buf, len))
                return "?";
        return buf;
}

int ip_address_compare(const struct ip_address *a, const struct ip_address *b) {
        if (a->family != b->family)
                return a->family < b->family ? -1 : 1;
        return memcmp(&a->addr, &b->addr, ip_family_addr_len(a->family));
}

bool ip_address_equal(const struct ip_address *a, const struct ip_address *b) {
        return ip_address_compare(a, b) == 0;
}

bool ip_address_is_link_local(const struct ip_address *a) {
        if (a->family == AF_INET6)
                return IN6_IS_ADDR_LINKLOCAL(&a->addr.in6);
        if (a->family == AF_INET)
                return (ntohl(a->addr.in.s_addr) & 0xffff0000u) == 0xa9fe0000u;
        return false;
}
