/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The kernel backend's dump parser (wg_kernel_dump_add/finish) on
 * arbitrary bytes. Byte 0: bit 0 set checks the netlink family (29, the
 * id the seeds carry), clear accepts any. The rest is a run of netlink
 * messages as recv() returns them: each is fed alone, in a buffer of
 * exactly its nlmsg_len bytes (or of what is left, when that is shorter),
 * so ASan sees any read past it.
 *
 * A dump that parses must describe a device the SET builder can write;
 * its SET messages, turned into GET replies (only the command differs),
 * must parse back to the same peers, endpoints and allowed IPs.
 *
 * The seeds in tests/fuzz/corpus/wg_kernel were written with libnl the way
 * tests/unit/test_wg_kernel.c builds its dumps: a device with three peers
 * split over four messages, one message alone, an interrupted dump, and
 * one truncated in an allowed IP. */
#include <errno.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/wireguard.h>
#include <netlink/msg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "wg/kernel.h"

#define FAMILY 29

#define check(x)                 \
        do {                     \
                if (!(x))        \
                        abort(); \
        } while (0)

/* Feed DATA[0..SIZE) message by message. Returns the dump's first error or 0. */
static int feed_all(struct wg_kernel_dump *d, const uint8_t *data, size_t size) {
        size_t off = 0;

        while (off < size) {
                size_t rem = size - off, chunk = rem;
                struct nlmsghdr h;
                uint8_t *buf;
                int r;

                if (rem >= sizeof(h)) {
                        memcpy(&h, data + off, sizeof(h));
                        if (h.nlmsg_len >= NLMSG_HDRLEN && h.nlmsg_len <= rem)
                                chunk = h.nlmsg_len;
                }
                buf = malloc(chunk);
                if (!buf)
                        return -ENOMEM;
                memcpy(buf, data + off, chunk);
                r = wg_kernel_dump_add(d, buf, chunk);
                free(buf);
                if (r < 0) {
                        check(r == -ENOMEM || (r == -EBADMSG && d->reason));
                        /* Dead after an error: the same error again. */
                        check(wg_kernel_dump_add(d, data, 0) == r);
                        return r;
                }
                off += NLMSG_ALIGN(chunk);
        }
        return 0;
}

static void check_device(const struct wg_device *dev) {
        for (size_t i = 0; i < dev->n_peers; i++) {
                const struct wg_peer *p = &dev->peers[i];
                int f = p->endpoint.addr.sa_family;

                check(p->flags & WG_PEER_HAS_PUBLIC_KEY);
                check(!(p->flags & WG_PEER_HAS_ENDPOINT) == (f == AF_UNSPEC));
                check(f == AF_UNSPEC || f == AF_INET || f == AF_INET6);
                for (size_t j = 0; j < p->n_allowedips; j++) {
                        const struct wg_allowedip *a = &p->allowedips[j];

                        check((a->family == AF_INET && a->cidr <= 32) || (a->family == AF_INET6 && a->cidr <= 128));
                }
        }
}

static bool same_peer(const struct wg_peer *a, const struct wg_peer *b) {
        size_t elen = a->endpoint.addr.sa_family == AF_INET ? sizeof(a->endpoint.addr4) : sizeof(a->endpoint.addr6);

        if (memcmp(a->public_key, b->public_key, WG_KEY_LEN) != 0 || a->n_allowedips != b->n_allowedips)
                return false;
        if ((a->flags & WG_PEER_HAS_ENDPOINT) != (b->flags & WG_PEER_HAS_ENDPOINT) ||
            ((a->flags & WG_PEER_HAS_ENDPOINT) && memcmp(&a->endpoint, &b->endpoint, elen) != 0))
                return false;
        if ((a->flags & WG_PEER_HAS_PRESHARED_KEY) != (b->flags & WG_PEER_HAS_PRESHARED_KEY) ||
            memcmp(a->preshared_key, b->preshared_key, WG_KEY_LEN) != 0)
                return false;
        if ((a->flags & WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL) !=
                    (b->flags & WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL) ||
            a->persistent_keepalive_interval != b->persistent_keepalive_interval)
                return false;
        for (size_t j = 0; j < a->n_allowedips; j++)
                if (a->allowedips[j].family != b->allowedips[j].family ||
                    a->allowedips[j].cidr != b->allowedips[j].cidr ||
                    memcmp(&a->allowedips[j].ip, &b->allowedips[j].ip,
                           a->allowedips[j].family == AF_INET ? 4 : 16) != 0)
                        return false;
        return true;
}

/* DEV through the SET builder and back through the dump parser. */
static void roundtrip(const struct wg_device *dev) {
        struct wg_kernel_dump d;
        struct wg_device *again = NULL;
        struct nl_msg **msgs = NULL;
        size_t n = 0;
        int r;

        if (!dev->name[0] && !dev->ifindex)
                return; /* nothing to address a SET to */
        r = wg_kernel_build_set(dev, FAMILY, 65535, &msgs, &n);
        if (r == -ENOMEM)
                return;
        check(r == 0 && n > 0);

        wg_kernel_dump_init(&d, FAMILY);
        for (size_t i = 0; i < n && r == 0; i++) {
                struct nlmsghdr *h = nlmsg_hdr(msgs[i]);
                struct genlmsghdr *g = nlmsg_data(h);

                g->cmd = WG_CMD_GET_DEVICE;
                r = wg_kernel_dump_add(&d, (const uint8_t *) h, h->nlmsg_len);
        }
        wg_kernel_msgs_free(msgs, n);
        if (r == -ENOMEM) {
                wg_kernel_dump_clear(&d);
                return;
        }
        check(r == 0);
        check(wg_kernel_dump_finish(&d, &again) == 0);
        check(again->n_peers == dev->n_peers);
        for (size_t i = 0; i < dev->n_peers; i++)
                check(same_peer(&dev->peers[i], &again->peers[i]));
        check((dev->flags & WG_DEVICE_HAS_PRIVATE_KEY) == (again->flags & WG_DEVICE_HAS_PRIVATE_KEY));
        check(!(dev->flags & WG_DEVICE_HAS_PRIVATE_KEY) ||
              memcmp(dev->private_key, again->private_key, WG_KEY_LEN) == 0);
        wg_device_free(again);
        wg_kernel_dump_clear(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct wg_kernel_dump d;
        struct wg_device *dev = NULL;
        int r;

        if (size < 1)
                return 0;
        wg_kernel_dump_init(&d, data[0] & 1 ? FAMILY : 0);
        r = feed_all(&d, data + 1, size - 1);
        if (r < 0) {
                check(wg_kernel_dump_finish(&d, &dev) == r && !dev);
                wg_kernel_dump_clear(&d);
                return 0;
        }
        r = wg_kernel_dump_finish(&d, &dev);
        if (r < 0) {
                check(r == -EAGAIN || (r == -EBADMSG && d.reason));
                wg_kernel_dump_clear(&d);
                return 0;
        }
        check_device(dev);
        roundtrip(dev);
        wg_device_free(dev);
        wg_kernel_dump_clear(&d);
        return 0;
}
