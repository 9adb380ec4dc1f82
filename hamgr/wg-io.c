/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * One thread per read, as the takeover's batches: a poll every few
 * hundred milliseconds does not make creating one costly, and a request
 * that owns its thread, eventfd and buffers can be cancelled alone. The
 * worker writes only its request's result, then the eventfd; the loop
 * reads the result only after joining the thread.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "common/clock.h"
#include "common/macro.h"
#include "wg-io.h"
#include "wg/kernel.h"

#define WG_IO_NICE 10

struct wg_io {
        /* Set before the worker starts, then read-only for both sides. */
        enum wg_backend backend;
        char ifname[sizeof(((struct wg_device *) NULL)->name)];
        enum wg_io_read what;
        struct wg_device *change;             /* a write: what to write */
        struct wg_index *index;               /* WG_IO_CHANGES: what to compare with (the worker's) */
        wg_io_callback_t cb;
        void *userdata;
        int done_fd;
        /* Set by the loop, read by the worker between write requests. */
        atomic_bool cancelled;
        /* The loop's. */
        pthread_t worker;
        bool running;
        sd_event_source *done_source;
        /* The worker's until joined. */
        struct wg_io_result result;
};

/* A full read (not the endpoint snapshot's) of at least this many peers
 * is followed by malloc_trim(). */
#define WG_IO_TRIM_PEERS 5000

/* A write goes to the device in requests of at most this many peers:
 * wireguard-go spends ~100 us on a new peer, and one UAPI exchange is cut
 * off after 8 s. */
#define WG_IO_WRITE_CHUNK 2048

/* CHANGE in requests of at most WG_IO_WRITE_CHUNK peers, in order; the
 * device's own settings go with the first, and a peer's removal with its
 * re-creation right after it (wg/wg.h: they must not be split). Stops at
 * the first failure, and with -ECANCELED before the next request once IO
 * is cancelled: a stop then waits for one request, not for 50,000 peers. */
static int write_chunked(struct wg_io *io, enum wg_backend b, const struct wg_device *change) {
        size_t pos = 0;

        do {
                struct wg_device view = *change;
                size_t end = MIN(change->n_peers, pos + WG_IO_WRITE_CHUNK);
                int r;

                if (end < change->n_peers && (change->peers[end - 1].flags & WG_PEER_REMOVE_ME) &&
                    memcmp(change->peers[end - 1].public_key, change->peers[end].public_key, WG_KEY_LEN) == 0)
                        end++;
                if (atomic_load(&io->cancelled))
                        return -ECANCELED;
                view.peers = change->peers + pos;
                view.n_peers = end - pos;
                if (pos > 0)
                        view.flags = 0;
                r = wg_set_device(b, &view);
                if (r < 0)
                        return r;
                pos = end;
        } while (pos < change->n_peers);
        return 0;
}

static void *io_worker(void *userdata) {
        struct wg_io *io = userdata;
        struct wg_io_result *res = &io->result;
        uint64_t t = clock_monotonic_usec(), one = 1;

        /* Parsing 100,000 peers is CPU work: on a busy machine the event
         * loop's thread (VRRP) goes first. Linux sets a thread's own nice
         * value this way; failing is harmless. */
        (void) setpriority(PRIO_PROCESS, (id_t) syscall(SYS_gettid), WG_IO_NICE);

        if (io->change) {
                res->r = write_chunked(io, io->backend, io->change);
                /* Kept per thread: the loop's thread would not see it. */
                if (res->r < 0)
                        snprintf(res->kernel_error, sizeof(res->kernel_error), "%s", wg_kernel_last_error());
                goto done;
        }
        if (io->what == WG_IO_CHANGES) {
                bool partial = false;
                int r;

                r = wg_get_indexed(io->backend, io->ifname, io->index, &res->index, &res->device, &partial);
                if (r == -ESTALE) /* more than peers changed: the whole device */
                        r = wg_get_indexed(io->backend, io->ifname, NULL, &res->index, &res->device, &partial);
                if (r == -EOPNOTSUPP)
                        r = wg_get_device(io->backend, io->ifname, &res->device);
                res->r = r;
                res->unchanged = r >= 0 && !res->device;
                res->partial = r >= 0 && partial;
                res->prev_index = TAKE_PTR(io->index);
        } else if (io->what == WG_IO_ENDPOINTS)
                res->r = wg_get_endpoints(io->backend, io->ifname, &res->device);
        else
                res->r = wg_get_device(io->backend, io->ifname, &res->device);
done:
        res->usec = clock_monotonic_usec() - t;
        if (write(io->done_fd, &one, sizeof(one)) < 0) {
                /* Cannot happen (a counter far from overflow); a cancel
                 * still joins. */
        }
        return NULL;
}

static void io_free(struct wg_io *io) {
        sd_event_source_disable_unref(io->done_source);
        if (io->done_fd >= 0)
                close(io->done_fd);
        wg_device_free(io->result.device);
        wg_device_free(io->change);
        wg_index_free(io->result.index);
        wg_index_free(io->result.prev_index);
        wg_index_free(io->index);
        free(io);
}

struct wg_io *wg_io_cancel(struct wg_io *io) {
        if (!io)
                return NULL;
        atomic_store(&io->cancelled, true);
        if (io->running)
                (void) pthread_join(io->worker, NULL);
        io_free(io);
        return NULL;
}

static int on_io_done(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct wg_io *io = userdata;
        uint64_t v;
        bool large;

        if (read(fd, &v, sizeof(v)) < 0)
                return 0; /* spurious: the worker has not written yet */
        (void) pthread_join(io->worker, NULL);
        io->running = false;
        /* A read of 50,000 peers allocates tens of megabytes; freed, they
         * stay resident until something trims the heap. Once per large
         * full read is cheap beside the read. Not after the endpoint
         * snapshot's: it comes back every 5 s for one array of the same
         * size, which the heap then still holds; trimmed, its pages
         * would be faulted in and zeroed again each time (a fifth of the
         * master's idle CPU at 100,000 peers); wireguard.c trims when
         * they start being skipped. */
        large = io->what != WG_IO_ENDPOINTS && io->result.device &&
                io->result.device->n_peers >= WG_IO_TRIM_PEERS;
        io->cb(io, &io->result, io->userdata);
        io_free(io);
        if (large)
                malloc_trim(0);
        return 0;
}

/* Start IO (filled in but for its worker) on E; frees it on failure. */
static int io_start(sd_event *e, struct wg_io *io, struct wg_io **ret) {
        int r;

        io->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (io->done_fd < 0) {
                r = -errno;
                goto fail;
        }
        r = sd_event_add_io(e, &io->done_source, io->done_fd, EPOLLIN, on_io_done, io);
        if (r >= 0)
                r = sd_event_source_set_priority(io->done_source, SD_EVENT_PRIORITY_IDLE);
        if (r < 0)
                goto fail;
        r = -pthread_create(&io->worker, NULL, io_worker, io);
        if (r < 0)
                goto fail;
        io->running = true;
        *ret = io;
        return 0;
fail:
        io_free(io);
        return r;
}

int wg_io_read(sd_event *e, enum wg_backend b, const char *ifname, enum wg_io_read what, struct wg_index *index,
               wg_io_callback_t cb, void *userdata, struct wg_io **ret) {
        struct wg_io *io;

        if (!e || !ifname || !cb || !ret || what < 0 || what >= _WG_IO_READ_MAX || (index && what != WG_IO_CHANGES)) {
                wg_index_free(index);
                return -EINVAL;
        }
        io = calloc(1, sizeof(*io));
        if (!io) {
                wg_index_free(index);
                return -ENOMEM;
        }
        io->backend = b;
        snprintf(io->ifname, sizeof(io->ifname), "%s", ifname);
        io->what = what;
        io->index = index;
        io->cb = cb;
        io->userdata = userdata;
        return io_start(e, io, ret);
}

int wg_io_write(sd_event *e, enum wg_backend b, struct wg_device *change, wg_io_callback_t cb, void *userdata,
                struct wg_io **ret) {
        struct wg_io *io;

        if (!e || !change || !cb || !ret) {
                wg_device_free(change);
                return -EINVAL;
        }
        io = calloc(1, sizeof(*io));
        if (!io) {
                wg_device_free(change);
                return -ENOMEM;
        }
        io->backend = b;
        snprintf(io->ifname, sizeof(io->ifname), "%s", change->name);
        io->change = change;
        io->cb = cb;
        io->userdata = userdata;
        return io_start(e, io, ret);
}
