/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <linux/rtnetlink.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>

#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/nexthop.h>
#include <netlink/route/route.h>

#include "address.h"
#include "common/macro.h"
#include "route.h"

static void rtnl_routep(struct rtnl_route **r) {
        if (*r)
                rtnl_route_put(*r);
}

static void nl_addrp(struct nl_addr **a) {
        if (*a)
                nl_addr_put(*a);
}

static void nl_cachep(struct nl_cache **c) {
        if (*c)
                nl_cache_free(*c);
}

static struct nl_addr *addr_build(const struct ip_address *a, unsigned prefixlen) {
        struct nl_addr *n = nl_addr_build(a->family, &a->addr, ip_family_addr_len(a->family));

        if (n)
                nl_addr_set_prefixlen(n, prefixlen);
        return n;
}

static int route_valid(const struct vrrp_route *r) {
        size_t alen;

        if (!r)
                return -EINVAL;
        alen = ip_family_addr_len(r->dst.address.family);
        if (alen == 0)
                return -EAFNOSUPPORT;
        if (r->dst.prefixlen > alen * 8 || r->table == 0)
                return -EINVAL;
        if ((r->gateway.family && r->gateway.family != r->dst.address.family) ||
            (r->src.family && r->src.family != r->dst.address.family))
                return -EINVAL;
        if (r->type == RTN_UNICAST ? r->ifindex <= 0 : (r->ifindex != 0 || r->gateway.family != 0))
                return -EINVAL;
        return 0;
}

static int route_build(const struct vrrp_route *r, struct rtnl_route **ret) {
        _cleanup_(rtnl_routep) struct rtnl_route *route = NULL;
        _cleanup_(nl_addrp) struct nl_addr *dst = NULL, *src = NULL;
        int k;

        k = route_valid(r);
        if (k < 0)
                return k;
        route = rtnl_route_alloc();
        dst = addr_build(&r->dst.address, r->dst.prefixlen);
        if (!route || !dst)
                return -ENOMEM;
        rtnl_route_set_family(route, (uint8_t) r->dst.address.family);
        k = rtnl_route_set_dst(route, dst);
        if (k < 0)
                return vrrp_nl_errno(k);
        rtnl_route_set_table(route, r->table);
        rtnl_route_set_priority(route, r->metric);
        rtnl_route_set_protocol(route, VRRP_ROUTE_PROTOCOL);
        k = rtnl_route_set_type(route, r->type);
        if (k < 0)
                return vrrp_nl_errno(k);
        /* As ip-route(8) chooses it: a route without a gateway is on the link. */
        rtnl_route_set_scope(route, r->type == RTN_UNICAST && !r->gateway.family ? RT_SCOPE_LINK
                                                                                 : RT_SCOPE_UNIVERSE);
        if (r->src.family) {
                src = addr_build(&r->src, ip_family_addr_len(r->src.family) * 8);
                if (!src)
                        return -ENOMEM;
                k = rtnl_route_set_pref_src(route, src);
                if (k < 0)
                        return vrrp_nl_errno(k);
        }
        if (r->type == RTN_UNICAST) {
                struct rtnl_nexthop *nh = rtnl_route_nh_alloc();

                if (!nh)
                        return -ENOMEM;
                rtnl_route_nh_set_ifindex(nh, r->ifindex);
                if (r->gateway.family) {
                        _cleanup_(nl_addrp) struct nl_addr *gw =
                                addr_build(&r->gateway, ip_family_addr_len(r->gateway.family) * 8);

                        if (!gw) {
                                rtnl_route_nh_free(nh);
                                return -ENOMEM;
                        }
                        rtnl_route_nh_set_gateway(nh, gw); /* takes its own reference */
                }
                rtnl_route_add_nexthop(route, nh); /* the route owns it now */
        }
        *ret = TAKE_PTR(route);
        return 0;
}

static int on_error(struct sockaddr_nl *nla, struct nlmsgerr *e, void *arg) {
        *(int *) arg = e->error;
        return NL_STOP;
}

static int on_ack(struct nl_msg *msg, void *arg) {
        return NL_STOP;
}

/* Send a request for ROUTE built by BUILD and wait for the answer. Returns
 * the kernel's own errno: libnl would fold those it has no code for (as
 * ENETUNREACH, the usual one for a bad gateway) into one "failure". */
static int request(struct nl_sock *sk, struct rtnl_route *route, bool add) {
        struct nl_msg *msg = NULL;
        struct nl_cb *cb, *sk_cb;
        int error = 0, k;

        k = add ? rtnl_route_build_add_request(route, NLM_F_EXCL, &msg)
                : rtnl_route_build_del_request(route, 0, &msg);
        if (k < 0)
                return vrrp_nl_errno(k);
        k = nl_send_auto(sk, msg);
        nlmsg_free(msg);
        if (k < 0)
                return vrrp_nl_errno(k);

        /* A private copy, so the socket's own callbacks stay as they were. */
        sk_cb = nl_socket_get_cb(sk); /* takes a reference */
        cb = nl_cb_clone(sk_cb);
        nl_cb_put(sk_cb);
        if (!cb)
                return -ENOMEM;
        nl_cb_err(cb, NL_CB_CUSTOM, on_error, &error);
        nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, on_ack, NULL);
        k = nl_recvmsgs(sk, cb);
        nl_cb_put(cb);
        if (error < 0)
                return error;
        return k < 0 ? vrrp_nl_errno(k) : 0;
}

static bool addr_is(struct nl_addr *n, const struct ip_address *a) {
        size_t alen = ip_family_addr_len(a->family);

        if (!a->family)
                return !n;
        return n && nl_addr_get_family(n) == a->family && nl_addr_get_len(n) == alen &&
               memcmp(nl_addr_get_binary_addr(n), &a->addr, alen) == 0;
}

/* The kernel's answer for R: same table, destination, metric and type, and
 * the same next hop and preferred source. Its protocol does not matter. */
static bool route_matches(struct rtnl_route *k, const struct vrrp_route *r) {
        struct nl_addr *dst = rtnl_route_get_dst(k);
        struct rtnl_nexthop *nh;

        if (rtnl_route_get_table(k) != r->table || rtnl_route_get_priority(k) != r->metric ||
            rtnl_route_get_type(k) != r->type || !dst || nl_addr_get_prefixlen(dst) != r->dst.prefixlen)
                return false;
        /* A default route comes without RTA_DST, as an empty address. */
        if (r->dst.prefixlen > 0 && !addr_is(dst, &r->dst.address))
                return false;
        if (!addr_is(rtnl_route_get_pref_src(k), &r->src))
                return false;
        if (r->type != RTN_UNICAST)
                return true; /* IPv6 reports these on "lo": the device means nothing */
        if (rtnl_route_get_nnexthops(k) != 1)
                return false;
        nh = rtnl_route_nexthop_n(k, 0);
        return rtnl_route_nh_get_ifindex(nh) == r->ifindex && addr_is(rtnl_route_nh_get_gateway(nh), &r->gateway);
}

int vrrp_route_present(struct nl_sock *sk, const struct vrrp_route *r) {
        _cleanup_(nl_cachep) struct nl_cache *cache = NULL;
        int k;

        if (!sk)
                return -EINVAL;
        k = route_valid(r);
        if (k < 0)
                return k;
        /* A full dump: only asked for after "exists", which is rare. */
        k = rtnl_route_alloc_cache(sk, r->dst.address.family, 0, &cache);
        if (k < 0)
                return vrrp_nl_errno(k);
        for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o))
                if (route_matches((struct rtnl_route *) o, r))
                        return 1;
        return 0;
}

int vrrp_route_add(struct nl_sock *sk, const struct vrrp_route *r) {
        _cleanup_(rtnl_routep) struct rtnl_route *route = NULL;
        int k;

        if (!sk)
                return -EINVAL;
        k = route_build(r, &route);
        if (k < 0)
                return k;
        /* Exclusive: without it IPv4 would put a second route next to one
         * of the same destination and metric, and IPv6 would make the two
         * one multipath route. Neither is what the configuration says. */
        k = request(sk, route, true);
        if (k != -EEXIST)
                return k;
        k = vrrp_route_present(sk, r);
        if (k < 0)
                return k;
        return k > 0 ? 1 : -EEXIST;
}

int vrrp_route_remove(struct nl_sock *sk, const struct vrrp_route *r) {
        _cleanup_(rtnl_routep) struct rtnl_route *route = NULL;
        int k;

        if (!sk)
                return -EINVAL;
        k = route_build(r, &route);
        if (k < 0)
                return k;
        k = request(sk, route, false);
        if (k == -ESRCH || k == -ENOENT || k == -ENODEV)
                return 0;
        return k < 0 ? k : 1;
}
