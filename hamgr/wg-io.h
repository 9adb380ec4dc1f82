/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * WireGuard device reads and writes beside the event loop. Reading a
 * device of 10,000 peers or more from wireguard-go takes 100 ms to
 * seconds, writing 50,000 new peers about 5 s; done on the loop, no VRRP
 * advert would go out or be processed meanwhile. A request runs in a
 * thread of its own, which touches nothing but the request; the result
 * comes back on the loop, in a callback.
 */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "wg/wg.h"

struct wg_io;

struct wg_io_result {
        int r;                          /* 0 or -errno of the read or write */
        struct wg_device *device;       /* the callback's to take (TAKE_PTR); NULL when not read */
        /* WG_IO_CHANGES: */
        bool unchanged;                 /* the same configuration as INDEX described: DEVICE is NULL */
        bool partial;                   /* DEVICE holds only the peers new, changed or gone (REMOVE_ME) */
        struct wg_index *index;         /* of this read (NULL: unchanged, or none, as for the kernel) */
        struct wg_index *prev_index;    /* the INDEX it was given back; the callback may take both */
        uint64_t usec;                  /* time the request took in the worker */
        char kernel_error[256];         /* a write the kernel refused: its extended ack message, or "" */
};

/* Called on the loop with the finished request IO. IO is freed when it
 * returns: the owner forgets its pointer here (and may start another
 * read, or cancel others, but not IO itself). RES is only valid during
 * the call. */
typedef void (*wg_io_callback_t)(struct wg_io *io, struct wg_io_result *res, void *userdata);

enum wg_io_read {
        WG_IO_DEVICE,                   /* the whole device */
        WG_IO_CHANGES,                  /* what changed since INDEX, or the whole device (wg_get_indexed()) */
        WG_IO_ENDPOINTS,                /* what the endpoint store needs (wg_get_endpoints()) */
        _WG_IO_READ_MAX,
};

/*
 * Read IFNAME through backend B in a worker thread; CB(USERDATA) runs on
 * E when it is done. WG_IO_CHANGES takes INDEX (may be NULL; freed with
 * the request), the index of the last read, and reads once: the result
 * is unchanged, partial or whole, and carries the new index (a device
 * whose own settings changed is read a second time, whole). The
 * completion runs at idle priority, after timers and packets. Returns 0
 * and the request in *RET (to cancel it), or -errno.
 */
int wg_io_read(sd_event *e, enum wg_backend b, const char *ifname, enum wg_io_read what, struct wg_index *index,
               wg_io_callback_t cb, void *userdata, struct wg_io **ret);

/*
 * Write CHANGE (taken, freed with the request; its name says which
 * interface) through backend B in a worker thread, as wg_set_device() in
 * requests of at most 2,048 peers (one UAPI exchange is cut off after
 * 8 s); CB(USERDATA) runs on E when it is done, RES->r its result (the
 * first failure: the requests before it were applied). The caller
 * keeps every other writer of the device away meanwhile. Returns 0 and the
 * request in *RET, or -errno (CHANGE freed).
 */
int wg_io_write(sd_event *e, enum wg_backend b, struct wg_device *change, wg_io_callback_t cb, void *userdata,
                struct wg_io **ret);

/* Wait for IO's worker, drop its result without calling back, free.
 * Blocks for as long as the request still runs: a read to its end, a
 * write to the end of the request of up to 2,048 peers in flight (the
 * rest is not sent; a caller that cancels a write must treat the device
 * as partly written). Accepts NULL; returns NULL. */
struct wg_io *wg_io_cancel(struct wg_io *io);
