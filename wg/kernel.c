/* SPDX-License-Identifier: GPL-2.0-or-later */

#include <errno.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/time_types.h>
#include <linux/wireguard.h>
#include <netlink/attr.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/macro.h"
#include "kernel.h"

/* An interrupted dump is retried this often before giving up. */
#define DUMP_ATTEMPTS 8
/* netlink_dump() never builds a message larger than the biggest buffer
 * recvmsg() was given, which it caps at 32 KiB. */
#define RECV_BUFFER_SIZE 32768

static void nl_socket_freep(struct nl_sock **sk) {
        if (*sk)
                nl_socket_free(*sk);
}

static void nlmsg_freep(struct nl_msg **m) {
        if (*m)
                nlmsg_free(*m);
}

/* Received replies to GET carry the private key. */
static void recv_buffer_freep(uint8_t **buf) {
        if (!*buf)
                return;
        sodium_memzero(*buf, RECV_BUFFER_SIZE);
        free(*buf);
}

static void msg_wipe_free(struct nl_msg *m) {
        if (!m)
                return;
        sodium_memzero(nlmsg_hdr(m), nlmsg_get_max_size(m));
        nlmsg_free(m);
}

static void msg_wipe_freep(struct nl_msg **m) {
        msg_wipe_free(*m);
}

void wg_kernel_msgs_free(struct nl_msg **msgs, size_t n) {
        if (!msgs)
                return;
        for (size_t i = 0; i < n; i++)
                msg_wipe_free(msgs[i]);
        free(msgs);
}

size_t wg_kernel_msg_max(void) {
        long page = sysconf(_SC_PAGESIZE);

        return page > 0 && page < 8192 ? (size_t) page : 8192;
}

/* ---- building ---- */

/* Nested arrays must say they are nested: the kernel parses strictly. */
static struct nlattr *nest_start(struct nl_msg *msg, int type) {
        struct nlattr *nest = nla_nest_start(msg, type);

        if (nest)
                nest->nla_type |= NLA_F_NESTED;
        return nest;
}

static bool allowedip_valid(const struct wg_allowedip *a) {
        return (a->family == AF_INET && a->cidr <= 32) || (a->family == AF_INET6 && a->cidr <= 128);
}

static bool endpoint_valid(const union wg_endpoint *e) {
        return e->addr.sa_family == AF_INET || e->addr.sa_family == AF_INET6;
}

/* Reject what the kernel would refuse (or misread) before sending anything,
 * so a bad device never gets half applied. */
static int check_device(const struct wg_device *dev) {
        size_t len = strnlen(dev->name, sizeof(dev->name));

        if (len == sizeof(dev->name) || (len == 0 && dev->ifindex == 0))
                return -EINVAL;
        for (size_t i = 0; i < dev->n_peers; i++) {
                const struct wg_peer *p = &dev->peers[i];

                if (p->flags & WG_PEER_REMOVE_ME)
                        continue;
                if ((p->flags & WG_PEER_HAS_ENDPOINT) && !endpoint_valid(&p->endpoint))
                        return -EINVAL;
                for (size_t j = 0; j < p->n_allowedips; j++)
                        if (!allowedip_valid(&p->allowedips[j]))
                                return -EINVAL;
        }
        return 0;
}

/* The generic netlink header and the interface; device attributes only in
 * the FIRST message, so later ones cannot undo what came between. */
static int put_device(struct nl_msg *msg, const struct wg_device *dev, int family_id, bool first) {
        if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, family_id, 0, NLM_F_REQUEST | NLM_F_ACK,
                         WG_CMD_SET_DEVICE, WG_GENL_VERSION))
                return -EMSGSIZE;
        if (dev->name[0] != '\0') {
                if (nla_put_string(msg, WGDEVICE_A_IFNAME, dev->name) < 0)
                        return -EMSGSIZE;
        } else if (nla_put_u32(msg, WGDEVICE_A_IFINDEX, dev->ifindex) < 0)
                return -EMSGSIZE;
        if (!first)
                return 0;
        if ((dev->flags & WG_DEVICE_REPLACE_PEERS) &&
            nla_put_u32(msg, WGDEVICE_A_FLAGS, WGDEVICE_F_REPLACE_PEERS) < 0)
                return -EMSGSIZE;
        if ((dev->flags & WG_DEVICE_HAS_PRIVATE_KEY) &&
            nla_put(msg, WGDEVICE_A_PRIVATE_KEY, WG_KEY_LEN, dev->private_key) < 0)
                return -EMSGSIZE;
        if ((dev->flags & WG_DEVICE_HAS_LISTEN_PORT) &&
            nla_put_u16(msg, WGDEVICE_A_LISTEN_PORT, dev->listen_port) < 0)
                return -EMSGSIZE;
        if ((dev->flags & WG_DEVICE_HAS_FWMARK) && nla_put_u32(msg, WGDEVICE_A_FWMARK, dev->fwmark) < 0)
                return -EMSGSIZE;
        return 0;
}

static int put_allowedip(struct nl_msg *msg, const struct wg_allowedip *a) {
        struct nlattr *nest = nest_start(msg, 0);

        if (!nest)
                return -EMSGSIZE;
        if (nla_put_u16(msg, WGALLOWEDIP_A_FAMILY, (uint16_t) a->family) < 0 ||
            nla_put(msg, WGALLOWEDIP_A_IPADDR, a->family == AF_INET ? 4 : 16, &a->ip) < 0 ||
            nla_put_u8(msg, WGALLOWEDIP_A_CIDR_MASK, a->cidr) < 0) {
                nla_nest_cancel(msg, nest);
                return -EMSGSIZE;
        }
        nla_nest_end(msg, nest);
        return 0;
}

/* The peer's own attributes, sent once, in its first part. */
static int put_peer_head(struct nl_msg *msg, const struct wg_peer *p) {
        if ((p->flags & WG_PEER_HAS_PRESHARED_KEY) &&
            nla_put(msg, WGPEER_A_PRESHARED_KEY, WG_KEY_LEN, p->preshared_key) < 0)
                return -EMSGSIZE;
        if (p->flags & WG_PEER_HAS_ENDPOINT) {
                bool v4 = p->endpoint.addr.sa_family == AF_INET;

                if (nla_put(msg, WGPEER_A_ENDPOINT, v4 ? sizeof(p->endpoint.addr4) : sizeof(p->endpoint.addr6),
                            &p->endpoint) < 0)
                        return -EMSGSIZE;
        }
        if ((p->flags & WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL) &&
            nla_put_u16(msg, WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, p->persistent_keepalive_interval) < 0)
                return -EMSGSIZE;
        return 0;
}

static uint32_t peer_wire_flags(const struct wg_peer *p, bool started) {
        uint32_t f = 0;

        if (p->flags & WG_PEER_REMOVE_ME)
                return WGPEER_F_REMOVE_ME;
        if (p->flags & WG_PEER_UPDATE_ONLY)
                f |= WGPEER_F_UPDATE_ONLY;
        if (!started && (p->flags & WG_PEER_REPLACE_ALLOWEDIPS))
                f |= WGPEER_F_REPLACE_ALLOWEDIPS;
        return f;
}

enum put_result {
        PUT_NONE,    /* nothing of the peer fit; the message is unchanged */
        PUT_PARTIAL, /* a part fit; the peer continues in the next message */
        PUT_DONE,    /* the rest of the peer fit */
};

/* Append peer P to the peers nest of MSG. STARTED: its first part went in
 * an earlier message, and *J allowed IPs of it were sent; *J is advanced
 * past those that fit now. */
static enum put_result put_peer(struct nl_msg *msg, const struct wg_peer *p, bool started, size_t *j) {
        size_t first = *j;
        size_t n = (p->flags & WG_PEER_REMOVE_ME) ? 0 : p->n_allowedips;
        struct nlattr *peer_nest, *ips_nest;
        uint32_t flags = peer_wire_flags(p, started);

        peer_nest = nest_start(msg, 0);
        if (!peer_nest)
                return PUT_NONE;
        if (nla_put(msg, WGPEER_A_PUBLIC_KEY, WG_KEY_LEN, p->public_key) < 0)
                goto none;
        if (flags != 0 && nla_put_u32(msg, WGPEER_A_FLAGS, flags) < 0)
                goto none;
        if (!started && !(p->flags & WG_PEER_REMOVE_ME) && put_peer_head(msg, p) < 0)
                goto none;
        if (*j < n) {
                ips_nest = nest_start(msg, WGPEER_A_ALLOWEDIPS);
                if (ips_nest) {
                        while (*j < n && put_allowedip(msg, &p->allowedips[*j]) == 0)
                                (*j)++;
                        if (*j > first)
                                nla_nest_end(msg, ips_nest);
                        else
                                nla_nest_cancel(msg, ips_nest);
                }
        }
        if (*j == n) {
                nla_nest_end(msg, peer_nest);
                return PUT_DONE;
        }
        /* A continuation that carries no allowed IP is just noise. */
        if (started && *j == first)
                goto none;
        nla_nest_end(msg, peer_nest);
        return PUT_PARTIAL;
none:
        nla_nest_cancel(msg, peer_nest);
        *j = first;
        return PUT_NONE;
}

/* Whether peer I removes a peer that peer I + 1 creates again. */
static bool is_readd_pair(const struct wg_device *dev, size_t i) {
        const struct wg_peer *rm = &dev->peers[i], *add;

        if (i + 1 >= dev->n_peers || !(rm->flags & WG_PEER_REMOVE_ME))
                return false;
        add = &dev->peers[i + 1];
        return !(add->flags & WG_PEER_REMOVE_ME) && memcmp(rm->public_key, add->public_key, WG_KEY_LEN) == 0;
}

struct msg_array {
        struct nl_msg **v;
        size_t n;
};

static void msg_array_done(struct msg_array *a) {
        wg_kernel_msgs_free(a->v, a->n);
}

static int msg_array_push(struct msg_array *a, struct nl_msg *m) {
        struct nl_msg **v = realloc(a->v, (a->n + 1) * sizeof(*v));

        if (!v)
                return -ENOMEM;
        v[a->n++] = m;
        a->v = v;
        return 0;
}

int wg_kernel_build_set(const struct wg_device *dev, int family_id, size_t max_msg_size,
                        struct nl_msg ***ret_msgs, size_t *ret_n) {
        _cleanup_(msg_array_done) struct msg_array msgs = {};
        size_t i = 0, j = 0;
        bool started = false;
        int r;

        if (!dev || !ret_msgs || !ret_n)
                return -EINVAL;
        r = check_device(dev);
        if (r < 0)
                return r;
        /* nla_len is 16 bits: the peers nest cannot describe more. */
        max_msg_size = MIN(max_msg_size, (size_t) UINT16_MAX);

        for (bool first = true;; first = false) {
                _cleanup_(msg_wipe_freep) struct nl_msg *msg = NULL;
                struct nlattr *peers_nest;
                bool progress = first, any = false;

                msg = nlmsg_alloc_size(max_msg_size);
                if (!msg)
                        return -ENOMEM;
                r = put_device(msg, dev, family_id, first);
                if (r < 0)
                        return r;

                peers_nest = i < dev->n_peers ? nest_start(msg, WGDEVICE_A_PEERS) : NULL;
                if (peers_nest) {
                        while (i < dev->n_peers) {
                                struct nlattr *mark = nlmsg_tail(nlmsg_hdr(msg));
                                bool had_peers = any;
                                enum put_result res = put_peer(msg, &dev->peers[i], started, &j);

                                if (res == PUT_NONE)
                                        break;
                                /* A removal and the re-creation of the same
                                 * peer go in one message: the kernel applies
                                 * a message whole, so no crash of ours can
                                 * leave the peer removed. If the re-creation
                                 * does not begin here, both move on. */
                                if (res == PUT_DONE && is_readd_pair(dev, i)) {
                                        size_t k = 0;

                                        res = put_peer(msg, &dev->peers[i + 1], false, &k);
                                        if (res == PUT_NONE && had_peers) {
                                                nla_nest_cancel(msg, mark);
                                                break;
                                        }
                                        any = true;
                                        if (res == PUT_NONE) {
                                                /* Alone in a message it still does
                                                 * not fit: sent apart after all. */
                                                i++;
                                                j = 0;
                                                started = false;
                                                continue;
                                        }
                                        i++;
                                        j = k;
                                        if (res == PUT_PARTIAL) {
                                                started = true;
                                                break;
                                        }
                                }
                                any = true;
                                if (res == PUT_PARTIAL) {
                                        started = true;
                                        break;
                                }
                                i++;
                                j = 0;
                                started = false;
                        }
                        if (any)
                                nla_nest_end(msg, peers_nest);
                        else
                                nla_nest_cancel(msg, peers_nest);
                }
                /* An empty message cannot help: the next one would be the same. */
                if (!progress && !any)
                        return -EMSGSIZE;

                r = msg_array_push(&msgs, msg);
                if (r < 0)
                        return r;
                TAKE_PTR(msg);
                if (i == dev->n_peers)
                        break;
        }

        *ret_msgs = TAKE_PTR(msgs.v);
        *ret_n = msgs.n;
        msgs.n = 0;
        return 0;
}

int wg_kernel_build_get(const char *ifname, int family_id, struct nl_msg **ret_msg) {
        _cleanup_(nlmsg_freep) struct nl_msg *msg = NULL;

        if (!ifname || ifname[0] == '\0' || strlen(ifname) >= IFNAMSIZ || !ret_msg)
                return -EINVAL;
        msg = nlmsg_alloc();
        if (!msg)
                return -ENOMEM;
        if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, family_id, 0, NLM_F_REQUEST | NLM_F_DUMP,
                         WG_CMD_GET_DEVICE, WG_GENL_VERSION) ||
            nla_put_string(msg, WGDEVICE_A_IFNAME, ifname) < 0)
                return -ENOMEM;
        *ret_msg = TAKE_PTR(msg);
        return 0;
}

/* ---- parsing ---- */

/* Payload bounds of one attribute type. Types without a rule (newer
 * kernels may add some) are skipped. */
struct attr_rule {
        uint16_t min, max;
        bool string;        /* NUL-terminated */
        const char *bad;    /* the reason when the payload is out of bounds; NULL: no rule */
};

#define NESTED_RULE(what) { 0, UINT16_MAX, false, what }

static const struct attr_rule device_rules[WGDEVICE_A_MAX + 1] = {
        [WGDEVICE_A_IFINDEX] = { 4, 4, false, "device ifindex is not 4 bytes" },
        [WGDEVICE_A_IFNAME] = { 1, IFNAMSIZ, true, "device name is not a terminated string below 16 bytes" },
        [WGDEVICE_A_PRIVATE_KEY] = { WG_KEY_LEN, WG_KEY_LEN, false, "device private key is not 32 bytes" },
        [WGDEVICE_A_PUBLIC_KEY] = { WG_KEY_LEN, WG_KEY_LEN, false, "device public key is not 32 bytes" },
        [WGDEVICE_A_FLAGS] = { 4, 4, false, "device flags are not 4 bytes" },
        [WGDEVICE_A_LISTEN_PORT] = { 2, 2, false, "listen port is not 2 bytes" },
        [WGDEVICE_A_FWMARK] = { 4, 4, false, "fwmark is not 4 bytes" },
        [WGDEVICE_A_PEERS] = NESTED_RULE("peers"),
};

static const struct attr_rule peer_rules[WGPEER_A_MAX + 1] = {
        [WGPEER_A_PUBLIC_KEY] = { WG_KEY_LEN, WG_KEY_LEN, false, "peer public key is not 32 bytes" },
        [WGPEER_A_PRESHARED_KEY] = { WG_KEY_LEN, WG_KEY_LEN, false, "peer preshared key is not 32 bytes" },
        [WGPEER_A_FLAGS] = { 4, 4, false, "peer flags are not 4 bytes" },
        [WGPEER_A_ENDPOINT] = { sizeof(struct sockaddr_in), sizeof(struct sockaddr_in6), false,
                                "peer endpoint is neither a sockaddr_in nor a sockaddr_in6" },
        [WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL] = { 2, 2, false, "keepalive interval is not 2 bytes" },
        [WGPEER_A_LAST_HANDSHAKE_TIME] = { sizeof(struct __kernel_timespec), sizeof(struct __kernel_timespec),
                                           false, "last handshake time is not a __kernel_timespec" },
        [WGPEER_A_RX_BYTES] = { 8, 8, false, "rx bytes are not 8 bytes" },
        [WGPEER_A_TX_BYTES] = { 8, 8, false, "tx bytes are not 8 bytes" },
        [WGPEER_A_ALLOWEDIPS] = NESTED_RULE("allowed IPs"),
        [WGPEER_A_PROTOCOL_VERSION] = { 4, 4, false, "protocol version is not 4 bytes" },
};

static const struct attr_rule allowedip_rules[WGALLOWEDIP_A_MAX + 1] = {
        [WGALLOWEDIP_A_FAMILY] = { 2, 2, false, "allowed IP family is not 2 bytes" },
        [WGALLOWEDIP_A_IPADDR] = { 4, 16, false, "allowed IP address is neither 4 nor 16 bytes" },
        [WGALLOWEDIP_A_CIDR_MASK] = { 1, 1, false, "allowed IP prefix length is not 1 byte" },
};

/* Index the attributes in HEAD[0..LEN) by type into TB[0..MAX] (the last of
 * a repeated type wins), checking each against RULES, and that they fill
 * the space exactly: a trailing partial attribute is a truncation. */
static int parse_attrs(const struct nlattr **tb, int max, const struct attr_rule *rules, const void *head,
                       int len, const char **reason) {
        const struct nlattr *a;
        int rem;

        memset(tb, 0, (size_t) (max + 1) * sizeof(*tb));
        nla_for_each_attr(a, head, len, rem) {
                int type = nla_type(a), n = nla_len(a);
                const struct attr_rule *rule;

                if (type > max || !rules[type].bad)
                        continue;
                rule = &rules[type];
                if (n < rule->min || n > rule->max ||
                    (rule->string && ((const char *) nla_data(a))[n - 1] != '\0')) {
                        *reason = rule->bad;
                        return -EBADMSG;
                }
                tb[type] = a;
        }
        /* The last attribute may lack its padding; anything more is left over. */
        if (rem > 0) {
                *reason = "truncated attribute";
                return -EBADMSG;
        }
        return 0;
}

/* Check that the elements of a nested array fill it exactly. */
static int check_array(const struct nlattr *array, const char **reason) {
        const struct nlattr *e;
        int rem;

        nla_for_each_nested(e, array, rem)
                ;
        if (rem > 0) {
                *reason = "truncated array element";
                return -EBADMSG;
        }
        return 0;
}

static uint16_t get_u16(const struct nlattr *a) {
        uint16_t v;

        memcpy(&v, nla_data(a), sizeof(v));
        return v;
}

static uint32_t get_u32(const struct nlattr *a) {
        uint32_t v;

        memcpy(&v, nla_data(a), sizeof(v));
        return v;
}

static uint64_t get_u64(const struct nlattr *a) {
        uint64_t v;

        memcpy(&v, nla_data(a), sizeof(v));
        return v;
}

static int parse_allowedip(const struct nlattr *nest, struct wg_allowedip *ret, const char **reason) {
        const struct nlattr *tb[WGALLOWEDIP_A_MAX + 1];
        struct wg_allowedip a = {};
        int r, len;

        r = parse_attrs(tb, WGALLOWEDIP_A_MAX, allowedip_rules, nla_data(nest), nla_len(nest), reason);
        if (r < 0)
                return r;
        if (!tb[WGALLOWEDIP_A_FAMILY] || !tb[WGALLOWEDIP_A_IPADDR] || !tb[WGALLOWEDIP_A_CIDR_MASK]) {
                *reason = "allowed IP lacks family, address or prefix length";
                return -EBADMSG;
        }
        a.family = get_u16(tb[WGALLOWEDIP_A_FAMILY]);
        a.cidr = *(const uint8_t *) nla_data(tb[WGALLOWEDIP_A_CIDR_MASK]);
        len = nla_len(tb[WGALLOWEDIP_A_IPADDR]);
        if (a.family != AF_INET && a.family != AF_INET6) {
                *reason = "allowed IP family is neither AF_INET nor AF_INET6";
                return -EBADMSG;
        }
        if (len != (a.family == AF_INET ? 4 : 16)) {
                *reason = "allowed IP address size does not match its family";
                return -EBADMSG;
        }
        if (!allowedip_valid(&a)) {
                *reason = "allowed IP prefix length exceeds the address";
                return -EBADMSG;
        }
        memcpy(&a.ip, nla_data(tb[WGALLOWEDIP_A_IPADDR]), (size_t) len);
        *ret = a;
        return 0;
}

static int parse_endpoint(const struct nlattr *attr, union wg_endpoint *ret, const char **reason) {
        sa_family_t family;
        size_t len = (size_t) nla_len(attr);

        memcpy(&family, nla_data(attr), sizeof(family));
        if ((family == AF_INET && len == sizeof(ret->addr4)) || (family == AF_INET6 && len == sizeof(ret->addr6))) {
                *ret = (union wg_endpoint) {};
                memcpy(ret, nla_data(attr), len);
                return 0;
        }
        *reason = "peer endpoint is neither a sockaddr_in nor a sockaddr_in6";
        return -EBADMSG;
}

static int parse_peer(struct wg_kernel_dump *d, const struct nlattr *nest) {
        const struct nlattr *tb[WGPEER_A_MAX + 1], *e;
        struct wg_device *dev = d->device;
        union wg_endpoint endpoint = {};
        const uint8_t *key;
        struct wg_peer *p;
        int r, rem;

        r = parse_attrs(tb, WGPEER_A_MAX, peer_rules, nla_data(nest), nla_len(nest), &d->reason);
        if (r < 0)
                return r;
        if (!tb[WGPEER_A_PUBLIC_KEY]) {
                d->reason = "peer without public key";
                return -EBADMSG;
        }
        if (tb[WGPEER_A_ENDPOINT]) {
                r = parse_endpoint(tb[WGPEER_A_ENDPOINT], &endpoint, &d->reason);
                if (r < 0)
                        return r;
        }
        if (tb[WGPEER_A_ALLOWEDIPS]) {
                r = check_array(tb[WGPEER_A_ALLOWEDIPS], &d->reason);
                if (r < 0)
                        return r;
        }

        key = nla_data(tb[WGPEER_A_PUBLIC_KEY]);
        if (dev->n_peers > 0 && memcmp(dev->peers[dev->n_peers - 1].public_key, key, WG_KEY_LEN) == 0)
                /* The rest of the previous peer, whose allowed IPs filled a message. */
                p = &dev->peers[dev->n_peers - 1];
        else {
                p = wg_device_add_peer(dev);
                if (!p)
                        return -ENOMEM;
                memcpy(p->public_key, key, WG_KEY_LEN);
                p->flags |= WG_PEER_HAS_PUBLIC_KEY;
                if (tb[WGPEER_A_PRESHARED_KEY]) {
                        memcpy(p->preshared_key, nla_data(tb[WGPEER_A_PRESHARED_KEY]), WG_KEY_LEN);
                        if (!wg_key_is_zero(p->preshared_key))
                                p->flags |= WG_PEER_HAS_PRESHARED_KEY;
                }
                if (tb[WGPEER_A_ENDPOINT]) {
                        p->endpoint = endpoint;
                        p->flags |= WG_PEER_HAS_ENDPOINT;
                }
                if (tb[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]) {
                        p->persistent_keepalive_interval = get_u16(tb[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]);
                        p->flags |= WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL;
                }
                if (tb[WGPEER_A_LAST_HANDSHAKE_TIME]) {
                        struct __kernel_timespec ts;

                        memcpy(&ts, nla_data(tb[WGPEER_A_LAST_HANDSHAKE_TIME]), sizeof(ts));
                        p->last_handshake_time_sec = ts.tv_sec;
                        p->last_handshake_time_nsec = ts.tv_nsec;
                }
                if (tb[WGPEER_A_RX_BYTES])
                        p->rx_bytes = get_u64(tb[WGPEER_A_RX_BYTES]);
                if (tb[WGPEER_A_TX_BYTES])
                        p->tx_bytes = get_u64(tb[WGPEER_A_TX_BYTES]);
        }

        if (!tb[WGPEER_A_ALLOWEDIPS])
                return 0;
        nla_for_each_nested(e, tb[WGPEER_A_ALLOWEDIPS], rem) {
                struct wg_allowedip a;

                r = parse_allowedip(e, &a, &d->reason);
                if (r < 0)
                        return r;
                r = wg_peer_add_allowedip(p, &a);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int parse_device(struct wg_kernel_dump *d, const void *attrs, int len) {
        const struct nlattr *tb[WGDEVICE_A_MAX + 1], *e;
        struct wg_device *dev = d->device;
        int r, rem;

        r = parse_attrs(tb, WGDEVICE_A_MAX, device_rules, attrs, len, &d->reason);
        if (r < 0)
                return r;
        if (tb[WGDEVICE_A_PEERS]) {
                r = check_array(tb[WGDEVICE_A_PEERS], &d->reason);
                if (r < 0)
                        return r;
        }

        if (tb[WGDEVICE_A_IFINDEX])
                dev->ifindex = get_u32(tb[WGDEVICE_A_IFINDEX]);
        if (tb[WGDEVICE_A_IFNAME]) {
                /* The rule guarantees the NUL within IFNAMSIZ bytes. */
                memset(dev->name, 0, sizeof(dev->name));
                memcpy(dev->name, nla_data(tb[WGDEVICE_A_IFNAME]), (size_t) nla_len(tb[WGDEVICE_A_IFNAME]));
        }
        if (tb[WGDEVICE_A_PRIVATE_KEY]) {
                memcpy(dev->private_key, nla_data(tb[WGDEVICE_A_PRIVATE_KEY]), WG_KEY_LEN);
                dev->flags |= WG_DEVICE_HAS_PRIVATE_KEY;
        }
        if (tb[WGDEVICE_A_PUBLIC_KEY]) {
                memcpy(dev->public_key, nla_data(tb[WGDEVICE_A_PUBLIC_KEY]), WG_KEY_LEN);
                dev->flags |= WG_DEVICE_HAS_PUBLIC_KEY;
        }
        if (tb[WGDEVICE_A_LISTEN_PORT]) {
                dev->listen_port = get_u16(tb[WGDEVICE_A_LISTEN_PORT]);
                dev->flags |= WG_DEVICE_HAS_LISTEN_PORT;
        }
        if (tb[WGDEVICE_A_FWMARK]) {
                dev->fwmark = get_u32(tb[WGDEVICE_A_FWMARK]);
                dev->flags |= WG_DEVICE_HAS_FWMARK;
        }

        if (!tb[WGDEVICE_A_PEERS])
                return 0;
        nla_for_each_nested(e, tb[WGDEVICE_A_PEERS], rem) {
                r = parse_peer(d, e);
                if (r < 0)
                        return r;
        }
        return 0;
}

void wg_kernel_dump_init(struct wg_kernel_dump *d, int family_id) {
        *d = (struct wg_kernel_dump) { .family_id = family_id };
}

void wg_kernel_dump_clear(struct wg_kernel_dump *d) {
        if (!d)
                return;
        wg_device_free(d->device);
        wg_kernel_dump_init(d, d->family_id);
}

static int dump_fail(struct wg_kernel_dump *d, int error, const char *reason) {
        if (reason)
                d->reason = reason;
        d->error = error;
        return error;
}

int wg_kernel_dump_add(struct wg_kernel_dump *d, const uint8_t *buf, size_t len) {
        const struct nlmsghdr *h = (const struct nlmsghdr *) buf;
        const struct genlmsghdr *g;
        int r;

        if (d->error)
                return d->error;
        if (!buf || len < NLMSG_HDRLEN)
                return dump_fail(d, -EBADMSG, "message shorter than its netlink header");
        if (h->nlmsg_len > len || h->nlmsg_len < NLMSG_HDRLEN + GENL_HDRLEN)
                return dump_fail(d, -EBADMSG, "message length out of bounds");
        if (d->family_id > 0 && h->nlmsg_type != d->family_id)
                return dump_fail(d, -EBADMSG, "message is not from the wireguard family");
        if (h->nlmsg_flags & NLM_F_DUMP_INTR)
                d->interrupted = true;
        /* An interrupted dump is thrown away: no point parsing the rest. */
        if (d->interrupted)
                return 0;
        g = (const struct genlmsghdr *) (buf + NLMSG_HDRLEN);
        if (g->cmd != WG_CMD_GET_DEVICE)
                return dump_fail(d, -EBADMSG, "message is not a WG_CMD_GET_DEVICE reply");

        if (!d->device) {
                d->device = calloc(1, sizeof(*d->device));
                if (!d->device)
                        return dump_fail(d, -ENOMEM, NULL);
        }
        r = parse_device(d, buf + NLMSG_HDRLEN + GENL_HDRLEN, (int) (h->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN));
        if (r < 0)
                return dump_fail(d, r, NULL);
        return 0;
}

int wg_kernel_dump_finish(struct wg_kernel_dump *d, struct wg_device **ret) {
        if (d->error)
                return d->error;
        if (d->interrupted)
                return -EAGAIN;
        if (!d->device) {
                d->reason = "dump carried no device";
                return -EBADMSG;
        }
        *ret = TAKE_PTR(d->device);
        return 0;
}

/* ---- the socket ---- */

/* Why the last kernel request of this thread failed, in words: the
 * kernel's extended ACK message, or what resolving the family ran into. */
static _Thread_local char last_error[256];

const char *wg_kernel_last_error(void) {
        return last_error;
}

static void last_error_set(const char *text, size_t len) {
        if (len >= sizeof(last_error))
                len = sizeof(last_error) - 1;
        memcpy(last_error, text, len);
        last_error[len] = '\0';
}

/* Keep NLMSGERR_ATTR_MSG of the error or DONE message H, whose TLVs start
 * OFF bytes into it (after the error, and the echoed request unless the
 * kernel capped it). */
static void ext_ack_note(const struct nlmsghdr *h, size_t off) {
        const uint8_t *p = (const uint8_t *) h;
        const struct nlattr *msg;

        if (!(h->nlmsg_flags & NLM_F_ACK_TLVS))
                return;
        if (off >= h->nlmsg_len)
                return;
        off = (off + NLMSG_ALIGNTO - 1) & ~(size_t) (NLMSG_ALIGNTO - 1);
        if (off >= h->nlmsg_len)
                return;
        msg = nla_find((const struct nlattr *) (p + off), (int) (h->nlmsg_len - off), NLMSGERR_ATTR_MSG);
        if (!msg || nla_len(msg) <= 0)
                return;
        /* A string attribute: NUL-terminated within its length, or cut. */
        last_error_set(nla_data(msg), strnlen(nla_data(msg), (size_t) nla_len(msg)));
}

/* libnl has no public mapping back to errno; these are the ones that
 * connecting and resolving a family produce. */
static int nlerr_to_errno(int e) {
        switch (-e) {
        case NLE_NOMEM:
                return -ENOMEM;
        case NLE_PERM:
                return -EPERM;
        case NLE_NOACCESS:
                return -EACCES;
        case NLE_AF_NOSUPPORT:
                return -EAFNOSUPPORT;
        case NLE_OBJ_NOTFOUND:
                return -ENOENT;
        case NLE_AGAIN:
                return -EAGAIN;
        case NLE_INTR:
                return -EINTR;
        default:
                return -EIO;
        }
}

static int kernel_open(struct nl_sock **ret_sk, int *ret_family) {
        _cleanup_(nl_socket_freep) struct nl_sock *sk = NULL;
        int r, family, one = 1;
        const char *why;

        last_error[0] = '\0';
        sk = nl_socket_alloc();
        if (!sk)
                return -ENOMEM;
        r = genl_connect(sk);
        if (r < 0) {
                r = nlerr_to_errno(r);
                why = "cannot open a generic netlink socket";
                last_error_set(why, strlen(why));
                return r;
        }
        family = genl_ctrl_resolve(sk, WG_GENL_NAME);
        /* Only the controller's "no such family" (ENOENT), or a kernel
         * without the lookup, says there is no WireGuard module; being
         * refused the question (a sandbox, an LSM) says nothing about it. */
        if (family == -NLE_OBJ_NOTFOUND || family == -NLE_OPNOTSUPP) {
                why = "no \"" WG_GENL_NAME "\" generic netlink family: the WireGuard module is not loaded";
                last_error_set(why, strlen(why));
                return -EPROTONOSUPPORT;
        }
        if (family < 0) {
                r = nlerr_to_errno(family);
                why = r == -EPERM || r == -EACCES ?
                              "not allowed to resolve the \"" WG_GENL_NAME "\" generic netlink family" :
                              "resolving the \"" WG_GENL_NAME "\" generic netlink family failed";
                last_error_set(why, strlen(why));
                return r;
        }
        /* Our requests say themselves whether they want an ACK. */
        nl_socket_disable_auto_ack(sk);
        /* Error replies would otherwise echo the request, keys included. */
        (void) setsockopt(nl_socket_get_fd(sk), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
        /* The kernel's own words on a refusal (which attribute, why); a
         * kernel without extended ACKs just sends none. */
        (void) setsockopt(nl_socket_get_fd(sk), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));

        *ret_sk = TAKE_PTR(sk);
        *ret_family = family;
        return 0;
}

static int kernel_send(struct nl_sock *sk, struct nl_msg *msg, uint32_t *ret_seq) {
        struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
        struct nlmsghdr *h;
        ssize_t n;

        nl_complete_msg(sk, msg);
        h = nlmsg_hdr(msg);
        do
                n = sendto(nl_socket_get_fd(sk), h, h->nlmsg_len, 0, (struct sockaddr *) &kernel, sizeof(kernel));
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        if ((size_t) n != h->nlmsg_len)
                return -EIO;
        *ret_seq = h->nlmsg_seq;
        return 0;
}

/* Read the replies to request SEQ until it is complete: NLMSG_DONE for a
 * dump (DUMP non-NULL; its data messages go to DUMP), the NLMSG_ERROR
 * acknowledgement otherwise. Returns 0, the kernel's -errno, or -errno. */
static int kernel_recv(struct nl_sock *sk, uint32_t seq, struct wg_kernel_dump *dump, uint8_t *buf) {
        uint32_t port = nl_socket_get_local_port(sk);
        int fd = nl_socket_get_fd(sk);

        for (;;) {
                struct sockaddr_nl from = {};
                struct iovec iov = { .iov_base = buf, .iov_len = RECV_BUFFER_SIZE };
                struct msghdr mh = {
                        .msg_name = &from,
                        .msg_namelen = sizeof(from),
                        .msg_iov = &iov,
                        .msg_iovlen = 1,
                };
                struct nlmsghdr *h;
                ssize_t n;
                int rem;

                n = recvmsg(fd, &mh, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (mh.msg_flags & MSG_TRUNC)
                        return -EMSGSIZE;
                if (from.nl_pid != 0)
                        continue;

                rem = (int) n;
                for (h = (struct nlmsghdr *) buf; nlmsg_ok(h, rem); h = nlmsg_next(h, &rem)) {
                        int r;

                        if (h->nlmsg_seq != seq || h->nlmsg_pid != port)
                                continue;
                        if (dump && (h->nlmsg_flags & NLM_F_DUMP_INTR))
                                dump->interrupted = true;

                        switch (h->nlmsg_type) {
                        case NLMSG_NOOP:
                                break;
                        case NLMSG_ERROR: {
                                struct nlmsgerr e;

                                if (h->nlmsg_len < NLMSG_LENGTH(sizeof(e)))
                                        return -EBADMSG;
                                memcpy(&e, NLMSG_DATA(h), sizeof(e));
                                if (e.error != 0)
                                        ext_ack_note(h, NLMSG_HDRLEN + sizeof(e) +
                                                                (h->nlmsg_flags & NLM_F_CAPPED ?
                                                                         0 :
                                                                         (size_t) e.msg.nlmsg_len - NLMSG_HDRLEN));
                                return e.error > 0 ? -e.error : e.error;
                        }
                        case NLMSG_DONE: {
                                int err = 0;

                                /* A dump that failed half way says so here. */
                                if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(err)))
                                        memcpy(&err, NLMSG_DATA(h), sizeof(err));
                                if (err < 0)
                                        ext_ack_note(h, NLMSG_LENGTH(sizeof(err)));
                                return err < 0 ? err : 0;
                        }
                        default:
                                if (!dump)
                                        break;
                                r = wg_kernel_dump_add(dump, (const uint8_t *) h, h->nlmsg_len);
                                if (r < 0)
                                        return r;
                        }
                }
        }
}

/* The kernel answers ENODEV for a missing interface and EOPNOTSUPP for one
 * that is not WireGuard; to callers both mean "no such WireGuard device". */
static int map_device_error(int r) {
        return r == -EOPNOTSUPP ? -ENODEV : r;
}

int wg_kernel_get_device(const char *ifname, struct wg_device **ret) {
        _cleanup_(nl_socket_freep) struct nl_sock *sk = NULL;
        _cleanup_(recv_buffer_freep) uint8_t *buf = NULL;
        int r, family;

        if (!ifname || ifname[0] == '\0' || strlen(ifname) >= IFNAMSIZ || !ret)
                return -EINVAL;
        r = kernel_open(&sk, &family);
        if (r < 0)
                return r;
        buf = malloc(RECV_BUFFER_SIZE);
        if (!buf)
                return -ENOMEM;

        for (int attempt = 0; attempt < DUMP_ATTEMPTS; attempt++) {
                _cleanup_(nlmsg_freep) struct nl_msg *msg = NULL;
                _cleanup_(wg_kernel_dump_clear) struct wg_kernel_dump d = { .family_id = family };
                uint32_t seq;

                r = wg_kernel_build_get(ifname, family, &msg);
                if (r < 0)
                        return r;
                r = kernel_send(sk, msg, &seq);
                if (r < 0)
                        return r;
                r = kernel_recv(sk, seq, &d, buf);
                if (r < 0)
                        return map_device_error(r);
                r = wg_kernel_dump_finish(&d, ret);
                if (r != -EAGAIN)
                        return r;
        }
        return -EAGAIN;
}

int wg_kernel_set_device(const struct wg_device *dev) {
        _cleanup_(nl_socket_freep) struct nl_sock *sk = NULL;
        _cleanup_(recv_buffer_freep) uint8_t *buf = NULL;
        _cleanup_(msg_array_done) struct msg_array msgs = {};
        int r, family;

        if (!dev)
                return -EINVAL;
        r = kernel_open(&sk, &family);
        if (r < 0)
                return r;
        r = wg_kernel_build_set(dev, family, wg_kernel_msg_max(), &msgs.v, &msgs.n);
        if (r < 0)
                return r;
        buf = malloc(RECV_BUFFER_SIZE);
        if (!buf)
                return -ENOMEM;

        for (size_t i = 0; i < msgs.n; i++) {
                uint32_t seq;

                r = kernel_send(sk, msgs.v[i], &seq);
                if (r < 0)
                        return r;
                r = kernel_recv(sk, seq, NULL, buf);
                if (r < 0)
                        return map_device_error(r);
        }
        return 0;
}
