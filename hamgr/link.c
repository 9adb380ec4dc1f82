/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <net/if.h>
#include <netlink/cache.h>
#include <netlink/netlink.h>
#include <netlink/object.h>
#include <sys/socket.h>
#include <netlink/route/link.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <string.h>

#include "common/macro.h"
#include "link.h"
#include "log.h"

struct link_monitor {
        struct nl_cache_mngr *mngr;
        struct nl_cache *links;
        struct nl_cache *addrs;
        sd_event_source *io;
        link_change_handler_t on_change;
        void *userdata;
        bool changed;
};

static void cache_change(struct nl_cache *cache, struct nl_object *obj, int action, void *userdata) {
        struct link_monitor *m = userdata;

        m->changed = true;
}

static int on_netlink(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct link_monitor *m = userdata;
        int r;

        m->changed = false;
        r = nl_cache_mngr_data_ready(m->mngr);
        if (r < 0)
                /* An overrun loses events: resync the whole caches. */
                log_warning("netlink event error (%s), resynchronising", nl_geterror(r));
        if (r < 0) {
                nl_cache_refill(NULL, m->links);
                m->changed = true;
        }
        if (m->changed && m->on_change)
                m->on_change(m->userdata);
        return 0;
}

int link_monitor_new(sd_event *event, link_change_handler_t on_change, void *userdata,
                     struct link_monitor **ret) {
        struct link_monitor *m;
        int r;

        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->on_change = on_change;
        m->userdata = userdata;

        r = nl_cache_mngr_alloc(NULL, NETLINK_ROUTE, NL_AUTO_PROVIDE, &m->mngr);
        if (r < 0) {
                r = -ENOMEM;
                goto fail;
        }
        r = nl_cache_mngr_add(m->mngr, "route/link", cache_change, m, &m->links);
        if (r < 0) {
                log_error("cannot watch links: %s", nl_geterror(r));
                r = -EIO;
                goto fail;
        }
        r = nl_cache_mngr_add(m->mngr, "route/addr", cache_change, m, &m->addrs);
        if (r < 0) {
                log_error("cannot watch addresses: %s", nl_geterror(r));
                r = -EIO;
                goto fail;
        }
        r = sd_event_add_io(event, &m->io, nl_cache_mngr_get_fd(m->mngr), EPOLLIN, on_netlink, m);
        if (r < 0)
                goto fail;
        *ret = m;
        return 0;
fail:
        link_monitor_free(m);
        return r;
}

struct link_monitor *link_monitor_free(struct link_monitor *m) {
        if (!m)
                return NULL;
        sd_event_source_disable_unref(m->io);
        /* The manager owns the caches it allocated. */
        if (m->mngr)
                nl_cache_mngr_free(m->mngr);
        free(m);
        return NULL;
}

/*
 * The link's own (AF_UNSPEC) object. The cache also keeps per-family
 * objects of the same index (an AF_INET6 one from the kernel's IPv6 link
 * notifications, an AF_BRIDGE one for a bridge port) whose flags are not
 * refreshed by later AF_UNSPEC events; rtnl_link_get() returns whichever
 * comes first, so after the first up/down of an IPv6-enabled interface a
 * later down went unseen (a tracked interface failed once, never again).
 */
static struct rtnl_link *link_lookup(struct nl_cache *links, unsigned ifindex) {
        struct rtnl_link *needle, *link;

        needle = rtnl_link_alloc();
        if (!needle)
                return NULL;
        rtnl_link_set_ifindex(needle, (int) ifindex);
        rtnl_link_set_family(needle, AF_UNSPEC);
        link = (struct rtnl_link *) nl_cache_search(links, OBJ_CAST(needle));
        rtnl_link_put(needle);
        return link;
}

int link_monitor_get(struct link_monitor *m, const char *name, struct link_info *ret) {
        struct rtnl_link *link;
        struct link_info info = {};
        struct nl_addr *ll;
        unsigned flags, ifindex;

        /* The cache can keep a link that is gone: a TUN interface removed
         * when its wireguard-go dies and re-created by the next one under
         * the same name was seen with its old index for good. The kernel's
         * name -> index is the truth; the cache gives the flags. */
        ifindex = if_nametoindex(name);
        if (ifindex == 0)
                return -ENODEV;
        link = link_lookup(m->links, ifindex);
        if (!link)
                return -ENODEV; /* not announced yet: a change event follows */
        info.ifindex = rtnl_link_get_ifindex(link);
        flags = rtnl_link_get_flags(link);
        info.up = (flags & IFF_UP) && (flags & IFF_RUNNING);
        info.up_admin = flags & IFF_UP;
        ll = rtnl_link_get_addr(link);
        if (ll && nl_addr_get_len(ll) == 6)
                memcpy(info.mac, nl_addr_get_binary_addr(ll), 6);
        rtnl_link_put(link);
        *ret = info;
        return 0;
}

int link_admin_up_now(const char *name) {
        struct ifreq ifr = {};
        int fd, r;

        if (strlen(name) >= sizeof(ifr.ifr_name))
                return -EINVAL;
        strncpy(ifr.ifr_name, name, sizeof(ifr.ifr_name) - 1);
        fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        r = ioctl(fd, SIOCGIFFLAGS, &ifr) < 0 ? -errno : !!(ifr.ifr_flags & IFF_UP);
        close(fd);
        return r;
}
