/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "common/macro.h"
#include "wg/kernel.h"
#include "wg/uapi.h"
#include "wg/wg.h"

static const char *const backend_names[_WG_BACKEND_MAX] = {
        [WG_BACKEND_AUTO] = "auto",
        [WG_BACKEND_KERNEL] = "kernel",
        [WG_BACKEND_UAPI] = "uapi",
        [WG_BACKEND_BORINGTUN] = "boringtun",
};

const char *wg_backend_to_string(enum wg_backend b) {
        return ENUM_NAME(backend_names, b);
}

int wg_backend_from_string(const char *s) {
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(backend_names); i++)
                if (streq(s, backend_names[i]))
                        return (int) i;
        return -EINVAL;
}

enum wg_backend wg_backend_resolve(enum wg_backend b, const char *ifname) {
        int r;

        if (b != WG_BACKEND_AUTO)
                return b;
        r = wg_uapi_socket_probe(ifname);
        /* A bad name has no socket; the kernel backend then says -ENODEV. */
        if (r == 0 || r == -EINVAL || r == -ENAMETOOLONG)
                return WG_BACKEND_KERNEL;
        return WG_BACKEND_UAPI;
}

int wg_get_device(enum wg_backend b, const char *ifname, struct wg_device **ret) {
        switch (wg_backend_resolve(b, ifname)) {
        case WG_BACKEND_KERNEL:
                return wg_kernel_get_device(ifname, ret);
        case WG_BACKEND_UAPI:
        case WG_BACKEND_BORINGTUN:
                return wg_uapi_get_device(ifname, ret);
        default:
                return -EINVAL;
        }
}

int wg_get_endpoints(enum wg_backend b, const char *ifname, struct wg_device **ret) {
        switch (wg_backend_resolve(b, ifname)) {
        case WG_BACKEND_KERNEL:
                return wg_kernel_get_device(ifname, ret);
        case WG_BACKEND_UAPI:
        case WG_BACKEND_BORINGTUN:
                return wg_uapi_get_endpoints(ifname, ret);
        default:
                return -EINVAL;
        }
}

int wg_get_indexed(enum wg_backend b, const char *ifname, const struct wg_index *prev, struct wg_index **ret_index,
                   struct wg_device **ret, bool *ret_partial) {
        switch (wg_backend_resolve(b, ifname)) {
        case WG_BACKEND_KERNEL:
        case WG_BACKEND_BORINGTUN:
                return -EOPNOTSUPP;
        case WG_BACKEND_UAPI:
                return wg_uapi_get_indexed(ifname, prev, ret_index, ret, ret_partial);
        default:
                return -EINVAL;
        }
}

int wg_set_device(enum wg_backend b, const struct wg_device *dev) {
        if (!dev)
                return -EINVAL;
        switch (wg_backend_resolve(b, dev->name)) {
        case WG_BACKEND_KERNEL:
                return wg_kernel_set_device(dev);
        case WG_BACKEND_UAPI:
                return wg_uapi_set_device(dev);
        case WG_BACKEND_BORINGTUN:
                return wg_uapi_boringtun_set_device(dev);
        default:
                return -EINVAL;
        }
}

struct wg_device *wg_device_free(struct wg_device *dev) {
        if (!dev)
                return NULL;
        for (size_t i = 0; i < dev->n_peers; i++)
                free(dev->peers[i].allowedips);
        /* Preshared keys live in the peers array, also in slots past
         * n_peers that a caller shrank away. */
        if (dev->peers)
                sodium_memzero(dev->peers, malloc_usable_size(dev->peers));
        free(dev->peers);
        sodium_memzero(dev, sizeof(*dev));
        free(dev);
        return NULL;
}

/* Capacity for WANT elements of SIZE bytes in *ARRAY, N of them in use.
 * The structs carry no capacity, so the allocator's usable size is the
 * capacity: arrays built with plain malloc() by other code grow correctly
 * too. When WIPE, the old block is wiped before it is freed, as realloc()
 * would leave secrets behind in freed memory. Never shrinks. */
static int array_grow(void **array, size_t n, size_t want, size_t size, bool wipe) {
        size_t cap = *array ? malloc_usable_size(*array) / size : 0;
        void *p;

        if (want <= cap)
                return 0;
        if (want > SIZE_MAX / size)
                return -ENOMEM;
        if (!wipe) {
                p = realloc(*array, want * size);
                if (!p)
                        return -ENOMEM;
                *array = p;
                return 0;
        }
        p = malloc(want * size);
        if (!p)
                return -ENOMEM;
        if (*array) {
                memcpy(p, *array, n * size);
                sodium_memzero(*array, malloc_usable_size(*array));
                free(*array);
        }
        *array = p;
        return 0;
}

/* Room for element N: when full, the capacity doubles, so appending n
 * elements costs O(n). */
static int array_reserve(void **array, size_t n, size_t size, bool wipe) {
        if (*array && n < malloc_usable_size(*array) / size)
                return 0;
        if (n > SIZE_MAX / 2 / size)
                return -ENOMEM;
        return array_grow(array, n, n < 4 ? 4 : n * 2, size, wipe);
}

struct wg_peer *wg_device_add_peer(struct wg_device *dev) {
        struct wg_peer *p;

        if (!dev)
                return NULL;
        if (array_reserve((void **) &dev->peers, dev->n_peers, sizeof(*dev->peers), true) < 0)
                return NULL;
        p = &dev->peers[dev->n_peers++];
        *p = (struct wg_peer) {};
        return p;
}

int wg_device_reserve_peers(struct wg_device *dev, size_t n) {
        if (!dev)
                return -EINVAL;
        return array_grow((void **) &dev->peers, dev->n_peers, n, sizeof(*dev->peers), true);
}

int wg_peer_add_allowedip(struct wg_peer *peer, const struct wg_allowedip *a) {
        if (!peer || !a)
                return -EINVAL;
        if (array_reserve((void **) &peer->allowedips, peer->n_allowedips, sizeof(*peer->allowedips), false) < 0)
                return -ENOMEM;
        peer->allowedips[peer->n_allowedips++] = *a;
        return 0;
}

static size_t allowedip_len(const struct wg_allowedip *a) {
        return ip_family_addr_len(a->family);
}

/* Clear host bits: WireGuard stores only the network part, so 10.0.0.1/24
 * and 10.0.0.0/24 are the same entry and must compare equal. */
static void allowedip_mask(struct wg_allowedip *a) {
        size_t len = allowedip_len(a);

        for (size_t i = 0; i < len; i++) {
                unsigned bit = (unsigned) i * 8;

                if (a->cidr >= bit + 8)
                        continue;
                if (a->cidr <= bit)
                        a->ip.bytes[i] = 0;
                else
                        a->ip.bytes[i] &= (uint8_t) (0xffu << (8 - (a->cidr - bit)));
        }
        if (len < sizeof(a->ip.bytes))
                memset(a->ip.bytes + len, 0, sizeof(a->ip.bytes) - len);
}

static int allowedip_compare(const void *x, const void *y) {
        const struct wg_allowedip *a = x, *b = y;
        int r;

        if (a->family != b->family)
                return a->family < b->family ? -1 : 1;
        r = memcmp(a->ip.bytes, b->ip.bytes, allowedip_len(a));
        if (r != 0)
                return r;
        return a->cidr < b->cidr ? -1 : a->cidr > b->cidr;
}

/* Sort, then drop duplicates in place. */
static void allowedips_canonicalize(struct wg_allowedip *a, size_t *n) {
        size_t k = 0;

        if (*n == 0)
                return;
        for (size_t i = 0; i < *n; i++)
                allowedip_mask(&a[i]);
        qsort_safe(a, *n, sizeof(*a), allowedip_compare);
        for (size_t i = 1; i < *n; i++)
                if (allowedip_compare(&a[k], &a[i]) != 0)
                        a[++k] = a[i];
        *n = k + 1;
}

/* Peers with equal keys (a configuration error, but not ours to reject)
 * are ordered by their other fields, so the merge in the diff does not
 * depend on qsort's arbitrary order among equals. */
static int peer_compare(const void *x, const void *y) {
        const struct wg_peer *a = x, *b = y;
        int r;

        r = memcmp(a->public_key, b->public_key, WG_KEY_LEN);
        if (r != 0)
                return r;
        if (a->flags != b->flags)
                return a->flags < b->flags ? -1 : 1;
        if (a->persistent_keepalive_interval != b->persistent_keepalive_interval)
                return a->persistent_keepalive_interval < b->persistent_keepalive_interval ? -1 : 1;
        r = memcmp(a->preshared_key, b->preshared_key, WG_KEY_LEN);
        if (r != 0)
                return r;
        r = memcmp(&a->endpoint, &b->endpoint, sizeof(a->endpoint));
        if (r != 0)
                return r;
        return a->n_allowedips < b->n_allowedips ? -1 : a->n_allowedips > b->n_allowedips;
}

void wg_device_sort(struct wg_device *dev) {
        if (!dev)
                return;
        for (size_t i = 0; i < dev->n_peers; i++)
                allowedips_canonicalize(dev->peers[i].allowedips, &dev->peers[i].n_allowedips);
        if (dev->n_peers > 1)
                qsort_safe(dev->peers, dev->n_peers, sizeof(*dev->peers), peer_compare);
}

static int key_compare(const void *key, const void *elem) {
        const struct wg_peer *p = elem;

        return memcmp(key, p->public_key, WG_KEY_LEN);
}

struct wg_peer *wg_device_find_peer(const struct wg_device *dev, const uint8_t public_key[static WG_KEY_LEN]) {
        if (!dev || dev->n_peers == 0)
                return NULL;
        return bsearch(public_key, dev->peers, dev->n_peers, sizeof(*dev->peers), key_compare);
}

/* ---- diff ---- */

/* One public key's entry in a sorted peer array: a run of peers with that
 * key, merged. Scalars come from the first peer of the run that sets them;
 * allowed IPs are the union (allocated only when the run has duplicates). */
struct peer_view {
        struct wg_peer peer;
        struct wg_allowedip *owned;
        size_t next;                          /* index after the run */
};

static void peer_view_done(struct peer_view *v) {
        free(v->owned);
        sodium_memzero(&v->peer, sizeof(v->peer));
        v->owned = NULL;
}

static int peer_view_init(const struct wg_device *dev, size_t i, struct peer_view *ret) {
        const struct wg_peer *first = &dev->peers[i];
        size_t end = i + 1, total;

        *ret = (struct peer_view) { .peer = *first };
        while (end < dev->n_peers && memcmp(dev->peers[end].public_key, first->public_key, WG_KEY_LEN) == 0)
                end++;
        ret->next = end;
        if (end == i + 1)
                return 0;

        total = 0;
        for (size_t k = i; k < end; k++) {
                const struct wg_peer *p = &dev->peers[k];

                if (!(ret->peer.flags & WG_PEER_HAS_PRESHARED_KEY) && (p->flags & WG_PEER_HAS_PRESHARED_KEY)) {
                        memcpy(ret->peer.preshared_key, p->preshared_key, WG_KEY_LEN);
                        ret->peer.flags |= WG_PEER_HAS_PRESHARED_KEY;
                }
                if (!(ret->peer.flags & WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL) &&
                    (p->flags & WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL)) {
                        ret->peer.persistent_keepalive_interval = p->persistent_keepalive_interval;
                        ret->peer.flags |= WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL;
                }
                if (!(ret->peer.flags & WG_PEER_HAS_ENDPOINT) && (p->flags & WG_PEER_HAS_ENDPOINT)) {
                        ret->peer.endpoint = p->endpoint;
                        ret->peer.flags |= WG_PEER_HAS_ENDPOINT;
                }
                if (p->n_allowedips > SIZE_MAX / sizeof(struct wg_allowedip) - total)
                        return -ENOMEM;
                total += p->n_allowedips;
        }
        if (total == 0)
                return 0;
        ret->owned = malloc(total * sizeof(*ret->owned));
        if (!ret->owned)
                return -ENOMEM;
        total = 0;
        for (size_t k = i; k < end; k++) {
                memcpy(ret->owned + total, dev->peers[k].allowedips,
                       dev->peers[k].n_allowedips * sizeof(*ret->owned));
                total += dev->peers[k].n_allowedips;
        }
        allowedips_canonicalize(ret->owned, &total);
        ret->peer.allowedips = ret->owned;
        ret->peer.n_allowedips = total;
        return 0;
}

static bool allowedips_equal(const struct wg_peer *a, const struct wg_peer *b) {
        if (a->n_allowedips != b->n_allowedips)
                return false;
        for (size_t i = 0; i < a->n_allowedips; i++)
                if (allowedip_compare(&a->allowedips[i], &b->allowedips[i]) != 0)
                        return false;
        return true;
}

static void peer_psk(const struct wg_peer *p, uint8_t ret[static WG_KEY_LEN]) {
        if (p->flags & WG_PEER_HAS_PRESHARED_KEY)
                memcpy(ret, p->preshared_key, WG_KEY_LEN);
        else
                memset(ret, 0, WG_KEY_LEN);
}

static uint16_t peer_keepalive(const struct wg_peer *p) {
        return (p->flags & WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL) ? p->persistent_keepalive_interval : 0;
}

static bool peer_has_endpoint(const struct wg_peer *p) {
        return (p->flags & WG_PEER_HAS_ENDPOINT) && p->endpoint.addr.sa_family != AF_UNSPEC;
}

static bool endpoint_equal(const union wg_endpoint *a, const union wg_endpoint *b) {
        if (a->addr.sa_family != b->addr.sa_family)
                return false;
        switch (a->addr.sa_family) {
        case AF_INET:
                return a->addr4.sin_port == b->addr4.sin_port &&
                       a->addr4.sin_addr.s_addr == b->addr4.sin_addr.s_addr;
        case AF_INET6:
                return a->addr6.sin6_port == b->addr6.sin6_port &&
                       a->addr6.sin6_scope_id == b->addr6.sin6_scope_id &&
                       memcmp(&a->addr6.sin6_addr, &b->addr6.sin6_addr, sizeof(struct in6_addr)) == 0;
        default:
                return true;
        }
}

static int copy_allowedips(struct wg_peer *dst, const struct wg_peer *src) {
        dst->allowedips = NULL;
        dst->n_allowedips = 0;
        if (src->n_allowedips == 0)
                return 0;
        dst->allowedips = malloc(src->n_allowedips * sizeof(*dst->allowedips));
        if (!dst->allowedips)
                return -ENOMEM;
        memcpy(dst->allowedips, src->allowedips, src->n_allowedips * sizeof(*dst->allowedips));
        dst->n_allowedips = src->n_allowedips;
        return 0;
}

static int diff_add_removed(struct wg_device *d, const struct wg_peer *cur) {
        struct wg_peer *p = wg_device_add_peer(d);

        if (!p)
                return -ENOMEM;
        memcpy(p->public_key, cur->public_key, WG_KEY_LEN);
        p->flags = WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REMOVE_ME;
        return 0;
}

/* New peers carry REPLACE_ALLOWEDIPS too: should the peer appear between
 * our read and our write, it still ends up exactly as desired. */
static int diff_add_new(struct wg_device *d, const struct wg_peer *des) {
        struct wg_peer *p = wg_device_add_peer(d);

        if (!p)
                return -ENOMEM;
        memcpy(p->public_key, des->public_key, WG_KEY_LEN);
        p->flags = WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REPLACE_ALLOWEDIPS;
        if (des->flags & WG_PEER_HAS_PRESHARED_KEY) {
                memcpy(p->preshared_key, des->preshared_key, WG_KEY_LEN);
                p->flags |= WG_PEER_HAS_PRESHARED_KEY;
        }
        if (des->flags & WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL) {
                p->persistent_keepalive_interval = des->persistent_keepalive_interval;
                p->flags |= WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL;
        }
        if (peer_has_endpoint(des)) {
                p->endpoint = des->endpoint;
                p->flags |= WG_PEER_HAS_ENDPOINT;
        }
        return copy_allowedips(p, des);
}

static int diff_add_changed(struct wg_device *d, const struct wg_peer *cur, const struct wg_peer *des,
                            bool compare_endpoints) {
        uint8_t psk_cur[WG_KEY_LEN], psk_des[WG_KEY_LEN];
        uint32_t changes = 0;
        struct wg_peer *p;
        int r = 0;

        peer_psk(cur, psk_cur);
        peer_psk(des, psk_des);
        if (!wg_key_equal(psk_cur, psk_des))
                changes |= WG_PEER_HAS_PRESHARED_KEY;
        if (peer_keepalive(cur) != peer_keepalive(des))
                changes |= WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL;
        /* UAPI and netlink cannot clear an endpoint, so a desired peer
         * without one leaves the current endpoint alone. */
        if (compare_endpoints && peer_has_endpoint(des) &&
            (!peer_has_endpoint(cur) || !endpoint_equal(&cur->endpoint, &des->endpoint)))
                changes |= WG_PEER_HAS_ENDPOINT;
        if (!allowedips_equal(cur, des))
                changes |= WG_PEER_REPLACE_ALLOWEDIPS;
        if (changes == 0)
                goto finish;

        p = wg_device_add_peer(d);
        if (!p) {
                r = -ENOMEM;
                goto finish;
        }
        memcpy(p->public_key, des->public_key, WG_KEY_LEN);
        p->flags = WG_PEER_HAS_PUBLIC_KEY | changes;
        if (changes & WG_PEER_HAS_PRESHARED_KEY)
                memcpy(p->preshared_key, psk_des, WG_KEY_LEN);
        if (changes & WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL)
                p->persistent_keepalive_interval = peer_keepalive(des);
        if (changes & WG_PEER_HAS_ENDPOINT)
                p->endpoint = des->endpoint;
        if (changes & WG_PEER_REPLACE_ALLOWEDIPS)
                r = copy_allowedips(p, des);
finish:
        sodium_memzero(psk_cur, sizeof(psk_cur));
        sodium_memzero(psk_des, sizeof(psk_des));
        return r;
}

static bool private_key_differs(const struct wg_device *cur, const struct wg_device *des) {
        uint8_t pub[WG_KEY_LEN];
        bool differs;

        if (cur->flags & WG_DEVICE_HAS_PRIVATE_KEY)
                return !wg_key_equal(cur->private_key, des->private_key);
        if (wg_key_is_zero(des->private_key))
                return (cur->flags & WG_DEVICE_HAS_PUBLIC_KEY) != 0;
        /* boringtun reports only its public key: compare that. */
        if (!(cur->flags & WG_DEVICE_HAS_PUBLIC_KEY))
                return true;
        if (wg_key_public_from_private(pub, des->private_key) < 0)
                return true;
        differs = !wg_key_equal(pub, cur->public_key);
        sodium_memzero(pub, sizeof(pub));
        return differs;
}

static void diff_device_fields(const struct wg_device *cur, const struct wg_device *des, struct wg_device *d) {
        if ((des->flags & WG_DEVICE_HAS_PRIVATE_KEY) && private_key_differs(cur, des)) {
                memcpy(d->private_key, des->private_key, WG_KEY_LEN);
                d->flags |= WG_DEVICE_HAS_PRIVATE_KEY;
        }
        /* Port 0 asks for any port; the device reports the one it got, and
         * setting 0 again would rebind to a new random port on every sync. */
        if ((des->flags & WG_DEVICE_HAS_LISTEN_PORT) && des->listen_port != 0 &&
            (!(cur->flags & WG_DEVICE_HAS_LISTEN_PORT) || cur->listen_port != des->listen_port)) {
                d->listen_port = des->listen_port;
                d->flags |= WG_DEVICE_HAS_LISTEN_PORT;
        }
        if ((des->flags & WG_DEVICE_HAS_FWMARK) &&
            ((cur->flags & WG_DEVICE_HAS_FWMARK) ? cur->fwmark : 0) != des->fwmark) {
                d->fwmark = des->fwmark;
                d->flags |= WG_DEVICE_HAS_FWMARK;
        }
}

int wg_device_diff(struct wg_device *current, struct wg_device *desired, bool compare_endpoints,
                   struct wg_device **ret) {
        _cleanup_(wg_device_freep) struct wg_device *d = NULL;
        struct peer_view vc = {}, vd = {};
        size_t i = 0, j = 0;
        int r = 0;

        if (!current || !desired || !ret)
                return -EINVAL;
        wg_device_sort(current);
        wg_device_sort(desired);

        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        if (desired->name[0] != '\0') {
                memcpy(d->name, desired->name, sizeof(d->name));
                d->ifindex = desired->ifindex;
        } else {
                memcpy(d->name, current->name, sizeof(d->name));
                d->ifindex = current->ifindex;
        }
        d->name[sizeof(d->name) - 1] = '\0';
        diff_device_fields(current, desired, d);

        while (i < current->n_peers || j < desired->n_peers) {
                int c;

                if (i >= current->n_peers)
                        c = 1;
                else if (j >= desired->n_peers)
                        c = -1;
                else
                        c = memcmp(current->peers[i].public_key, desired->peers[j].public_key, WG_KEY_LEN);

                if (c <= 0) {
                        r = peer_view_init(current, i, &vc);
                        if (r < 0)
                                goto finish;
                }
                if (c >= 0) {
                        r = peer_view_init(desired, j, &vd);
                        if (r < 0)
                                goto finish;
                }
                if (c < 0)
                        r = diff_add_removed(d, &vc.peer);
                else if (c > 0)
                        r = diff_add_new(d, &vd.peer);
                else
                        r = diff_add_changed(d, &vc.peer, &vd.peer, compare_endpoints);
                if (c <= 0)
                        i = vc.next;
                if (c >= 0)
                        j = vd.next;
                peer_view_done(&vc);
                peer_view_done(&vd);
                if (r < 0)
                        goto finish;
        }
        *ret = TAKE_PTR(d);
finish:
        peer_view_done(&vc);
        peer_view_done(&vd);
        return r;
}

/* ---- endpoints ---- */

const char *wg_endpoint_to_string(const union wg_endpoint *e, char *buf, size_t len) {
        char a[INET6_ADDRSTRLEN];

        if (!buf || len == 0)
                return "";
        if (!e) {
                snprintf(buf, len, "(none)");
                return buf;
        }
        switch (e->addr.sa_family) {
        case AF_INET:
                if (!inet_ntop(AF_INET, &e->addr4.sin_addr, a, sizeof(a)))
                        break;
                snprintf(buf, len, "%s:%u", a, ntohs(e->addr4.sin_port));
                return buf;
        case AF_INET6:
                if (!inet_ntop(AF_INET6, &e->addr6.sin6_addr, a, sizeof(a)))
                        break;
                /* A numeric zone: both wireguard-go and boringtun take it. */
                if (e->addr6.sin6_scope_id != 0)
                        snprintf(buf, len, "[%s%%%u]:%u", a, e->addr6.sin6_scope_id, ntohs(e->addr6.sin6_port));
                else
                        snprintf(buf, len, "[%s]:%u", a, ntohs(e->addr6.sin6_port));
                return buf;
        default:
                break;
        }
        snprintf(buf, len, "(none)");
        return buf;
}

static int parse_decimal(const char *s, size_t n, unsigned long max, unsigned long *ret) {
        unsigned long v = 0;

        if (n == 0 || n > 10)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned long) (s[i] - '0');
        }
        if (v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

int wg_endpoint_parse(const char *s, union wg_endpoint *ret) {
        union wg_endpoint e = {};
        char host[INET6_ADDRSTRLEN + IFNAMSIZ + 2];
        const char *colon, *port, *end;
        unsigned long v;
        size_t n;

        if (!s || !ret)
                return -EINVAL;
        if (s[0] == '[') {
                const char *close = strchr(s, ']');
                char *pct;

                if (!close || close[1] != ':')
                        return -EINVAL;
                n = (size_t) (close - s - 1);
                if (n == 0 || n >= sizeof(host))
                        return -EINVAL;
                memcpy(host, s + 1, n);
                host[n] = '\0';
                port = close + 2;
                pct = strchr(host, '%');
                if (pct) {
                        *pct++ = '\0';
                        if (parse_decimal(pct, strlen(pct), UINT32_MAX, &v) == 0)
                                e.addr6.sin6_scope_id = (uint32_t) v;
                        else if (*pct != '\0' && strlen(pct) < IFNAMSIZ && (v = if_nametoindex(pct)) != 0)
                                e.addr6.sin6_scope_id = (uint32_t) v;
                        else
                                return -EINVAL;
                }
                if (inet_pton(AF_INET6, host, &e.addr6.sin6_addr) != 1)
                        return -EINVAL;
                e.addr6.sin6_family = AF_INET6;
        } else {
                colon = strrchr(s, ':');
                if (!colon)
                        return -EINVAL;
                n = (size_t) (colon - s);
                if (n == 0 || n >= sizeof(host))
                        return -EINVAL;
                memcpy(host, s, n);
                host[n] = '\0';
                port = colon + 1;
                /* inet_pton() takes only dotted quads, and rejects any colon,
                 * so an unbracketed IPv6 address fails here. */
                if (inet_pton(AF_INET, host, &e.addr4.sin_addr) != 1)
                        return -EINVAL;
                e.addr4.sin_family = AF_INET;
        }
        end = port + strlen(port);
        if (parse_decimal(port, (size_t) (end - port), 65535, &v) < 0 || end - port > 5)
                return -EINVAL;
        if (e.addr.sa_family == AF_INET)
                e.addr4.sin_port = htons((uint16_t) v);
        else
                e.addr6.sin6_port = htons((uint16_t) v);
        *ret = e;
        return 0;
}
