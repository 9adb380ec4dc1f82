/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Replication on the event loop: TCP connections to the pinned nodes (both
 * sides dial, one connection per pair survives), the encrypted session of
 * sync/sync_proto.c, the replica of sync/replica.c kept in state_dir,
 * polling of the local WireGuard devices and applying what other nodes
 * changed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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
#include "wg/kernel.h"
#include "wg/key.h"
#include "wg/wg.h"
#include "wireguard.h"

#define SYNC_HEARTBEAT_USEC   USEC_PER_SEC
#define SYNC_DEAD_USEC        (5 * USEC_PER_SEC)
#define SYNC_BACKOFF_MIN_USEC (250 * USEC_PER_MSEC)
#define SYNC_BACKOFF_MAX_USEC (10 * USEC_PER_SEC)
#define SYNC_OFFSET_WARN_USEC USEC_PER_SEC
#define SYNC_READ_CHUNK       65536
#define SYNC_REFUSAL_LOG_USEC (60 * USEC_PER_SEC)

/* Nothing unauthenticated may hold resources for long: a connection has
 * this long from accept (or dial) to its first authenticated frame. */
#define SYNC_HANDSHAKE_USEC   (5 * USEC_PER_SEC)
/* Accepted connections still without an authenticated frame, per source
 * address and in total. When full, the oldest one goes: a real peer's
 * handshake takes one round trip, so it completes unless the flooder opens
 * more than this many connections within that round trip. */
#define SYNC_PENDING_PER_SOURCE 4
#define SYNC_PENDING_MAX        64
/* Accepts are refused while fewer descriptors than this remain below the
 * RLIMIT_NOFILE soft limit: VRRP sockets, health probes, netlink and the
 * control socket need them more. */
#define SYNC_FD_RESERVE       64
#define SYNC_ACCEPT_BURST     64
#define SYNC_ACCEPT_PAUSE_USEC (100 * USEC_PER_MSEC)
/* At most one summary line of refused connections per this interval. */
#define SYNC_REFUSED_LOG_USEC (10 * USEC_PER_SEC)

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
        uint64_t tx_seq;                     /* last CHANGES sequence sent */
        uint64_t acked_seq;
        struct hlc_ts acked_version;         /* newest record the peer confirmed */
        struct hlc_ts sent_version[64];      /* per in-flight seq (mod 64): newest record in it */
        uint64_t frames_rx, frames_tx, refused;
        uint64_t refused_batches;            /* by the rules of replica_merge_from() */
        struct ratelimit refusal_log;
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
        bool merge_failed;                   /* a CHANGES frame of this connection was not merged */
        bool peer_caught_up;                 /* the peer sent CAUGHT_UP: it is not bootstrapping */
        bool registered;                    /* the first authenticated frame arrived */
        bool hello_sent;
        bool pending;                       /* accepted, counted in n_pending */
        struct in6_addr source;             /* accepted: the remote address (IPv4 mapped) */
        uint64_t started;                   /* accept or dial */
        sd_event_source *rekey;             /* we dialled it: time for a fresh handshake */
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
        sd_event_source *bootstrap_timer;    /* the grace period while the replica bootstraps */
        uint64_t last_timestamp;
        uint64_t merges, local_changes, save_errors;
        uint64_t refused_batches, refused_local_changes;
        struct ratelimit saturated_log;
        int fd_limit;                        /* RLIMIT_NOFILE soft limit */
        sd_event_source *accept_pause;       /* accept() ran out of descriptors */
        size_t n_pending;
        /* Connections refused before or during authentication; see
         * note_refused(). */
        uint64_t refused_unknown_source, refused_fd_reserve, handshakes_evicted, handshake_timeouts,
                handshakes_failed;
        uint64_t handshakes, rekeys;         /* connections authenticated; of them, replacing one */
        struct ratelimit refused_log;
        char last_refusal[128];
};

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
 * own; remote endpoints go to the takeover instead. KEEP_EXTRA_PEERS (at
 * start, and while bootstrapping): peers the replica does not know stay. */
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
        if (keep_extra_peers || replica_bootstrapping(s->replica)) {
                /* At start, peers on the device that the store does not know
                 * were added while hamgr was not running: keep them, the
                 * first poll replicates them. But a peer the replica holds
                 * as a tombstone was revoked: it goes, or the poll would
                 * give it a version newer than the removal (a device
                 * recreated from an old configuration) and revive it on
                 * every node. */
                size_t kept = 0;

                for (size_t i = 0; i < change->n_peers; i++) {
                        struct wg_peer *p = &change->peers[i];

                        if ((p->flags & WG_PEER_REMOVE_ME) && replica_peer_removed(s->replica, ifname, p->public_key)) {
                                char key[WG_KEY_B64_LEN], field[sizeof("PEER=") + WG_KEY_B64_LEN];

                                wg_key_to_base64(key, p->public_key);
                                snprintf(field, sizeof(field), "PEER=%s", key);
                                log_fields(LOG_NOTICE, 0, NULL, 0, NULL, (const char *const[]) { field, NULL },
                                           "sync: removing peer %s from %s: it was revoked", key, ifname);
                        } else if (p->flags & WG_PEER_REMOVE_ME) {
                                free(p->allowedips);
                                continue;
                        }
                        change->peers[kept++] = *p;
                }
                change->n_peers = kept;
        }
        if (change->n_peers > 0 || change->flags != 0) {
                snprintf(change->name, sizeof(change->name), "%s", ifname);
                r = wg_set_device(b, change);
                if (r < 0) {
                        if (wg_backend_resolve(b, ifname) == WG_BACKEND_KERNEL && wg_kernel_last_error()[0])
                                log_fields(LOG_WARNING, r, NULL, 0, NULL, NULL, "sync: the kernel refused the change to %s: %s",
                                           ifname, wg_kernel_last_error());
                        return r;
                }
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

static void sync_save(struct hamgr_sync *s) {
        int r;

        /* A bootstrapping replica is no state of this node yet: saved, it
         * would be loaded after a restart as if complete. */
        if (replica_bootstrapping(s->replica))
                return;
        r = replica_store_save(s->daemon->config->state_dir, s->private_key, s->replica);
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

static int send_changes(struct sync_conn *c, const struct replica_changes *changes) {
        struct sync_peer_rt *p = c->peer;
        struct sync_frame f = { .type = SYNC_FRAME_CHANGES };
        struct hlc_ts newest = {};
        uint8_t *buf = NULL;
        size_t len = 0;
        int r;

        if (changes->n == 0)
                return 0;
        r = replica_changes_encode(changes, &buf, &len);
        if (r < 0)
                return r;
        for (size_t i = 0; i < changes->n; i++) {
                const struct replica_rec *rec = &changes->recs[i];
                struct hlc_ts v = rec->type == REPLICA_REC_PEER ? rec->peer.version : rec->device.version;

                if (hlc_compare(v, newest) > 0)
                        newest = v;
                if (rec->type == REPLICA_REC_PEER && hlc_compare(rec->peer.endpoint_version, newest) > 0)
                        newest = rec->peer.endpoint_version;
        }
        f.changes.seq = ++p->tx_seq;
        f.changes.data = buf;
        f.changes.len = len;
        p->sent_version[f.changes.seq % ELEMENTSOF(p->sent_version)] = newest;
        r = conn_send(c, &f);
        sodium_memzero(buf, len);
        free(buf);
        return r;
}

static void broadcast_changes(struct hamgr_sync *s, const struct replica_changes *changes) {
        for (size_t i = 0; i < s->n_peers; i++) {
                struct sync_conn *c = s->peers[i].conn;

                if (c && send_changes(c, changes) < 0)
                        conn_close(c, "send failed");
        }
}

static void peer_schedule_dial(struct sync_peer_rt *p, uint64_t delay);
static void sync_poll_interface(struct hamgr_sync *s, const char *ifname);
static void sync_bootstrap_end(struct hamgr_sync *s);

/* The pinned peer at the other end once the handshake told us (our dial:
 * from the start; accepted: once message 1 verified). Not proof yet: only
 * an authenticated frame is (see conn_register()). */
static struct sync_peer_rt *conn_claimed_peer(const struct sync_conn *c) {
        size_t idx;

        if (c->peer)
                return c->peer;
        if (c->session && sync_session_peer_index(c->session, &idx) >= 0 && idx < c->sync->n_peers)
                return &c->sync->peers[idx];
        return NULL;
}

/* A newer connection to P finished its handshake and will take over as soon
 * as its first frame arrives (a re-handshake, or the peer's replacement of
 * a connection it dropped). */
static bool peer_has_successor(struct hamgr_sync *s, const struct sync_peer_rt *p, const struct sync_conn *old) {
        for (struct sync_conn *k = s->conns; k; k = k->next)
                if (k != old && !k->registered && k->session && sync_session_is_established(k->session) &&
                    conn_claimed_peer(k) == p)
                        return true;
        return false;
}

static void conn_close(struct sync_conn *c, const char *why) {
        struct hamgr_sync *s = c->sync;
        struct sync_conn **pp;

        for (pp = &s->conns; *pp; pp = &(*pp)->next)
                if (*pp == c) {
                        *pp = c->next;
                        break;
                }
        if (c->pending) {
                c->pending = false;
                s->n_pending--;
        }
        if (c->peer && c->peer->conn == c) {
                c->peer->conn = NULL;
                if (peer_has_successor(s, c->peer, c))
                        log_peer(c->peer, LOG_INFO, "old connection closed (%s), a new one is taking over", why);
                else {
                        log_peer(c->peer, LOG_NOTICE, "disconnected (%s)", why);
                        snprintf(c->peer->last_error, sizeof(c->peer->last_error), "%s", why);
                }
                peer_schedule_dial(c->peer, c->peer->backoff_usec);
        } else if (c->initiator && c->peer && !c->peer->conn)
                peer_schedule_dial(c->peer, c->peer->backoff_usec);
        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->liveness);
        sd_event_source_disable_unref(c->rekey);
        sync_session_free(c->session);
        if (c->fd >= 0)
                close(c->fd);
        free(c->out);
        free(c);
}

/* After the catch-up: CAUGHT_UP tells a bootstrapping peer that it now
 * holds a complete state, which a bootstrapping node cannot claim (it
 * sends its catch-up again, with the marker, when its bootstrap ends). */
static int send_caught_up(struct sync_conn *c) {
        if (replica_bootstrapping(c->sync->replica))
                return 0;
        return conn_send(c, &(struct sync_frame) { .type = SYNC_FRAME_CAUGHT_UP });
}

static void peer_dial(struct sync_peer_rt *p);

static int on_rekey(sd_event_source *src, uint64_t usec, void *userdata) {
        struct sync_conn *c = userdata;
        struct sync_peer_rt *p = c->peer;
        bool dialling = false;

        if (!p || p->conn != c)
                return 0;
        for (struct sync_conn *k = c->sync->conns; k; k = k->next)
                if (k != c && k->initiator && k->peer == p && !k->registered)
                        dialling = true;
        /* The new connection replaces this one once authenticated; until
         * then this one carries on. Retry if the attempt fails. */
        if (!dialling)
                peer_dial(p);
        sd_event_source_set_time(src, usec + 2 * SYNC_HANDSHAKE_USEC);
        return sd_event_source_set_enabled(src, SD_EVENT_ONESHOT);
}

/* The first authenticated frame arrived on C: only now may it become the
 * peer's connection, so a replayed message 1 (which yields keys nobody can
 * use) never displaces the real one. Keep it unless the pair already has
 * the one the deterministic rule prefers; between connections of the same
 * direction the newer wins (the dialler's re-handshake). */
static bool conn_register(struct sync_conn *c) {
        struct hamgr_sync *s = c->sync;
        struct sync_peer_rt *p = c->peer;
        struct sync_conn *old = p->conn && p->conn != c ? p->conn : NULL;
        _cleanup_(replica_changes_done) struct replica_changes all = {};
        int r;

        if (old && old->initiator != c->initiator &&
            !sync_connection_preferred(s->public_key, p->config->public_key, c->initiator))
                return false; /* keep the existing one */
        if (c->pending) {
                c->pending = false;
                s->n_pending--;
        }
        p->conn = c;
        c->registered = true;
        s->handshakes++;
        if (old) {
                struct sync_frame bye = { .type = SYNC_FRAME_CLOSE, .close.reason = SYNC_CLOSE_DUPLICATE };

                if (old->initiator == c->initiator)
                        s->rekeys++;
                (void) conn_send(old, &bye);
                conn_close(old, old->initiator == c->initiator ? "re-handshake" : "replaced by the preferred connection");
        }
        p->backoff_usec = SYNC_BACKOFF_MIN_USEC;
        p->dial_timer = sd_event_source_disable_unref(p->dial_timer);
        p->last_error[0] = '\0';
        if (old)
                log_peer(p, LOG_INFO, "new session (%s)", c->initiator ? "dialled" : "accepted");
        else
                log_peer(p, LOG_NOTICE, "connected (%s)", c->initiator ? "dialled" : "accepted");
        if (c->initiator) {
                r = sd_event_add_time_relative(s->daemon->event, &c->rekey, CLOCK_MONOTONIC,
                                               (uint64_t) s->config->rekey_interval_ms * USEC_PER_MSEC,
                                               100 * USEC_PER_MSEC, on_rekey, c);
                if (r < 0)
                        return false;
        }
        /* Everything, the first time on each connection (a re-handshake's
         * too: what was in flight on the old one is covered): simple and
         * always correct; the peer's merge drops what it already has. The
         * sequence numbers and acknowledgements live in the peer, not the
         * connection, so they continue. */
        if (replica_changes_since(s->replica, (struct hlc_ts) {}, &all) < 0 || send_changes(c, &all) < 0)
                return false;
        return send_caught_up(c) >= 0;
}

/* ---- what a peer may send ------------------------------------------------ */

/* Merge a batch from P under the rules of replica_merge_from(): P writes
 * for itself and relays for the other configured nodes; versions may be as
 * far ahead as the furthest-ahead clock measured among the nodes (stamps
 * carry that clock through any relay), which the core caps. */
static int merge_from_peer(struct sync_peer_rt *p, const struct replica_changes *remote,
                           struct replica_changes *applied, const char **reason) {
        struct hamgr_sync *s = p->sync;
        _cleanup_(freep) uint64_t *relay = calloc(s->n_peers ? s->n_peers : 1, sizeof(*relay));
        struct replica_source src = { .sender = p->node, .relay = relay, .now_ms = wall_usec() / 1000 };

        if (!relay)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_peers; i++) {
                const struct sync_peer_rt *o = &s->peers[i];

                if (o != p)
                        relay[src.n_relay++] = o->node;
                if (o->offset_known && o->offset_usec / 1000 > src.offset_ms)
                        src.offset_ms = o->offset_usec / 1000;
        }
        return replica_merge_from(s->replica, remote, &src, applied, reason);
}

/* Count a refused batch and say why at WARNING (PEER=), at most once a
 * minute per peer with the number held back since. */
static void peer_batch_refused(struct sync_peer_rt *p, const char *reason) {
        char peer_field[80], more[64] = "";
        const char *extra[] = { peer_field, NULL };
        uint64_t suppressed = 0;

        p->refused++;
        p->refused_batches++;
        p->sync->refused_batches++;
        if (!ratelimit_below(&p->refusal_log, daemon_now(p->sync->daemon), &suppressed))
                return;
        snprintf(peer_field, sizeof(peer_field), "PEER=%s", p->config->name);
        if (suppressed > 0)
                snprintf(more, sizeof(more), " (%" PRIu64 " more since)", suppressed);
        log_fields(LOG_WARNING, 0, NULL, 0, NULL, extra, "sync %s: refused a change batch: %s%s", p->config->name,
                   reason ? reason : "?", more);
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
        case SYNC_FRAME_CHANGES:
                r = replica_changes_decode(f->changes.data, f->changes.len, &remote, &reason);
                if (r < 0) {
                        p->refused++;
                        log_peer(p, LOG_WARNING, "refused a change batch: %s", reason ? reason : strerror(-r));
                        conn_close(c, "bad change batch");
                        return;
                }
                /* Record local edits first: applying the merged state must
                 * not undo a peer added by hand since the last poll. */
                for (size_t i = 0; i < s->daemon->config->n_wireguard; i++)
                        sync_poll_interface(s, s->daemon->config->wireguard[i].interface);
                r = merge_from_peer(p, &remote, &applied, &reason);
                if (r == -EPERM) {
                        char why[sizeof(p->last_error)];

                        /* Not acknowledged, and the connection restarts:
                         * a batch is merged whole or not at all, so the
                         * next catch-up sends it again rather than
                         * something after it. */
                        peer_batch_refused(p, reason);
                        snprintf(why, sizeof(why), "change batch refused: %s", reason);
                        p->backoff_usec = SYNC_BACKOFF_MAX_USEC;
                        conn_close(c, why);
                        return;
                }
                if (r < 0) {
                        c->merge_failed = true;
                        log_peer(p, LOG_WARNING, "cannot merge changes: %s", strerror(-r));
                        return;
                }
                if (applied.n > 0) {
                        s->merges++;
                        sync_save(s);
                        for (size_t i = 0; i < s->daemon->config->n_wireguard; i++) {
                                const char *ifname = s->daemon->config->wireguard[i].interface;

                                if (!replica_device_needs_apply(s->replica, ifname))
                                        continue;
                                r = sync_apply_device(s, ifname, false);
                                if (r < 0)
                                        log_fields(LOG_WARNING, r, NULL, 0, NULL, NULL,
                                                   "sync: cannot apply changes to %s: %m", ifname);
                        }
                }
                {
                        struct sync_frame ack = { .type = SYNC_FRAME_ACK, .ack.seq = f->changes.seq };
                        if (conn_send(c, &ack) < 0)
                                conn_close(c, "send failed");
                }
                return;
        case SYNC_FRAME_ACK:
                if (f->ack.seq <= p->tx_seq && f->ack.seq > p->acked_seq) {
                        struct hlc_ts v = p->sent_version[f->ack.seq % ELEMENTSOF(p->sent_version)];

                        p->acked_seq = f->ack.seq;
                        if (hlc_compare(v, p->acked_version) > 0)
                                p->acked_version = v;
                }
                return;
        case SYNC_FRAME_CLOSE:
                conn_close(c, "closed by the peer");
                return;
        case SYNC_FRAME_CAUGHT_UP:
                c->peer_caught_up = true;
                if (!replica_bootstrapping(s->replica))
                        return;
                if (c->merge_failed) {
                        log_peer(p, LOG_WARNING, "full state incomplete (a change batch did not merge); still waiting");
                        return;
                }
                log_peer(p, LOG_NOTICE, "merged its full state: the devices are versioned from now on");
                sync_bootstrap_end(s);
                return;
        default:
                return;
        }
}

static void note_refused(struct hamgr_sync *s, const char *what, const struct in6_addr *from);

static int on_liveness(sd_event_source *src, uint64_t usec, void *userdata) {
        struct sync_conn *c = userdata;
        struct hamgr_sync *s = c->sync;
        uint64_t now = daemon_now(s->daemon);
        unsigned what;

        if (!c->registered) {
                /* Bytes are no sign of life before a frame authenticated:
                 * trickling them must not hold the connection. */
                if (now >= c->started + SYNC_HANDSHAKE_USEC) {
                        s->handshake_timeouts++;
                        if (c->initiator && c->peer)
                                snprintf(c->peer->last_error, sizeof(c->peer->last_error), "handshake timeout");
                        else
                                note_refused(s, "handshake timeout", &c->source);
                        conn_close(c, "handshake timeout");
                        return 0;
                }
                sd_event_source_set_time(src, c->started + SYNC_HANDSHAKE_USEC);
                return sd_event_source_set_enabled(src, SD_EVENT_ONESHOT);
        }
        what = sync_liveness(c->last_rx, c->last_tx, now, SYNC_HEARTBEAT_USEC, SYNC_DEAD_USEC);
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
                /* Each side's HELLO goes out as soon as it has keys: the
                 * other side registers the connection when it arrives.
                 * Sent to a replayer it is unreadable (no one has e_i). */
                if (!c->hello_sent && sync_session_is_established(c->session)) {
                        struct sync_frame hello = { .type = SYNC_FRAME_HELLO };

                        c->hello_sent = true;
                        hello.hello.clock_usec = wall_usec();
                        snprintf(hello.hello.name, sizeof(hello.hello.name), "%s", s->daemon->config->node_name);
                        if (conn_send(c, &hello) < 0) {
                                conn_close(c, "send failed");
                                return 0;
                        }
                }
                if (r < 0) {
                        const char *why = reason ? reason : "protocol error";

                        if (c->peer && (c->registered || c->initiator)) {
                                c->peer->refused++;
                                log_peer(c->peer, LOG_WARNING, "connection refused: %s", why);
                        } else {
                                /* Anyone at a peer's address gets here: one
                                 * summary line now and then, not one per try. */
                                s->handshakes_failed++;
                                note_refused(s, why, &c->source);
                        }
                        conn_close(c, why);
                        return 0;
                }
                if (r == 0)
                        return 0;
                /* Only a frame that authenticated is a sign of life. */
                c->last_rx = daemon_now(s->daemon);
                if (!c->registered) {
                        c->peer = conn_claimed_peer(c);
                        if (!c->peer) {
                                conn_close(c, "unknown peer");
                                return 0;
                        }
                        if (f.type == SYNC_FRAME_CLOSE) {
                                conn_close(c, "closed by the peer");
                                return 0;
                        }
                        if (!conn_register(c)) {
                                conn_close(c, "duplicate connection");
                                return 0;
                        }
                        sd_event_source_set_time(c->liveness, sync_liveness_next(c->last_rx, c->last_tx,
                                                                                 SYNC_HEARTBEAT_USEC, SYNC_DEAD_USEC));
                        sd_event_source_set_enabled(c->liveness, SD_EVENT_ONESHOT);
                }
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
        c->started = c->last_rx = c->last_tx = daemon_now(s->daemon);
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
                r = sd_event_add_time(s->daemon->event, &c->liveness, CLOCK_MONOTONIC, c->started + SYNC_HANDSHAKE_USEC,
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

/* The IP address of A (its port ignored), IPv4 as IPv4-mapped IPv6, so
 * that a listener on [::] compares its IPv4 callers too. */
static void address_key(const union wg_endpoint *a, struct in6_addr *ret) {
        if (a->addr.sa_family == AF_INET) {
                *ret = (struct in6_addr) {};
                ret->s6_addr[10] = ret->s6_addr[11] = 0xff;
                memcpy(&ret->s6_addr[12], &a->addr4.sin_addr, 4);
        } else if (a->addr.sa_family == AF_INET6)
                *ret = a->addr6.sin6_addr;
        else
                *ret = (struct in6_addr) {};
}

static const char *address_key_to_string(const struct in6_addr *a, char *buf, size_t size) {
        if (IN6_IS_ADDR_V4MAPPED(a))
                return inet_ntop(AF_INET, &a->s6_addr[12], buf, size);
        return inet_ntop(AF_INET6, a, buf, size);
}

/* One summary line per SYNC_REFUSED_LOG_USEC at most: a flood must not turn
 * into a flood of log lines. The counters in the status are exact. */
static void note_refused(struct hamgr_sync *s, const char *what, const struct in6_addr *from) {
        char addr[INET6_ADDRSTRLEN] = "?";
        uint64_t suppressed = 0;

        (void) address_key_to_string(from, addr, sizeof(addr));
        snprintf(s->last_refusal, sizeof(s->last_refusal), "%s from %s", what, addr);
        if (!ratelimit_below(&s->refused_log, daemon_now(s->daemon), &suppressed))
                return;
        log_warning("sync: refused connection (%s); %" PRIu64 " more since the last such line; so far %" PRIu64
                    " from addresses that are not sync peers, %" PRIu64 " over the handshake limits, %" PRIu64
                    " handshake timeouts, %" PRIu64 " failed handshakes, %" PRIu64 " for lack of file descriptors",
                    s->last_refusal, suppressed, s->refused_unknown_source, s->handshakes_evicted,
                    s->handshake_timeouts, s->handshakes_failed, s->refused_fd_reserve);
}

static bool source_is_peer(const struct hamgr_sync *s, const struct in6_addr *from) {
        for (size_t i = 0; i < s->n_peers; i++) {
                struct in6_addr k;

                address_key(&s->peers[i].address, &k);
                if (memcmp(&k, from, sizeof(k)) == 0)
                        return true;
        }
        return false;
}

/* Of two connections in handshake, the one to drop first: one whose
 * message 1 has not verified (a peer's has, within a round trip), then
 * the older. */
static bool evict_before(const struct sync_conn *a, const struct sync_conn *b) {
        bool ea, eb;

        if (!b)
                return true;
        ea = sync_session_is_established(a->session);
        eb = sync_session_is_established(b->session);
        if (ea != eb)
                return !ea;
        return a->started <= b->started;
}

/* Make room for one more connection in handshake from FROM. */
static void pending_make_room(struct hamgr_sync *s, const struct in6_addr *from) {
        struct sync_conn *same = NULL, *any = NULL, *victim = NULL;
        size_t n_same = 0;

        for (struct sync_conn *k = s->conns; k; k = k->next) {
                if (!k->pending)
                        continue;
                if (memcmp(&k->source, from, sizeof(*from)) == 0) {
                        n_same++;
                        if (evict_before(k, same))
                                same = k;
                }
                if (evict_before(k, any))
                        any = k;
        }
        if (n_same >= SYNC_PENDING_PER_SOURCE)
                victim = same;
        else if (s->n_pending >= SYNC_PENDING_MAX)
                victim = any;
        if (!victim)
                return;
        s->handshakes_evicted++;
        note_refused(s, "handshake limit reached, oldest dropped", &victim->source);
        conn_close(victim, "handshake limit");
}

static int on_accept_resume(sd_event_source *src, uint64_t usec, void *userdata) {
        struct hamgr_sync *s = userdata;

        s->accept_pause = sd_event_source_disable_unref(s->accept_pause);
        return sd_event_source_set_enabled(s->listen_io, SD_EVENT_ON);
}

static void sync_accepted(struct hamgr_sync *s, int cfd, const union wg_endpoint *from) {
        struct in6_addr key;
        struct sync_conn *c;
        int one = 1;

        address_key(from, &key);
        /* Before any cryptography: only the configured nodes' addresses
         * may start a handshake at all. */
        if (!source_is_peer(s, &key)) {
                close(cfd);
                s->refused_unknown_source++;
                note_refused(s, "not a sync peer's address", &key);
                return;
        }
        /* Descriptors are allocated lowest first: all below CFD are in
         * use, so this compares what is left with the reserve. */
        if (cfd >= s->fd_limit - SYNC_FD_RESERVE) {
                close(cfd);
                s->refused_fd_reserve++;
                note_refused(s, "file descriptor reserve reached", &key);
                return;
        }
        pending_make_room(s, &key);
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (conn_new(s, cfd, false, NULL, &c) < 0)
                return;
        c->source = key;
        c->pending = true;
        s->n_pending++;
}

static int on_accept(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        struct hamgr_sync *s = userdata;

        /* A burst at a time: refusing a stranger costs one accept and one
         * close, and the backlog should not fill up with them. */
        for (unsigned i = 0; i < SYNC_ACCEPT_BURST; i++) {
                union wg_endpoint from = {};
                socklen_t len = sizeof(from);
                int cfd = accept4(fd, &from.addr, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (cfd < 0) {
                        if ((errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) &&
                            !s->accept_pause) {
                                /* The listener stays readable: do not spin on it. */
                                s->refused_fd_reserve++;
                                note_refused(s, "out of file descriptors", &(struct in6_addr) {});
                                (void) sd_event_source_set_enabled(s->listen_io, SD_EVENT_OFF);
                                (void) sd_event_add_time_relative(s->daemon->event, &s->accept_pause, CLOCK_MONOTONIC,
                                                                  SYNC_ACCEPT_PAUSE_USEC, 10 * USEC_PER_MSEC,
                                                                  on_accept_resume, s);
                        }
                        return 0;
                }
                sync_accepted(s, cfd, &from);
        }
        return 0;
}

/* Open a connection to P: the first, a redial, or a re-handshake while the
 * current one carries on. Returns 0 when under way. */
static int peer_dial_one(struct sync_peer_rt *p) {
        struct sync_conn *c;
        socklen_t len;
        int fd, one = 1, r;

        fd = socket(p->address.addr.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        len = p->address.addr.sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
        if (connect(fd, &p->address.addr, len) < 0 && errno != EINPROGRESS) {
                r = -errno;
                snprintf(p->last_error, sizeof(p->last_error), "connect: %s", strerror(-r));
                close(fd);
                return r;
        }
        r = conn_new(p->sync, fd, true, p, &c);
        if (r < 0)
                return r;
        c->connecting = true;
        return 0;
}

static void peer_dial(struct sync_peer_rt *p) {
        (void) peer_dial_one(p);
}

static int on_dial(sd_event_source *src, uint64_t usec, void *userdata) {
        struct sync_peer_rt *p = userdata;

        p->dial_timer = sd_event_source_disable_unref(p->dial_timer);
        if (p->conn)
                return 0;
        /* Back off before trying, so a refused connect does not spin. */
        p->backoff_usec = MIN(p->backoff_usec * 2, SYNC_BACKOFF_MAX_USEC);
        if (peer_dial_one(p) < 0)
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

static void sync_poll_interface(struct hamgr_sync *s, const char *ifname) {
        _cleanup_(wg_device_freep) struct wg_device *dev = NULL;
        _cleanup_(replica_changes_done) struct replica_changes changes = {};
        int r;

        if (replica_device_needs_apply(s->replica, ifname)) {
                r = sync_apply_device(s, ifname, false);
                if (r < 0)
                        return;
        }
        if (wg_follower_busy(s->daemon, ifname))
                return; /* the next poll, after the takeover, sees the real values */
        r = wg_get_device(backend_of(s->daemon, ifname), ifname, &dev);
        if (r < 0)
                return;
        r = replica_apply_local_device(s->replica, ifname, dev, wall_usec() / 1000, wg_follower_active(s->daemon, ifname),
                                       &changes);
        if (r == -EOVERFLOW) {
                uint64_t suppressed = 0;
                char more[64] = "";

                /* The clock has no version left: refusing the change is
                 * better than reusing one, which would let the nodes
                 * disagree for good. Only a state written before versions
                 * were bounded can get here. */
                s->refused_local_changes++;
                if (!ratelimit_below(&s->saturated_log, daemon_now(s->daemon), &suppressed))
                        return;
                if (suppressed > 0)
                        snprintf(more, sizeof(more), " (%" PRIu64 " more since)", suppressed);
                log_error("sync: change on %s refused: the replica's clock has no version left; move %s/replica.state "
                          "away on every node to start over%s",
                          ifname, s->daemon->config->state_dir, more);
                return;
        }
        if (r < 0 || changes.n == 0)
                return;
        s->local_changes += changes.n;
        log_fields(LOG_INFO, 0, NULL, 0, NULL, NULL, "sync: %zu local change%s on %s", changes.n,
                   changes.n == 1 ? "" : "s", ifname);
        sync_save(s);
        broadcast_changes(s, &changes);
}

void sync_poll_now(struct hamgr_daemon *d) {
        struct hamgr_sync *s = d->sync;

        if (!s)
                return;
        for (size_t i = 0; i < d->config->n_wireguard; i++)
                sync_poll_interface(s, d->config->wireguard[i].interface);
}

static int on_poll(sd_event_source *src, uint64_t usec, void *userdata) {
        struct hamgr_sync *s = userdata;

        sync_poll_now(s->daemon);
        sd_event_source_set_time(src, usec + (uint64_t) s->config->poll_interval_ms * USEC_PER_MSEC);
        return sd_event_source_set_enabled(src, SD_EVENT_ON);
}

/* ---- bootstrap ------------------------------------------------------------ */

/* The replica holds a complete state now (merged from a peer, or the grace
 * period is over): the devices are versioned from here on. */
static void sync_bootstrap_end(struct hamgr_sync *s) {
        const struct hamgr_config *cfg = s->daemon->config;

        s->bootstrap_timer = sd_event_source_disable_unref(s->bootstrap_timer);
        /* Merged changes still waiting go out as during the bootstrap, so
         * that peers added here while hamgr waited are polled, not dropped. */
        for (size_t i = 0; i < cfg->n_wireguard; i++)
                if (replica_device_needs_apply(s->replica, cfg->wireguard[i].interface))
                        (void) sync_apply_device(s, cfg->wireguard[i].interface, true);
        replica_bootstrap_end(s->replica);
        sync_save(s);
        sync_poll_now(s->daemon);
        /* A peer that has not said it holds a complete state may be waiting
         * for ours: the catch-up of conn_register() again, now complete. */
        for (size_t i = 0; i < s->n_peers; i++) {
                _cleanup_(replica_changes_done) struct replica_changes all = {};
                struct sync_conn *c = s->peers[i].conn;

                if (!c || c->peer_caught_up)
                        continue;
                if (replica_changes_since(s->replica, (struct hlc_ts) {}, &all) < 0 || send_changes(c, &all) < 0 ||
                    send_caught_up(c) < 0)
                        conn_close(c, "send failed");
        }
}

static int on_bootstrap_grace(sd_event_source *src, uint64_t usec, void *userdata) {
        struct hamgr_sync *s = userdata;

        log_warning("sync: no full state from any peer within %" PRIu32 " s (bootstrap_grace_s); versioning the "
                    "devices as they are: a peer revoked while this node's state was lost may come back",
                    s->config->bootstrap_grace_s);
        sync_bootstrap_end(s);
        return 0;
}

bool sync_bootstrapping(struct hamgr_daemon *d) {
        return d->sync && replica_bootstrapping(d->sync->replica);
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
        if (bind(fd, &a.addr, len) < 0 || listen(fd, 128) < 0) {
                r = -errno;
                close(fd);
                return log_error_errno(r, "sync: cannot listen on %s: %m", s->config->listen);
        }
        s->listen_fd = fd;
        return sd_event_add_io(s->daemon->event, &s->listen_io, fd, EPOLLIN, on_accept, s);
}

/* Records written by nodes no longer configured become ours, so that a
 * node added under a new key accepts them (it refuses unknown writers). */
static void adopt_orphans(struct hamgr_sync *s) {
        _cleanup_(replica_changes_done) struct replica_changes made = {};
        _cleanup_(freep) uint64_t *known = calloc(s->n_peers ? s->n_peers : 1, sizeof(*known));
        int r;

        if (!known)
                return;
        for (size_t i = 0; i < s->n_peers; i++)
                known[i] = s->peers[i].node;
        r = replica_adopt_orphans(s->replica, known, s->n_peers, wall_usec() / 1000, &made);
        if (r < 0) {
                log_warning_errno(r, "sync: cannot take over the records of nodes no longer configured: %m");
                return;
        }
        if (made.n == 0)
                return;
        log_info("sync: took over %zu record%s written by nodes no longer configured", made.n, made.n == 1 ? "" : "s");
        s->local_changes += made.n;
        sync_save(s);
}

/* hamgr waits with epoll only, so it can use the hard limit (the unit sets
 * LimitNOFILE); returns the soft limit now in force. */
static int fd_limit_raise(void) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return 1024;
        if (rl.rlim_cur < rl.rlim_max) {
                struct rlimit raised = { .rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max };

                if (setrlimit(RLIMIT_NOFILE, &raised) >= 0)
                        rl = raised;
        }
        return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > INT_MAX ? INT_MAX : (int) rl.rlim_cur;
}

int sync_start(struct hamgr_daemon *d) {
        const struct hamgr_sync_config *cfg = &d->config->sync;
        struct hamgr_sync *s;
        const char *reason = NULL;
        bool lost;
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
        s->saturated_log.interval_usec = SYNC_REFUSAL_LOG_USEC;
        s->refused_log.interval_usec = SYNC_REFUSED_LOG_USEC;
        s->fd_limit = fd_limit_raise();
        r = sync_key_load(cfg->private_key_file, s->private_key, &reason);
        if (r < 0)
                return log_error_errno(r, "sync: cannot use %s: %s", cfg->private_key_file, reason ? reason : "%m");
        r = wg_key_public_from_private(s->public_key, s->private_key);
        if (r < 0)
                return r;
        (void) mkdir(d->config->state_dir, 0700);
        r = replica_store_load(d->config->state_dir, s->private_key, replica_node_id(s->public_key), &s->replica,
                               &reason);
        lost = r < 0;
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
        if (lost && cfg->n_peers > 0 && cfg->bootstrap_grace_s > 0) {
                /* Without its state this node cannot tell a revoked peer
                 * still on its device from a new one: it versions nothing
                 * until a peer's full state arrived, or the grace is over. */
                replica_bootstrap_begin(s->replica);
                r = sd_event_add_time_relative(d->event, &s->bootstrap_timer, CLOCK_MONOTONIC,
                                               (uint64_t) cfg->bootstrap_grace_s * USEC_PER_SEC, 10 * USEC_PER_MSEC,
                                               on_bootstrap_grace, s);
                if (r < 0)
                        return r;
                log_notice("sync: no replicated state; waiting up to %" PRIu32 " s for the full state of a peer "
                           "before versioning the devices", cfg->bootstrap_grace_s);
        }

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
                p->refusal_log.interval_usec = SYNC_REFUSAL_LOG_USEC;
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
        adopt_orphans(s);
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
        sd_event_source_disable_unref(s->accept_pause);
        sd_event_source_disable_unref(s->poll_timer);
        sd_event_source_disable_unref(s->bootstrap_timer);
        if (s->listen_fd >= 0)
                close(s->listen_fd);
        if (s->replica)
                sync_save(s);
        replica_free(s->replica);
        sodium_memzero(s->private_key, sizeof(s->private_key));
        free(s->peers);
        free(s->pinned);
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
                      ",\"bootstrapping\":%s,\"refused_batches\":%" PRIu64 ",\"refused_local_changes\":%" PRIu64,
                   replica_n_records(s->replica), s->merges, s->local_changes, s->save_errors,
                   replica_bootstrapping(s->replica) ? "true" : "false", s->refused_batches, s->refused_local_changes);
        buf_printf(b, ",\"handshakes\":%" PRIu64 ",\"rekeys\":%" PRIu64 ",\"handshakes_pending\":%zu"
                      ",\"refused_unknown_source\":%" PRIu64 ",\"handshake_timeouts\":%" PRIu64
                      ",\"handshakes_failed\":%" PRIu64 ",\"handshakes_evicted\":%" PRIu64
                      ",\"refused_fd_reserve\":%" PRIu64 ",\"rekey_interval_ms\":%" PRIu32 ",\"peers\":[",
                   s->handshakes, s->rekeys, s->n_pending, s->refused_unknown_source, s->handshake_timeouts,
                   s->handshakes_failed, s->handshakes_evicted, s->refused_fd_reserve, s->config->rekey_interval_ms);
        for (size_t i = 0; i < s->n_peers; i++) {
                const struct sync_peer_rt *p = &s->peers[i];

                buf_printf(b, "%s{\"name\":", i ? "," : "");
                buf_json_string(b, p->config->name);
                buf_printf(b, ",\"address\":");
                buf_json_string(b, p->config->address);
                buf_printf(b, ",\"connected\":%s,\"last_frame_ms_ago\":", p->conn ? "true" : "false");
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
                              ",\"refused\":%" PRIu64 ",\"refused_batches\":%" PRIu64 ",\"last_error\":",
                           p->tx_seq - p->acked_seq, p->frames_rx, p->frames_tx, p->refused, p->refused_batches);
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
        if (replica_bootstrapping(s->replica))
                buf_printf(b, "sync: no state of its own yet: waiting for a peer's full state (bootstrap_grace_s %" PRIu32
                              ")\n", s->config->bootstrap_grace_s);
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
            a->bootstrap_grace_s != b->bootstrap_grace_s ||
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
