/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The WireGuard takeover. A passive gateway keeps its interface configured
 * but down. On becoming MASTER it installs the endpoints it last knew,
 * makes the VIP the source of its packets, brings the link up and moves
 * each peer's persistent keepalive from 0 to N, which makes WireGuard send
 * a handshake initiation at once: clients get a session in one round trip
 * instead of waiting for their own rekey timer (~15 s). The most recently
 * active peers are kicked first, so a busy client does not wait for idle
 * ones. Work on large peer sets is cut into batches on an idle-priority
 * source, each batch sized to a time budget. A batch's request runs in a
 * thread of its own while the event loop goes on, so VRRP timers and
 * packets never wait for WireGuard's answer (wireguard-go computes each
 * initiation inside the request, and a loaded one can take hundreds of
 * milliseconds over a batch).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/macro.h"
#include "daemon.h"
#include "json-util.h"
#include "link.h"
#include "log.h"
#include "route.h"
#include "strbuf.h"
#include "sync.h"
#include "wg/key.h"
#include "wg/uapi.h"
#include "wg/wg.h"
#include "endpoint-store.h"
#include "wg-io.h"
#include "wireguard.h"

/* Batches are sized to about this much of WireGuard's work: leaving
 * MASTER waits for the batch in flight. The first batch is small; the
 * next ones follow the measured cost per peer. */
#define WG_BATCH_BUDGET_USEC  (15 * USEC_PER_MSEC)
#define WG_BATCH_FIRST        128
#define WG_BATCH_MIN          16
#define WG_BATCH_MAX          4096
/* Handshake times alone move every two minutes for every active peer:
 * written to the store at most this often (other changes at once). */
#define WG_HANDSHAKE_SAVE_USEC (60 * USEC_PER_SEC)
#define WG_SNAPSHOT_USEC      (5 * USEC_PER_SEC)
/* After the interface of an active follower is re-created (wireguard-go
 * restarted), time for wg-quick or the like to configure it again. */
#define WG_RETAKE_USEC        (1 * USEC_PER_SEC)
/* The other master sends an advert or two before it yields: one kick. */
#define WG_REKICK_HOLDOFF_USEC (1 * USEC_PER_SEC)
/* Keepalive used for the kick when the peer's own is 0 (off); it is set
 * back to 0 right after, so it never fires. */
#define WG_KICK_KEEPALIVE     25
/* How long a takeover waits for a userspace daemon to act on the link
 * coming up before it kicks anyway, and how often it looks. */
#define WG_KICK_WAIT_USEC      (2 * USEC_PER_SEC)
#define WG_KICK_POLL_USEC      (10 * USEC_PER_MSEC)
/* 100,000 peers take about 12 MB. */
#define WG_STORE_SIZE_MAX     (256u << 20)

enum follower_phase {
        PHASE_PASSIVE,
        PHASE_READ_DEVICE,       /* which peers, their keepalives (in the worker) */
        PHASE_RESET_SESSIONS,    /* a re-kick: endpoints and sessions dropped (in the worker) */
        PHASE_STAGE_ENDPOINTS,   /* endpoints in, keepalive 0, link still down */
        PHASE_LINK_UP,
        PHASE_KICK,              /* keepalive 0 -> N -> own: one initiation per peer */
        PHASE_ACTIVE,
        _PHASE_MAX,
};

static const char *const phase_names[_PHASE_MAX] = {
        [PHASE_PASSIVE] = "passive",
        [PHASE_READ_DEVICE] = "reading-device",
        [PHASE_RESET_SESSIONS] = "resetting-sessions",
        [PHASE_STAGE_ENDPOINTS] = "staging-endpoints",
        [PHASE_LINK_UP] = "link-up",
        [PHASE_KICK] = "kicking",
        [PHASE_ACTIVE] = "active",
};

/* What a follower knows of a peer is a record of endpoint-store.h. */
struct wg_follower {
        struct hamgr_daemon *daemon;
        struct hamgr_wireguard_config *config;
        char *store_path;
        enum follower_phase phase;
        bool want_active;

        struct endpoint_record *known;        /* sorted by public key */
        size_t n_known;

        struct endpoint_record *work;         /* peers of the takeover in progress */
        size_t n_work, work_pos;
        size_t batch;                    /* peers in the next batch */
        uint64_t stage_usec, kick_usec;  /* phases of the takeover in progress */
        uint64_t phase_started_usec;
        unsigned requests;
        uint64_t last_save_usec;         /* CLOCK_MONOTONIC of the last store write */
        sd_event_source *work_source;
        /* The request in flight, a device read (REQ_READ: into REQ_GOT)
         * or a batch (REQ): they are the worker thread's until it is
         * joined; it writes REQ_RESULT and REQ_USEC, then DONE_FD. */
        bool in_flight, req_read;
        pthread_t worker;
        struct wg_device *req, *req_got;
        char req_name[sizeof(((struct wg_device *) NULL)->name)];
        enum wg_backend req_backend;
        size_t req_peers;
        int req_result;
        uint64_t req_usec;
        int done_fd;
        sd_event_source *done_source;
        sd_event_source *snapshot_timer;
        bool rekick;                     /* this takeover re-kicks: sessions go first */
        struct wg_device *rekick_dev;    /* the device as read, while the sessions are reset */
        struct wg_io *snapshot_io;       /* the periodic snapshot's read */
        struct wg_io *release_io;        /* the read before the endpoints are stripped, then the strip */
        bool release_snapshot;           /* it is also the last snapshot of the active node */
        uint64_t snapshot_takeover;      /* TAKEOVER_STARTED_USEC when it started */
        uint64_t snapshot_io_started;    /* CLOCK_MONOTONIC: when it started */
        /* The last snapshot taken in: when its read started and ended, and
         * TAKEOVER_STARTED_USEC then (snapshot_redundant()). */
        uint64_t snapshot_started, snapshot_ended, snapshot_basis_takeover;
        uint64_t snapshots, snapshots_skipped;
        uint64_t skipped_at_snapshot;    /* SNAPSHOTS_SKIPPED when the last snapshot was read */
        sd_event_source *retake_timer;
        sd_event_source *kick_timer;     /* waiting for the daemon to be up before the kick */
        uint64_t kick_wait_until;        /* 0: not waiting yet */
        uint16_t listen_port;            /* of the device at the takeover */
        struct route_src_override *routes;
        int active_ifindex;              /* the interface the last takeover brought up */

        uint64_t takeover_started_usec;
        uint64_t takeover_usec;          /* duration of the last takeover */
        size_t last_kicked;
        uint64_t takeovers;
        int last_error;
        int link_checked_ifindex;        /* the link verified to be WireGuard */
        int link_refused_ifindex;        /* the link refused (logged once) */
};

static int known_cmp(const void *a, const void *b) {
        return memcmp(((const struct endpoint_record *) a)->public_key, ((const struct endpoint_record *) b)->public_key,
                      WG_KEY_LEN);
}

static struct endpoint_record *known_find(struct wg_follower *f, const uint8_t key[static WG_KEY_LEN]) {
        struct endpoint_record k;

        memcpy(k.public_key, key, WG_KEY_LEN);
        return f->n_known ? bsearch(&k, f->known, f->n_known, sizeof(k), known_cmp) : NULL;
}

static uint64_t wall_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static uint64_t peer_handshake_ms(const struct wg_peer *p) {
        if (p->last_handshake_time_sec <= 0)
                return 0;
        return (uint64_t) p->last_handshake_time_sec * 1000 + (uint64_t) p->last_handshake_time_nsec / 1000000;
}

/* When the peer was last seen alive: its last handshake, or when its
 * endpoint was learned (from a packet of it, here or on the other node). */
static uint64_t known_recency(const struct endpoint_record *k) {
        return MAX(k->handshake_ms, k->learned_ms);
}

/* Most recent first; the key breaks ties so the order is reproducible. */
static int recency_cmp(const void *a, const void *b) {
        const struct endpoint_record *x = a, *y = b;
        uint64_t rx = known_recency(x), ry = known_recency(y);

        if (rx != ry)
                return rx > ry ? -1 : 1;
        return memcmp(x->public_key, y->public_key, WG_KEY_LEN);
}

static bool endpoint_same(const union wg_endpoint *a, const union wg_endpoint *b) {
        if (a->addr.sa_family != b->addr.sa_family)
                return false;
        if (a->addr.sa_family == AF_INET)
                return a->addr4.sin_port == b->addr4.sin_port && a->addr4.sin_addr.s_addr == b->addr4.sin_addr.s_addr;
        if (a->addr.sa_family == AF_INET6)
                return a->addr6.sin6_port == b->addr6.sin6_port && a->addr6.sin6_scope_id == b->addr6.sin6_scope_id &&
                       memcmp(&a->addr6.sin6_addr, &b->addr6.sin6_addr, sizeof(a->addr6.sin6_addr)) == 0;
        return true;
}

/* Equal but for the handshake time. */
static bool known_equal(const struct endpoint_record *a, const struct endpoint_record *b) {
        return memcmp(a->public_key, b->public_key, WG_KEY_LEN) == 0 && endpoint_same(&a->endpoint, &b->endpoint) &&
               a->keepalive == b->keepalive && a->learned_ms == b->learned_ms;
}

/* Add the N peers of ADD, whose keys F does not know yet, keeping the
 * known peers sorted. */
static int known_add(struct wg_follower *f, const struct endpoint_record *add, size_t n) {
        struct endpoint_record *grown;

        if (n == 0)
                return 0;
        grown = realloc(f->known, (f->n_known + n) * sizeof(*grown));
        if (!grown)
                return -ENOMEM;
        memcpy(grown + f->n_known, add, n * sizeof(*add));
        f->known = grown;
        f->n_known += n;
        qsort_safe(f->known, f->n_known, sizeof(*f->known), known_cmp);
        return 0;
}

#define log_wg(f, level, ...) \
        log_fields((level), 0, (f)->config->follow, 0, NULL, NULL, "wireguard %s: " LOG_FIRST(__VA_ARGS__), \
                   (f)->config->interface LOG_REST(__VA_ARGS__))

/* ---- the endpoint store ------------------------------------------------- */

/* The store's format is endpoint-store.h's. Written to a temporary file,
 * synced and renamed over the old one, so a crash leaves either the old or
 * the new file, never half of one. */
static int store_save(struct wg_follower *f) {
        _cleanup_(freep) char *tmp = NULL, *text = NULL;
        size_t len = 0, done = 0;
        int fd, r = 0;

        r = endpoint_store_format(f->known, f->n_known, &text, &len);
        if (r < 0)
                return r;
        if (asprintf(&tmp, "%s.tmp", f->store_path) < 0)
                return -ENOMEM;
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        while (done < len) {
                ssize_t w = write(fd, text + done, len - done);

                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                done += (size_t) w;
        }
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r < 0)
                goto fail;
        if (rename(tmp, f->store_path) < 0) {
                r = -errno;
                goto fail;
        }
        f->last_save_usec = clock_monotonic_usec();
        return 0;
fail:
        unlink(tmp);
        return r;
}

/* The whole of PATH, up to MAX bytes (more is -EFBIG). */
static int read_file_bounded(const char *path, size_t max, uint8_t **ret, size_t *ret_len) {
        _cleanup_(freep) uint8_t *buf = NULL;
        size_t len = 0, cap = 0;
        int fd, r = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        for (;;) {
                ssize_t n;

                if (len == cap) {
                        uint8_t *g;

                        if (cap >= max) {
                                r = -EFBIG;
                                break;
                        }
                        cap = MIN(max, cap ? cap * 2 : 4096);
                        g = realloc(buf, cap);
                        if (!g) {
                                r = -ENOMEM;
                                break;
                        }
                        buf = g;
                }
                n = read(fd, buf + len, cap - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        close(fd);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

static int store_load(struct wg_follower *f) {
        _cleanup_(freep) uint8_t *buf = NULL;
        _cleanup_(freep) struct endpoint_record *known = NULL;
        const char *reason = NULL;
        unsigned line = 0;
        size_t len = 0, n = 0;
        int r;

        r = read_file_bounded(f->store_path, WG_STORE_SIZE_MAX, &buf, &len);
        if (r == -ENOENT)
                return 0;
        if (r == -EFBIG) {
                log_wg(f, LOG_WARNING, "%s: endpoint store larger than %u MiB, ignoring it", f->store_path,
                       (unsigned) (WG_STORE_SIZE_MAX >> 20));
                return -EBADMSG;
        }
        if (r < 0)
                return r;
        r = endpoint_store_parse(buf, len, &known, &n, &line, &reason);
        if (r == -EBADMSG) {
                log_wg(f, LOG_WARNING, "%s:%u: corrupt endpoint store (%s), ignoring it", f->store_path, line, reason);
                return r;
        }
        if (r < 0)
                return r;
        qsort_safe(known, n, sizeof(*known), known_cmp);
        free(f->known);
        f->known = TAKE_PTR(known);
        f->n_known = n;
        return 0;
}

/* Learn endpoints, keepalives and handshake times from the device (while
 * serving it). Saved when anything but a handshake time changed, or when
 * one did and the store was last written WG_HANDSHAKE_SAVE_USEC ago or
 * FORCE (leaving the master role: the next takeover may be elsewhere, but
 * this node's store should be fresh for the one after). */
static void follower_snapshot_from(struct wg_follower *f, const struct wg_device *dev, bool force, bool settled) {
        struct endpoint_record *known;
        uint64_t now = wall_ms();
        size_t n = 0;
        bool changed, handshakes = false;
        int r;

        /* No peers at all is a device being (re)created (wireguard-go
         * restarted, wg-quick still to configure it): forgetting every
         * endpoint now would leave the next takeover nothing to kick. A
         * peer removed for good is forgotten by the next snapshot that sees
         * the others. */
        if (dev->n_peers == 0 && f->n_known > 0)
                return;
        known = calloc(dev->n_peers ? dev->n_peers : 1, sizeof(*known));
        if (!known)
                return;
        for (size_t i = 0; i < dev->n_peers; i++) {
                const struct wg_peer *p = &dev->peers[i];
                struct endpoint_record *old = known_find(f, p->public_key);
                struct endpoint_record k = {};

                memcpy(k.public_key, p->public_key, WG_KEY_LEN);
                k.keepalive = p->persistent_keepalive_interval;
                k.handshake_ms = MAX(peer_handshake_ms(p), old ? old->handshake_ms : 0);
                if (p->endpoint.addr.sa_family != AF_UNSPEC) {
                        k.endpoint = p->endpoint;
                        k.learned_ms = old && endpoint_same(&old->endpoint, &p->endpoint) ? old->learned_ms : now;
                } else if (old) {
                        k.endpoint = old->endpoint;
                        k.learned_ms = old->learned_ms;
                } else
                        continue;
                /* A takeover in progress has keepalives at 0 on purpose. */
                if (!settled && old)
                        k.keepalive = old->keepalive;
                known[n++] = k;
        }
        qsort_safe(known, n, sizeof(*known), known_cmp);
        changed = n != f->n_known;
        for (size_t i = 0; !changed && i < n; i++) {
                changed = !known_equal(&known[i], &f->known[i]);
                handshakes |= known[i].handshake_ms != f->known[i].handshake_ms;
        }
        if (!changed && handshakes)
                changed = force || clock_monotonic_usec() - f->last_save_usec >= WG_HANDSHAKE_SAVE_USEC;
        free(f->known);
        f->known = known;
        f->n_known = n;
        if (changed) {
                r = store_save(f);
                if (r < 0)
                        log_fields(LOG_WARNING, r, NULL, 0, NULL, NULL, "wireguard %s: cannot save %s: %m",
                                   f->config->interface, f->store_path);
        }
}

/*
 * A device this node does not serve has endpoints only when someone put
 * them there after hamgr last cleared them (wg-quick or wg set before
 * hamgr started, or since), or when hamgr died while serving it.
 * Remembered before they are cleared, so the next takeover restores them
 * and kicks. An endpoint the store already has keeps its time. Another one
 * dates from the peer's last handshake when it had one (what a crash
 * left: the other node may have seen the peer move since), else from now:
 * one just configured is the operator's newest word on where the peer is.
 * The newer of it and the known one wins.
 */
static void follower_note_device(struct wg_follower *f, const struct wg_device *dev) {
        _cleanup_(freep) struct endpoint_record *add = NULL;
        uint64_t now = wall_ms();
        size_t n_add = 0, changed = 0;
        int r;

        add = calloc(dev->n_peers ? dev->n_peers : 1, sizeof(*add));
        if (!add)
                return;
        for (size_t i = 0; i < dev->n_peers; i++) {
                const struct wg_peer *p = &dev->peers[i];
                struct endpoint_record *old;
                uint64_t learned;

                if (p->endpoint.addr.sa_family == AF_UNSPEC)
                        continue;
                if (p->last_handshake_time_sec > 0)
                        learned = MIN(now, (uint64_t) p->last_handshake_time_sec * 1000 +
                                                   (uint64_t) p->last_handshake_time_nsec / 1000000);
                else
                        learned = now;
                old = known_find(f, p->public_key);
                if (old) {
                        if (!endpoint_same(&old->endpoint, &p->endpoint) && learned > old->learned_ms) {
                                old->endpoint = p->endpoint;
                                old->learned_ms = learned;
                                changed++;
                        }
                        old->handshake_ms = MAX(old->handshake_ms, peer_handshake_ms(p));
                        continue;
                }
                memcpy(add[n_add].public_key, p->public_key, WG_KEY_LEN);
                add[n_add].endpoint = p->endpoint;
                add[n_add].keepalive = p->persistent_keepalive_interval;
                add[n_add].learned_ms = learned;
                add[n_add].handshake_ms = peer_handshake_ms(p);
                n_add++;
        }
        r = known_add(f, add, n_add);
        if (r < 0)
                log_fields(LOG_WARNING, r, NULL, 0, NULL, NULL, "wireguard %s: cannot remember the endpoints: %m",
                           f->config->interface);
        else
                changed += n_add;
        if (changed == 0)
                return;
        log_wg(f, LOG_INFO, "remembered %zu endpoint%s set on the device while this node did not serve it", changed,
               changed == 1 ? "" : "s");
        r = store_save(f);
        if (r < 0)
                log_fields(LOG_WARNING, r, NULL, 0, NULL, NULL, "wireguard %s: cannot save %s: %m",
                           f->config->interface, f->store_path);
}

static void follower_snapshot(struct wg_follower *f, bool force) {
        _cleanup_(wg_device_freep) struct wg_device *dev = NULL;
        int r;

        r = wg_get_device(f->config->backend, f->config->interface, &dev);
        if (r < 0) {
                log_fields(LOG_DEBUG, r, NULL, 0, NULL, NULL, "wireguard %s: cannot read device: %m",
                           f->config->interface);
                return;
        }
        follower_snapshot_from(f, dev, force, f->phase == PHASE_ACTIVE);
}

static void on_snapshot_read(struct wg_io *io, struct wg_io_result *res, void *userdata) {
        struct wg_follower *f = userdata;

        f->snapshot_io = NULL;
        if (res->r < 0) {
                log_fields(LOG_DEBUG, res->r, NULL, 0, NULL, NULL, "wireguard %s: cannot read device: %m",
                           f->config->interface);
                return;
        }
        /* A takeover since the read started sets keepalives to 0 on
         * purpose and endpoints from the store: what the read saw is of
         * another time. */
        if (f->phase != PHASE_ACTIVE || f->takeover_started_usec != f->snapshot_takeover)
                return;
        follower_snapshot_from(f, res->device, false, true);
        f->skipped_at_snapshot = f->snapshots_skipped;
        f->snapshots++;
        f->snapshot_started = f->snapshot_io_started;
        f->snapshot_ended = clock_monotonic_usec();
        f->snapshot_basis_takeover = f->snapshot_takeover;
}

/*
 * Whether a snapshot due at NOW would find nothing the store lacks, so
 * that a large idle device is not read twice over (the sync poll reads it
 * every second already): the poll found the endpoints and keepalives, with
 * the rest of the configuration, the same before and after the last
 * snapshot taken in, and still finds them so. Handshake times alone are
 * not in what the poll compares: they are saved at most every
 * WG_HANDSHAKE_SAVE_USEC, and a snapshot is read at least that often.
 */
static bool snapshot_redundant(const struct wg_follower *f, uint64_t now) {
        return f->snapshot_ended != 0 && f->snapshot_basis_takeover == f->takeover_started_usec &&
               now - f->snapshot_started < WG_HANDSHAKE_SAVE_USEC &&
               sync_device_unchanged_between(f->daemon, f->config->interface, f->snapshot_started,
                                             f->snapshot_ended);
}

/* The periodic snapshot reads in a worker (wg-io.h): megabytes with
 * thousands of peers, and the loop sends VRRP adverts meanwhile. A
 * snapshot still running when the next comes due is not doubled. */
static int on_snapshot(sd_event_source *s, uint64_t usec, void *userdata) {
        struct wg_follower *f = userdata;
        uint64_t now = clock_monotonic_usec();
        int r;

        /* None while passive; one at a time. */
        if (f->phase == PHASE_ACTIVE && !f->snapshot_io) {
                if (snapshot_redundant(f, now)) {
                        /* The first skip since a read: the device is idle,
                         * and what that read allocated need not stay
                         * resident until the next, up to a minute away
                         * (wg-io.c trims only after full reads: a busy
                         * device is snapshotted every 5 s). */
                        if (f->snapshots_skipped == f->skipped_at_snapshot)
                                malloc_trim(0);
                        f->snapshots_skipped++;
                } else {
                        r = wg_io_read(f->daemon->event, f->config->backend, f->config->interface, WG_IO_ENDPOINTS,
                                       NULL, on_snapshot_read, f, &f->snapshot_io);
                        if (r < 0)
                                log_fields(LOG_WARNING, r, NULL, 0, NULL, NULL,
                                           "wireguard %s: cannot start a snapshot: %m", f->config->interface);
                        else {
                                f->snapshot_takeover = f->takeover_started_usec;
                                f->snapshot_io_started = now;
                        }
                }
        }
        sd_event_source_set_time(s, usec + WG_SNAPSHOT_USEC);
        return sd_event_source_set_enabled(s, SD_EVENT_ON);
}

/* ---- is it WireGuard? ---------------------------------------------------- */

int wg_interface_verify(const struct hamgr_wireguard_config *w, char *why, size_t len) {
        char kind[WG_LINK_KIND_MAX] = "", sock[256];
        int r;

        r = wg_interface_check(w->backend, w->interface, kind, sizeof(kind));
        if (r == 0 || r == -ENODEV) {
                snprintf(why, len, "%s", r == 0 ? "a WireGuard interface" : "no such interface");
                return r;
        }
        if (r != -EMEDIUMTYPE)
                snprintf(why, len, "cannot tell whether '%s' is a WireGuard interface: %s", w->interface,
                         strerror(-r));
        else if (streq(kind, "tun") && !wg_backend_is_userspace(wg_backend_resolve(w->backend, w->interface)))
                snprintf(why, len,
                         "'%s' is a TUN device, not a kernel WireGuard interface (backend %s; a userspace "
                         "WireGuard needs backend uapi or auto)",
                         w->interface, wg_backend_to_string(w->backend));
        else if (streq(kind, "tun") && wg_uapi_socket_path(w->interface, sock, sizeof(sock)) >= 0)
                snprintf(why, len,
                         "'%s' is a TUN device whose WireGuard UAPI socket %s does not answer, "
                         "not a WireGuard interface",
                         w->interface, sock);
        else if (!kind[0])
                snprintf(why, len,
                         "'%s' is not a WireGuard interface: it has no link kind (a physical or loopback device)",
                         w->interface);
        else
                snprintf(why, len, "'%s' is not a WireGuard interface: its link kind is '%s'", w->interface, kind);
        return r;
}

int wg_followers_check(const struct hamgr_config *c) {
        int ret = 0;

        for (size_t i = 0; i < c->n_wireguard; i++) {
                const struct hamgr_wireguard_config *w = &c->wireguard[i];
                char why[512];
                int r;

                r = wg_interface_verify(w, why, sizeof(why));
                if (r == -EMEDIUMTYPE) {
                        log_fields(LOG_ERR, r, w->follow, 0, NULL, NULL,
                                   "wireguard entry '%s' (line %d): %s. hamgr takes a followed interface down "
                                   "while this node is not master, so it refuses to manage it: fix the interface "
                                   "name in this entry (a WireGuard interface is one made by 'ip link add NAME "
                                   "type wireguard', wg-quick or wireguard-go)",
                                   w->interface, w->line, why);
                        ret = r;
                } else if (r < 0 && r != -ENODEV)
                        log_fields(LOG_WARNING, r, w->follow, 0, NULL, NULL,
                                   "wireguard entry '%s' (line %d): %s; its link is left alone until it can be "
                                   "verified", w->interface, w->line, why);
        }
        return ret;
}

/* ---- takeover ----------------------------------------------------------- */

static int follower_ifindex(struct wg_follower *f) {
        struct link_info li;

        if (link_monitor_get(f->daemon->links, f->config->interface, &li) < 0)
                return 0;
        return li.ifindex;
}

/* Only a link verified to be WireGuard is ever taken up or down, or gets
 * routes changed for it: an entry naming the uplink by mistake must not
 * cut the node off. Verified once per ifindex, so a link created again
 * under the name is looked at again; a refusal is logged once. */
static int follower_link_verified(struct wg_follower *f, int ifindex) {
        char why[512];
        int r;

        if (ifindex <= 0)
                return -ENODEV;
        if (ifindex == f->link_checked_ifindex)
                return 0;
        r = wg_interface_verify(f->config, why, sizeof(why));
        if (r == -EMEDIUMTYPE) {
                if (ifindex != f->link_refused_ifindex)
                        log_fields(LOG_ERR, r, f->config->follow, 0, NULL, NULL,
                                   "wireguard %s: not touching the link: %s", f->config->interface, why);
                f->link_refused_ifindex = ifindex;
        } else if (r < 0 && r != -ENODEV)
                /* Asked again next time: it may answer then. */
                log_fields(LOG_WARNING, r, f->config->follow, 0, NULL, NULL,
                           "wireguard %s: not touching the link for now: %s", f->config->interface, why);
        if (r < 0) {
                f->last_error = r;
                return r;
        }
        f->link_checked_ifindex = ifindex;
        return 0;
}

/* Returns -EMEDIUMTYPE (and the like) for a refused link, -ENODEV, or the
 * result of setting it. */
static int follower_set_link(struct wg_follower *f, bool up) {
        int ifindex = follower_ifindex(f), r;

        r = follower_link_verified(f, ifindex);
        if (r < 0)
                return r;
        return route_link_set_up(f->daemon->nl, ifindex, up);
}

/* The interface carrying the source address, for the route override. */
static int source_ifindex(struct wg_follower *f) {
        const struct ip_address *src = &f->config->source_address;
        struct hamgr_daemon *d = f->daemon;

        for (size_t i = 0; i < d->n_instances; i++) {
                const struct hamgr_vrrp_config *c = d->instances[i]->config;

                for (size_t k = 0; k < c->n_virtual_ips; k++)
                        if (ip_address_equal(&c->virtual_ips[k].address, src))
                                return d->instances[i]->ifindex;
        }
        return 0;
}

/* The next batch: as many peers as the last batch's cost per peer fits in
 * WG_BATCH_BUDGET_USEC, growing at most twofold (one quick batch may have
 * been luck). */
static void follower_size_batch(struct wg_follower *f, size_t done, uint64_t spent_usec) {
        uint64_t fit;

        if (done == 0)
                return;
        fit = (uint64_t) done * WG_BATCH_BUDGET_USEC / MAX(spent_usec, (uint64_t) 1);
        fit = MIN(fit, (uint64_t) f->batch * 2);
        fit = MIN(fit, (uint64_t) WG_BATCH_MAX);
        f->batch = (size_t) MAX(fit, (uint64_t) WG_BATCH_MIN);
}

/* Start one batch of the current phase, peers [work_pos, work_pos + batch),
 * as one request in a worker thread; returns 1 when it is in flight, 0
 * when there was nothing to send. Staging gives each peer its endpoint and keepalive 0
 * (the link is down: nothing is sent). Kicking gives it keepalive N, which
 * sends the initiation, and a peer whose own keepalive is off gets 0 back
 * in a second entry of the same request: by then wireguard-go has sent the
 * initiation (it does so when it finishes the peer's entry) and the kernel
 * has queued it, and a takeover cut short leaves no keepalive behind. */
static void *batch_worker(void *userdata) {
        struct wg_follower *f = userdata;
        uint64_t t = clock_monotonic_usec(), one = 1;

        if (f->req_read)
                f->req_result = wg_get_device(f->req_backend, f->req_name, &f->req_got);
        else
                f->req_result = wg_set_device(f->req_backend, f->req);
        f->req_usec = clock_monotonic_usec() - t;
        if (write(f->done_fd, &one, sizeof(one)) < 0) {
                /* Cannot happen (a counter far from overflow); the join at
                 * release or the next takeover still collects the batch. */
        }
        return NULL;
}

/* Collect the batch in flight, if any: waits for its thread. Returns its
 * result (0 without one). */
static int follower_join_batch(struct wg_follower *f) {
        uint64_t v;

        if (!f->in_flight)
                return 0;
        (void) pthread_join(f->worker, NULL);
        f->in_flight = false;
        /* Its signal is drained, so on_batch_done does not run for a
         * request collected here. */
        if (read(f->done_fd, &v, sizeof(v)) < 0) {
                /* EAGAIN: its write failed; nothing to drain. */
        }
        f->req = wg_device_free(f->req);
        return f->req_result;
}

/* Join the request in flight and drop what it read. */
static void follower_cancel_request(struct wg_follower *f) {
        (void) follower_join_batch(f);
        f->req_got = wg_device_free(f->req_got);
        f->rekick_dev = wg_device_free(f->rekick_dev);
        f->release_io = wg_io_cancel(f->release_io);
}

/* Run REQ (a batch), or a read of the device when NULL, in the worker. */
static int follower_start_request(struct wg_follower *f, struct wg_device *req) {
        int r;

        f->req = req;
        f->req_read = !req;
        f->req_got = wg_device_free(f->req_got);
        f->req_backend = f->config->backend;
        snprintf(f->req_name, sizeof(f->req_name), "%s", f->config->interface);
        if (req)
                sync_device_written(f->daemon, f->config->interface);
        r = -pthread_create(&f->worker, NULL, batch_worker, f);
        if (r < 0) {
                f->req = wg_device_free(f->req);
                return r;
        }
        f->in_flight = true;
        /* Resumed by on_batch_done. */
        (void) sd_event_source_set_enabled(f->work_source, SD_EVENT_OFF);
        return 1;
}

static int follower_apply_batch(struct wg_follower *f) {
        _cleanup_(wg_device_freep) struct wg_device *dev = NULL;
        size_t end = MIN(f->n_work, f->work_pos + f->batch), done = end - f->work_pos;

        dev = calloc(1, sizeof(*dev));
        if (!dev)
                return -ENOMEM;
        snprintf(dev->name, sizeof(dev->name), "%s", f->config->interface);
        for (size_t i = f->work_pos; i < end; i++) {
                const struct endpoint_record *k = &f->work[i];
                struct wg_peer *p;

                p = wg_device_add_peer(dev);
                if (!p)
                        return -ENOMEM;
                memcpy(p->public_key, k->public_key, WG_KEY_LEN);
                /* Never bring back a peer removed meanwhile. */
                p->flags = WG_PEER_HAS_PUBLIC_KEY | WG_PEER_UPDATE_ONLY | WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL;
                if (f->phase == PHASE_STAGE_ENDPOINTS) {
                        p->flags |= WG_PEER_HAS_ENDPOINT;
                        p->endpoint = k->endpoint;
                        p->persistent_keepalive_interval = 0;
                        continue;
                }
                p->persistent_keepalive_interval = k->keepalive ? k->keepalive : WG_KICK_KEEPALIVE;
                if (k->keepalive != 0)
                        continue;
                p = wg_device_add_peer(dev);
                if (!p)
                        return -ENOMEM;
                memcpy(p->public_key, k->public_key, WG_KEY_LEN);
                p->flags = WG_PEER_HAS_PUBLIC_KEY | WG_PEER_UPDATE_ONLY | WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL;
                p->persistent_keepalive_interval = 0;
        }
        f->work_pos = end;
        if (dev->n_peers == 0)
                return 0;
        f->req_peers = done;
        return follower_start_request(f, TAKE_PTR(dev));
}

/* The VIP becomes the source of the routes of its interface (once). Only
 * for a link verified to be WireGuard. */
static int follower_source_routes(struct wg_follower *f) {
        int src_if, r;
        unsigned failed = 0;

        r = follower_link_verified(f, follower_ifindex(f));
        if (r < 0)
                return r;
        if (f->config->source_address.family == AF_UNSPEC || f->routes)
                return 0;
        src_if = source_ifindex(f);
        if (src_if <= 0)
                return 0;
        r = route_src_override(f->daemon->nl, src_if, &f->config->source_address, &f->routes, &failed);
        if (r < 0 || failed > 0)
                log_wg(f, LOG_WARNING, "could not make the virtual IP the source of %u route%s", failed,
                       failed == 1 ? "" : "s");
        return 0;
}

static void follower_release(struct wg_follower *f, const char *why, bool wait);

static void follower_finish_takeover(struct wg_follower *f) {
        uint64_t now = daemon_now(f->daemon);

        f->phase = PHASE_ACTIVE;
        f->takeover_usec = now - f->takeover_started_usec;
        f->last_kicked = f->n_work;
        f->takeovers++;
        free(f->work);
        f->work = NULL;
        f->n_work = f->work_pos = 0;
        f->work_source = sd_event_source_disable_unref(f->work_source);
        log_wg(f, LOG_NOTICE,
               "serving tunnels: %zu peer%s kicked into a handshake, most recently active first, %u route%s from %s, "
               "in %" PRIu64 " ms (endpoints %" PRIu64 " ms, kicks %" PRIu64 " ms, %u request%s)",
               f->last_kicked, f->last_kicked == 1 ? "" : "s", route_src_count(f->routes),
               route_src_count(f->routes) == 1 ? "" : "s",
               f->config->source_address.family ? "the virtual IP" : "the default source",
               f->takeover_usec / USEC_PER_MSEC, f->stage_usec / USEC_PER_MSEC, f->kick_usec / USEC_PER_MSEC,
               f->requests, f->requests == 1 ? "" : "s");
}

static int on_kick_wait(sd_event_source *s, uint64_t usec, void *userdata) {
        struct wg_follower *f = userdata;

        f->kick_timer = sd_event_source_disable_unref(f->kick_timer);
        if (f->work_source)
                (void) sd_event_source_set_enabled(f->work_source, SD_EVENT_ON);
        return 0;
}

/* Whether a UDP socket of this network namespace is bound to PORT, from
 * /proc/net/udp and udp6 ("sl local_address:PORT ..." in hex). */
static bool udp_port_bound(uint16_t port) {
        static const char *const files[] = { "/proc/net/udp", "/proc/net/udp6" };

        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                FILE *in = fopen(files[i], "re");
                char line[512];
                bool found = false;

                if (!in)
                        continue;
                while (!found && fgets(line, sizeof(line), in)) {
                        char local[64];
                        const char *colon;
                        unsigned long p;

                        if (sscanf(line, " %*s %63s", local) != 1)
                                continue;
                        colon = strrchr(local, ':');
                        if (!colon)
                                continue;
                        p = strtoul(colon + 1, NULL, 16);
                        found = p == port;
                }
                fclose(in);
                if (found)
                        return true;
        }
        return false;
}

/*
 * A wireguard-go that goes down with its link (Debian's 0.0.20220316 stays
 * up) learns that the link came up from a netlink event, some time after
 * we set it up. A kick (keepalive 0 -> N) it gets while still
 * down sends nothing; it would send one when it comes up, but only if the
 * keepalive is still on, and the restore phase turns it off again for
 * peers without one: their initiation is lost, and the client keeps
 * talking to nobody until it handshakes itself. wireguard-go binds its UDP
 * port only while up, after it marked itself up, so a bound listen port
 * says a kick will be acted on at once. Returns true to wait (the work
 * source is off and a timer will turn it on again).
 */
static bool follower_kick_must_wait(struct wg_follower *f) {
        uint64_t now = daemon_now(f->daemon);
        int r;

        if (f->work_pos != 0 || f->listen_port == 0 ||
            !wg_backend_is_userspace(wg_backend_resolve(f->config->backend, f->config->interface)) ||
            udp_port_bound(f->listen_port))
                return false;
        if (f->kick_wait_until == 0)
                f->kick_wait_until = now + WG_KICK_WAIT_USEC;
        if (now >= f->kick_wait_until) {
                log_wg(f, LOG_WARNING, "the userspace daemon has not bound port %u %" PRIu64 " ms after the link came "
                       "up; kicking anyway", f->listen_port, (uint64_t) WG_KICK_WAIT_USEC / USEC_PER_MSEC);
                return false;
        }
        f->kick_timer = sd_event_source_disable_unref(f->kick_timer);
        r = sd_event_add_time_relative(f->daemon->event, &f->kick_timer, CLOCK_MONOTONIC, WG_KICK_POLL_USEC, 0,
                                       on_kick_wait, f);
        if (r < 0)
                return false;
        (void) sd_event_source_set_enabled(f->work_source, SD_EVENT_OFF);
        return true;
}

static void follower_fail_takeover(struct wg_follower *f, int r) {
        f->last_error = r;
        log_fields(LOG_ERR, r, f->config->follow, 0, NULL, NULL, "wireguard %s: takeover failed in phase %s: %m",
                   f->config->interface, phase_names[f->phase]);
        /* Serve what we can: the link up beats a half-done takeover. */
        f->phase = PHASE_ACTIVE;
        f->work_source = sd_event_source_disable_unref(f->work_source);
        (void) follower_set_link(f, true);
}

static int on_work(sd_event_source *s, void *userdata) {
        struct wg_follower *f = userdata;
        int ifindex, r = 0;

        switch (f->phase) {
        case PHASE_READ_DEVICE:
                r = follower_start_request(f, NULL);
                if (r < 0)
                        break;
                return 0;
        case PHASE_STAGE_ENDPOINTS:
        case PHASE_KICK:
                /* wireguard-go runs a peer's timers while its link is down:
                 * a handshake retry due meanwhile goes to the endpoint once
                 * staged, and must leave from the VIP. */
                if (f->phase == PHASE_STAGE_ENDPOINTS && f->work_pos == 0) {
                        r = follower_source_routes(f);
                        if (r < 0)
                                break;
                }
                if (f->phase == PHASE_KICK && follower_kick_must_wait(f))
                        return 0;
                if (f->work_pos < f->n_work) {
                        r = follower_apply_batch(f);
                        if (r < 0)
                                break;
                        return 0; /* more next iteration; VRRP goes first */
                }
                f->work_pos = 0;
                /* A kick costs more than staging (an initiation each). */
                f->batch = WG_BATCH_FIRST;
                if (f->phase == PHASE_KICK) {
                        f->kick_usec = clock_monotonic_usec() - f->phase_started_usec;
                        follower_finish_takeover(f);
                        return 0;
                }
                f->stage_usec = clock_monotonic_usec() - f->phase_started_usec;
                f->phase = PHASE_LINK_UP;
                return 0;
        case PHASE_LINK_UP:
                ifindex = follower_ifindex(f);
                r = follower_source_routes(f);
                if (r < 0)
                        break;
                r = follower_set_link(f, true);
                if (r < 0)
                        break;
                f->active_ifindex = ifindex;
                f->phase = PHASE_KICK;
                f->phase_started_usec = clock_monotonic_usec();
                return 0;
        default:
                f->work_source = sd_event_source_disable_unref(f->work_source);
                return 0;
        }
        follower_fail_takeover(f, r);
        return 0;
}

static int follower_prepare_work(struct wg_follower *f, const struct wg_device *dev);
static int follower_strip_change(struct wg_follower *f, const struct wg_device *dev, struct wg_device **ret);

static int on_batch_done(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct wg_follower *f = userdata;
        uint64_t v;
        int r;

        /* Nothing to read: a join collected the request meanwhile (and a
         * new one may be running: not to be waited for here). */
        if (read(fd, &v, sizeof(v)) < 0 || !f->in_flight)
                return 0;
        r = follower_join_batch(f);
        /* A read of sync's may have started while the batch ran. */
        if (f->phase != PHASE_READ_DEVICE)
                sync_device_written(f->daemon, f->config->interface);
        if (f->phase == PHASE_READ_DEVICE || f->phase == PHASE_RESET_SESSIONS) {
                _cleanup_(wg_device_freep) struct wg_device *dev = NULL;

                if (f->phase == PHASE_RESET_SESSIONS) {
                        /* The takeover goes on without: as with no endpoint to reset. */
                        if (r < 0)
                                log_fields(LOG_WARNING, r, f->config->follow, 0, NULL, NULL,
                                           "wireguard %s: cannot reset the sessions: %m", f->config->interface);
                        dev = TAKE_PTR(f->rekick_dev);
                        r = dev ? 0 : -EINVAL;
                } else {
                        dev = TAKE_PTR(f->req_got);
                        log_fields(LOG_DEBUG, r, f->config->follow, 0, NULL, NULL,
                                   "wireguard %s: device read for the takeover in %" PRIu64 " us",
                                   f->config->interface, f->req_usec);
                }
                if (r >= 0 && f->rekick) {
                        _cleanup_(wg_device_freep) struct wg_device *change = NULL;

                        /* The device's endpoints are the freshest: into the
                         * store first, which the takeover prefers. Then the
                         * sessions go: with one still valid the kick sends a
                         * keepalive on it instead of a handshake, and the
                         * client, whose newest session is with the other
                         * node, would not answer on it. */
                        f->rekick = false;
                        follower_snapshot_from(f, dev, true, true);
                        r = follower_strip_change(f, dev, &change);
                        if (r >= 0 && change) {
                                f->phase = PHASE_RESET_SESSIONS;
                                f->rekick_dev = TAKE_PTR(dev);
                                r = follower_start_request(f, TAKE_PTR(change));
                                if (r >= 0)
                                        return 0;
                                dev = TAKE_PTR(f->rekick_dev);
                        }
                        if (r < 0)
                                log_fields(LOG_WARNING, r, f->config->follow, 0, NULL, NULL,
                                           "wireguard %s: cannot reset the sessions: %m", f->config->interface);
                        r = 0;
                }
                if (r >= 0)
                        r = follower_prepare_work(f, dev);
                if (r < 0) {
                        f->last_error = r;
                        log_fields(LOG_ERR, r, f->config->follow, 0, NULL, NULL,
                                   "wireguard %s: cannot read the device for takeover: %m", f->config->interface);
                        f->phase = PHASE_ACTIVE;
                        f->work_source = sd_event_source_disable_unref(f->work_source);
                        return 0;
                }
                (void) sd_event_source_set_enabled(f->work_source, SD_EVENT_ON);
                return 0;
        }
        f->requests++;
        log_fields(LOG_DEBUG, r, f->config->follow, 0, NULL, NULL,
                   "wireguard %s: %s %zu peers in one request: %" PRIu64 " us", f->config->interface,
                   phase_names[f->phase], f->req_peers, f->req_usec);
        follower_size_batch(f, f->req_peers, f->req_usec);
        if (r < 0)
                follower_fail_takeover(f, r);
        else if (f->work_source)
                (void) sd_event_source_set_enabled(f->work_source, SD_EVENT_ON);
        return 0;
}

/* The takeover's work from the device DEV: its peers with a known
 * endpoint, most recently active first. */
static int follower_prepare_work(struct wg_follower *f, const struct wg_device *dev) {
        follower_note_device(f, dev);
        f->listen_port = dev->listen_port;
        f->kick_wait_until = 0;
        free(f->work);
        f->work = calloc(dev->n_peers ? dev->n_peers : 1, sizeof(*f->work));
        f->n_work = f->work_pos = 0;
        if (!f->work)
                return -ENOMEM;
        for (size_t i = 0; i < dev->n_peers; i++) {
                const struct wg_peer *p = &dev->peers[i];
                const struct endpoint_record *k = known_find(f, p->public_key);
                struct endpoint_record w = {};

                memcpy(w.public_key, p->public_key, WG_KEY_LEN);
                if (k)
                        w.endpoint = k->endpoint;
                else if (p->endpoint.addr.sa_family != AF_UNSPEC)
                        w.endpoint = p->endpoint; /* only when it could not be remembered */
                else
                        continue; /* nowhere to send an initiation: the client will come to us */
                w.keepalive = p->persistent_keepalive_interval;
                /* A takeover cut short (crash) may have left 0: the store knows better. */
                if (w.keepalive == 0 && k)
                        w.keepalive = k->keepalive;
                w.learned_ms = k ? k->learned_ms : 0;
                w.handshake_ms = MAX(k ? k->handshake_ms : 0, peer_handshake_ms(p));
                f->work[f->n_work++] = w;
        }
        /* Busy clients first: they notice the outage, idle ones may not. */
        qsort_safe(f->work, f->n_work, sizeof(*f->work), recency_cmp);
        f->batch = WG_BATCH_FIRST;
        f->requests = 0;
        f->stage_usec = f->kick_usec = 0;
        f->phase_started_usec = clock_monotonic_usec();
        f->phase = PHASE_STAGE_ENDPOINTS;
        log_wg(f, LOG_INFO, "taking over: %zu of %zu peers have a known endpoint", f->n_work, dev->n_peers);
        return 0;
}

/* Starts the takeover; the device is read in the worker (megabytes with
 * thousands of peers), then on_work goes through the phases. */
static void follower_takeover(struct wg_follower *f) {
        int r;

        follower_cancel_request(f);
        sync_device_written(f->daemon, f->config->interface);
        f->rekick = false;
        f->takeover_started_usec = daemon_now(f->daemon);
        f->last_error = 0;
        free(f->work);
        f->work = NULL;
        f->n_work = f->work_pos = 0;
        f->work_source = sd_event_source_disable_unref(f->work_source);
        f->phase = PHASE_READ_DEVICE;
        r = sd_event_add_defer(f->daemon->event, &f->work_source, on_work, f);
        if (r >= 0)
                r = sd_event_source_set_priority(f->work_source, SD_EVENT_PRIORITY_IDLE);
        if (r >= 0)
                r = sd_event_source_set_enabled(f->work_source, SD_EVENT_ON);
        if (r < 0) {
                f->last_error = r;
                f->phase = PHASE_ACTIVE;
                f->work_source = sd_event_source_disable_unref(f->work_source);
        }
}

/*
 * Link down is not enough: wireguard-go keeps its UDP socket and timers
 * while its TUN is down and would, ~15 s later, send a handshake from the
 * node's own address, making clients roam away from the VIP. Removing and
 * re-adding every peer that has an endpoint drops the endpoint and the
 * session keys, so a passive node has nobody to send to. The peers keep
 * their keys, allowed IPs and keepalives. This builds that request from
 * DEV into *RET (NULL when no peer has an endpoint).
 */
static int follower_strip_change(struct wg_follower *f, const struct wg_device *dev, struct wg_device **ret) {
        _cleanup_(wg_device_freep) struct wg_device *change = NULL;
        int r;

        follower_note_device(f, dev);
        change = calloc(1, sizeof(*change));
        if (!change)
                return -ENOMEM;
        snprintf(change->name, sizeof(change->name), "%s", f->config->interface);
        /* Each removal is followed at once by the peer's re-creation: the
         * backends apply such a pair together (wg.h), so hamgr killed
         * here cannot leave a peer removed. */
        for (size_t i = 0; i < dev->n_peers; i++) {
                const struct wg_peer *p = &dev->peers[i];
                struct wg_peer *rm, *add;

                if (p->endpoint.addr.sa_family == AF_UNSPEC)
                        continue;
                rm = wg_device_add_peer(change);
                if (!rm)
                        return -ENOMEM;
                memcpy(rm->public_key, p->public_key, WG_KEY_LEN);
                rm->flags = WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REMOVE_ME;
                add = wg_device_add_peer(change);
                if (!add)
                        return -ENOMEM;
                memcpy(add->public_key, p->public_key, WG_KEY_LEN);
                add->flags = WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REPLACE_ALLOWEDIPS |
                             WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL;
                add->persistent_keepalive_interval = p->persistent_keepalive_interval;
                if (!wg_key_is_zero(p->preshared_key)) {
                        memcpy(add->preshared_key, p->preshared_key, WG_KEY_LEN);
                        add->flags |= WG_PEER_HAS_PRESHARED_KEY;
                }
                for (size_t k = 0; k < p->n_allowedips; k++) {
                        r = wg_peer_add_allowedip(add, &p->allowedips[k]);
                        if (r < 0)
                                return r;
                }
        }
        *ret = change->n_peers > 0 ? TAKE_PTR(change) : NULL;
        return 0;
}

static int follower_strip_endpoints(struct wg_follower *f) {
        _cleanup_(wg_device_freep) struct wg_device *dev = NULL, *change = NULL;
        int r;

        r = wg_get_device(f->config->backend, f->config->interface, &dev);
        if (r < 0)
                return r;
        r = follower_strip_change(f, dev, &change);
        if (r < 0 || !change)
                return r;
        sync_device_written(f->daemon, f->config->interface);
        return wg_set_device(f->config->backend, change);
}

static void on_strip_written(struct wg_io *io, struct wg_io_result *res, void *userdata) {
        struct wg_follower *f = userdata;

        f->release_io = NULL;
        sync_device_written(f->daemon, f->config->interface);
        if (res->r < 0 && res->r != -ENODEV)
                log_fields(LOG_WARNING, res->r, NULL, 0, NULL, NULL,
                           "wireguard %s: cannot clear the peers' endpoints: %m", f->config->interface);
}

/* Beside the loop, in F's release slot: a re-creation of thousands of
 * peers takes wireguard-go seconds, and this node, BACKUP now, must go on
 * hearing the master's adverts. A takeover cancels it (follower_cancel_
 * request()) before its own writes. */
static void follower_strip_from(struct wg_follower *f, const struct wg_device *dev) {
        _cleanup_(wg_device_freep) struct wg_device *change = NULL;
        int r;

        r = follower_strip_change(f, dev, &change);
        if (r >= 0 && change) {
                sync_device_written(f->daemon, f->config->interface);
                r = wg_io_write(f->daemon->event, f->config->backend, TAKE_PTR(change), on_strip_written, f,
                                &f->release_io);
        }
        if (r < 0 && r != -ENODEV)
                log_fields(LOG_WARNING, r, NULL, 0, NULL, NULL,
                           "wireguard %s: cannot clear the peers' endpoints: %m", f->config->interface);
}

static void on_release_read(struct wg_io *io, struct wg_io_result *res, void *userdata) {
        struct wg_follower *f = userdata;

        f->release_io = NULL;
        if (f->phase != PHASE_PASSIVE)
                return; /* taken over again meanwhile (which cancels this read: not reached) */
        if (res->r < 0) {
                if (res->r != -ENODEV)
                        log_fields(LOG_WARNING, res->r, NULL, 0, NULL, NULL,
                                   "wireguard %s: cannot clear the peers' endpoints: %m", f->config->interface);
                return;
        }
        if (f->release_snapshot)
                follower_snapshot_from(f, res->device, true, true);
        follower_strip_from(f, res->device);
}

/* Link down, then the endpoints go. WAIT: the device is read here (at
 * start, stopping, an interface removed by a reload); otherwise in a
 * worker (wg-io.h), which a takeover starting meanwhile cancels: with
 * thousands of peers the read takes long enough for this node, now
 * BACKUP, to miss the master's adverts. Link down already keeps the
 * tunnels quiet; wireguard-go's own handshake comes seconds later. */
static void follower_release(struct wg_follower *f, const char *why, bool wait) {
        bool was_active = f->phase == PHASE_ACTIVE, snapshot_due = was_active;
        int r;

        /* A request still running could kick a peer after the strip. */
        follower_cancel_request(f);
        f->snapshot_io = wg_io_cancel(f->snapshot_io);
        f->rekick = false;
        if (wait && snapshot_due) {
                follower_snapshot(f, true);
                snapshot_due = false;
        }
        f->work_source = sd_event_source_disable_unref(f->work_source);
        f->retake_timer = sd_event_source_disable_unref(f->retake_timer);
        f->kick_timer = sd_event_source_disable_unref(f->kick_timer);
        f->active_ifindex = 0;
        free(f->work);
        f->work = NULL;
        f->n_work = f->work_pos = 0;
        r = follower_set_link(f, false);
        if (r < 0 && r != -ENODEV && f->link_checked_ifindex == follower_ifindex(f))
                log_fields(LOG_WARNING, r, NULL, 0, NULL, NULL, "wireguard %s: cannot set the link down: %m",
                           f->config->interface);
        if (!wait) {
                r = wg_io_read(f->daemon->event, f->config->backend, f->config->interface, WG_IO_DEVICE, NULL,
                               on_release_read, f, &f->release_io);
                if (r >= 0)
                        f->release_snapshot = was_active;
                else
                        wait = true;
        }
        if (wait) {
                if (snapshot_due)
                        follower_snapshot(f, true);
                r = follower_strip_endpoints(f);
                if (r < 0 && r != -ENODEV)
                        log_fields(LOG_WARNING, r, NULL, 0, NULL, NULL,
                                   "wireguard %s: cannot clear the peers' endpoints: %m", f->config->interface);
        }
        route_src_restore(f->daemon->nl, f->routes);
        f->routes = NULL;
        if (f->phase != PHASE_PASSIVE)
                log_wg(f, LOG_NOTICE, "passive (%s): link down", why);
        f->phase = PHASE_PASSIVE;
}

/* ---- following ---------------------------------------------------------- */

static bool follow_is_master(struct hamgr_daemon *d, const char *name) {
        for (size_t i = 0; i < d->n_groups; i++) {
                const struct hamgr_group_rt *g = d->groups[i];

                if (!g->name || !streq(g->name, name))
                        continue;
                for (size_t m = 0; m < g->n_members; m++)
                        if (g->members[m]->fsm.state != VRRP_STATE_MASTER)
                                return false;
                return g->n_members > 0;
        }
        for (size_t i = 0; i < d->n_instances; i++)
                if (streq(d->instances[i]->config->name, name))
                        return d->instances[i]->fsm.state == VRRP_STATE_MASTER;
        return false;
}

static struct wg_follower *follower_free(struct wg_follower *f) {
        if (!f)
                return NULL;
        follower_cancel_request(f);
        f->snapshot_io = wg_io_cancel(f->snapshot_io);
        sd_event_source_disable_unref(f->work_source);
        sd_event_source_disable_unref(f->snapshot_timer);
        sd_event_source_disable_unref(f->retake_timer);
        sd_event_source_disable_unref(f->kick_timer);
        sd_event_source_disable_unref(f->done_source);
        if (f->done_fd >= 0)
                close(f->done_fd);
        free(f->work);
        free(f->known);
        free(f->store_path);
        free(f);
        return NULL;
}

static int follower_new(struct hamgr_daemon *d, struct hamgr_wireguard_config *config, struct wg_follower **ret) {
        struct wg_follower *f;
        int r;

        f = calloc(1, sizeof(*f));
        if (!f)
                return -ENOMEM;
        f->daemon = d;
        f->config = config;
        f->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (f->done_fd < 0) {
                r = -errno;
                follower_free(f);
                return r;
        }
        if (asprintf(&f->store_path, "%s/wireguard-%s.endpoints", d->config->state_dir, config->interface) < 0) {
                f->store_path = NULL;
                follower_free(f);
                return -ENOMEM;
        }
        (void) mkdir(d->config->state_dir, 0700);
        r = store_load(f);
        if (r < 0 && r != -EBADMSG)
                log_fields(LOG_WARNING, r, NULL, 0, NULL, NULL, "wireguard %s: cannot read %s: %m", config->interface,
                           f->store_path);
        r = sd_event_add_time_relative(d->event, &f->snapshot_timer, CLOCK_MONOTONIC, WG_SNAPSHOT_USEC,
                                       USEC_PER_SEC / 10, on_snapshot, f);
        if (r >= 0)
                r = sd_event_add_io(d->event, &f->done_source, f->done_fd, EPOLLIN, on_batch_done, f);
        if (r >= 0)
                r = sd_event_source_set_priority(f->done_source, SD_EVENT_PRIORITY_IDLE);
        if (r < 0) {
                follower_free(f);
                return r;
        }
        /* Start passive whatever the link was: a node only serves tunnels
         * once VRRP made it master. Not PASSIVE yet, so release acts. */
        f->phase = PHASE_LINK_UP;
        follower_release(f, "starting", true);
        log_wg(f, LOG_INFO, "following %s, %zu known endpoint%s, backend %s", config->follow, f->n_known,
               f->n_known == 1 ? "" : "s", wg_backend_to_string(wg_backend_resolve(config->backend, config->interface)));
        *ret = f;
        return 0;
}

int wg_followers_start(struct hamgr_daemon *d) {
        struct hamgr_config *c = d->config;
        int r;

        /* Before any link is touched. */
        r = wg_followers_check(c);
        if (r < 0)
                return r;
        d->followers = calloc(c->n_wireguard ? c->n_wireguard : 1, sizeof(*d->followers));
        if (!d->followers)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_wireguard; i++) {
                r = follower_new(d, &c->wireguard[i], &d->followers[d->n_followers]);
                if (r < 0)
                        return r;
                d->n_followers++;
        }
        return 0;
}

int wg_followers_reload(struct hamgr_daemon *d) {
        struct hamgr_config *c = d->config;
        struct wg_follower **next;
        size_t n = 0;
        int r = 0;

        next = calloc(c->n_wireguard ? c->n_wireguard : 1, sizeof(*next));
        if (!next)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_wireguard; i++) {
                struct hamgr_wireguard_config *w = &c->wireguard[i];

                for (size_t k = 0; k < d->n_followers; k++) {
                        struct wg_follower *f = d->followers[k];

                        if (f && streq(f->config->interface, w->interface) && f->config->backend == w->backend &&
                            streq(f->config->follow, w->follow) &&
                            (f->config->source_address.family == w->source_address.family &&
                             (!w->source_address.family ||
                              ip_address_equal(&f->config->source_address, &w->source_address)))) {
                                f->config = w;
                                next[n++] = f;
                                d->followers[k] = NULL;
                                break;
                        }
                }
        }
        for (size_t k = 0; k < d->n_followers; k++)
                if (d->followers[k]) {
                        follower_release(d->followers[k], "removed by reload", true);
                        follower_free(d->followers[k]);
                }
        free(d->followers);
        d->followers = next;
        d->n_followers = n;
        for (size_t i = 0; i < c->n_wireguard; i++) {
                bool have = false;

                for (size_t k = 0; k < n; k++)
                        have |= next[k]->config == &c->wireguard[i];
                if (have)
                        continue;
                r = follower_new(d, &c->wireguard[i], &next[d->n_followers]);
                if (r < 0)
                        break;
                d->n_followers++;
        }
        wg_followers_update(d);
        return r;
}

void wg_followers_update(struct hamgr_daemon *d) {
        for (size_t i = 0; i < d->n_followers; i++) {
                struct wg_follower *f = d->followers[i];
                bool master = !d->stopping && follow_is_master(d, f->config->follow);

                if (master && f->phase == PHASE_PASSIVE)
                        follower_takeover(f);
                else if (!master && f->phase != PHASE_PASSIVE)
                        follower_release(f, d->stopping ? "stopping" : "no longer master", d->stopping);
        }
}

static int on_retake(sd_event_source *s, uint64_t usec, void *userdata) {
        struct wg_follower *f = userdata;

        f->retake_timer = sd_event_source_disable_unref(f->retake_timer);
        if (f->phase == PHASE_ACTIVE)
                follower_takeover(f);
        return 0;
}

void wg_followers_links_changed(struct hamgr_daemon *d) {
        for (size_t i = 0; i < d->n_followers; i++) {
                struct wg_follower *f = d->followers[i];
                struct link_info li;

                /* The interface of an active follower was re-created (a
                 * wireguard-go restart): it is down, without endpoints or
                 * sessions, and nobody else brings it up or kicks the
                 * clients. Take over again once it is configured. */
                if (f->phase == PHASE_ACTIVE && f->active_ifindex > 0 && !f->retake_timer &&
                    link_monitor_get(d->links, f->config->interface, &li) >= 0 && li.ifindex != f->active_ifindex) {
                        int r;

                        f->active_ifindex = li.ifindex;
                        r = sd_event_add_time_relative(d->event, &f->retake_timer, CLOCK_MONOTONIC, WG_RETAKE_USEC,
                                                       USEC_PER_SEC / 10, on_retake, f);
                        if (r < 0)
                                log_fields(LOG_WARNING, r, f->config->follow, 0, NULL, NULL,
                                           "wireguard %s: re-created while active, cannot schedule a new takeover: %m",
                                           f->config->interface);
                        else
                                log_wg(f, LOG_NOTICE, "interface re-created while this node is master, "
                                       "taking over again in %u ms", (unsigned) (WG_RETAKE_USEC / USEC_PER_MSEC));
                        continue;
                }

                /* A passive interface brought up by someone else (wg-quick,
                 * a restarted wireguard-go) would answer clients too. */
                /* The cache can still show the link up that this node took
                 * down a moment ago (the events of its own change not read
                 * yet): the kernel confirms, or the node would release,
                 * and strip every peer, twice. */
                if (f->phase == PHASE_PASSIVE && link_monitor_get(d->links, f->config->interface, &li) >= 0 &&
                    li.up_admin && li.ifindex != f->link_refused_ifindex &&
                    link_admin_up_now(f->config->interface) != 0) {
                        log_wg(f, LOG_NOTICE, "interface came up while this node is passive, taking it down");
                        f->phase = PHASE_LINK_UP;
                        follower_release(f, "interface came up while passive", false);
                }
        }
}

void wg_followers_rekick(struct hamgr_daemon *d, const char *instance, const char *group) {
        uint64_t now = daemon_now(d);

        for (size_t i = 0; i < d->n_followers; i++) {
                struct wg_follower *f = d->followers[i];

                if (f->phase != PHASE_ACTIVE || now - f->takeover_started_usec < WG_REKICK_HOLDOFF_USEC)
                        continue;
                if (!streq(f->config->follow, instance) && !(group && streq(f->config->follow, group)))
                        continue;
                log_wg(f, LOG_NOTICE, "another master served meanwhile, kicking the peers into a handshake again");
                /* The device is read, its endpoints remembered and the
                 * sessions reset in the worker (on_batch_done()): with
                 * thousands of peers that takes long enough to hold up
                 * VRRP. */
                follower_takeover(f);
                f->rekick = true;
        }
}

void wg_followers_release_lost(struct hamgr_daemon *d) {
        for (size_t i = 0; i < d->n_followers; i++) {
                struct wg_follower *f = d->followers[i];

                if (f->phase != PHASE_PASSIVE && (d->stopping || !follow_is_master(d, f->config->follow)))
                        follower_release(f, d->stopping ? "stopping" : "no longer master", d->stopping);
        }
}

void wg_followers_stop(struct hamgr_daemon *d) {
        for (size_t i = 0; i < d->n_followers; i++) {
                follower_release(d->followers[i], "stopping", true);
                follower_free(d->followers[i]);
        }
        free(d->followers);
        d->followers = NULL;
        d->n_followers = 0;
}

void wg_follower_learn(struct hamgr_daemon *d, const char *ifname, const struct wg_device *dev,
                       const uint64_t *learned_ms) {
        for (size_t i = 0; i < d->n_followers; i++) {
                struct wg_follower *f = d->followers[i];
                _cleanup_(freep) struct endpoint_record *add = NULL;
                uint64_t now = wall_ms();
                size_t n_add = 0;
                bool changed = false;

                if (!streq(f->config->interface, ifname) || f->phase == PHASE_ACTIVE)
                        continue; /* the master knows better than what it replicated */
                add = calloc(dev->n_peers + 1, sizeof(*add));
                if (!add)
                        return;
                for (size_t k = 0; k < dev->n_peers; k++) {
                        const struct wg_peer *p = &dev->peers[k];
                        struct endpoint_record *old = known_find(f, p->public_key);
                        uint64_t learned = learned_ms ? learned_ms[k] : now;

                        if (p->endpoint.addr.sa_family == AF_UNSPEC)
                                continue;
                        if (old) {
                                /* The newer wins: an endpoint configured here
                                 * after the master last saw the peer elsewhere
                                 * stays. */
                                if (!endpoint_same(&old->endpoint, &p->endpoint) && learned > old->learned_ms) {
                                        old->endpoint = p->endpoint;
                                        old->learned_ms = learned;
                                        changed = true;
                                }
                                if (old->keepalive != p->persistent_keepalive_interval) {
                                        old->keepalive = p->persistent_keepalive_interval;
                                        changed = true;
                                }
                                continue;
                        }
                        memcpy(add[n_add].public_key, p->public_key, WG_KEY_LEN);
                        add[n_add].endpoint = p->endpoint;
                        add[n_add].keepalive = p->persistent_keepalive_interval;
                        add[n_add].learned_ms = learned;
                        n_add++;
                }
                if (known_add(f, add, n_add) < 0)
                        return;
                changed |= n_add > 0;
                if (changed && store_save(f) < 0)
                        log_wg(f, LOG_WARNING, "cannot save %s", f->store_path);
        }
}

bool wg_follower_busy(struct hamgr_daemon *d, const char *ifname) {
        for (size_t i = 0; i < d->n_followers; i++)
                if (streq(d->followers[i]->config->interface, ifname))
                        return d->followers[i]->phase != PHASE_PASSIVE && d->followers[i]->phase != PHASE_ACTIVE;
        return false;
}

bool wg_follower_active(struct hamgr_daemon *d, const char *ifname) {
        for (size_t i = 0; i < d->n_followers; i++)
                if (streq(d->followers[i]->config->interface, ifname))
                        return d->followers[i]->phase != PHASE_PASSIVE;
        return false;
}

bool wg_follower_passive(struct hamgr_daemon *d, const char *ifname) {
        for (size_t i = 0; i < d->n_followers; i++)
                if (streq(d->followers[i]->config->interface, ifname))
                        return d->followers[i]->phase == PHASE_PASSIVE;
        return false;
}

bool wg_follower_link_expected_up(struct hamgr_daemon *d, const char *ifname) {
        for (size_t i = 0; i < d->n_followers; i++)
                if (streq(d->followers[i]->config->interface, ifname))
                        switch (d->followers[i]->phase) {
                        case PHASE_KICK:
                        case PHASE_ACTIVE:
                                return true;
                        default:
                                return false;
                        }
        return false;
}

int wg_followers_status_json(struct hamgr_daemon *d, struct json_object **ret) {
        _cleanup_(json_object_putp) json_object *a = json_object_new_array();
        char addr[INET6_ADDRSTRLEN];
        bool ok = a != NULL;

        for (size_t i = 0; ok && i < d->n_followers; i++) {
                const struct wg_follower *f = d->followers[i];
                json_object *o = json_object_new_object();

                json_add_string(o, "interface", f->config->interface, &ok);
                json_add_string(o, "backend",
                                wg_backend_to_string(wg_backend_resolve(f->config->backend, f->config->interface)), &ok);
                json_add_string(o, "follow", f->config->follow, &ok);
                json_add_string(o, "source_address",
                                f->config->source_address.family
                                        ? ip_address_to_string(&f->config->source_address, addr, sizeof(addr))
                                        : NULL,
                                &ok);
                json_add_string(o, "phase", phase_names[f->phase], &ok);
                json_add_u64(o, "known_endpoints", f->n_known, &ok);
                json_add_u64(o, "takeovers", f->takeovers, &ok);
                json_add_u64(o, "last_takeover_ms", f->takeover_usec / USEC_PER_MSEC, &ok);
                json_add_u64(o, "last_kicked", f->last_kicked, &ok);
                json_add_u64(o, "snapshots", f->snapshots, &ok);
                json_add_u64(o, "snapshots_skipped", f->snapshots_skipped, &ok);
                json_add_u64(o, "source_routes", route_src_count(f->routes), &ok);
                json_add_i64(o, "last_error", f->last_error, &ok);
                json_push(a, o, &ok);
        }
        if (!ok)
                return -ENOMEM;
        *ret = TAKE_PTR(a);
        return 0;
}

void wg_followers_status_text(struct hamgr_daemon *d, struct buf *b) {
        for (size_t i = 0; i < d->n_followers; i++) {
                const struct wg_follower *f = d->followers[i];

                buf_printf(b, "wireguard %s: %s, follows %s, %zu known endpoint%s", f->config->interface,
                           phase_names[f->phase], f->config->follow, f->n_known, f->n_known == 1 ? "" : "s");
                if (f->takeovers > 0)
                        buf_printf(b, ", last takeover %zu peer%s in %" PRIu64 " ms", f->last_kicked,
                                   f->last_kicked == 1 ? "" : "s", f->takeover_usec / USEC_PER_MSEC);
                buf_printf(b, "\n");
        }
}
