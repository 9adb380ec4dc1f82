/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Replication on the event loop: TCP connections to the pinned nodes (both
 * sides dial, one connection per pair survives), the encrypted session of
 * sync/sync_proto.c, the replica of sync/replica.c kept in state_dir,
 * polling of the local WireGuard devices and applying what other nodes
 * changed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/macro.h"
#include "daemon.h"
#include "log.h"
#include "strbuf.h"
#include "sync-file.h"
#include "sync.h"
#include "sync/replica.h"
#include "sync/store.h"
#include "sync/sync_proto.h"
#include "wg/key.h"
#include "wg/wg.h"
#include "wireguard.h"

#define SYNC_HEARTBEAT_USEC   USEC_PER_SEC
#define SYNC_DEAD_USEC        (5 * USEC_PER_SEC)
#define SYNC_BACKOFF_MIN_USEC (250 * USEC_PER_MSEC)
#define SYNC_BACKOFF_MAX_USEC (10 * USEC_PER_SEC)
#define SYNC_OFFSET_WARN_USEC USEC_PER_SEC
#define SYNC_READ_CHUNK       65536
/* A catch-up goes as a stream of batches this large at most (a record of
 * 10000 allowed IPs still fits one), at most SYNC_WINDOW of them unacknowledged:
 * neither side ever holds the whole state as one message. The receiver writes
 * each batch to its device before it reads the next, and wireguard-go takes
 * about 100 µs per new peer: 1024 keep the event loop (VRRP adverts,
 * heartbeats) turning every ~0.1-0.2 s. */
#define SYNC_BATCH_RECORDS    1024
#define SYNC_BATCH_BYTES      (1024u * 1024u)
#define SYNC_WINDOW           8
#define SYNC_GC_USEC          (60 * USEC_PER_SEC)

struct sync_conn;

struct sync_peer_rt {
        struct hamgr_sync *sync;
        const struct hamgr_sync_peer_config *config;
        union wg_endpoint address;
        uint64_t node;                       /* replica node id of the peer */
        struct sync_conn *conn;              /* the established connection kept */
        sd_event_source *dial_timer;
        uint64_t backoff_usec;
        int64_t offset_usec;
        bool offset_known;
        bool offset_warned;
        uint64_t last_frame_usec;
        uint64_t tx_seq;                     /* last CHANGES (or CAUGHT_UP) sequence sent */
        uint64_t acked_seq;
        struct hlc_ts acked_version;         /* newest record the peer confirmed */
        struct hlc_ts durable_version;       /* ... and saved: what tombstone collection trusts */
        struct hlc_ts sent_version[64];      /* per in-flight seq (mod 64): last key in it */
        bool sent_complete[64];              /* ... and every record up to that key was sent */
        /* Our stream to the peer on the current connection. */
        struct replica_cursor tx_cursor;     /* position of the last record sent */
        bool tx_resumed;                     /* the peer's RESUME arrived: streaming */
        uint64_t tx_caught_up_seq;           /* seq of our CAUGHT_UP; 0 while catching up */
        uint64_t tx_skip_node;               /* records only the peer wrote are not sent back */
        /* The peer's stream to us; the watermark outlives connections. */
        struct replica_cursor rx_watermark;  /* last position merged from the peer's stream */
        bool rx_catching_up;                 /* its CAUGHT_UP has not arrived yet */
        uint64_t rx_catchup_start;           /* monotonic µs, for the log */
        uint64_t rx_catchup_records;
        uint64_t frames_rx, frames_tx, refused;
        char last_error[96];
};

struct sync_conn {
        struct hamgr_sync *sync;
        struct sync_conn *next;
        int fd;
        bool connecting;
        bool initiator;
        struct sync_peer_rt *peer;          /* known once authenticated (initiator: at once) */
        struct sync_session *session;
        sd_event_source *io;
        sd_event_source *liveness;
        uint8_t *out;
        size_t out_len, out_off;
        uint64_t last_rx, last_tx;
        bool registered;
};

struct hamgr_sync {
        struct hamgr_daemon *daemon;
        const struct hamgr_sync_config *config;
        uint8_t private_key[SYNC_KEY_LEN];
        uint8_t public_key[SYNC_KEY_LEN];
        struct replica *replica;
        struct sync_peer *pinned;            /* for the responder: timestamps per peer */
        struct sync_peer_rt *peers;
        size_t n_peers;
        struct sync_conn *conns;
        int listen_fd;
        sd_event_source *listen_io;
        sd_event_source *poll_timer;
        uint64_t last_timestamp;
        uint64_t merges, local_changes, save_errors;
        /* Merged during a catch-up, not yet saved and applied. */
        unsigned rx_catchups;
        bool deferred;
        sd_event_source *gc_timer;
        uint64_t tombstones_collected;
        struct sync_poll_state *polls;       /* per interface polled */
        size_t n_polls;
};

/* What the last full poll of an interface saw, to skip the next one. */
struct sync_poll_state {
        char ifname[IFNAMSIZ];
        uint8_t digest[WG_DIGEST_LEN];
        bool valid;
        bool endpoints;                      /* polled with may_write_endpoints */
};

/* Not the event loop's cached time: for durations inside one handler. */
static uint64_t mono_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

static uint64_t wall_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

#define log_peer(p, level, ...) \
        log_fields((level), 0, NULL, 0, NULL, NULL, "sync %s: " LOG_FIRST(__VA_ARGS__), (p)->config->name LOG_REST(__VA_ARGS__))

/* ---- devices ------------------------------------------------------------ */

static enum wg_backend backend_of(struct hamgr_daemon *d, const char *ifname) {
        for (size_t i = 0; i < d->config->n_wireguard; i++)
                if (streq(d->config->wireguard[i].interface, ifname))
                        return d->config->wireguard[i].backend;
        return WG_BACKEND_AUTO;
}

/* Write the replicated state of IFNAME to the device. Endpoints are never
 * written here: a passive device has none, and an active one learns its
 * own; remote endpoints go to the takeover instead. */
static int sync_apply_device(struct hamgr_sync *s, const char *ifname, bool keep_extra_peers) {
        _cleanup_(wg_device_freep) struct wg_device *desired = NULL, *current = NULL, *change = NULL,
                                                      *with_endpoints = NULL;
        enum wg_backend b = backend_of(s->daemon, ifname);
        int r;

        r = replica_device_for(s->replica, ifname, false, &desired);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        r = wg_get_device(b, ifname, &current);
        if (r < 0)
                return r;
        r = wg_device_diff(current, desired, false, &change);
        if (r < 0)
                return r;
        if (keep_extra_peers) {
                /* At start, peers on the device that the store does not know
                 * were added while hamgr was not running: keep them, the
                 * first poll replicates them. Only a change seen by a poll
                 * may remove a peer. */
                size_t kept = 0;

                for (size_t i = 0; i < change->n_peers; i++) {
                        if (change->peers[i].flags & WG_PEER_REMOVE_ME) {
                                free(change->peers[i].allowedips);
                                continue;
                        }
                        change->peers[kept++] = change->peers[i];
                }
                change->n_peers = kept;
        }
        if (change->n_peers > 0 || change->flags != 0) {
                snprintf(change->name, sizeof(change->name), "%s", ifname);
                r = wg_set_device(b, change);
                if (r < 0)
                        return r;
                log_fields(LOG_INFO, 0, NULL, 0, NULL, NULL, "sync: applied %zu peer change%s to %s", change->n_peers,
                           change->n_peers == 1 ? "" : "s", ifname);
        }
        if (replica_device_for(s->replica, ifname, true, &with_endpoints) >= 0) {
                _cleanup_(freep) uint64_t *learned = calloc(with_endpoints->n_peers + 1, sizeof(*learned));

                /* Versions order the replica; their wall part is when the
                 * endpoint was seen, to compare with what this node saw. */
                for (size_t i = 0; learned && i < with_endpoints->n_peers; i++)
                        learned[i] = replica_endpoint_version(s->replica, ifname,
                                                              with_endpoints->peers[i].public_key).wall_ms;
                if (learned)
                        wg_follower_learn(s->daemon, ifname, with_endpoints, learned);
        }
        return replica_device_applied(s->replica, ifname);
}

/* Write to IFNAME's device only the peers a live merge changed (APPLIED),
 * without reading the device: at many peers a full read and compare costs
 * far more than the change. The device already matched the replica for
 * everything else. A local edit of the same peer not yet polled is
 * overwritten (a concurrent edit: the merged one is what both nodes hold
 * now). BEFORE is IFNAME's device record before the merge (NULL: none). */
/* A peer a merge is about to turn into a tombstone while it is live here,
 * so on the device. */
struct sync_removal {
        char ifname[IFNAMSIZ];
        uint8_t public_key[WG_KEY_LEN];
};

static int removal_cmp(const void *x, const void *y) {
        const struct sync_removal *a = x, *b = y;
        int r = strncmp(a->ifname, b->ifname, IFNAMSIZ);

        return r != 0 ? r : memcmp(a->public_key, b->public_key, WG_KEY_LEN);
}

/* The live peers REMOTE removes, sorted; only these are removed from the
 * device (a tombstone of a peer never held here would make wireguard-go
 * create the peer only to remove it). */
static int removals_before_merge(struct hamgr_sync *s, const struct replica_changes *remote,
                                 struct sync_removal **ret, size_t *ret_n) {
        struct sync_removal *v = NULL;
        size_t n = 0;

        for (size_t i = 0; i < remote->n; i++) {
                const struct replica_rec *rec = &remote->recs[i];

                if (rec->type != REPLICA_REC_PEER || !rec->peer.deleted ||
                    !replica_peer_live(s->replica, rec->ifname, rec->peer.public_key))
                        continue;
                if (!v) {
                        v = calloc(remote->n, sizeof(*v));
                        if (!v)
                                return -ENOMEM;
                }
                snprintf(v[n].ifname, sizeof(v[n].ifname), "%s", rec->ifname);
                memcpy(v[n].public_key, rec->peer.public_key, WG_KEY_LEN);
                n++;
        }
        if (n > 1)
                qsort(v, n, sizeof(*v), removal_cmp);
        *ret = v;
        *ret_n = n;
        return 0;
}

static int sync_apply_merged(struct hamgr_sync *s, const char *ifname, const struct replica_changes *applied,
                             const struct replica_device *before, const struct sync_removal *removals,
                             size_t n_removals) {
        _cleanup_(wg_device_freep) struct wg_device *change = calloc(1, sizeof(*change)),
                                                    *learn = calloc(1, sizeof(*learn));
        _cleanup_(freep) uint64_t *learned = calloc(applied->n + 1, sizeof(*learned));
        enum wg_backend b = backend_of(s->daemon, ifname);
        int r;

        if (!change || !learn || !learned)
                return -ENOMEM;
        for (size_t i = 0; i < applied->n; i++) {
                const struct replica_rec *rec = &applied->recs[i];
                const struct replica_peer *rp = &rec->peer;
                struct wg_peer *p;

                if (!streq(rec->ifname, ifname))
                        continue;
                if (rec->type != REPLICA_REC_PEER) {
                        /* Only what changed: wireguard-go rebinds its socket
                         * on any listen_port line, even the same port. */
                        const struct replica_device *dv = &rec->device;

                        if (!before || memcmp(dv->private_key, before->private_key, WG_KEY_LEN) != 0) {
                                memcpy(change->private_key, dv->private_key, WG_KEY_LEN);
                                change->flags |= WG_DEVICE_HAS_PRIVATE_KEY;
                        }
                        if (!before || dv->listen_port != before->listen_port) {
                                change->listen_port = dv->listen_port;
                                change->flags |= WG_DEVICE_HAS_LISTEN_PORT;
                        }
                        if (!before || dv->fwmark != before->fwmark) {
                                change->fwmark = dv->fwmark;
                                change->flags |= WG_DEVICE_HAS_FWMARK;
                        }
                        continue;
                }
                if (rp->deleted) {
                        struct sync_removal key = {};

                        snprintf(key.ifname, sizeof(key.ifname), "%s", ifname);
                        memcpy(key.public_key, rp->public_key, WG_KEY_LEN);
                        if (n_removals == 0 ||
                            !bsearch(&key, removals, n_removals, sizeof(*removals), removal_cmp))
                                continue;
                }
                p = wg_device_add_peer(change);
                if (!p)
                        return -ENOMEM;
                memcpy(p->public_key, rp->public_key, WG_KEY_LEN);
                if (rp->deleted) {
                        p->flags = WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REMOVE_ME;
                        continue;
                }
                p->flags = WG_PEER_HAS_PUBLIC_KEY | WG_PEER_HAS_PRESHARED_KEY |
                           WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL | WG_PEER_REPLACE_ALLOWEDIPS;
                memcpy(p->preshared_key, rp->preshared_key, WG_KEY_LEN);
                p->persistent_keepalive_interval = rp->keepalive;
                for (size_t k = 0; k < rp->n_allowedips; k++)
                        if (wg_peer_add_allowedip(p, &rp->allowedips[k]) < 0)
                                return -ENOMEM;
                if (!hlc_ts_is_zero(rp->endpoint_version)) {
                        struct wg_peer *e = wg_device_add_peer(learn);

                        if (!e)
                                return -ENOMEM;
                        memcpy(e->public_key, rp->public_key, WG_KEY_LEN);
                        e->endpoint = rp->endpoint;
                        e->persistent_keepalive_interval = rp->keepalive;
                        learned[learn->n_peers - 1] = rp->endpoint_version.wall_ms;
                }
        }
        if (change->n_peers > 0 || change->flags != 0) {
                snprintf(change->name, sizeof(change->name), "%s", ifname);
                r = wg_set_device(b, change);
                if (r < 0)
                        return r;
                log_fields(LOG_INFO, 0, NULL, 0, NULL, NULL, "sync: applied %zu peer change%s to %s", change->n_peers,
                           change->n_peers == 1 ? "" : "s", ifname);
        }
        if (learn->n_peers > 0)
                wg_follower_learn(s->daemon, ifname, learn, learned);
        return replica_device_applied(s->replica, ifname);
}

static void sync_save(struct hamgr_sync *s) {
        int r = replica_store_save(s->daemon->config->state_dir, s->private_key, s->replica);

        /* The encoding of a large state (12 MB at 100,000 peers) lands on
         * the heap once glibc raised its mmap threshold; give it back
         * instead of keeping it resident until the next save. */
        malloc_trim(0);

        if (r < 0) {
                s->save_errors++;
                log_error_errno(r, "sync: cannot save the replicated state in %s: %m", s->daemon->config->state_dir);
        }
}

/* ---- connections ---------------------------------------------------------- */

static void conn_close(struct sync_conn *c, const char *why);

static int conn_flush(struct sync_conn *c) {
        while (c->out_off < c->out_len) {
                ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

                if (n < 0) {
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                return sd_event_source_set_io_events(c->io, EPOLLIN | EPOLLOUT);
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                c->out_off += (size_t) n;
        }
        free(c->out);
        c->out = NULL;
        c->out_len = c->out_off = 0;
        return sd_event_source_set_io_events(c->io, EPOLLIN);
}

static int conn_queue(struct sync_conn *c, uint8_t *buf, size_t len) {
        uint8_t *grown;

        if (len == 0) {
                free(buf);
                return 0;
        }
        grown = realloc(c->out, c->out_len + len);
        if (!grown) {
                free(buf);
                return -ENOMEM;
        }
        memcpy(grown + c->out_len, buf, len);
        free(buf);
        c->out = grown;
        c->out_len += len;
        c->last_tx = daemon_now(c->sync->daemon);
        return conn_flush(c);
}

static int conn_send(struct sync_conn *c, const struct sync_frame *f) {
        uint8_t *buf = NULL;
        size_t len = 0;
        int r;

        r = sync_frame_encode(c->session, f, &buf, &len);
        if (r < 0)
                return r;
        if (c->peer)
                c->peer->frames_tx++;
        return conn_queue(c, buf, len);
}

/* Send one batch of the stream, which ends at LAST. */
static int send_changes(struct sync_conn *c, const struct replica_changes *changes, const struct replica_cursor *last,
                        bool key_complete) {
        struct sync_peer_rt *p = c->peer;
        struct sync_frame f = { .type = SYNC_FRAME_CHANGES };
        uint8_t *buf = NULL;
        size_t len = 0;
        int r;

        if (changes->n == 0)
                return 0;
        r = replica_changes_encode(changes, &buf, &len);
        if (r < 0)
                return r;
        f.changes.seq = ++p->tx_seq;
        f.changes.data = buf;
        f.changes.len = len;
        p->sent_version[f.changes.seq % ELEMENTSOF(p->sent_version)] = last->key;
        p->sent_complete[f.changes.seq % ELEMENTSOF(p->sent_complete)] = key_complete;
        p->tx_cursor = *last;
        r = conn_send(c, &f);
        sodium_memzero(buf, len);
        free(buf);
        return r;
}

/* Keep the stream to C's peer going: batches after the cursor while the
 * window has room, then (once) CAUGHT_UP. Local changes get keys above
 * every key held, so after the catch-up the same loop sends them live. */
static int conn_pump(struct sync_conn *c) {
        struct hamgr_sync *s = c->sync;
        struct sync_peer_rt *p = c->peer;
        int r;

        if (!c->registered || !p || p->conn != c || !p->tx_resumed)
                return 0;
        while (p->tx_seq - p->acked_seq < SYNC_WINDOW) {
                _cleanup_(replica_changes_done) struct replica_changes batch = {};
                struct replica_cursor last;
                bool complete = false;

                r = replica_changes_batch(s->replica, &p->tx_cursor, p->tx_skip_node, SYNC_BATCH_RECORDS,
                                          SYNC_BATCH_BYTES, &batch, &last, &complete);
                if (r < 0)
                        return r;
                if (batch.n == 0) {
                        if (p->tx_caught_up_seq == 0) {
                                struct sync_frame f = { .type = SYNC_FRAME_CAUGHT_UP };

                                /* Numbered like a batch, so its ACK says the
                                 * peer saved the whole catch-up. */
                                f.caught_up.seq = p->tx_caught_up_seq = ++p->tx_seq;
                                p->sent_version[f.caught_up.seq % ELEMENTSOF(p->sent_version)] = p->tx_cursor.key;
                                p->sent_complete[f.caught_up.seq % ELEMENTSOF(p->sent_complete)] = true;
                                /* It holds what it wrote itself (or newer). */
                                p->tx_skip_node = p->node;
                                r = conn_send(c, &f);
                                if (r < 0)
                                        return r;
                        }
                        return 0;
                }
                r = send_changes(c, &batch, &last, complete);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void pump_all(struct hamgr_sync *s) {
        for (size_t i = 0; i < s->n_peers; i++) {
                struct sync_conn *c = s->peers[i].conn;

                if (c && conn_pump(c) < 0)
                        conn_close(c, "send failed");
        }
}

static void peer_schedule_dial(struct sync_peer_rt *p, uint64_t delay);
static void sync_poll_interface(struct hamgr_sync *s, const char *ifname);
static void sync_catchup_done(struct hamgr_sync *s);

static void conn_close(struct sync_conn *c, const char *why) {
        struct hamgr_sync *s = c->sync;
        struct sync_conn **pp;

        for (pp = &s->conns; *pp; pp = &(*pp)->next)
                if (*pp == c) {
                        *pp = c->next;
                        break;
                }
        if (c->peer && c->peer->conn == c) {
                c->peer->conn = NULL;
                if (c->peer->rx_catching_up) {
                        c->peer->rx_catching_up = false;
                        sync_catchup_done(s);
                }
                log_peer(c->peer, LOG_NOTICE, "disconnected (%s)", why);
                snprintf(c->peer->last_error, sizeof(c->peer->last_error), "%s", why);
                peer_schedule_dial(c->peer, c->peer->backoff_usec);
        } else if (c->initiator && c->peer && !c->peer->conn)
                peer_schedule_dial(c->peer, c->peer->backoff_usec);
        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->liveness);
        sync_session_free(c->session);
        if (c->fd >= 0)
                close(c->fd);
        free(c->out);
        free(c);
}

/* The connection is authenticated: keep it unless the pair already has the
 * one the deterministic rule prefers. */
static bool conn_register(struct sync_conn *c) {
        struct hamgr_sync *s = c->sync;
        struct sync_peer_rt *p = c->peer;
        struct sync_frame hello = { .type = SYNC_FRAME_HELLO }, resume = { .type = SYNC_FRAME_RESUME };

        if (p->conn && p->conn != c) {
                if (!sync_connection_preferred(s->public_key, p->config->public_key, c->initiator))
                        return false; /* keep the existing one */
                conn_close(p->conn, "replaced by the preferred connection");
        }
        p->conn = c;
        c->registered = true;
        p->backoff_usec = SYNC_BACKOFF_MIN_USEC;
        p->dial_timer = sd_event_source_disable_unref(p->dial_timer);
        p->last_error[0] = '\0';
        log_peer(p, LOG_NOTICE, "connected (%s)", c->initiator ? "dialled" : "accepted");
        hello.hello.clock_usec = wall_usec();
        snprintf(hello.hello.name, sizeof(hello.hello.name), "%s", s->daemon->config->node_name);
        if (conn_send(c, &hello) < 0)
                return false;
        /* Batches of the last connection that were never acknowledged are
         * resent from the peer's watermark. */
        p->acked_seq = p->tx_seq;
        p->tx_resumed = false;
        p->tx_caught_up_seq = 0;
        p->tx_cursor = (struct replica_cursor) {};
        if (!p->rx_catching_up) {
                p->rx_catching_up = true;
                s->rx_catchups++;
        }
        p->rx_catchup_start = mono_usec();
        p->rx_catchup_records = 0;
        resume.resume.wall_ms = p->rx_watermark.key.wall_ms;
        resume.resume.logical = p->rx_watermark.key.logical;
        resume.resume.node = p->rx_watermark.key.node;
        if (p->rx_watermark.ifname[0]) {
                resume.resume.kind = p->rx_watermark.peer ? SYNC_RESUME_AT_PEER : SYNC_RESUME_AT_DEVICE;
                memcpy(resume.resume.ifname, p->rx_watermark.ifname, strnlen(p->rx_watermark.ifname, IFNAMSIZ - 1));
                if (p->rx_watermark.peer)
                        memcpy(resume.resume.public_key, p->rx_watermark.public_key, WG_KEY_LEN);
        }
        if (conn_send(c, &resume) < 0)
                return false;
        return true;
}

/* Save and apply what catch-ups merged, once none is running: a full state
 * arrives as many batches, and neither a save nor a device write per batch. */
static void sync_flush_deferred(struct hamgr_sync *s) {
        if (!s->deferred || s->rx_catchups > 0)
                return;
        s->deferred = false;
        sync_save(s);
        for (size_t i = 0; i < s->daemon->config->n_wireguard; i++) {
                const char *ifname = s->daemon->config->wireguard[i].interface;
                int r;

                if (!replica_device_needs_apply(s->replica, ifname))
                        continue;
                r = sync_apply_device(s, ifname, false);
                if (r < 0)
                        log_fields(LOG_WARNING, r, NULL, 0, NULL, NULL, "sync: cannot apply changes to %s: %m", ifname);
        }
}

static void sync_catchup_done(struct hamgr_sync *s) {
        if (s->rx_catchups > 0)
                s->rx_catchups--;
        sync_flush_deferred(s);
}

/* The peer says where our stream to it resumes. */
static int handle_resume(struct sync_conn *c, const struct sync_frame *f) {
        struct sync_peer_rt *p = c->peer;
        struct hlc_ts w = { .wall_ms = f->resume.wall_ms, .logical = f->resume.logical, .node = f->resume.node };

        if (p->tx_resumed)
                return -EBADMSG;
        p->tx_resumed = true;
        p->tx_cursor = replica_cursor_at(w);
        if (f->resume.kind != SYNC_RESUME_BEFORE_KEY) {
                /* Just after the last record it merged: nothing twice. */
                snprintf(p->tx_cursor.ifname, sizeof(p->tx_cursor.ifname), "%.*s", IFNAMSIZ - 1, f->resume.ifname);
                p->tx_cursor.peer = f->resume.kind == SYNC_RESUME_AT_PEER;
                memcpy(p->tx_cursor.public_key, f->resume.public_key, WG_KEY_LEN);
        }
        /* A peer with nothing from us may lack its own records too (a lost
         * state file): send it everything. */
        p->tx_skip_node = hlc_ts_is_zero(w) ? 0 : p->node;
        /* A peer that forgot (restarted) has not got what it acknowledged. */
        if (hlc_compare(w, p->acked_version) < 0)
                p->acked_version = w;
        if (hlc_compare(w, p->durable_version) < 0)
                p->durable_version = w;
        return conn_pump(c);
}

static void handle_ack(struct sync_conn *c, uint64_t seq) {
        struct sync_peer_rt *p = c->peer;
        struct hlc_ts v;

        if (seq > p->tx_seq || seq <= p->acked_seq)
                return;
        v = p->sent_version[seq % ELEMENTSOF(p->sent_version)];
        p->acked_seq = seq;
        /* A batch that ended inside a run of records of one key proves
         * nothing about that key yet; the batch that ends the run does. */
        if (p->sent_complete[seq % ELEMENTSOF(p->sent_complete)]) {
                if (hlc_compare(v, p->acked_version) > 0)
                        p->acked_version = v;
                /* Batches of the catch-up are merged but saved only at its
                 * end; from the ack of CAUGHT_UP on, the peer saves first. */
                if (p->tx_caught_up_seq != 0 && seq >= p->tx_caught_up_seq && hlc_compare(v, p->durable_version) > 0)
                        p->durable_version = v;
        }
        if (conn_pump(c) < 0)
                conn_close(c, "send failed");
}

static void handle_frame(struct sync_conn *c, const struct sync_frame *f) {
        struct hamgr_sync *s = c->sync;
        struct sync_peer_rt *p = c->peer;
        _cleanup_(replica_changes_done) struct replica_changes remote = {}, applied = {};
        const char *reason = NULL;
        int64_t offset;
        int r;

        p->frames_rx++;
        p->last_frame_usec = daemon_now(s->daemon);
        switch (f->type) {
        case SYNC_FRAME_HELLO:
        case SYNC_FRAME_HEARTBEAT:
                offset = (int64_t) (f->type == SYNC_FRAME_HELLO ? f->hello.clock_usec : f->heartbeat.clock_usec) -
                         (int64_t) wall_usec();
                p->offset_usec = offset;
                p->offset_known = true;
                if ((offset > (int64_t) SYNC_OFFSET_WARN_USEC || offset < -(int64_t) SYNC_OFFSET_WARN_USEC) &&
                    !p->offset_warned) {
                        /* A new master whose clock is behind the old one's
                         * last handshake has its initiations refused. */
                        log_peer(p, LOG_WARNING, "clock offset %+" PRId64 " ms exceeds 1 s: fix time sync, or "
                                 "clients may refuse this node's handshakes after a failover", offset / 1000);
                        p->offset_warned = true;
                } else if (offset <= (int64_t) SYNC_OFFSET_WARN_USEC && offset >= -(int64_t) SYNC_OFFSET_WARN_USEC)
                        p->offset_warned = false;
                return;
        case SYNC_FRAME_CHANGES: {
                size_t n_wg = s->daemon->config->n_wireguard;
                _cleanup_(freep) bool *pending = calloc(n_wg + 1, sizeof(bool)), *had_device = calloc(n_wg + 1, sizeof(bool));
                _cleanup_(freep) struct replica_device *before = calloc(n_wg + 1, sizeof(*before));
                _cleanup_(freep) struct sync_removal *removals = NULL;
                size_t n_removals = 0;

                if (!pending || !had_device || !before) {
                        conn_close(c, "out of memory");
                        return;
                }
                r = replica_changes_decode(f->changes.data, f->changes.len, &remote, &reason);
                if (r < 0) {
                        p->refused++;
                        log_peer(p, LOG_WARNING, "refused a change batch: %s", reason ? reason : strerror(-r));
                        conn_close(c, "bad change batch");
                        return;
                }
                for (size_t i = 0; i < n_wg; i++) {
                        const char *ifname = s->daemon->config->wireguard[i].interface;

                        /* A batch is written to the device by itself (below),
                         * unless the interface already waits for a whole
                         * write; no read of the device, no poll first. */
                        pending[i] = replica_device_needs_apply(s->replica, ifname);
                        had_device[i] = replica_device_record(s->replica, ifname, &before[i]) >= 0;
                }
                r = removals_before_merge(s, &remote, &removals, &n_removals);
                if (r >= 0)
                        r = replica_merge(s->replica, &remote, &applied);
                if (r < 0) {
                        /* Not merged, so not acknowledged: the watermark
                         * must not pass it. The next connection resends. */
                        sodium_memzero(before, (n_wg + 1) * sizeof(*before));
                        log_peer(p, LOG_WARNING, "cannot merge changes: %s", strerror(-r));
                        conn_close(c, "cannot merge a change batch");
                        return;
                }
                if (p->rx_catching_up)
                        p->rx_catchup_records += remote.n;
                {
                        struct replica_cursor last = replica_changes_last_cursor(&remote);

                        if (replica_cursor_compare(&last, &p->rx_watermark) > 0)
                                p->rx_watermark = last;
                }
                if (applied.n > 0) {
                        s->merges++;
                        /* The device first (that is the latency that counts),
                         * then the state file (once per catch-up, at its end),
                         * then the ack (which promises the save). An interface
                         * that waits for a whole write gets it when no
                         * catch-up runs (sync_flush_deferred(), or a poll). */
                        for (size_t i = 0; i < n_wg; i++) {
                                const char *ifname = s->daemon->config->wireguard[i].interface;

                                if (!replica_device_needs_apply(s->replica, ifname))
                                        continue;
                                if (pending[i] && s->rx_catchups > 0)
                                        continue;
                                if (pending[i])
                                        r = sync_apply_device(s, ifname, false);
                                else
                                        r = sync_apply_merged(s, ifname, &applied, had_device[i] ? &before[i] : NULL,
                                                              removals, n_removals);
                                if (r < 0)
                                        log_fields(LOG_WARNING, r, NULL, 0, NULL, NULL,
                                                   "sync: cannot apply changes to %s: %m", ifname);
                        }
                        if (p->rx_catching_up)
                                s->deferred = true;
                        else
                                sync_save(s);
                }
                sodium_memzero(before, (n_wg + 1) * sizeof(*before));
                {
                        struct sync_frame ack = { .type = SYNC_FRAME_ACK, .ack.seq = f->changes.seq };
                        if (conn_send(c, &ack) < 0)
                                conn_close(c, "send failed");
                }
                return;
        }
        case SYNC_FRAME_ACK:
                handle_ack(c, f->ack.seq);
                return;
        case SYNC_FRAME_RESUME:
                if (handle_resume(c, f) < 0)
                        conn_close(c, "bad resume");
                return;
        case SYNC_FRAME_CAUGHT_UP:
                if (p->rx_catching_up) {
                        uint64_t t = mono_usec();

                        p->rx_catching_up = false;
                        /* Saved now even if another catch-up still runs: the
                         * ack below promises it. */
                        if (s->deferred)
                                sync_save(s);
                        sync_catchup_done(s);
                        log_peer(p, LOG_INFO, "caught up: %" PRIu64 " records received in %" PRIu64 " ms, saved and "
                                 "applied in %" PRIu64 " ms (%zu records held)", p->rx_catchup_records,
                                 (t - p->rx_catchup_start) / USEC_PER_MSEC, (mono_usec() - t) / USEC_PER_MSEC,
                                 replica_n_records(s->replica));
                }
                {
                        /* After the save: the sender may now trust our acks
                         * for tombstone collection. */
                        struct sync_frame ack = { .type = SYNC_FRAME_ACK, .ack.seq = f->caught_up.seq };
                        if (conn_send(c, &ack) < 0)
                                conn_close(c, "send failed");
                }
                return;
        case SYNC_FRAME_CLOSE:
                conn_close(c, "closed by the peer");
                return;
        default:
                return;
        }
}

static int on_liveness(sd_event_source *src, uint64_t usec, void *userdata) {
        struct sync_conn *c = userdata;
        uint64_t now = daemon_now(c->sync->daemon);
        unsigned what = sync_liveness(c->last_rx, c->last_tx, now, SYNC_HEARTBEAT_USEC, SYNC_DEAD_USEC);

        if (what & SYNC_LIVENESS_DEAD) {
                conn_close(c, "no frame for 5 s");
                return 0;
        }
        if ((what & SYNC_LIVENESS_SEND_HEARTBEAT) && c->registered) {
                struct sync_frame hb = { .type = SYNC_FRAME_HEARTBEAT, .heartbeat.clock_usec = wall_usec() };
                if (conn_send(c, &hb) < 0) {
                        conn_close(c, "send failed");
                        return 0;
                }
        }
        sd_event_source_set_time(src, sync_liveness_next(c->last_rx, c->last_tx, SYNC_HEARTBEAT_USEC, SYNC_DEAD_USEC));
        return sd_event_source_set_enabled(src, SD_EVENT_ONESHOT);
}

static int on_conn_io(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        struct sync_conn *c = userdata;
        struct hamgr_sync *s = c->sync;
        uint8_t buf[SYNC_READ_CHUNK];
        const char *reason = NULL;
        uint8_t *out = NULL;
        size_t out_len = 0;
        ssize_t n;
        int r;

        if (c->connecting) {
                int err = 0;
                socklen_t l = sizeof(err);

                if (!(revents & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
                        return 0;
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
                if (err) {
                        snprintf(c->peer->last_error, sizeof(c->peer->last_error), "connect: %s", strerror(err));
                        conn_close(c, "connect failed");
                        return 0;
                }
                c->connecting = false;
                r = sync_session_take_output(c->session, &out, &out_len);
                if (r >= 0)
                        r = conn_queue(c, out, out_len);
                if (r < 0)
                        conn_close(c, "send failed");
                return 0;
        }
        if (revents & EPOLLOUT) {
                r = conn_flush(c);
                if (r < 0) {
                        conn_close(c, "send failed");
                        return 0;
                }
        }
        if (!(revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                return 0;
        n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return 0;
                conn_close(c, "receive failed");
                return 0;
        }
        if (n == 0) {
                if (sync_session_end(c->session, &reason) < 0 && c->peer)
                        log_peer(c->peer, LOG_WARNING, "stream ended early: %s", reason ? reason : "?");
                conn_close(c, "connection closed");
                return 0;
        }
        c->last_rx = daemon_now(s->daemon);
        r = sync_session_feed(c->session, buf, (size_t) n);
        if (r < 0) {
                conn_close(c, "input refused");
                return 0;
        }
        for (;;) {
                struct sync_frame f;

                r = sync_session_next_frame(c->session, &f, &reason);
                /* The handshake may have produced bytes to send (message 2,
                 * our stream header). */
                out = NULL;
                out_len = 0;
                if (sync_session_take_output(c->session, &out, &out_len) >= 0 && conn_queue(c, out, out_len) < 0) {
                        conn_close(c, "send failed");
                        return 0;
                }
                if (!c->registered && sync_session_is_established(c->session)) {
                        if (!c->peer) {
                                size_t idx;

                                if (sync_session_peer_index(c->session, &idx) < 0 || idx >= s->n_peers) {
                                        conn_close(c, "unknown peer");
                                        return 0;
                                }
                                c->peer = &s->peers[idx];
                        }
                        if (!conn_register(c)) {
                                conn_close(c, "duplicate connection");
                                return 0;
                        }
                }
                if (r < 0) {
                        const char *why = reason ? reason : "protocol error";

                        if (c->peer) {
                                c->peer->refused++;
                                log_peer(c->peer, LOG_WARNING, "connection refused: %s", why);
                        } else
                                log_warning("sync: connection from an unauthenticated node refused: %s", why);
                        conn_close(c, why);
                        return 0;
                }
                if (r == 0)
                        return 0;
                handle_frame(c, &f);
                /* handle_frame may have closed C. */
                for (struct sync_conn *k = s->conns; k; k = k->next)
                        if (k == c)
                                goto still_open;
                return 0;
        still_open:;
        }
}

static int conn_new(struct hamgr_sync *s, int fd, bool initiator, struct sync_peer_rt *peer, struct sync_conn **ret) {
        struct sync_conn *c;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c) {
                close(fd);
                return -ENOMEM;
        }
        c->sync = s;
        c->fd = fd;
        c->initiator = initiator;
        c->peer = peer;
        c->last_rx = c->last_tx = daemon_now(s->daemon);
        if (initiator) {
                uint64_t ts = wall_usec();

                /* Message 1 timestamps must grow even if the wall clock steps back. */
                if (ts <= s->last_timestamp)
                        ts = s->last_timestamp + 1;
                s->last_timestamp = ts;
                r = sync_session_new_initiator(&c->session, s->private_key, peer->config->public_key, ts);
        } else
                r = sync_session_new_responder(&c->session, s->private_key, s->pinned, s->n_peers);
        if (r >= 0)
                r = sd_event_add_io(s->daemon->event, &c->io, fd, EPOLLIN | EPOLLOUT, on_conn_io, c);
        if (r >= 0)
                r = sd_event_add_time_relative(s->daemon->event, &c->liveness, CLOCK_MONOTONIC, SYNC_HEARTBEAT_USEC,
                                               10 * USEC_PER_MSEC, on_liveness, c);
        c->next = s->conns;
        s->conns = c;
        if (r < 0) {
                conn_close(c, "setup failed");
                return r;
        }
        *ret = c;
        return 0;
}

static int on_accept(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        struct hamgr_sync *s = userdata;
        struct sync_conn *c;
        int cfd, one = 1;

        cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
                return 0;
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        (void) conn_new(s, cfd, false, NULL, &c);
        return 0;
}

static int on_dial(sd_event_source *src, uint64_t usec, void *userdata) {
        struct sync_peer_rt *p = userdata;
        struct hamgr_sync *s = p->sync;
        struct sync_conn *c;
        socklen_t len;
        int fd, one = 1, r;

        p->dial_timer = sd_event_source_disable_unref(p->dial_timer);
        if (p->conn)
                return 0;
        /* Back off before trying, so a refused connect does not spin. */
        p->backoff_usec = MIN(p->backoff_usec * 2, SYNC_BACKOFF_MAX_USEC);
        fd = socket(p->address.addr.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                peer_schedule_dial(p, p->backoff_usec);
                return 0;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        len = p->address.addr.sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
        if (connect(fd, &p->address.addr, len) < 0 && errno != EINPROGRESS) {
                snprintf(p->last_error, sizeof(p->last_error), "connect: %s", strerror(errno));
                close(fd);
                peer_schedule_dial(p, p->backoff_usec);
                return 0;
        }
        r = conn_new(s, fd, true, p, &c);
        if (r >= 0)
                c->connecting = true;
        else
                peer_schedule_dial(p, p->backoff_usec);
        return 0;
}

static void peer_schedule_dial(struct sync_peer_rt *p, uint64_t delay) {
        if (p->dial_timer || p->sync->daemon->stopping)
                return;
        (void) sd_event_add_time_relative(p->sync->daemon->event, &p->dial_timer, CLOCK_MONOTONIC, delay,
                                          10 * USEC_PER_MSEC, on_dial, p);
}

/* ---- polling -------------------------------------------------------------- */

static struct sync_poll_state *poll_state(struct hamgr_sync *s, const char *ifname) {
        struct sync_poll_state *grown;

        for (size_t i = 0; i < s->n_polls; i++)
                if (streq(s->polls[i].ifname, ifname))
                        return &s->polls[i];
        grown = realloc(s->polls, (s->n_polls + 1) * sizeof(*grown));
        if (!grown)
                return NULL;
        s->polls = grown;
        grown = &s->polls[s->n_polls++];
        *grown = (struct sync_poll_state) {};
        snprintf(grown->ifname, sizeof(grown->ifname), "%s", ifname);
        return grown;
}

/* Whether IFNAME's configuration is what the last complete poll saw, so
 * parsing and comparing it again would find nothing. DIGEST gets the digest
 * read now (valid when *ret_have). A digest is only trusted when the last
 * poll read the device after it was last written and compared it under
 * the same endpoint rule. */
static bool poll_unchanged(struct hamgr_sync *s, struct sync_poll_state *ps, enum wg_backend b, bool endpoints,
                           uint8_t digest[static WG_DIGEST_LEN], bool *ret_have) {
        *ret_have = ps && wg_get_digest(b, ps->ifname, digest) >= 0;
        return *ret_have && ps->valid && ps->endpoints == endpoints &&
               sodium_memcmp(ps->digest, digest, WG_DIGEST_LEN) == 0;
}

static void sync_poll_interface(struct hamgr_sync *s, const char *ifname) {
        _cleanup_(wg_device_freep) struct wg_device *dev = NULL;
        _cleanup_(replica_changes_done) struct replica_changes changes = {};
        struct sync_poll_state *ps = poll_state(s, ifname);
        enum wg_backend b = backend_of(s->daemon, ifname);
        uint8_t digest[WG_DIGEST_LEN];
        bool endpoints, have_digest;
        int r;

        /* While a catch-up runs, the device changes with every batch: reading
         * it whole each interval would cost more than the catch-up. Local
         * edits are found by the first poll after it. */
        if (s->rx_catchups > 0)
                return;
        if (replica_device_needs_apply(s->replica, ifname)) {
                if (ps)
                        ps->valid = false;
                r = sync_apply_device(s, ifname, false);
                if (r < 0)
                        return;
        }
        if (wg_follower_busy(s->daemon, ifname))
                return; /* the next poll, after the takeover, sees the real values */
        endpoints = wg_follower_active(s->daemon, ifname);
        if (poll_unchanged(s, ps, b, endpoints, digest, &have_digest))
                return;
        r = wg_get_device(b, ifname, &dev);
        if (r < 0)
                return;
        r = replica_apply_local_device(s->replica, ifname, dev, wall_usec() / 1000, endpoints, &changes);
        if (ps) {
                /* The digest was read before the device: if it changed in
                 * between, the next digest differs and the next poll reads. */
                ps->valid = r >= 0 && have_digest;
                ps->endpoints = endpoints;
                memcpy(ps->digest, digest, WG_DIGEST_LEN);
        }
        sodium_memzero(digest, sizeof(digest));
        if (r < 0 || changes.n == 0)
                return;
        s->local_changes += changes.n;
        log_fields(LOG_INFO, 0, NULL, 0, NULL, NULL, "sync: %zu local change%s on %s", changes.n,
                   changes.n == 1 ? "" : "s", ifname);
        /* Sent before saved: a crash in between only means the next poll
         * versions the same edit again. */
        pump_all(s);
        sync_save(s);
}

/* Drop the tombstones every configured node has acknowledged (and saved)
 * and that are older than the retention period. */
static void sync_collect(struct hamgr_sync *s) {
        _cleanup_(freep) struct replica_ack *acks = calloc(s->n_peers + 1, sizeof(*acks));
        uint64_t now_ms = wall_usec() / 1000, keep_ms = (uint64_t) s->config->tombstone_retention_s * 1000;
        size_t n = 0;

        if (!acks)
                return;
        for (size_t i = 0; i < s->n_peers; i++)
                acks[i] = (struct replica_ack) { s->peers[i].node, s->peers[i].durable_version };
        if (replica_collect_tombstones(s->replica, now_ms > keep_ms ? now_ms - keep_ms : 0, acks, s->n_peers, &n) < 0 ||
            n == 0)
                return;
        s->tombstones_collected += n;
        log_info("sync: collected %zu tombstone%s acknowledged by every node", n, n == 1 ? "" : "s");
        sync_save(s);
}

static int on_gc(sd_event_source *src, uint64_t usec, void *userdata) {
        struct hamgr_sync *s = userdata;

        sync_collect(s);
        sd_event_source_set_time(src, usec + SYNC_GC_USEC);
        return sd_event_source_set_enabled(src, SD_EVENT_ON);
}

void sync_poll_now(struct hamgr_daemon *d) {
        struct hamgr_sync *s = d->sync;

        if (!s)
                return;
        for (size_t i = 0; i < d->config->n_wireguard; i++)
                sync_poll_interface(s, d->config->wireguard[i].interface);
}

/* CHANGE applied to DEV (the replicated device), as wg(8) set would. */
static int device_apply_peer(struct wg_device *dev, const struct wg_peer *change) {
        struct wg_peer *p = NULL;

        for (size_t i = 0; i < dev->n_peers; i++)
                if (memcmp(dev->peers[i].public_key, change->public_key, WG_KEY_LEN) == 0)
                        p = &dev->peers[i];
        if (change->flags & WG_PEER_REMOVE_ME) {
                if (p) {
                        size_t i = (size_t) (p - dev->peers);

                        free(p->allowedips);
                        memmove(p, p + 1, (dev->n_peers - i - 1) * sizeof(*p));
                        dev->n_peers--;
                }
                return 0;
        }
        if (!p) {
                p = wg_device_add_peer(dev);
                if (!p)
                        return -ENOMEM;
                memcpy(p->public_key, change->public_key, WG_KEY_LEN);
                p->flags = WG_PEER_HAS_PUBLIC_KEY | WG_PEER_HAS_PRESHARED_KEY | WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL;
        }
        if (change->flags & WG_PEER_HAS_PRESHARED_KEY)
                memcpy(p->preshared_key, change->preshared_key, WG_KEY_LEN);
        if (change->flags & WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL)
                p->persistent_keepalive_interval = change->persistent_keepalive_interval;
        if (change->flags & WG_PEER_REPLACE_ALLOWEDIPS)
                p->n_allowedips = 0;
        for (size_t k = 0; k < change->n_allowedips; k++)
                if (wg_peer_add_allowedip(p, &change->allowedips[k]) < 0)
                        return -ENOMEM;
        return 0;
}

void sync_local_peer(struct hamgr_daemon *d, const char *ifname, const struct wg_peer *change) {
        _cleanup_(wg_device_freep) struct wg_device *dev = NULL;
        _cleanup_(replica_changes_done) struct replica_changes changes = {};
        struct hamgr_sync *s = d->sync;
        bool endpoints;
        int r;

        if (!s)
                return;
        endpoints = wg_follower_active(d, ifname);
        /* The device is the replica plus edits not polled yet; the
         * replica plus this change is what a poll would have compared. */
        if (replica_device_needs_apply(s->replica, ifname) || wg_follower_busy(d, ifname) ||
            replica_device_for(s->replica, ifname, endpoints, &dev) < 0 || device_apply_peer(dev, change) < 0) {
                sync_poll_now(d);
                return;
        }
        r = replica_apply_local_device(s->replica, ifname, dev, wall_usec() / 1000, endpoints, &changes);
        if (r < 0) {
                sync_poll_now(d);
                return;
        }
        if (changes.n == 0)
                return;
        s->local_changes += changes.n;
        log_fields(LOG_INFO, 0, NULL, 0, NULL, NULL, "sync: %zu local change%s on %s", changes.n,
                   changes.n == 1 ? "" : "s", ifname);
        pump_all(s);
        sync_save(s);
}

/* The next poll comes one interval after this one started, but never
 * sooner than three times its own duration after it ended: reading a
 * device of 50,000 peers from a starved wireguard-go can take seconds, and
 * back-to-back polls would then leave the event loop (VRRP adverts,
 * heartbeats) no time at all. On a machine that keeps up this never
 * stretches the interval. */
static int on_poll(sd_event_source *src, uint64_t usec, void *userdata) {
        struct hamgr_sync *s = userdata;
        uint64_t interval = (uint64_t) s->config->poll_interval_ms * USEC_PER_MSEC, t0 = mono_usec(), t1, next;

        sync_poll_now(s->daemon);
        t1 = mono_usec();
        next = usec + interval;
        if (t1 + 3 * (t1 - t0) > next)
                next = t1 + 3 * (t1 - t0);
        sd_event_source_set_time(src, next);
        return sd_event_source_set_enabled(src, SD_EVENT_ON);
}

/* ---- setup -------------------------------------------------------------- */

static int listen_on(struct hamgr_sync *s) {
        union wg_endpoint a;
        socklen_t len;
        int fd, one = 1, r;

        r = wg_endpoint_parse(s->config->listen, &a);
        if (r < 0)
                return log_error_errno(r, "sync: listen address '%s' is not IP:port", s->config->listen);
        fd = socket(a.addr.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        len = a.addr.sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
        if (bind(fd, &a.addr, len) < 0 || listen(fd, 16) < 0) {
                r = -errno;
                close(fd);
                return log_error_errno(r, "sync: cannot listen on %s: %m", s->config->listen);
        }
        s->listen_fd = fd;
        return sd_event_add_io(s->daemon->event, &s->listen_io, fd, EPOLLIN, on_accept, s);
}

int sync_start(struct hamgr_daemon *d) {
        const struct hamgr_sync_config *cfg = &d->config->sync;
        struct hamgr_sync *s;
        const char *reason = NULL;
        int r;

        if (!cfg->enabled)
                return 0;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        d->sync = s;
        s->daemon = d;
        s->config = cfg;
        s->listen_fd = -1;
        r = sync_key_load(cfg->private_key_file, s->private_key, &reason);
        if (r < 0)
                return log_error_errno(r, "sync: cannot use %s: %s", cfg->private_key_file, reason ? reason : "%m");
        r = wg_key_public_from_private(s->public_key, s->private_key);
        if (r < 0)
                return r;
        (void) mkdir(d->config->state_dir, 0700);
        r = replica_store_load(d->config->state_dir, s->private_key, replica_node_id(s->public_key), &s->replica,
                               &reason);
        if (r == -ENOENT)
                r = replica_new(replica_node_id(s->public_key), &s->replica);
        else if (r < 0) {
                /* Never half-applied: start empty, keep the file for inspection. */
                log_error("sync: %s/replica.state is unusable (%s); starting from the devices and the other nodes",
                          d->config->state_dir, reason ? reason : strerror(-r));
                r = replica_new(replica_node_id(s->public_key), &s->replica);
        } else
                log_info("sync: loaded %zu records from %s/replica.state", replica_n_records(s->replica),
                         d->config->state_dir);
        if (r < 0)
                return r;

        s->n_peers = cfg->n_peers;
        s->peers = calloc(cfg->n_peers ? cfg->n_peers : 1, sizeof(*s->peers));
        s->pinned = calloc(cfg->n_peers ? cfg->n_peers : 1, sizeof(*s->pinned));
        if (!s->peers || !s->pinned)
                return -ENOMEM;
        for (size_t i = 0; i < cfg->n_peers; i++) {
                struct sync_peer_rt *p = &s->peers[i];

                p->sync = s;
                p->config = &cfg->peers[i];
                p->node = replica_node_id(p->config->public_key);
                p->backoff_usec = SYNC_BACKOFF_MIN_USEC;
                memcpy(s->pinned[i].public_key, p->config->public_key, SYNC_KEY_LEN);
                r = wg_endpoint_parse(p->config->address, &p->address);
                if (r < 0)
                        return log_error_errno(r, "sync: peer %s: address '%s' is not IP:port", p->config->name,
                                               p->config->address);
                /* Both nodes dial; the connection the lower key initiates is
                 * the one kept, so the other node waits a little first and
                 * usually finds it already there: one full-state send, not two. */
                peer_schedule_dial(p, sync_connection_preferred(s->public_key, p->config->public_key, true)
                                              ? 0 : SYNC_BACKOFF_MAX_USEC / 10);
        }
        r = listen_on(s);
        if (r < 0)
                return r;
        /* What was replicated before the restart goes to the devices first;
         * the first poll then sees no difference. */
        for (size_t i = 0; i < d->config->n_wireguard; i++) {
                const char *ifname = d->config->wireguard[i].interface;

                r = sync_apply_device(s, ifname, true);
                if (r < 0 && r != -ENODEV)
                        log_fields(LOG_WARNING, r, NULL, 0, NULL, NULL, "sync: cannot restore %s: %m", ifname);
                else
                        sync_poll_interface(s, ifname); /* versions for what was added while we were down */
        }
        r = sd_event_add_time_relative(d->event, &s->poll_timer, CLOCK_MONOTONIC,
                                       (uint64_t) cfg->poll_interval_ms * USEC_PER_MSEC, 10 * USEC_PER_MSEC, on_poll, s);
        if (r < 0)
                return r;
        r = sd_event_add_time_relative(d->event, &s->gc_timer, CLOCK_MONOTONIC, SYNC_GC_USEC, USEC_PER_SEC, on_gc, s);
        if (r < 0)
                return r;
        log_info("sync: listening on %s, %zu peer%s", cfg->listen, cfg->n_peers, cfg->n_peers == 1 ? "" : "s");
        return 0;
}

void sync_stop(struct hamgr_daemon *d) {
        struct hamgr_sync *s = d->sync;

        if (!s)
                return;
        while (s->conns) {
                struct sync_conn *c = s->conns;

                if (c->registered) {
                        struct sync_frame bye = { .type = SYNC_FRAME_CLOSE, .close.reason = SYNC_CLOSE_NORMAL };
                        (void) conn_send(c, &bye);
                }
                c->peer = NULL; /* no redial */
                conn_close(c, "stopping");
        }
        for (size_t i = 0; i < s->n_peers; i++)
                sd_event_source_disable_unref(s->peers[i].dial_timer);
        sd_event_source_disable_unref(s->listen_io);
        sd_event_source_disable_unref(s->poll_timer);
        sd_event_source_disable_unref(s->gc_timer);
        if (s->listen_fd >= 0)
                close(s->listen_fd);
        if (s->replica)
                sync_save(s);
        replica_free(s->replica);
        sodium_memzero(s->private_key, sizeof(s->private_key));
        free(s->peers);
        free(s->pinned);
        free(s->polls);
        free(s);
        d->sync = NULL;
}

/* ---- status and peers ----------------------------------------------------- */

void sync_status_json(struct hamgr_daemon *d, struct buf *b) {
        struct hamgr_sync *s = d->sync;
        char key[WG_KEY_B64_LEN];

        if (!s) {
                buf_printf(b, "null");
                return;
        }
        wg_key_to_base64(key, s->public_key);
        buf_printf(b, "{\"public_key\":\"%s\",\"listen\":", key);
        buf_json_string(b, s->config->listen);
        buf_printf(b, ",\"records\":%zu,\"merges\":%" PRIu64 ",\"local_changes\":%" PRIu64 ",\"save_errors\":%" PRIu64
                      ",\"tombstones_collected\":%" PRIu64 ",\"peers\":[",
                   replica_n_records(s->replica), s->merges, s->local_changes, s->save_errors, s->tombstones_collected);
        for (size_t i = 0; i < s->n_peers; i++) {
                const struct sync_peer_rt *p = &s->peers[i];

                buf_printf(b, "%s{\"name\":", i ? "," : "");
                buf_json_string(b, p->config->name);
                buf_printf(b, ",\"address\":");
                buf_json_string(b, p->config->address);
                buf_printf(b, ",\"connected\":%s,\"caught_up\":%s,\"last_frame_ms_ago\":", p->conn ? "true" : "false",
                           p->conn && !p->rx_catching_up ? "true" : "false");
                if (p->last_frame_usec)
                        buf_printf(b, "%" PRIu64, (daemon_now(d) - p->last_frame_usec) / USEC_PER_MSEC);
                else
                        buf_printf(b, "null");
                buf_printf(b, ",\"clock_offset_ms\":");
                if (p->offset_known)
                        buf_printf(b, "%" PRId64, p->offset_usec / 1000);
                else
                        buf_printf(b, "null");
                buf_printf(b, ",\"pending_changes\":%" PRIu64 ",\"frames_rx\":%" PRIu64 ",\"frames_tx\":%" PRIu64
                              ",\"refused\":%" PRIu64 ",\"last_error\":",
                           p->tx_seq - p->acked_seq, p->frames_rx, p->frames_tx, p->refused);
                if (p->last_error[0])
                        buf_json_string(b, p->last_error);
                else
                        buf_printf(b, "null");
                buf_printf(b, "}");
        }
        buf_printf(b, "]}");
}

void sync_peers_json(struct hamgr_daemon *d, struct buf *b) {
        struct hamgr_sync *s = d->sync;
        _cleanup_(replica_changes_done) struct replica_changes all = {};
        char key[WG_KEY_B64_LEN], ep[80];

        buf_printf(b, "[");
        if (!s || replica_changes_since(s->replica, (struct hlc_ts) {}, &all) < 0) {
                buf_printf(b, "]");
                return;
        }
        for (size_t i = 0, n = 0; i < all.n; i++) {
                const struct replica_rec *rec = &all.recs[i];
                const struct replica_peer *p = &rec->peer;
                bool everywhere = true;
                const char *origin = NULL;

                if (rec->type != REPLICA_REC_PEER)
                        continue;
                for (size_t k = 0; k < s->n_peers; k++) {
                        if (s->peers[k].node == p->version.node)
                                origin = s->peers[k].config->name;
                        else if (hlc_compare(p->version, s->peers[k].acked_version) > 0)
                                everywhere = false;
                }
                if (p->version.node == replica_node(s->replica))
                        origin = d->config->node_name;
                wg_key_to_base64(key, p->public_key);
                buf_printf(b, "%s{\"interface\":", n++ ? "," : "");
                buf_json_string(b, rec->ifname);
                buf_printf(b, ",\"public_key\":\"%s\",\"removed\":%s,\"version\":\"%" PRIu64 ".%u\",\"origin\":", key,
                           p->deleted ? "true" : "false", p->version.wall_ms, p->version.logical);
                if (origin)
                        buf_json_string(b, origin);
                else
                        buf_printf(b, "\"%016" PRIx64 "\"", p->version.node);
                buf_printf(b, ",\"on_every_node\":%s,\"keepalive\":%u,\"allowed_ips\":[", everywhere ? "true" : "false",
                           p->keepalive);
                for (size_t k = 0; k < p->n_allowedips; k++) {
                        struct ip_address a = { .family = p->allowedips[k].family, .addr = p->allowedips[k].ip };
                        char abuf[INET6_ADDRSTRLEN];

                        buf_printf(b, "%s\"%s/%u\"", k ? "," : "", ip_address_to_string(&a, abuf, sizeof(abuf)),
                                   p->allowedips[k].cidr);
                }
                buf_printf(b, "],\"endpoint\":");
                if (!hlc_ts_is_zero(p->endpoint_version))
                        buf_json_string(b, wg_endpoint_to_string(&p->endpoint, ep, sizeof(ep)));
                else
                        buf_printf(b, "null");
                buf_printf(b, "}");
        }
        buf_printf(b, "]");
}

void sync_status_text(struct hamgr_daemon *d, struct buf *b) {
        struct hamgr_sync *s = d->sync;

        if (!s)
                return;
        buf_printf(b, "sync: %zu records, listening on %s\n", replica_n_records(s->replica), s->config->listen);
        for (size_t i = 0; i < s->n_peers; i++) {
                const struct sync_peer_rt *p = &s->peers[i];

                buf_printf(b, "sync peer %s (%s): %s", p->config->name, p->config->address,
                           p->conn ? "connected" : "not connected");
                if (p->last_frame_usec)
                        buf_printf(b, ", last frame %" PRIu64 " ms ago", (daemon_now(d) - p->last_frame_usec) / USEC_PER_MSEC);
                if (p->offset_known)
                        buf_printf(b, ", clock offset %+" PRId64 " ms", p->offset_usec / 1000);
                buf_printf(b, ", %" PRIu64 " pending change batch%s", p->tx_seq - p->acked_seq,
                           p->tx_seq - p->acked_seq == 1 ? "" : "es");
                if (!p->conn && p->last_error[0])
                        buf_printf(b, " (%s)", p->last_error);
                buf_printf(b, "\n");
        }
}

static bool sync_config_equal(const struct hamgr_sync_config *a, const struct hamgr_sync_config *b) {
        if (a->enabled != b->enabled || a->poll_interval_ms != b->poll_interval_ms || a->n_peers != b->n_peers ||
            !streq(a->listen ?: "", b->listen ?: "") || !streq(a->private_key_file ?: "", b->private_key_file ?: ""))
                return false;
        for (size_t i = 0; i < a->n_peers; i++)
                if (!streq(a->peers[i].name, b->peers[i].name) || !streq(a->peers[i].address, b->peers[i].address) ||
                    memcmp(a->peers[i].public_key, b->peers[i].public_key, WG_KEY_LEN) != 0)
                        return false;
        return true;
}

int sync_reload(struct hamgr_daemon *d) {
        struct hamgr_sync *s = d->sync;

        if (s && sync_config_equal(s->config, &d->config->sync)) {
                /* Same settings: keep the connections, point at the new copy. */
                s->config = &d->config->sync;
                for (size_t i = 0; i < s->n_peers; i++)
                        s->peers[i].config = &d->config->sync.peers[i];
                return 0;
        }
        sync_stop(d);
        return sync_start(d);
}
