/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <net/if.h>
#include <netlink/cache.h>
#include <netlink/netlink.h>
#include <linux/if_addr.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "route.h"

struct route_src_override {
        struct rtnl_route **originals;
        unsigned n;
};

static int nl_to_errno(int nlerr) {
        switch (-nlerr) {
        case NLE_NOMEM:
                return -ENOMEM;
        case NLE_PERM:
                return -EPERM;
        case NLE_NODEV:
                return -ENODEV;
        case NLE_OBJ_NOTFOUND:
                return -ENOENT;
        case NLE_EXIST:
                return -EEXIST;
        case NLE_INVAL:
                return -EINVAL;
        default:
                return -EIO;
        }
}

int route_link_set_up(struct nl_sock *sk, int ifindex, bool up) {
        struct rtnl_link *orig = NULL, *change = NULL;
        int r;

        orig = rtnl_link_alloc();
        change = rtnl_link_alloc();
        if (!orig || !change) {
                r = -ENOMEM;
                goto out;
        }
        rtnl_link_set_ifindex(orig, ifindex);
        if (up)
                rtnl_link_set_flags(change, IFF_UP);
        else
                rtnl_link_unset_flags(change, IFF_UP);
        r = rtnl_link_change(sk, orig, change, 0);
        r = r < 0 ? nl_to_errno(r) : 0;
out:
        rtnl_link_put(orig);
        rtnl_link_put(change);
        return r;
}

static bool route_leaves_through(struct rtnl_route *route, int ifindex) {
        int n = rtnl_route_get_nnexthops(route);

        for (int i = 0; i < n; i++)
                if (rtnl_route_nh_get_ifindex(rtnl_route_nexthop_n(route, i)) == ifindex)
                        return true;
        return false;
}

int route_src_override(struct nl_sock *sk, int ifindex, const struct ip_address *src,
                       struct route_src_override **ret, unsigned *ret_failed) {
        struct route_src_override *o = NULL;
        struct nl_cache *cache = NULL;
        struct nl_addr *pref = NULL;
        unsigned failed = 0;
        int r;

        o = calloc(1, sizeof(*o));
        if (!o)
                return -ENOMEM;
        pref = nl_addr_build(src->family, &src->addr, ip_family_addr_len(src->family));
        if (!pref) {
                r = -ENOMEM;
                goto fail;
        }
        r = rtnl_route_alloc_cache(sk, src->family, 0, &cache);
        if (r < 0) {
                r = nl_to_errno(r);
                goto fail;
        }
        for (struct nl_object *obj = nl_cache_get_first(cache); obj; obj = nl_cache_get_next(obj)) {
                struct rtnl_route *route = (struct rtnl_route *) obj, *changed, **grown;
                struct nl_addr *cur = rtnl_route_get_pref_src(route);

                if (rtnl_route_get_table(route) != RT_TABLE_MAIN || rtnl_route_get_type(route) != RTN_UNICAST ||
                    !route_leaves_through(route, ifindex))
                        continue;
                if (cur && nl_addr_cmp(cur, pref) == 0)
                        continue;
                changed = (struct rtnl_route *) nl_object_clone(obj);
                grown = realloc(o->originals, (o->n + 1) * sizeof(*o->originals));
                if (!changed || !grown) {
                        if (changed)
                                rtnl_route_put(changed);
                        if (grown)
                                o->originals = grown;
                        r = -ENOMEM;
                        goto fail;
                }
                o->originals = grown;
                rtnl_route_set_pref_src(changed, pref);
                r = rtnl_route_add(sk, changed, NLM_F_REPLACE);
                rtnl_route_put(changed);
                if (r < 0) {
                        failed++;
                        continue;
                }
                nl_object_get(obj);
                o->originals[o->n++] = route;
        }
        nl_cache_free(cache);
        nl_addr_put(pref);
        if (ret_failed)
                *ret_failed = failed;
        *ret = o;
        return 0;
fail:
        route_src_restore(sk, o);
        if (cache)
                nl_cache_free(cache);
        nl_addr_put(pref);
        return r;
}

void route_src_restore(struct nl_sock *sk, struct route_src_override *o) {
        if (!o)
                return;
        for (unsigned i = 0; i < o->n; i++) {
                /* Replacing with the original object puts back its source,
                 * or none when it had none. */
                (void) rtnl_route_add(sk, o->originals[i], NLM_F_REPLACE);
                rtnl_route_put(o->originals[i]);
        }
        free(o->originals);
        free(o);
}

unsigned route_src_count(const struct route_src_override *o) {
        return o ? o->n : 0;
}

/* A primary IPv4 address of IFINDEX other than SRC, preferably one in the
 * prefix of DST; NULL if the interface has none. Borrowed from ADDRS. */
static struct nl_addr *primary_for(struct nl_cache *addrs, int ifindex, struct nl_addr *src, struct nl_addr *dst) {
        struct nl_addr *any = NULL;

        for (struct nl_object *obj = nl_cache_get_first(addrs); obj; obj = nl_cache_get_next(obj)) {
                struct rtnl_addr *a = (struct rtnl_addr *) obj;
                struct nl_addr *local = rtnl_addr_get_local(a);

                if (rtnl_addr_get_ifindex(a) != ifindex || rtnl_addr_get_family(a) != AF_INET || !local ||
                    (rtnl_addr_get_flags(a) & IFA_F_SECONDARY) || nl_addr_get_len(local) != nl_addr_get_len(src) ||
                    memcmp(nl_addr_get_binary_addr(local), nl_addr_get_binary_addr(src), nl_addr_get_len(src)) == 0)
                        continue;
                if (dst && nl_addr_get_prefixlen(dst) > 0 && nl_addr_cmp_prefix(dst, local) == 0)
                        return local;
                if (!any)
                        any = local;
        }
        return any;
}

/* ROUTE is the prefix route the kernel made for SRC itself, a primary
 * address of IFINDEX in ADDRS (the VIP alone in its subnet): its source was
 * always SRC, nobody overrode it, and it must go with the address. Given
 * another source it would outlive the address. The link's connected route
 * with a VIP as source is not this: there the VIP is a secondary address. */
static bool own_prefix_route(struct nl_cache *addrs, int ifindex, struct nl_addr *src, struct rtnl_route *route) {
        struct nl_addr *dst = rtnl_route_get_dst(route);

        if (rtnl_route_get_protocol(route) != RTPROT_KERNEL || !dst)
                return false;
        for (struct nl_object *obj = nl_cache_get_first(addrs); obj; obj = nl_cache_get_next(obj)) {
                struct rtnl_addr *a = (struct rtnl_addr *) obj;
                struct nl_addr *local = rtnl_addr_get_local(a);

                if (rtnl_addr_get_ifindex(a) != ifindex || rtnl_addr_get_family(a) != AF_INET || !local ||
                    (rtnl_addr_get_flags(a) & IFA_F_SECONDARY) || nl_addr_get_len(local) != nl_addr_get_len(src) ||
                    memcmp(nl_addr_get_binary_addr(local), nl_addr_get_binary_addr(src), nl_addr_get_len(src)) != 0)
                        continue;
                return (unsigned) rtnl_addr_get_prefixlen(a) == nl_addr_get_prefixlen(dst) &&
                       nl_addr_cmp_prefix(dst, local) == 0;
        }
        return false;
}

int route_src_disown(struct nl_sock *sk, int ifindex, const struct ip_address *src) {
        struct nl_cache *routes = NULL, *addrs = NULL;
        struct nl_addr *pref = NULL;
        int r, n = 0;

        /* IPv6 only clears the source of such routes, it keeps them. */
        if (src->family != AF_INET)
                return 0;
        pref = nl_addr_build(AF_INET, &src->addr, ip_family_addr_len(AF_INET));
        if (!pref)
                return -ENOMEM;
        r = rtnl_addr_alloc_cache(sk, &addrs);
        if (r >= 0)
                r = rtnl_route_alloc_cache(sk, AF_INET, 0, &routes);
        if (r < 0) {
                r = nl_to_errno(r);
                goto out;
        }
        for (struct nl_object *obj = nl_cache_get_first(routes); obj; obj = nl_cache_get_next(obj)) {
                struct rtnl_route *route = (struct rtnl_route *) obj, *changed;
                struct nl_addr *cur = rtnl_route_get_pref_src(route), *primary;

                if (rtnl_route_get_table(route) != RT_TABLE_MAIN || rtnl_route_get_type(route) != RTN_UNICAST ||
                    !route_leaves_through(route, ifindex) || !cur || nl_addr_cmp(cur, pref) != 0 ||
                    own_prefix_route(addrs, ifindex, pref, route))
                        continue;
                primary = primary_for(addrs, ifindex, pref, rtnl_route_get_dst(route));
                if (!primary)
                        continue; /* nothing to give it: the route goes with the address */
                changed = (struct rtnl_route *) nl_object_clone(obj);
                if (!changed) {
                        r = -ENOMEM;
                        goto out;
                }
                if (rtnl_route_set_pref_src(changed, primary) >= 0 && rtnl_route_add(sk, changed, NLM_F_REPLACE) >= 0)
                        n++;
                rtnl_route_put(changed);
        }
        r = n;
out:
        if (routes)
                nl_cache_free(routes);
        if (addrs)
                nl_cache_free(addrs);
        nl_addr_put(pref);
        return r;
}
