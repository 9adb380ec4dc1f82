/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <linux/if_addr.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/rtnl.h>

#include "address.h"
#include "common/macro.h"

/* A dump the kernel reports as interrupted (the address list changed
 * under it) is simply asked for again, a few times. */
#define DUMP_ATTEMPTS 3

/* libnl folds kernel errnos into its own codes (nl_syserr2nlerr); undo that
 * for the codes these calls can meet, so callers see ordinary -errno. */
static int errno_from_nlerr(int nlerr) {
        static const int map[] = {
                [NLE_INTR] = EINTR,
                [NLE_BAD_SOCK] = EBADF,
                [NLE_AGAIN] = EAGAIN,
                [NLE_NOMEM] = ENOMEM,
                [NLE_EXIST] = EEXIST,
                [NLE_INVAL] = EINVAL,
                [NLE_RANGE] = ERANGE,
                [NLE_MSGSIZE] = EMSGSIZE,
                [NLE_OPNOTSUPP] = EOPNOTSUPP,
                [NLE_AF_NOSUPPORT] = EAFNOSUPPORT,
                [NLE_OBJ_NOTFOUND] = ENOENT,
                [NLE_SEQ_MISMATCH] = EPROTO,
                [NLE_MSG_OVERFLOW] = EPROTO,
                [NLE_MSG_TRUNC] = EPROTO,
                [NLE_NOADDR] = EADDRNOTAVAIL,
                [NLE_MSG_TOOSHORT] = EPROTO,
                [NLE_MSGTYPE_NOSUPPORT] = EPROTO,
                [NLE_BUSY] = EBUSY,
                [NLE_PROTO_MISMATCH] = EPROTONOSUPPORT,
                [NLE_NOACCESS] = EACCES,
                [NLE_PERM] = EPERM,
                [NLE_PARSE_ERR] = EPROTO,
                [NLE_NODEV] = ENODEV,
                [NLE_DUMP_INTR] = EINTR,
        };
        unsigned code = (unsigned) (nlerr < 0 ? -nlerr : nlerr);

        if (code == 0)
                return 0;
        if (code < ELEMENTSOF(map) && map[code] != 0)
                return -map[code];
        return -EIO;
}

int vrrp_nl_errno(int nlerr) {
        return errno_from_nlerr(nlerr);
}

int vrrp_address_socket_open(struct nl_sock **ret) {
        struct nl_sock *sk;
        int r;

        if (!ret)
                return -EINVAL;

        sk = nl_socket_alloc();
        if (!sk)
                return -ENOMEM;
        r = nl_connect(sk, NETLINK_ROUTE);
        if (r < 0) {
                nl_socket_free(sk);
                return errno_from_nlerr(r);
        }
        *ret = sk;
        return 0;
}

void vrrp_address_socket_close(struct nl_sock *sk) {
        /* nl_socket_free() closes the socket if it is connected. */
        if (sk)
                nl_socket_free(sk);
}

static void rtnl_addrp(struct rtnl_addr **a) {
        if (*a)
                rtnl_addr_put(*a);
}

static void nl_addrp(struct nl_addr **a) {
        if (*a)
                nl_addr_put(*a);
}

static int address_build(int ifindex, const struct ip_prefix *p, struct rtnl_addr **ret) {
        _cleanup_(rtnl_addrp) struct rtnl_addr *a = NULL;
        _cleanup_(nl_addrp) struct nl_addr *local = NULL;
        size_t alen;
        int r;

        if (ifindex <= 0 || !p)
                return -EINVAL;
        alen = ip_family_addr_len(p->address.family);
        if (alen == 0)
                return -EAFNOSUPPORT;
        if (p->prefixlen > alen * 8)
                return -EINVAL;

        a = rtnl_addr_alloc();
        if (!a)
                return -ENOMEM;
        local = nl_addr_build(p->address.family, &p->address.addr, alen);
        if (!local)
                return -ENOMEM;
        nl_addr_set_prefixlen(local, p->prefixlen);

        rtnl_addr_set_ifindex(a, ifindex);
        rtnl_addr_set_family(a, p->address.family);
        r = rtnl_addr_set_local(a, local);
        if (r < 0)
                return errno_from_nlerr(r);
        rtnl_addr_set_prefixlen(a, p->prefixlen);
        /* Without NODAD a virtual IPv6 address stays tentative for a second
         * or more after takeover and cannot be used, and a peer still holding
         * it (split brain) would make DAD fail it for good. */
        if (p->address.family == AF_INET6)
                rtnl_addr_set_flags(a, IFA_F_NODAD);

        *ret = TAKE_PTR(a);
        return 0;
}

int vrrp_address_add(struct nl_sock *sk, int ifindex, const struct ip_prefix *p) {
        _cleanup_(rtnl_addrp) struct rtnl_addr *a = NULL;
        int r;

        if (!sk)
                return -EINVAL;
        r = address_build(ifindex, p, &a);
        if (r < 0)
                return r;

        /* No NLM_F_REPLACE: an existing address keeps its flags and
         * lifetimes, and the kernel's "exists" answer is our success. */
        r = rtnl_addr_add(sk, a, 0);
        if (r == -NLE_EXIST)
                return 0;
        return errno_from_nlerr(r);
}

int vrrp_address_remove(struct nl_sock *sk, int ifindex, const struct ip_prefix *p) {
        _cleanup_(rtnl_addrp) struct rtnl_addr *a = NULL;
        int r;

        if (!sk)
                return -EINVAL;
        r = address_build(ifindex, p, &a);
        if (r < 0)
                return r;

        r = rtnl_addr_delete(sk, a, 0);
        if (r == -NLE_NOADDR || r == -NLE_OBJ_NOTFOUND)
                return 0;
        return errno_from_nlerr(r);
}

struct addr_entry {
        struct ip_address address;
        unsigned flags;
};

struct addr_dump {
        int ifindex;
        int family;
        struct addr_entry *entries;
        size_t n_entries;
        int error;
};

static void dump_object(struct nl_object *obj, void *userdata) {
        struct addr_dump *d = userdata;
        struct rtnl_addr *a = (struct rtnl_addr *) obj;
        struct addr_entry *e;
        struct nl_addr *local;
        size_t alen = ip_family_addr_len(d->family);

        if (d->error < 0)
                return;
        if (rtnl_addr_get_ifindex(a) != d->ifindex || rtnl_addr_get_family(a) != d->family)
                return;
        local = rtnl_addr_get_local(a);
        if (!local || nl_addr_get_family(local) != d->family || nl_addr_get_len(local) != alen)
                return;

        e = realloc(d->entries, (d->n_entries + 1) * sizeof(*e));
        if (!e) {
                d->error = -ENOMEM;
                return;
        }
        d->entries = e;
        e = &d->entries[d->n_entries++];
        *e = (struct addr_entry) {
                .address.family = d->family,
                .flags = rtnl_addr_get_flags(a),
        };
        memcpy(&e->address.addr, nl_addr_get_binary_addr(local), alen);
}

static int dump_valid(struct nl_msg *msg, void *userdata) {
        struct addr_dump *d = userdata;
        int r;

        r = nl_msg_parse(msg, dump_object, d);
        if (r < 0 && d->error == 0)
                d->error = errno_from_nlerr(r);
        return d->error < 0 ? NL_STOP : NL_OK;
}

static int dump_once(struct nl_sock *sk, struct addr_dump *d) {
        struct nl_cb *cb, *sk_cb;
        int r;

        /* Family-filtered dump; the kernel only filters by interface for
         * strict-checking sockets, so that filter is ours (dump_object). */
        r = nl_rtgen_request(sk, RTM_GETADDR, d->family, NLM_F_DUMP);
        if (r < 0)
                return errno_from_nlerr(r);

        /* A private copy, so the socket's own callbacks stay as they were. */
        sk_cb = nl_socket_get_cb(sk); /* takes a reference */
        cb = nl_cb_clone(sk_cb);
        nl_cb_put(sk_cb);
        if (!cb)
                return -ENOMEM;
        nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, dump_valid, d);
        r = nl_recvmsgs(sk, cb);
        nl_cb_put(cb);
        if (d->error < 0)
                return d->error;
        if (r < 0)
                return r == -NLE_DUMP_INTR ? -EAGAIN : errno_from_nlerr(r);
        return 0;
}

/* All addresses of FAMILY on IFINDEX, in the kernel's order. */
static int dump_addresses(struct nl_sock *sk, int ifindex, int family, struct addr_entry **ret,
                          size_t *ret_n) {
        int r = -EINTR;

        if (!sk || ifindex <= 0)
                return -EINVAL;
        if (ip_family_addr_len(family) == 0)
                return -EAFNOSUPPORT;

        for (unsigned attempt = 0; attempt < DUMP_ATTEMPTS; attempt++) {
                struct addr_dump d = { .ifindex = ifindex, .family = family };

                r = dump_once(sk, &d);
                if (r == 0) {
                        *ret = d.entries;
                        *ret_n = d.n_entries;
                        return 0;
                }
                free(d.entries);
                if (r != -EAGAIN)
                        return r;
        }
        /* Still changing under us after several tries. */
        return -EINTR;
}

int vrrp_address_present(struct nl_sock *sk, int ifindex, const struct ip_address *addr) {
        _cleanup_(freep) struct addr_entry *entries = NULL;
        size_t n = 0;
        int r;

        if (!addr)
                return -EINVAL;
        r = dump_addresses(sk, ifindex, addr->family, &entries, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (ip_address_equal(&entries[i].address, addr))
                        return 1;
        return 0;
}

static bool excluded(const struct ip_address *a, const struct ip_prefix *exclude, size_t n_exclude) {
        for (size_t i = 0; i < n_exclude; i++)
                if (ip_address_equal(a, &exclude[i].address))
                        return true;
        return false;
}

int vrrp_address_primary(struct nl_sock *sk, int ifindex, int family, const struct ip_prefix *exclude,
                         size_t n_exclude, struct ip_address *ret) {
        _cleanup_(freep) struct addr_entry *entries = NULL;
        const struct ip_address *fallback = NULL;
        size_t n = 0;
        int r;

        if (!ret || (n_exclude > 0 && !exclude))
                return -EINVAL;
        r = dump_addresses(sk, ifindex, family, &entries, &n);
        if (r < 0)
                return r;

        for (size_t i = 0; i < n; i++) {
                const struct addr_entry *e = &entries[i];

                /* Virtual IPs are excluded for IPv6 too: VRRPv3 over IPv6
                 * normally carries a link-local virtual address. */
                if (excluded(&e->address, exclude, n_exclude))
                        continue;

                if (family == AF_INET6) {
                        /* A tentative (or DAD-failed) address cannot be a
                         * source yet; the caller retries on address events. */
                        if (!ip_address_is_link_local(&e->address) ||
                            (e->flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED)))
                                continue;
                        *ret = e->address;
                        return 0;
                }

                /* Prefer a primary address: a secondary goes away with its
                 * primary, and peers know the node by its primary. */
                if (!(e->flags & IFA_F_SECONDARY)) {
                        *ret = e->address;
                        return 0;
                }
                if (!fallback)
                        fallback = &e->address;
        }

        if (!fallback)
                return -ENOENT;
        *ret = *fallback;
        return 0;
}
