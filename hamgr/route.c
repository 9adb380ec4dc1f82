/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <net/if.h>
#include <netlink/cache.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>
#include <stdlib.h>

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
