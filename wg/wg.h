/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Backend-neutral WireGuard device model (after wireguard-tools'
 * containers.h, with arrays instead of lists so peer sets can be sorted and
 * diffed). Backends: kernel (generic netlink, wg/kernel.c) and userspace
 * UAPI (wireguard-go; boringtun with its own rules; wg/uapi.c), chosen per
 * interface by configuration or at run time (AUTO).
 *
 * Keys are raw 32-byte arrays; wg_device_free() wipes them. Nothing here
 * logs or prints a private or preshared key.
 */

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/ipaddr.h"
#include "key.h"

enum wg_device_flags {
        WG_DEVICE_REPLACE_PEERS = 1u << 0,   /* set: peers not listed are removed */
        WG_DEVICE_HAS_PRIVATE_KEY = 1u << 1,
        WG_DEVICE_HAS_PUBLIC_KEY = 1u << 2,
        WG_DEVICE_HAS_LISTEN_PORT = 1u << 3,
        WG_DEVICE_HAS_FWMARK = 1u << 4,
};

enum wg_peer_flags {
        /* set: remove this peer. A REMOVE_ME entry followed at once by an
         * entry of the same key re-creates the peer from that entry alone
         * (endpoint and session gone); every backend applies such a pair
         * in one kernel message or one UAPI request (boringtun: two, back
         * to back), so a crash of the caller cannot fall between them. */
        WG_PEER_REMOVE_ME = 1u << 0,
        WG_PEER_REPLACE_ALLOWEDIPS = 1u << 1, /* set: allowed IPs replace, not add */
        WG_PEER_HAS_PUBLIC_KEY = 1u << 2,
        WG_PEER_HAS_PRESHARED_KEY = 1u << 3,
        WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL = 1u << 4,
        WG_PEER_HAS_ENDPOINT = 1u << 5,
        WG_PEER_UPDATE_ONLY = 1u << 6,        /* set: only change an existing peer */
};

struct wg_allowedip {
        int family;                           /* AF_INET or AF_INET6 */
        union in_addr_union ip;
        uint8_t cidr;
};

union wg_endpoint {
        struct sockaddr addr;                 /* sa_family AF_UNSPEC: none */
        struct sockaddr_in addr4;
        struct sockaddr_in6 addr6;
};

struct wg_peer {
        uint32_t flags;                       /* enum wg_peer_flags */
        uint8_t public_key[WG_KEY_LEN];
        uint8_t preshared_key[WG_KEY_LEN];
        union wg_endpoint endpoint;
        /* Wall-clock time of the last handshake (CLOCK_REALTIME); 0 = never. */
        int64_t last_handshake_time_sec;
        int64_t last_handshake_time_nsec;
        uint64_t rx_bytes, tx_bytes;
        uint16_t persistent_keepalive_interval; /* seconds; 0 = off */
        struct wg_allowedip *allowedips;
        size_t n_allowedips;
};

struct wg_device {
        char name[IFNAMSIZ];
        uint32_t ifindex;
        uint32_t flags;                       /* enum wg_device_flags */
        uint8_t public_key[WG_KEY_LEN];
        uint8_t private_key[WG_KEY_LEN];
        uint32_t fwmark;
        uint16_t listen_port;
        struct wg_peer *peers;
        size_t n_peers;
};

enum wg_backend {
        WG_BACKEND_AUTO,
        WG_BACKEND_KERNEL,
        WG_BACKEND_UAPI,
        WG_BACKEND_BORINGTUN,         /* UAPI, with wg_uapi_boringtun_set_device() */
        _WG_BACKEND_MAX,
};

/* Whether backend B (resolved) talks to a userspace daemon over UAPI. */
static inline bool wg_backend_is_userspace(enum wg_backend b) {
        return b == WG_BACKEND_UAPI || b == WG_BACKEND_BORINGTUN;
}

const char *wg_backend_to_string(enum wg_backend b);
/* Returns the backend, or -EINVAL for an unknown name. */
int wg_backend_from_string(const char *s);

/* The UAPI socket directory; tests may point it elsewhere. */
#define WG_UAPI_SOCKET_DIR "/var/run/wireguard"

/*
 * AUTO resolved for IFNAME: UAPI when a daemon listens on
 * WG_UAPI_SOCKET_DIR/IFNAME.sock (a userspace implementation owns the
 * interface), else KERNEL. A stale socket (nobody listening) is removed
 * and means KERNEL, as with wg(8); a socket that cannot be probed
 * (-EACCES) means UAPI, whose exchanges then report why. AUTO never
 * resolves to BORINGTUN: boringtun must be configured. Other values are
 * returned unchanged. Tests may move the socket directory with
 * $HAMGR_WG_UAPI_DIR.
 */
enum wg_backend wg_backend_resolve(enum wg_backend b, const char *ifname);

/* Room for a link kind from wg_link_kind(), with its NUL. */
#define WG_LINK_KIND_MAX 32

/* The rtnetlink kind (IFLA_INFO_KIND) of the link IFNAME into RET_KIND
 * (LEN bytes, cut to fit): "wireguard", "tun", "dummy", "veth"..., or ""
 * for a link without one (a physical NIC, loopback). Returns 0, -ENODEV
 * when there is no such link, -EINVAL for an invalid name, or -ENOMEM /
 * -EIO when rtnetlink cannot be asked. */
int wg_link_kind(const char *ifname, char *ret_kind, size_t len);

/*
 * Whether IFNAME is a WireGuard interface, so that its link may be taken
 * up and down; changes nothing. It is when its link kind is "wireguard"
 * (the kernel module), or when backend B (AUTO resolved) is UAPI or
 * BORINGTUN and the
 * UAPI socket answers a get: a userspace implementation's link is a plain
 * TUN ("tun"), which the kind alone does not tell from other TUN users.
 * Returns 0 when it is WireGuard; -EMEDIUMTYPE when the link is something
 * else (for UAPI: no socket, or nobody listening on it); -ENODEV when
 * there is no such link; another error of the UAPI get when the socket
 * did not answer properly (-ETIMEDOUT, -EACCES...: cannot tell); or an
 * error of wg_link_kind().
 * Unless -ENODEV or the lookup failed, the link kind is copied to RET_KIND
 * (LEN bytes; RET_KIND may be NULL).
 */
int wg_interface_check(enum wg_backend b, const char *ifname, char *ret_kind, size_t len);

/* Read the whole device IFNAME through backend B (AUTO resolved).
 * Returns 0 and a new device in *ret, or -errno (-ENODEV: no such
 * WireGuard interface). */
int wg_get_device(enum wg_backend b, const char *ifname, struct wg_device **ret);

/* wg_get_device() for the endpoint store: the peers' keys, endpoints,
 * handshake times and keepalives; a userspace backend leaves out their
 * preshared keys and allowed IPs (a kernel read has everything). */
int wg_get_endpoints(enum wg_backend b, const char *ifname, struct wg_device **ret);

/* Size of a configuration digest (wg_uapi_parse_digest()): what an index
 * compares a whole read with. */
#define WG_DIGEST_LEN 32

/* The sections of a device's last read (userspace backends): what the
 * next read is compared with. */
struct wg_index;
struct wg_index *wg_index_free(struct wg_index *x);
static inline void wg_index_freep(struct wg_index **x) {
        wg_index_free(*x);
}

/* hamgr wrote the peer KEY (or tried to): the next read compared with X
 * lists it as changed, or as gone, whatever its lines are then, and is
 * never "unchanged" as a whole. The rest of X still stands. Also when X
 * does not list KEY: the read lists it as new if the device has it, as
 * gone if not (removed by hand after the write). Returns 0, -EINVAL (X
 * NULL) or -ENOMEM (X unchanged: drop it). */
int wg_index_forget(struct wg_index *x, const uint8_t key[static WG_KEY_LEN]);

/*
 * Read IFNAME and tell what changed since the read PREV describes, in one
 * read: *RET NULL (nothing), or the peers new or changed, whole, and those
 * gone as WG_PEER_REMOVE_ME (*RET_PARTIAL); without PREV the whole device
 * (*RET_PARTIAL false). *RET_INDEX: the index of this read, NULL when it is
 * unchanged (PREV still stands) or none can be made. Returns 0,
 * -EOPNOTSUPP for the kernel and boringtun (wg_get_device()), -ESTALE
 * when the device's own settings changed (read again without PREV), or
 * -errno; on failure nothing is set.
 */
int wg_get_indexed(enum wg_backend b, const char *ifname, const struct wg_index *prev, struct wg_index **ret_index,
                   struct wg_device **ret, bool *ret_partial);

/* Apply DEV (its flags say what to change) to DEV->name through backend B.
 * Returns 0 or -errno. */
int wg_set_device(enum wg_backend b, const struct wg_device *dev);

/* Wipes keys; accepts NULL. Returns NULL. */
struct wg_device *wg_device_free(struct wg_device *dev);
static inline void wg_device_freep(struct wg_device **d) {
        wg_device_free(*d);
}

/* Append a zeroed peer to DEV (peers array grows, so earlier peer pointers
 * become invalid); returns it or NULL. */
struct wg_peer *wg_device_add_peer(struct wg_device *dev);
/* Make room for N peers in all in DEV's array, so that appending up to N
 * neither moves nor copies it (a read of 50,000 peers would otherwise
 * copy and wipe its array a dozen times as it doubles); never shrinks.
 * Returns 0 or -ENOMEM (DEV unchanged). */
int wg_device_reserve_peers(struct wg_device *dev, size_t n);
/* Append an allowed IP to PEER (the array may move); returns 0 or -ENOMEM. */
int wg_peer_add_allowedip(struct wg_peer *peer, const struct wg_allowedip *a);

/* Sort DEV's peers by public key and each peer's allowed IPs (family,
 * address, cidr), so two devices compare in linear time. Host bits of
 * allowed IPs are cleared and duplicate allowed IPs dropped. */
void wg_device_sort(struct wg_device *dev);
/* The peer with PUBLIC_KEY in a sorted DEV, or NULL. */
struct wg_peer *wg_device_find_peer(const struct wg_device *dev, const uint8_t public_key[static WG_KEY_LEN]);

/*
 * Pure diff: the changes that turn the peer set of CURRENT into that of
 * DESIRED, as a device for wg_set_device(): removed peers with REMOVE_ME,
 * new peers in full, changed peers with only what changed (allowed IPs
 * with REPLACE_ALLOWEDIPS, preshared key, keepalive; endpoints only when
 * COMPARE_ENDPOINTS, because roaming clients change them all the time).
 * Device-level fields (private key, listen port, fwmark) are included with
 * their HAS_ flags when they differ. Both inputs are sorted in place.
 * Fields are read through their HAS_ flags: in DESIRED a preshared key or
 * keepalive without its flag counts as none, so it is cleared; a desired
 * listen port of 0 means "any" and is never sent; peers listed twice in
 * DESIRED are merged. Backends set the flag of every field they report.
 * Returns 0 and *ret (with n_peers == 0 and flags == 0 when nothing
 * differs), or -ENOMEM.
 */
int wg_device_diff(struct wg_device *current, struct wg_device *desired, bool compare_endpoints,
                   struct wg_device **ret);

/* Format an endpoint as "1.2.3.4:51820" or "[2001:db8::1]:51820" (a zone
 * as "[fe80::1%2]:51820") into BUF; 64 bytes are enough; "(none)" when
 * there is no address. */
const char *wg_endpoint_to_string(const union wg_endpoint *e, char *buf, size_t len);
/* Parse a numeric endpoint in the same form (a zone after % may be a
 * number or an interface name). Returns 0 or -EINVAL. */
int wg_endpoint_parse(const char *s, union wg_endpoint *ret);
