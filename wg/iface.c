/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Whether a link is WireGuard, asked before hamgr takes a link up or down:
 * a configuration naming the wrong interface (the uplink, by a typo) must
 * not cut the node off its network.
 */
#include <errno.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/socket.h>
#include <stdio.h>
#include <string.h>

#include "common/macro.h"
#include "wg/uapi.h"
#include "wg/wg.h"

static void nl_socket_freep(struct nl_sock **sk) {
        if (*sk)
                nl_socket_free(*sk);
}

static void rtnl_link_putp(struct rtnl_link **l) {
        if (*l)
                rtnl_link_put(*l);
}

int wg_link_kind(const char *ifname, char *ret_kind, size_t len) {
        _cleanup_(nl_socket_freep) struct nl_sock *sk = NULL;
        _cleanup_(rtnl_link_putp) struct rtnl_link *link = NULL;
        const char *kind;
        int r;

        if (!ifname || !ifname[0] || strlen(ifname) >= IFNAMSIZ || !ret_kind || len == 0)
                return -EINVAL;
        sk = nl_socket_alloc();
        if (!sk)
                return -ENOMEM;
        r = nl_connect(sk, NETLINK_ROUTE);
        if (r < 0)
                return -EIO;
        r = rtnl_link_get_kernel(sk, 0, ifname, &link);
        if (r == -NLE_OBJ_NOTFOUND || r == -NLE_NODEV)
                return -ENODEV;
        if (r < 0)
                return -EIO;
        kind = rtnl_link_get_type(link);
        snprintf(ret_kind, len, "%s", kind ? kind : "");
        return 0;
}

int wg_interface_check(enum wg_backend b, const char *ifname, char *ret_kind, size_t len) {
        _cleanup_(wg_device_freep) struct wg_device *dev = NULL;
        char kind[WG_LINK_KIND_MAX];
        int r;

        r = wg_link_kind(ifname, kind, sizeof(kind));
        if (r < 0)
                return r;
        if (ret_kind && len > 0)
                snprintf(ret_kind, len, "%s", kind);
        if (streq(kind, "wireguard"))
                return 0;
        /* A userspace implementation's link is a plain TUN device: only its
         * UAPI socket answering tells it from any other TUN user. */
        if (!wg_backend_is_userspace(wg_backend_resolve(b, ifname)))
                return -EMEDIUMTYPE;
        r = wg_uapi_get_device(ifname, &dev);
        if (r >= 0)
                return 0;
        /* Nobody behind the socket: not WireGuard. A slow or confused
         * daemon, or no permission to ask, is no answer either way. */
        return r == -ENODEV || r == -ENOENT || r == -ECONNREFUSED ? -EMEDIUMTYPE : r;
}
