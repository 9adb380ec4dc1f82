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
#include <malloc.h>
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

#include "common/clock.h"
#include "common/macro.h"
#include "daemon.h"
#include "json-util.h"
#include "log.h"
#include "strbuf.h"
#include "sync-file.h"
#include "sync-save.h"
#include "sync.h"
#include "sync/replica.h"
#include "sync/store.h"
#include "sync/sync_proto.h"
#include "wg/kernel.h"
#include "wg/key.h"
#include "wg/wg.h"
#include "wg-io.h"
#include "wireguard.h"

#define SYNC_HEARTBEAT_USEC   USEC_PER_SEC
#define SYNC_DEAD_USEC        (5 * USEC_PER_SEC)
#define SYNC_BACKOFF_MIN_USEC (250 * USEC_PER_MSEC)
#define SYNC_BACKOFF_MAX_USEC (10 * USEC_PER_SEC)
#define SYNC_OFFSET_WARN_USEC USEC_PER_SEC
#define SYNC_READ_CHUNK       65536
#define SYNC_REFUSAL_LOG_USEC (60 * USEC_PER_SEC)
#define SYNC_DISCONNECT_LOG_USEC USEC_PER_SEC

/* Nothing unauthenticated may hold resources for long: a connection has
 * this long from accept (or dial) to its first authenticated frame. */
#define SYNC_HANDSHAKE_USEC   (5 * USEC_PER_SEC)
/* Accepted connections still without an authenticated frame, per source
 * address and in total. When full, the oldest one goes: a real peer's
 * handshake takes one round trip, so it completes unless the flooder opens
 * more than this many connections within that round trip. */
#define SYNC_PENDING_PER_SOURCE 4
#define SYNC_PENDING_MAX        64
/* How long a new connection is safe from the per-source limit (only the
 * total one can drop it). A peer's message 1 can come well after its
 * connection was accepted (its loop writes it once the connect completes),
 * and a flood from the same address would otherwise evict it meanwhile. */
#define SYNC_PENDING_GRACE_USEC (100 * USEC_PER_MSEC)
/* Accepts are refused while fewer descriptors than this remain below the
 * RLIMIT_NOFILE soft limit: VRRP sockets, health probes, netlink and the
 * control socket need them more. */
#define SYNC_FD_RESERVE       64
#define SYNC_ACCEPT_BURST     64
#define SYNC_ACCEPT_PAUSE_USEC (100 * USEC_PER_MSEC)
/* At most one summary line of refused connections per this interval. */
#define SYNC_REFUSED_LOG_USEC (10 * USEC_PER_SEC)
/* A catch-up goes as a stream of batches this large at most (a record of
 * 10000 allowed IPs still fits one), at most SYNC_WINDOW of them unacknowledged:
 * neither side ever holds the whole state as one message. The receiver writes
 * each batch to its device before it reads the next, and wireguard-go takes
 * about 100 µs per new peer: 1024 keep the event loop (VRRP adverts,
 * heartbeats) turning every ~0.1-0.2 s. */
#define SYNC_BATCH_RECORDS    1024
#define SYNC_BATCH_BYTES      (1024u * 1024u)
#define SYNC_WINDOW           8
/* Acknowledgements one connection may have waiting for a save: an honest
 * sender waits for them after SYNC_WINDOW batches (and one CAUGHT_UP). */
#define SYNC_ACKS_WAITING_MAX 64
/* Where reads would hold wireguard-go's configuration lock against
 * hamgr's own writes (after a write of hamgr's, apply_end(); on a passive
 * device, poll_schedule()), a read comes at most once per this many times
 * the last read's length: a tenth of the time. */
#define SYNC_READ_SHARE       10
/* Tombstone collection runs this often, or every half retention period
 * when that is shorter (at least every second): a pass reads every record. */
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
        uint64_t disconnected_usec;          /* when the kept connection last closed */
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
        uint64_t refused_batches;            /* by the rules of replica_merge_from() */
        struct ratelimit refusal_log;
        uint64_t disconnects;                /* its connections that closed with none to take over */
        struct ratelimit disconnect_log;
        uint64_t truncated;                  /* its streams that ended without CLOSE */
        char last_error[96];
};

/* An acknowledgement that promises a save, until the save ended. */
struct conn_ack {
        uint64_t seq;
        uint64_t save;                      /* sync_saver_request()'s number; 0: none needed */
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
        bool rx_from_zero;                   /* our RESUME asked for the peer's full state */
        bool registered;                    /* the first authenticated frame arrived */
        bool hello_sent;
        bool pending;                       /* accepted, counted in n_pending */
        struct in6_addr source;             /* accepted: the remote address (IPv4 mapped) */
        uint64_t started;                   /* accept or dial */
        sd_event_source *rekey;             /* we dialled it: time for a fresh handshake */
        struct conn_ack *acks;              /* waiting for a save, in order (conn_ack()) */
        size_t n_acks;
};

struct hamgr_sync {
        struct hamgr_daemon *daemon;
        const struct hamgr_sync_config *config;
        uint8_t private_key[SYNC_KEY_LEN];
        uint8_t public_key[SYNC_KEY_LEN];
        struct replica *replica;
        struct sync_saver *saver;            /* its state file, written beside the loop */
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
        /* Merged during a catch-up, not yet saved and applied. */
        unsigned rx_catchups;
        bool deferred;
        sd_event_source *gc_timer;
        uint64_t tombstones_collected;
        struct sync_poll_state **polls;      /* per interface polled */
        size_t n_polls;
        uint64_t polls_dropped;              /* reads overtaken by a write of hamgr's */
};

/* What a versioned read of a device found (status: reads_*). */
enum poll_read {
        POLL_READ_UNCHANGED,                 /* the same as the index: nothing parsed */
        POLL_READ_PARTIAL,                   /* the peers that differ from the index */
        POLL_READ_WHOLE,                     /* the whole device */
        _POLL_READ_MAX,
};

static const char *const poll_read_names[_POLL_READ_MAX] = {
        [POLL_READ_UNCHANGED] = "reads_unchanged",
        [POLL_READ_PARTIAL] = "reads_partial",
        [POLL_READ_WHOLE] = "reads_whole",
};

/*
 * What the last full poll of an interface saw, to skip the next one, and
 * the read in flight. The read runs beside the event loop (wg-io.h), so
 * hamgr may write the device or change the replica while it runs: such a
 * read may show the device before the write, and versioned, it would undo
 * the write (a revoked peer coming back). GENERATION counts those writes;
 * a read that finds it moved on is dropped and another one started.
 */
struct sync_poll_state {
        struct hamgr_sync *sync;
        char ifname[IFNAMSIZ];
        struct wg_index *index;              /* of the last read, if it stands for the device (NULL: read whole) */
        bool index_stale;                    /* hamgr wrote the device since the read in flight started */
        uint8_t (*forget)[WG_KEY_LEN];       /* peers hamgr wrote while the read in flight holds INDEX */
        size_t n_forget;
        uint64_t reads[_POLL_READ_MAX];      /* versioned, by kind (status) */
        /* The device was missing at the last read (ENODEV); once there, it
         * is written whole twice, SYNC_SETTLE_USEC apart (SETTLING), before
         * anything on it is versioned. */
        bool device_gone;
        bool settling;
        bool endpoints;                      /* polled with may_write_endpoints */
        struct wg_io *io;                    /* the read in flight */
        uint64_t generation;                 /* writes by hamgr to the device or its replica */
        uint64_t io_generation;              /* GENERATION when the read in flight started */
        bool io_endpoints;                   /* its may_write_endpoints */
        bool io_passive;                     /* its device's follower was passive (poll_schedule()) */
        bool again;                          /* a poll was asked for while one ran */
        /* A whole write (sync_apply_device()) in flight: its read, then
         * its write. */
        struct wg_io *apply_io;
        unsigned local_writes;               /* the control socket's, in flight */
        bool apply_again;
        uint64_t apply_generation;           /* replica_device_generation() it wrote */
        uint64_t last_write_wall_usec;       /* CLOCK_REALTIME: the device last answered such a write (status) */
        size_t apply_peers;
        bool apply_whole;                    /* the whole state, not one merged batch */
        uint64_t due;                        /* CLOCK_MONOTONIC: the next periodic read starts */
        uint64_t last_read_usec;             /* how long the last read took */
        uint64_t io_started;                 /* CLOCK_MONOTONIC: the read in flight started */
        /* The configuration (all but handshake times and counters) was the
         * same when a read that found it as INDEX says had ended
         * (STABLE_SINCE: the one that made INDEX, or the first unchanged
         * one since hamgr last changed anything) and when the last read
         * that found it unchanged started (STABLE_UNTIL), and hamgr
         * changed nothing of it between; 0: not known
         * (sync_device_unchanged_between()). */
        uint64_t stable_since, stable_until;
};

/* hamgr changed IFNAME's replicated state (NULL: any interface's): a
 * read in flight predates it. The index of the last read still stands
 * for the device, which only an apply changes (and that writes it). */
static void poll_overtake(struct hamgr_sync *s, const char *ifname) {
        for (size_t i = 0; i < s->n_polls; i++)
                if (!ifname || streq(s->polls[i]->ifname, ifname)) {
                        s->polls[i]->generation++;
                        s->polls[i]->stable_since = s->polls[i]->stable_until = 0;
                }
}

/* hamgr wrote IFNAME's device (NULL: any): a read in flight predates it,
 * and the index of the last one is no proof of anything: the next read
 * is whole. */
static void poll_invalidate(struct hamgr_sync *s, const char *ifname) {
        poll_overtake(s, ifname);
        for (size_t i = 0; i < s->n_polls; i++)
                if (!ifname || streq(s->polls[i]->ifname, ifname)) {
                        struct sync_poll_state *ps = s->polls[i];

                        ps->index = wg_index_free(ps->index);
                        ps->index_stale = true;
                        free(ps->forget);
                        ps->forget = NULL;
                        ps->n_forget = 0;
                }
}

/* hamgr writes the peer KEY of PS's device, and versions what it writes
 * (or reads it whole if the write fails): the index stands for every
 * other peer still, so the next read stays partial and lists KEY among
 * the changed, for the replica to compare (wg_index_forget()). A read in
 * flight holds the index: it is forgotten there when the read ends. */
static void poll_forget(struct sync_poll_state *ps, const uint8_t key[static WG_KEY_LEN]) {
        if (ps->index) {
                if (wg_index_forget(ps->index, key) < 0)
                        ps->index = wg_index_free(ps->index);
                return;
        }
        if (!ps->io || ps->index_stale)
                return; /* no index: the next read is whole anyway */
        if (ps->n_forget % 16 == 0) {
                uint8_t (*grown)[WG_KEY_LEN] = reallocarray(ps->forget, ps->n_forget + 16, sizeof(*grown));

                if (!grown) {
                        ps->index_stale = true;
                        return;
                }
                ps->forget = grown;
        }
        memcpy(ps->forget[ps->n_forget++], key, WG_KEY_LEN);
}

/* INDEX (taken; NULL: none) is PS's again, with what was written meanwhile
 * forgotten. */
static void poll_keep_index(struct sync_poll_state *ps, struct wg_index *index) {
        for (size_t i = 0; index && i < ps->n_forget; i++)
                if (wg_index_forget(index, ps->forget[i]) < 0)
                        index = wg_index_free(index);
        free(ps->forget);
        ps->forget = NULL;
        ps->n_forget = 0;
        wg_index_free(ps->index);
        ps->index = index;
}

void sync_device_written(struct hamgr_daemon *d, const char *ifname) {
        if (d->sync)
                poll_invalidate(d->sync, ifname);
}

static struct sync_poll_state *poll_find(const struct hamgr_sync *s, const char *ifname) {
        for (size_t i = 0; i < s->n_polls; i++)
                if (streq(s->polls[i]->ifname, ifname))
                        return s->polls[i];
        return NULL;
}

bool sync_device_unchanged_between(struct hamgr_daemon *d, const char *ifname, uint64_t from_usec,
                                   uint64_t to_usec) {
        const struct sync_poll_state *ps = d->sync ? poll_find(d->sync, ifname) : NULL;

        return ps && ps->stable_since != 0 && ps->stable_since <= from_usec && to_usec <= ps->stable_until;
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

static struct sync_poll_state *poll_state(struct hamgr_sync *s, const char *ifname);
static void sync_poll_interface(struct hamgr_sync *s, const char *ifname, bool now);
static void poll_timer_arm(struct hamgr_sync *s, bool tried);

/*
 * What CURRENT (a read of IFNAME; sorted here) lacks of the replicated
 * state, as a change into *RET (NULL: nothing). Endpoints are never
 * written here: a passive device has none, and an active one learns its
 * own; remote endpoints go to the takeover instead.
 *
 * A peer on the device that the replica does not know stays: it was added
 * while hamgr was not running, or by hand since the last poll (or during a
 * catch-up, which is not polled), and the next poll versions it. Removing
 * it would lose that edit, as it once did when the write after a
 * catch-up came before the first poll after a start. But a peer the
 * replica holds as a tombstone was revoked: it goes, or the poll would
 * give it a version newer than the removal (a device recreated from an
 * old configuration) and revive it on every node.
 */
static int apply_change(struct hamgr_sync *s, const char *ifname, struct wg_device *current, struct wg_device **ret) {
        _cleanup_(wg_device_freep) struct wg_device *desired = NULL, *change = NULL;
        int r;

        r = replica_device_for(s->replica, ifname, false, &desired);
        if (r < 0)
                return r;
        r = wg_device_diff(current, desired, false, &change);
        if (r < 0)
                return r;
        {
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
        if (change->n_peers == 0 && change->flags == 0)
                return 0;
        snprintf(change->name, sizeof(change->name), "%s", ifname);
        *ret = TAKE_PTR(change);
        return 0;
}

/* The endpoints the replica holds for IFNAME go to its follower, for a
 * takeover. */
static void apply_learn(struct hamgr_sync *s, const char *ifname) {
        _cleanup_(wg_device_freep) struct wg_device *with_endpoints = NULL;
        _cleanup_(freep) uint64_t *learned = NULL;

        if (replica_device_for(s->replica, ifname, true, &with_endpoints) < 0)
                return;
        learned = calloc(with_endpoints->n_peers + 1, sizeof(*learned));
        if (!learned)
                return;
        /* Versions order the replica; their wall part is when the endpoint
         * was seen, to compare with what this node saw. */
        for (size_t i = 0; i < with_endpoints->n_peers; i++)
                learned[i] = replica_endpoint_version(s->replica, ifname, with_endpoints->peers[i].public_key).wall_ms;
        wg_follower_learn(s->daemon, ifname, with_endpoints, learned);
}

static void apply_begin(struct sync_poll_state *ps);

/* A device that appears is usually being set up by a tool that creates
 * the link first and adds the peers next (wg-quick: the link, then wg
 * setconf; a test: wg set per peer). Written once at once, it might lack
 * a revoked peer that the tool adds a moment later, which the next poll
 * would take for a peer added by hand: written whole once more this much
 * later, before any poll, the revoked peer is removed instead. */
#define SYNC_SETTLE_USEC (2 * USEC_PER_SEC)

/* Whether anything writes PS's device beside the loop: sync's own write,
 * or hamgr peer edits (sync_local_write_begin()). A write of sync's waits
 * for them to end (PS->apply_again). */
static bool device_writing(const struct sync_poll_state *ps) {
        return ps->apply_io || ps->local_writes > 0;
}

/* Whether a whole write of IFNAME is in flight (sync_apply_device()). */
static bool apply_running(const struct hamgr_sync *s, const char *ifname) {
        const struct sync_poll_state *ps = poll_find(s, ifname);

        return ps && ps->apply_io;
}

/* The end of a write of PS's interface, whole or of one merged batch
 * (WRITTEN: it succeeded, or there was nothing to write). The state is
 * confirmed only if it did not move on meanwhile; otherwise, or when
 * asked again, a whole write follows. Then the poll that was held back. */
static void apply_end(struct sync_poll_state *ps, bool written) {
        struct hamgr_sync *s = ps->sync;

        if (written)
                ps->last_write_wall_usec = wall_usec();
        if (written && ps->settling && ps->apply_whole) {
                /* The first write since the device appeared: the second,
                 * the one that confirms, comes when it has settled. */
                ps->due = clock_monotonic_usec() + SYNC_SETTLE_USEC;
                if (!s->daemon->stopping)
                        poll_timer_arm(s, false);
                return;
        }
        if (written) {
                if (ps->apply_whole)
                        apply_learn(s, ps->ifname);
                if (replica_device_generation(s->replica, ps->ifname) != ps->apply_generation)
                        ps->apply_again = true;
                else if (!ps->apply_again)
                        (void) replica_device_applied(s->replica, ps->ifname);
        } else {
                /* The interface still waits for a whole write (a merge, or
                 * the load at start, set it), which the poll that comes due
                 * retries; polls wait for it. */
                ps->due = clock_monotonic_usec() + (uint64_t) s->config->poll_interval_ms * USEC_PER_MSEC;
        }
        if (s->daemon->stopping)
                return;
        if (ps->apply_again) {
                ps->apply_again = false;
                apply_begin(ps);
                return;
        }
        /* A read follows each write: it finds what the write met (a peer
         * added or removed by hand meanwhile), and it is the poll held back
         * if one came due. Not at once but after ten times the last read's
         * length: on a standby every merged batch would otherwise be
         * followed by a read of the whole device, which holds wireguard-go's
         * lock (250 ms at 50,000 peers) against the next batch's write. */
        if (written) {
                uint64_t now = clock_monotonic_usec();

                ps->due = MIN(ps->due, now + SYNC_READ_SHARE * ps->last_read_usec);
                if (ps->again || now >= ps->due) {
                        ps->again = false;
                        sync_poll_interface(s, ps->ifname, true);
                }
        }
        poll_timer_arm(s, false);
}

static void on_apply_written(struct wg_io *io, struct wg_io_result *res, void *userdata) {
        struct sync_poll_state *ps = userdata;
        struct hamgr_sync *s = ps->sync;

        ps->apply_io = NULL;
        /* Reads in flight started before the write landed. A merged batch
         * that landed leaves the index standing but for its peers, which
         * sync_apply_merged() forgot; anything else makes the next read
         * whole. */
        if (ps->apply_whole || res->r < 0)
                poll_invalidate(s, ps->ifname);
        else
                poll_overtake(s, ps->ifname);
        if (res->r < 0) {
                if (res->kernel_error[0])
                        log_fields(LOG_WARNING, res->r, NULL, 0, NULL, NULL, "sync: the kernel refused the change to %s: %s",
                                   ps->ifname, res->kernel_error);
                log_fields(LOG_WARNING, res->r, NULL, 0, NULL, NULL, "sync: cannot apply changes to %s: %m", ps->ifname);
                apply_end(ps, false);
                return;
        }
        log_fields(LOG_INFO, 0, NULL, 0, NULL, NULL, "sync: applied %zu peer change%s to %s in %" PRIu64 " ms",
                   ps->apply_peers, ps->apply_peers == 1 ? "" : "s", ps->ifname, res->usec / USEC_PER_MSEC);
        apply_end(ps, true);
}

static void on_apply_read(struct wg_io *io, struct wg_io_result *res, void *userdata) {
        struct sync_poll_state *ps = userdata;
        struct hamgr_sync *s = ps->sync;
        _cleanup_(wg_device_freep) struct wg_device *change = NULL;
        int r;

        ps->apply_io = NULL;
        r = res->r;
        if (r >= 0) {
                /* Appeared since the last read: this write, then one more
                 * (apply_end()); after that one, none. */
                ps->settling = ps->device_gone;
                ps->device_gone = false;
        }
        if (r == -ENODEV) {
                ps->device_gone = true;
                ps->settling = false;
                /* No device (yet): not worth a warning every interval. */
                log_fields(LOG_DEBUG, r, NULL, 0, NULL, NULL, "sync: cannot read %s to apply changes: %m", ps->ifname);
                apply_end(ps, false);
                return;
        }
        if (r >= 0) {
                /* What the change is computed from; see apply_end(). */
                ps->apply_generation = replica_device_generation(s->replica, ps->ifname);
                r = apply_change(s, ps->ifname, res->device, &change);
        }
        if (r == -ENOENT || (r >= 0 && !change)) {
                apply_end(ps, true);
                return;
        }
        if (r >= 0) {
                ps->apply_peers = change->n_peers;
                poll_invalidate(s, ps->ifname);
                r = wg_io_write(s->daemon->event, backend_of(s->daemon, ps->ifname), TAKE_PTR(change), on_apply_written,
                                ps, &ps->apply_io);
        }
        if (r < 0) {
                log_fields(LOG_WARNING, r, NULL, 0, NULL, NULL, "sync: cannot apply changes to %s: %m", ps->ifname);
                apply_end(ps, false);
        }
}

static void apply_begin(struct sync_poll_state *ps) {
        struct hamgr_sync *s = ps->sync;
        int r;

        ps->apply_whole = true;
        poll_invalidate(s, ps->ifname);
        r = wg_io_read(s->daemon->event, backend_of(s->daemon, ps->ifname), ps->ifname, WG_IO_DEVICE, NULL,
                       on_apply_read, ps, &ps->apply_io);
        if (r < 0) {
                log_fields(LOG_WARNING, r, NULL, 0, NULL, NULL, "sync: cannot read %s to apply changes: %m", ps->ifname);
                apply_end(ps, false);
        }
}

/*
 * Write the replicated state of IFNAME to its device, whole: read the
 * device, write what it lacks, both beside the event loop (50,000 new
 * peers take wireguard-go seconds, and a backup whose loop stood still
 * that long would take over). Meanwhile nothing else of sync's writes the
 * device: a merged batch leaves the interface waiting for a whole write,
 * which runs again once this one ends; polls of it wait, and hamgr peer
 * edits are refused (sync_device_busy()). Returns false when the replica
 * holds nothing of IFNAME (nothing to do), true otherwise.
 */
static bool sync_apply_device(struct hamgr_sync *s, const char *ifname) {
        struct sync_poll_state *ps;

        if (replica_device_generation(s->replica, ifname) == 0)
                return false;
        ps = poll_state(s, ifname);
        if (!ps)
                return true; /* out of memory: the next poll asks again */
        if (device_writing(ps)) {
                ps->apply_again = true;
                return true;
        }
        apply_begin(ps);
        return true;
}

/* A peer live here (so on the device, unless removed by hand since the
 * last poll) that a batch is about to change. */
struct sync_live {
        char ifname[IFNAMSIZ];
        uint8_t public_key[WG_KEY_LEN];
};

static int live_cmp(const void *x, const void *y) {
        const struct sync_live *a = x, *b = y;
        int r = strncmp(a->ifname, b->ifname, IFNAMSIZ);

        return r != 0 ? r : memcmp(a->public_key, b->public_key, WG_KEY_LEN);
}

/* The peers REMOTE touches that are live here before it is merged,
 * sorted. */
static int live_before_merge(struct hamgr_sync *s, const struct replica_changes *remote, struct sync_live **ret,
                             size_t *ret_n) {
        struct sync_live *v = NULL;
        size_t n = 0;

        for (size_t i = 0; i < remote->n; i++) {
                const struct replica_rec *rec = &remote->recs[i];

                if (rec->type != REPLICA_REC_PEER ||
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
                qsort_safe(v, n, sizeof(*v), live_cmp);
        *ret = v;
        *ret_n = n;
        return 0;
}

/*
 * Write to IFNAME's device only the peers a live merge changed (APPLIED),
 * in a worker (apply_end() confirms the write and polls the device), and
 * without reading the device first: at many peers a full read costs far more
 * than the change, and the device matched the replica for everything
 * else. BEFORE is IFNAME's device record before the merge (NULL: none),
 * LIVE the peers live here before it (live_before_merge()).
 *
 * Edits made by hand since the last poll are not read first. A peer live
 * before is written update-only and removed only if it was live (a
 * tombstone of a peer never held here would make wireguard-go create the
 * peer only to remove it): one removed by hand meanwhile stays removed,
 * and the poll that follows versions its removal, newer than the batch.
 * A hand edit of a peer the batch changes is overwritten (concurrent
 * edits of one peer: the merged one is what both nodes hold); every other
 * hand edit stays, for the poll to find.
 */
static int sync_apply_merged(struct hamgr_sync *s, const char *ifname, const struct replica_changes *applied,
                             const struct replica_device *before, const struct sync_live *live, size_t n_live) {
        _cleanup_(wg_device_freep) struct wg_device *change = calloc(1, sizeof(*change)),
                                                    *learn = calloc(1, sizeof(*learn));
        _cleanup_(freep) uint64_t *learned = calloc(applied->n + 1, sizeof(*learned));
        enum wg_backend b = backend_of(s->daemon, ifname);
        struct sync_poll_state *ps;

        /* Until the write is under way, a read in flight is only out of
         * date; what it is written over is then forgotten below. */
        poll_overtake(s, ifname);
        if (!change || !learn || !learned)
                return -ENOMEM;
        for (size_t i = 0; i < applied->n; i++) {
                const struct replica_rec *rec = &applied->recs[i];
                const struct replica_peer *rp = &rec->peer;
                struct wg_peer *p;
                bool was_live;

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
                {
                        struct sync_live key = {};

                        snprintf(key.ifname, sizeof(key.ifname), "%s", ifname);
                        memcpy(key.public_key, rp->public_key, WG_KEY_LEN);
                        was_live = n_live > 0 && bsearch(&key, live, n_live, sizeof(*live), live_cmp);
                }
                if (rp->deleted && !was_live)
                        continue;
                p = wg_device_add_peer(change);
                if (!p)
                        return -ENOMEM;
                memcpy(p->public_key, rp->public_key, WG_KEY_LEN);
                if (rp->deleted) {
                        p->flags = WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REMOVE_ME;
                        continue;
                }
                p->flags = WG_PEER_HAS_PUBLIC_KEY | WG_PEER_HAS_PRESHARED_KEY |
                           WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL | WG_PEER_REPLACE_ALLOWEDIPS |
                           (was_live ? WG_PEER_UPDATE_ONLY : 0);
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
        if (learn->n_peers > 0)
                wg_follower_learn(s->daemon, ifname, learn, learned);
        if (change->n_peers == 0 && change->flags == 0)
                return replica_device_applied(s->replica, ifname);
        /* Beside the loop too: a slow or hung daemon would hold VRRP up.
         * The interface stays waiting for an apply until it is written
         * (apply_end()). */
        ps = poll_state(s, ifname);
        if (!ps)
                return -ENOMEM;
        if (device_writing(ps)) {
                /* A whole write after the one in flight: the caller sends
                 * a batch to sync_apply_device() when one of hamgr's own
                 * is in flight, but not when the control socket's is. */
                ps->apply_again = true;
                return 0;
        }
        snprintf(change->name, sizeof(change->name), "%s", ifname);
        for (size_t i = 0; i < change->n_peers; i++)
                poll_forget(ps, change->peers[i].public_key);
        ps->apply_generation = replica_device_generation(s->replica, ifname);
        ps->apply_peers = change->n_peers;
        ps->apply_whole = false;
        return wg_io_write(s->daemon->event, b, TAKE_PTR(change), on_apply_written, ps, &ps->apply_io);
}

/* Save the replica's state as it is now, beside the loop (sync-save.h).
 * Returns the number of the save that covers it, for conn_ack(); 0 when
 * nothing is saved. */
static uint64_t sync_save(struct hamgr_sync *s) {
        /* A bootstrapping replica is no state of this node yet: saved, it
         * would be loaded after a restart as if complete. */
        if (replica_bootstrapping(s->replica))
                return 0;
        return sync_saver_request(s->saver);
}

static void conn_close(struct sync_conn *c, const char *why);
static int conn_send(struct sync_conn *c, const struct sync_frame *f);

/* Send C's acknowledgements whose save has ended, in order. Returns
 * false when C was closed (a failed send). */
static bool conn_acks_flush(struct sync_conn *c) {
        uint64_t done = sync_saver_done(c->sync->saver);
        size_t n = 0;

        while (n < c->n_acks && c->acks[n].save <= done) {
                struct sync_frame ack = { .type = SYNC_FRAME_ACK, .ack.seq = c->acks[n].seq };

                n++;
                if (conn_send(c, &ack) < 0) {
                        conn_close(c, "send failed");
                        return false;
                }
        }
        memmove(c->acks, c->acks + n, (c->n_acks - n) * sizeof(*c->acks));
        c->n_acks -= n;
        return true;
}

/* The save numbered GEN ended: acknowledgements it covers go out. */
static void on_saved(uint64_t gen, int r, void *userdata) {
        struct hamgr_sync *s = userdata;

        if (r < 0) {
                s->save_errors++;
                log_error_errno(r, "sync: cannot save the replicated state in %s: %m", s->daemon->config->state_dir);
        }
        for (struct sync_conn *c = s->conns, *next; c; c = next) {
                next = c->next;
                if (c->n_acks > 0)
                        (void) conn_acks_flush(c);
        }
}

/*
 * Acknowledge SEQ once the save numbered SAVE ended (0: none is promised),
 * after the acknowledgements before it. An ack promises that what it
 * covers is merged and, outside a catch-up, saved: the sender collects
 * tombstones on that word. An honest sender has at most SYNC_WINDOW
 * batches unacknowledged; one that sends more while a save runs is
 * closed. Returns false when C was closed.
 */
static bool conn_ack(struct sync_conn *c, uint64_t seq, uint64_t save) {
        struct conn_ack *grown;

        if (c->n_acks == 0 && save <= sync_saver_done(c->sync->saver)) {
                struct sync_frame ack = { .type = SYNC_FRAME_ACK, .ack.seq = seq };

                if (conn_send(c, &ack) < 0) {
                        conn_close(c, "send failed");
                        return false;
                }
                return true;
        }
        if (c->n_acks >= SYNC_ACKS_WAITING_MAX) {
                conn_close(c, "too many batches sent unacknowledged");
                return false;
        }
        grown = reallocarray(c->acks, c->n_acks + 1, sizeof(*grown));
        if (!grown) {
                conn_close(c, "out of memory");
                return false;
        }
        c->acks = grown;
        c->acks[c->n_acks++] = (struct conn_ack) { .seq = seq, .save = save };
        return true;
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
                        /* A bootstrapping node holds no complete state to
                         * vouch for: its stream ends without CAUGHT_UP,
                         * which sync_bootstrap_end() sends later. */
                        if (p->tx_caught_up_seq == 0 && !replica_bootstrapping(s->replica)) {
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
static void sync_poll_interface(struct hamgr_sync *s, const char *ifname, bool now);
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

/* Whether this node should dial P now: it has no connection, or it has the
 * one P dialled while the rule prefers ours. The second happens when P's
 * dial came first (ours in backoff, or P started later): that connection
 * is all there is, and only our dial can make the kept connection the one
 * the rule names, whichever node came up first. */
static bool peer_wants_own_dial(const struct sync_peer_rt *p) {
        return !p->conn ||
               (!p->conn->initiator && sync_connection_preferred(p->sync->public_key, p->config->public_key, true));
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
static void sync_catchup_done(struct hamgr_sync *s);

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
                c->peer->disconnected_usec = daemon_now(s->daemon);
                if (c->peer->rx_catching_up) {
                        c->peer->rx_catching_up = false;
                        sync_catchup_done(s);
                }
                if (peer_has_successor(s, c->peer, c))
                        log_peer(c->peer, LOG_INFO, "old connection closed (%s), a new one is taking over", why);
                else {
                        char more[64];

                        /* A compromised node can reconnect as fast as it can
                         * shake hands: a line per second at most. */
                        c->peer->disconnects++;
                        if (ratelimit_log(&c->peer->disconnect_log, daemon_now(s->daemon), more, sizeof(more)))
                                log_peer(c->peer, LOG_NOTICE, "disconnected (%s)%s", why, more);
                        snprintf(c->peer->last_error, sizeof(c->peer->last_error), "%s", why);
                }
                peer_schedule_dial(c->peer, c->peer->backoff_usec);
        } else if (c->initiator && c->peer && peer_wants_own_dial(c->peer))
                peer_schedule_dial(c->peer, c->peer->backoff_usec);
        else if (c->initiator && c->peer && !c->registered && c->peer->conn && c->peer->conn->rekey &&
                 !s->daemon->stopping) {
                /* A re-handshake that failed (evicted by a flood, refused):
                 * the old connection carries on. Try again after the
                 * backoff, not at the attempt's deadline, so that forward
                 * secrecy does not wait a whole interval more. */
                struct sync_peer_rt *p = c->peer;

                (void) sd_event_source_set_time_relative(p->conn->rekey, p->backoff_usec);
                (void) sd_event_source_set_enabled(p->conn->rekey, SD_EVENT_ONESHOT);
                p->backoff_usec = MIN(p->backoff_usec * 2, SYNC_BACKOFF_MAX_USEC);
        }
        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->liveness);
        sd_event_source_disable_unref(c->rekey);
        sync_session_free(c->session);
        if (c->fd >= 0)
                close(c->fd);
        free(c->out);
        free(c->acks);
        free(c);
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
        struct sync_frame resume = { .type = SYNC_FRAME_RESUME };
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
        if (peer_wants_own_dial(p))
                peer_schedule_dial(p, 0);
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
        /* Our HELLO went out when the keys were there (on_conn_io()). Each
         * connection, a re-handshake's too, resumes the peer's stream to us
         * from our watermark: what the old connection carried and we merged
         * is not sent again. Batches of the last connection that were never
         * acknowledged are resent from the peer's watermark. The sequence
         * numbers live in the peer, not the connection, so they continue. */
        p->acked_seq = p->tx_seq;
        p->tx_resumed = false;
        p->tx_caught_up_seq = 0;
        p->tx_cursor = (struct replica_cursor) {};
        if (!p->rx_catching_up) {
                p->rx_catching_up = true;
                s->rx_catchups++;
        }
        p->rx_catchup_start = clock_monotonic_usec();
        p->rx_catchup_records = 0;
        /* A bootstrapping node needs a full state, which only a stream from
         * zero is (see the CAUGHT_UP case of handle_frame()). */
        c->rx_from_zero = replica_bootstrapping(s->replica) || hlc_ts_is_zero(p->rx_watermark.key);
        if (!c->rx_from_zero) {
                resume.resume.wall_ms = p->rx_watermark.key.wall_ms;
                resume.resume.logical = p->rx_watermark.key.logical;
                resume.resume.node = p->rx_watermark.key.node;
                if (p->rx_watermark.ifname[0]) {
                        resume.resume.kind = p->rx_watermark.peer ? SYNC_RESUME_AT_PEER : SYNC_RESUME_AT_DEVICE;
                        memcpy(resume.resume.ifname, p->rx_watermark.ifname,
                               strnlen(p->rx_watermark.ifname, IFNAMSIZ - 1));
                        if (p->rx_watermark.peer)
                                memcpy(resume.resume.public_key, p->rx_watermark.public_key, WG_KEY_LEN);
                }
        }
        return conn_send(c, &resume) >= 0;
}

/* ---- what a peer may send ------------------------------------------------ */

static bool conn_alive(const struct hamgr_sync *s, const struct sync_conn *c) {
        for (const struct sync_conn *k = s->conns; k; k = k->next)
                if (k == c)
                        return true;
        return false;
}

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
        /* Even a merge that writes no device (a catch-up defers it)
         * changes what a read in flight would be compared with. */
        poll_overtake(s, NULL);
        return replica_merge_from(s->replica, remote, &src, applied, reason);
}

/* Count a refused batch and say why at WARNING (PEER=), at most once a
 * minute per peer with the number held back since. */
static void peer_batch_refused(struct sync_peer_rt *p, const char *reason) {
        char peer_field[80], more[64];
        const char *extra[] = { peer_field, NULL };

        p->refused++;
        p->refused_batches++;
        p->sync->refused_batches++;
        if (!ratelimit_log(&p->refusal_log, daemon_now(p->sync->daemon), more, sizeof(more)))
                return;
        snprintf(peer_field, sizeof(peer_field), "PEER=%s", p->config->name);
        log_fields(LOG_WARNING, 0, NULL, 0, NULL, extra, "sync %s: refused a change batch: %s%s", p->config->name,
                   reason ? reason : "?", more);
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

                if (replica_device_needs_apply(s->replica, ifname))
                        (void) sync_apply_device(s, ifname);
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
                _cleanup_(freep) struct sync_live *live = NULL;
                size_t n_live = 0;
                uint64_t save = 0;

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
                         * write; no read of the device, no poll first. While
                         * bootstrapping, always a whole write: only it finds
                         * a revoked peer on the device that the replica never
                         * held live, to remove it. */
                        pending[i] = replica_device_needs_apply(s->replica, ifname) ||
                                     replica_bootstrapping(s->replica) || apply_running(s, ifname);
                        had_device[i] = replica_device_record(s->replica, ifname, &before[i]) >= 0;
                }
                r = live_before_merge(s, &remote, &live, &n_live);
                if (r >= 0)
                        r = merge_from_peer(p, &remote, &applied, &reason);
                if (r == -EPERM) {
                        char why[sizeof(p->last_error)];

                        /* Not acknowledged, and the connection restarts:
                         * a batch is merged whole or not at all and the
                         * watermark stays before it, so the next
                         * connection's stream resumes with it again rather
                         * than with something after it. */
                        sodium_memzero(before, (n_wg + 1) * sizeof(*before));
                        peer_batch_refused(p, reason);
                        snprintf(why, sizeof(why), "change batch refused: %s", reason);
                        p->backoff_usec = SYNC_BACKOFF_MAX_USEC;
                        conn_close(c, why);
                        return;
                }
                if (r < 0) {
                        /* Not merged, so not acknowledged: the watermark
                         * must not pass it. The next connection resends. */
                        sodium_memzero(before, (n_wg + 1) * sizeof(*before));
                        c->merge_failed = true;
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
                                if (pending[i]) {
                                        (void) sync_apply_device(s, ifname);
                                        continue;
                                }
                                r = sync_apply_merged(s, ifname, &applied, had_device[i] ? &before[i] : NULL, live,
                                                      n_live);
                                if (r < 0)
                                        log_fields(LOG_WARNING, r, NULL, 0, NULL, NULL,
                                                   "sync: cannot apply changes to %s: %m", ifname);
                        }
                        if (p->rx_catching_up)
                                s->deferred = true;
                        else
                                save = sync_save(s);
                }
                sodium_memzero(before, (n_wg + 1) * sizeof(*before));
                (void) conn_ack(c, f->changes.seq, save);
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
                c->peer_caught_up = true;
                if (p->rx_catching_up) {
                        uint64_t t = clock_monotonic_usec();

                        p->rx_catching_up = false;
                        /* Saved now even if another catch-up still runs: the
                         * ack below promises it, and waits for it. */
                        if (s->deferred)
                                (void) sync_save(s);
                        sync_catchup_done(s);
                        log_peer(p, LOG_INFO, "caught up: %" PRIu64 " records received in %" PRIu64 " ms, handed to "
                                 "the state file and the devices in %" PRIu64 " ms (%zu records held)",
                                 p->rx_catchup_records,
                                 (t - p->rx_catchup_start) / USEC_PER_MSEC, (clock_monotonic_usec() - t) / USEC_PER_MSEC,
                                 replica_n_records(s->replica));
                }
                /* A full state: the stream started from zero and every batch
                 * of it merged (a refused one closed the connection). */
                if (replica_bootstrapping(s->replica)) {
                        if (c->merge_failed || !c->rx_from_zero)
                                log_peer(p, LOG_WARNING, "full state incomplete (a change batch did not merge); "
                                         "still waiting");
                        else {
                                log_peer(p, LOG_NOTICE, "merged its full state: the devices are versioned from now on");
                                sync_bootstrap_end(s);
                                /* It may have closed C (a failed send). */
                                if (!conn_alive(s, c))
                                        return;
                        }
                }
                {
                        /* After the saves asked for so far (the catch-up's, and
                         * the end of a bootstrap's): the sender may now trust
                         * our acks for tombstone collection. */
                        (void) conn_ack(c, f->caught_up.seq, sync_saver_requested(s->saver));
                }
                return;
        case SYNC_FRAME_CLOSE:
                conn_close(c, "closed by the peer");
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

static bool conn_open(const struct hamgr_sync *s, const struct sync_conn *c) {
        for (const struct sync_conn *k = s->conns; k; k = k->next)
                if (k == c)
                        return true;
        return false;
}

/* Handle the frames buffered in C's session. */
static void conn_read_frames(struct sync_conn *c) {
        struct hamgr_sync *s = c->sync;
        const char *reason = NULL;
        uint8_t *out = NULL;
        size_t out_len = 0;
        int r;

        for (;;) {
                struct sync_frame f;

                r = sync_session_next_frame(c->session, &f, &reason);
                /* The handshake may have produced bytes to send (message 2,
                 * our stream header). */
                out = NULL;
                out_len = 0;
                if (sync_session_take_output(c->session, &out, &out_len) >= 0 && conn_queue(c, out, out_len) < 0) {
                        conn_close(c, "send failed");
                        return;
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
                                return;
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
                        return;
                }
                if (r == 0)
                        return;
                /* Only a frame that authenticated is a sign of life. */
                c->last_rx = daemon_now(s->daemon);
                if (!c->registered) {
                        c->peer = conn_claimed_peer(c);
                        if (!c->peer) {
                                conn_close(c, "unknown peer");
                                return;
                        }
                        if (f.type == SYNC_FRAME_CLOSE) {
                                conn_close(c, "closed by the peer");
                                return;
                        }
                        if (!conn_register(c)) {
                                conn_close(c, "duplicate connection");
                                return;
                        }
                        sd_event_source_set_time(c->liveness, sync_liveness_next(c->last_rx, c->last_tx,
                                                                                 SYNC_HEARTBEAT_USEC, SYNC_DEAD_USEC));
                        sd_event_source_set_enabled(c->liveness, SD_EVENT_ONESHOT);
                }
                handle_frame(c, &f);
                /* handle_frame may have closed C. */
                if (!conn_open(s, c))
                        return;
        }
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
                if (sync_session_end(c->session, &reason) < 0 && c->peer) {
                        c->peer->truncated++;
                        log_peer(c->peer, LOG_WARNING, "stream ended early: %s", reason ? reason : "?");
                }
                conn_close(c, "connection closed");
                return 0;
        }
        r = sync_session_feed(c->session, buf, (size_t) n);
        if (r < 0) {
                if (c->peer) {
                        c->peer->refused++;
                        log_peer(c->peer, LOG_WARNING, "connection refused: too much unread input");
                } else {
                        s->handshakes_failed++;
                        note_refused(s, "too much unread input", &c->source);
                }
                conn_close(c, "input refused");
                return 0;
        }
        conn_read_frames(c);
        return 0;
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
        char addr[INET6_ADDRSTRLEN] = "?", more[64];

        (void) address_key_to_string(from, addr, sizeof(addr));
        snprintf(s->last_refusal, sizeof(s->last_refusal), "%s from %s", what, addr);
        if (!ratelimit_log(&s->refused_log, daemon_now(s->daemon), more, sizeof(more)))
                return;
        log_warning("sync: refused connection (%s)%s; so far %" PRIu64 " from addresses that are not sync peers, "
                    "%" PRIu64 " over the handshake limits, %" PRIu64 " handshake timeouts, %" PRIu64
                    " failed handshakes, %" PRIu64 " for lack of file descriptors",
                    s->last_refusal, more, s->refused_unknown_source, s->handshakes_evicted, s->handshake_timeouts,
                    s->handshakes_failed, s->refused_fd_reserve);
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
        uint64_t now = daemon_now(s->daemon);
        size_t n_same = 0;

        for (struct sync_conn *k = s->conns; k; k = k->next) {
                if (!k->pending)
                        continue;
                if (memcmp(&k->source, from, sizeof(*from)) == 0) {
                        n_same++;
                        if (now >= k->started + SYNC_PENDING_GRACE_USEC && evict_before(k, same))
                                same = k;
                }
                if (evict_before(k, any))
                        any = k;
        }
        if (n_same >= SYNC_PENDING_PER_SOURCE && same)
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
        /* A real initiator sends its first message as soon as it is
         * connected, so under a flood it is already here: answered now,
         * the connection has keys and outlives the floods' connections
         * from the same address (evict_before()). Left for the next turn
         * of the loop, the rest of this accept burst could evict it. May
         * close C. */
        (void) on_conn_io(NULL, cfd, EPOLLIN, c);
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

/* The address to dial from: the one we listen on, unless that is a
 * wildcard. Not the kernel's choice: while master, a WireGuard
 * source_address makes the VIP the preferred source of the routes, and a
 * connection from the VIP breaks when the VIP moves to the other node. */
static bool dial_source(const struct hamgr_sync *s, int family, union wg_endpoint *ret) {
        union wg_endpoint a;

        if (wg_endpoint_parse(s->config->listen, &a) < 0 || a.addr.sa_family != family)
                return false;
        if (family == AF_INET) {
                if (a.addr4.sin_addr.s_addr == htonl(INADDR_ANY))
                        return false;
                a.addr4.sin_port = 0;
        } else {
                if (IN6_IS_ADDR_UNSPECIFIED(&a.addr6.sin6_addr))
                        return false;
                a.addr6.sin6_port = 0;
        }
        *ret = a;
        return true;
}

/* Open a connection to P: the first, a redial, or a re-handshake while the
 * current one carries on. Returns 0 when under way. */
static int peer_dial_one(struct sync_peer_rt *p) {
        struct sync_conn *c;
        union wg_endpoint from;
        socklen_t len;
        int fd, one = 1, r;

        fd = socket(p->address.addr.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        len = p->address.addr.sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
        if (dial_source(p->sync, p->address.addr.sa_family, &from) && bind(fd, &from.addr, len) < 0) {
                r = -errno;
                snprintf(p->last_error, sizeof(p->last_error), "bind: %s", strerror(-r));
                close(fd);
                return r;
        }
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
        if (!peer_wants_own_dial(p))
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

static struct sync_poll_state *poll_state(struct hamgr_sync *s, const char *ifname) {
        struct sync_poll_state **grown, *ps = poll_find(s, ifname);

        if (ps)
                return ps;
        /* Pointers, not structs: a read in flight holds its state. */
        grown = realloc(s->polls, (s->n_polls + 1) * sizeof(*grown));
        if (!grown)
                return NULL;
        s->polls = grown;
        ps = calloc(1, sizeof(*ps));
        if (!ps)
                return NULL;
        ps->sync = s;
        snprintf(ps->ifname, sizeof(ps->ifname), "%s", ifname);
        s->polls[s->n_polls++] = ps;
        return ps;
}

/* Wait for the reads and writes in flight and drop them: at stop, or at
 * a reload, which may remove an interface or change its backend. A whole
 * write dropped leaves its interface waiting for one (the next poll). */
static void polls_cancel(struct hamgr_sync *s) {
        for (size_t i = 0; i < s->n_polls; i++) {
                struct sync_poll_state *ps = s->polls[i];

                ps->io = wg_io_cancel(ps->io);
                ps->again = false;
                ps->generation++;
                poll_keep_index(ps, NULL);
                if (ps->apply_io) {
                        ps->apply_io = wg_io_cancel(ps->apply_io);
                        ps->apply_again = false;
                }
        }
}

static void sync_poll_interface(struct hamgr_sync *s, const char *ifname, bool now);

/* Version what the read of PS found, as the poll on the loop did before
 * it moved to a worker. */
static void poll_local_device(struct hamgr_sync *s, struct sync_poll_state *ps, struct wg_io_result *res) {
        _cleanup_(wg_device_freep) struct wg_device *dev = TAKE_PTR(res->device);
        _cleanup_(replica_changes_done) struct replica_changes changes = {};
        const char *ifname = ps->ifname;
        int r;

        if (res->r == -ENODEV && replica_device_generation(s->replica, ifname) != 0) {
                /* Gone: when it comes back (recreated from a file that may
                 * still list a revoked peer), it is written whole before
                 * it is versioned again. */
                ps->device_gone = true;
                poll_keep_index(ps, NULL);
                return;
        }
        if (res->r < 0 || res->unchanged) {
                /* Nothing new read: the last index still stands. */
                if (res->r >= 0)
                        ps->reads[POLL_READ_UNCHANGED]++;
                poll_keep_index(ps, TAKE_PTR(res->prev_index));
                return;
        }
        ps->reads[res->partial ? POLL_READ_PARTIAL : POLL_READ_WHOLE]++;
        /* A partial read lists every peer that differs from the last one,
         * which was versioned whole: the rest matches the replica. */
        if (res->partial)
                r = replica_apply_local_peers(s->replica, ifname, dev, wall_usec() / 1000, ps->io_endpoints, &changes);
        else
                r = replica_apply_local_device(s->replica, ifname, dev, wall_usec() / 1000, ps->io_endpoints,
                                               &changes);
        /* Compared with from now on only if what it found is versioned. */
        poll_keep_index(ps, r >= 0 ? TAKE_PTR(res->index) : NULL);
        if (r >= 0)
                ps->endpoints = ps->io_endpoints;
        if (r == -EOVERFLOW) {
                char more[64];

                /* The clock has no version left: refusing the change is
                 * better than reusing one, which would let the nodes
                 * disagree for good. Only a state written before versions
                 * were bounded can get here. */
                s->refused_local_changes++;
                if (!ratelimit_log(&s->saturated_log, daemon_now(s->daemon), more, sizeof(more)))
                        return;
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
        /* Sent before saved: a crash in between only means the next poll
         * versions the same edit again. */
        {
                uint64_t t0 = clock_monotonic_usec(), t1;

                pump_all(s);
                t1 = clock_monotonic_usec();
                sync_save(s);
                log_fields(LOG_DEBUG, 0, NULL, 0, NULL, NULL, "sync: pushed in %" PRIu64 " ms, saved in %" PRIu64 " ms",
                           (t1 - t0) / USEC_PER_MSEC, (clock_monotonic_usec() - t1) / USEC_PER_MSEC);
        }
}

/*
 * When PS's next periodic read starts, its last one having just ended
 * after READ_USEC. poll_interval_ms is the most time between the ends of
 * reads, which is what bounds how late an edit is found: the next read
 * starts twice as long before its end is due as this one took (the next
 * may take longer). But never sooner after this one ended than it took:
 * a starved wireguard-go answering back-to-back reads of 50,000 peers
 * would have no time left for the tunnels.
 *
 * A passive device (this node does not serve its tunnels: no endpoint is
 * learnt there, only an edit by hand changes it) is read at most a tenth
 * of the time: wireguard-go holds its configuration lock for a whole read
 * (250 ms at 50,000 peers), and a change merged from the master waits for
 * it. With fast reads (below 10,000 peers) that changes nothing.
 */
static void poll_schedule(struct hamgr_sync *s, struct sync_poll_state *ps, uint64_t read_usec) {
        uint64_t interval = (uint64_t) s->config->poll_interval_ms * USEC_PER_MSEC, lead = 2 * read_usec;

        ps->last_read_usec = read_usec;
        if (ps->io_passive)
                interval = MAX(interval, SYNC_READ_SHARE * read_usec);

        ps->due = clock_monotonic_usec() + MAX(interval > lead ? interval - lead : 0, read_usec);
}

/* The poll timer at the earliest due read of an interface not being read;
 * off while every interface is being read, whose ends arm it again.
 * TRIED (on_poll() just started the due reads): a read that was due and
 * did not start (during a catch-up or a takeover, or it failed to) is due
 * again an interval later. */
static void poll_timer_arm(struct hamgr_sync *s, bool tried) {
        const struct hamgr_config *cfg = s->daemon->config;
        uint64_t now = clock_monotonic_usec(), interval = (uint64_t) s->config->poll_interval_ms * USEC_PER_MSEC,
                 next = UINT64_MAX;

        if (!s->poll_timer)
                return;
        for (size_t i = 0; i < cfg->n_wireguard; i++) {
                struct sync_poll_state *ps = poll_find(s, cfg->wireguard[i].interface);

                if (!ps)
                        next = MIN(next, now + interval); /* never read yet: sync_poll_interface() makes one */
                else if (!ps->io && !ps->apply_io) {
                        if (tried && ps->due <= now)
                                ps->due = now + interval;
                        next = MIN(next, ps->due);
                }
        }
        if (next == UINT64_MAX) {
                (void) sd_event_source_set_enabled(s->poll_timer, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time(s->poll_timer, next);
        (void) sd_event_source_set_enabled(s->poll_timer, SD_EVENT_ONESHOT);
}

static void on_poll_read(struct wg_io *io, struct wg_io_result *res, void *userdata) {
        struct sync_poll_state *ps = userdata;
        struct hamgr_sync *s = ps->sync;

        ps->io = NULL;
        poll_schedule(s, ps, res->usec);
        /* What the read saw may predate a write of hamgr's, or the device
         * may be hamgr's to write now (a merge waiting, a catch-up, a
         * takeover): nothing of it is a local edit. */
        if (ps->generation != ps->io_generation || s->rx_catchups > 0 || ps->apply_io ||
            replica_device_needs_apply(s->replica, ps->ifname) || wg_follower_busy(s->daemon, ps->ifname) ||
            wg_follower_active(s->daemon, ps->ifname) != ps->io_endpoints) {
                s->polls_dropped++;
                log_fields(LOG_DEBUG, 0, NULL, 0, NULL, NULL, "sync: read of %s overtaken by a write, reading again",
                           ps->ifname);
                ps->again = true;
                /* What it found is not versioned: the next read compares
                 * with the same index again, unless hamgr wrote the
                 * device meanwhile. */
                poll_keep_index(ps, ps->index_stale ? NULL : TAKE_PTR(res->prev_index));
                ps->stable_since = ps->stable_until = 0;
        } else {
                uint64_t t = clock_monotonic_usec();
                size_t n = res->device ? res->device->n_peers : 0;
                bool partial = res->partial, unchanged = res->r >= 0 && res->unchanged, failed = res->r < 0;
                uint64_t generation = ps->generation;

                poll_local_device(s, ps, res);
                /* What the read found stands for the device unless hamgr
                 * has changed it since (a write the local change led to). */
                if (failed || !ps->index || ps->generation != generation)
                        ps->stable_since = ps->stable_until = 0;
                else if (unchanged) {
                        /* After a reset (a merge, hamgr's own change of
                         * the replica) the device still matches INDEX:
                         * it is known the same from this read on. Not
                         * waiting for a read that finds a change, which
                         * an idle device never gives. */
                        if (ps->stable_since != 0)
                                ps->stable_until = ps->io_started;
                        else
                                ps->stable_since = t;
                } else {
                        ps->stable_since = t;
                        ps->stable_until = 0;
                }
                log_fields(LOG_DEBUG, 0, NULL, 0, NULL, NULL,
                           "sync: polled %s: read in %" PRIu64 " ms beside the loop%s, compared in %" PRIu64 " ms",
                           ps->ifname, res->usec / USEC_PER_MSEC,
                           res->unchanged ? " (unchanged)" : partial ? (n == 1 ? " (1 peer changed)" : " (peers changed)") : "",
                           (clock_monotonic_usec() - t) / USEC_PER_MSEC);
        }
        if (ps->again && !s->daemon->stopping) {
                ps->again = false;
                sync_poll_interface(s, ps->ifname, true);
        }
        poll_timer_arm(s, false);
}

/* Read IFNAME in a worker; on_poll_read() versions what changed. NOW: a
 * poll asked for (after a local change, at start): one in flight reads
 * again when it is done. Otherwise the periodic one: skipped while one is
 * in flight or too soon after the last. */
static void sync_poll_interface(struct hamgr_sync *s, const char *ifname, bool now) {
        struct sync_poll_state *ps = poll_state(s, ifname);
        enum wg_backend b = backend_of(s->daemon, ifname);
        bool endpoints;
        int r;

        if (!ps)
                return;
        /* A whole write polls when it ends. */
        if (ps->io || ps->apply_io) {
                ps->again |= now;
                return;
        }
        if (!now && clock_monotonic_usec() < ps->due)
                return;
        /* While a catch-up runs, the device changes with every batch: reading
         * it whole each interval would cost more than the catch-up. Local
         * edits are found by the first poll after it. */
        if (s->rx_catchups > 0)
                return;
        if (ps->settling && clock_monotonic_usec() < ps->due) {
                ps->again |= now;
                return;
        }
        if (replica_device_needs_apply(s->replica, ifname) || ps->device_gone || ps->settling) {
                if (sync_apply_device(s, ifname))
                        return;
                ps->device_gone = ps->settling = false; /* nothing replicated of it: nothing to keep off */
        }
        if (wg_follower_busy(s->daemon, ifname))
                return; /* the next poll, after the takeover, sees the real values */
        endpoints = wg_follower_active(s->daemon, ifname);
        /* An index is only compared with when the last poll read the device
         * after it was last written and versioned it under the same
         * endpoint rule. */
        if (ps->endpoints != endpoints)
                ps->index = wg_index_free(ps->index);
        ps->index_stale = false;
        ps->io_started = clock_monotonic_usec();
        r = wg_io_read(s->daemon->event, b, ifname, WG_IO_CHANGES, TAKE_PTR(ps->index), on_poll_read, ps, &ps->io);
        if (r < 0) {
                log_fields(LOG_WARNING, r, NULL, 0, NULL, NULL, "sync: cannot start reading %s: %m", ifname);
                return;
        }
        ps->io_generation = ps->generation;
        ps->io_endpoints = endpoints;
        ps->io_passive = wg_follower_passive(s->daemon, ifname);
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
        poll_overtake(s, NULL);
        s->tombstones_collected += n;
        log_info("sync: collected %zu tombstone%s acknowledged by every node", n, n == 1 ? "" : "s");
        sync_save(s);
}

static uint64_t gc_interval(const struct hamgr_sync *s) {
        uint64_t half = (uint64_t) s->config->tombstone_retention_s * USEC_PER_SEC / 2;

        return MIN(SYNC_GC_USEC, MAX(half, USEC_PER_SEC));
}

static int on_gc(sd_event_source *src, uint64_t usec, void *userdata) {
        struct hamgr_sync *s = userdata;

        sync_collect(s);
        sd_event_source_set_time(src, usec + gc_interval(s));
        return sd_event_source_set_enabled(src, SD_EVENT_ON);
}

void sync_poll_now(struct hamgr_daemon *d) {
        struct hamgr_sync *s = d->sync;

        if (!s)
                return;
        for (size_t i = 0; i < d->config->n_wireguard; i++)
                sync_poll_interface(s, d->config->wireguard[i].interface, true);
}

/* CHANGE applied to DEV (the replicated peer it changes, or none), as
 * wg(8) set would; a removal is flagged, for replica_apply_local_peers(). */
static int device_apply_peer(struct wg_device *dev, const struct wg_peer *change) {
        struct wg_peer *p = NULL;

        for (size_t i = 0; i < dev->n_peers; i++)
                if (memcmp(dev->peers[i].public_key, change->public_key, WG_KEY_LEN) == 0)
                        p = &dev->peers[i];
        if (change->flags & WG_PEER_REMOVE_ME) {
                if (p)
                        p->flags |= WG_PEER_REMOVE_ME;
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

void sync_local_write_begin(struct hamgr_daemon *d, const char *ifname, const uint8_t key[static WG_KEY_LEN]) {
        struct sync_poll_state *ps;

        if (!d->sync)
                return;
        poll_overtake(d->sync, ifname);
        ps = poll_state(d->sync, ifname);
        if (!ps) {
                poll_invalidate(d->sync, ifname);
                return;
        }
        poll_forget(ps, key);
        ps->local_writes++;
}

void sync_local_write_end(struct hamgr_daemon *d, const char *ifname, const uint8_t key[static WG_KEY_LEN]) {
        struct sync_poll_state *ps;

        if (!d->sync)
                return;
        /* Whether it landed or not, the peer is what the next read
         * compares; sync_local_peer() has versioned it if it landed. */
        poll_overtake(d->sync, ifname);
        ps = poll_state(d->sync, ifname);
        if (ps)
                poll_forget(ps, key);
        if (!ps || ps->local_writes == 0)
                return;
        ps->local_writes--;
        if (ps->local_writes == 0 && ps->apply_again && !ps->apply_io && !d->stopping) {
                ps->apply_again = false;
                apply_begin(ps);
        }
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
        /* The replicated peer plus this change is what a poll would find
         * of it; nothing else moved (edits by hand wait for the poll).
         * Merged changes waiting to be written (they arrived during the
         * control socket's write) do not stop it: versioned now, the
         * edit wins over them, and the whole write that follows keeps it. */
        if (wg_follower_busy(d, ifname) ||
            replica_peer_for(s->replica, ifname, change->public_key, endpoints, &dev) < 0 ||
            device_apply_peer(dev, change) < 0) {
                sync_poll_now(d);
                return;
        }
        r = replica_apply_local_peers(s->replica, ifname, dev, wall_usec() / 1000, endpoints, &changes);
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

/* Each interface whose periodic read is due (poll_schedule()). The reads
 * run beside the loop: VRRP adverts and heartbeats do not wait for them. */
static int on_poll(sd_event_source *src, uint64_t usec, void *userdata) {
        struct hamgr_sync *s = userdata;
        const struct hamgr_config *cfg = s->daemon->config;

        for (size_t i = 0; i < cfg->n_wireguard; i++)
                sync_poll_interface(s, cfg->wireguard[i].interface, false);
        poll_timer_arm(s, true);
        return 0;
}

/* ---- bootstrap ------------------------------------------------------------ */

/* The replica holds a complete state now (merged from a peer, or the grace
 * period is over): the devices are versioned from here on. */
static void sync_bootstrap_end(struct hamgr_sync *s) {
        const struct hamgr_config *cfg = s->daemon->config;

        s->bootstrap_timer = sd_event_source_disable_unref(s->bootstrap_timer);
        /* A read started while bootstrapping was not to be versioned. */
        poll_overtake(s, NULL);
        /* Merged changes still waiting go out as during the bootstrap, so
         * that peers added here while hamgr waited are polled, not dropped. */
        for (size_t i = 0; i < cfg->n_wireguard; i++)
                if (replica_device_needs_apply(s->replica, cfg->wireguard[i].interface))
                        (void) sync_apply_device(s, cfg->wireguard[i].interface);
        replica_bootstrap_end(s->replica);
        sync_save(s);
        sync_poll_now(s->daemon);
        /* Our streams ended without CAUGHT_UP meanwhile. A peer that has not
         * said it holds a complete state may be waiting for ours: its stream
         * starts again from zero (the full state, in batches as any
         * catch-up), now ending with CAUGHT_UP. The others get the rest of
         * their stream and CAUGHT_UP. */
        for (size_t i = 0; i < s->n_peers; i++) {
                struct sync_peer_rt *p = &s->peers[i];
                struct sync_conn *c = p->conn;

                if (!c || !p->tx_resumed)
                        continue; /* its RESUME starts the stream */
                if (!c->peer_caught_up) {
                        p->tx_cursor = (struct replica_cursor) {};
                        p->tx_skip_node = 0;
                }
                if (conn_pump(c) < 0)
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

bool sync_device_busy(struct hamgr_daemon *d, const char *ifname) {
        return d->sync && replica_device_needs_apply(d->sync->replica, ifname);
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
        r = sync_saver_new(d->event, d->config->state_dir, s->private_key, s->replica, on_saved, s, &s->saver);
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
                p->disconnect_log.interval_usec = SYNC_DISCONNECT_LOG_USEC;
                memcpy(s->pinned[i].public_key, p->config->public_key, SYNC_KEY_LEN);
                r = wg_endpoint_parse(p->config->address, &p->address);
                if (r < 0)
                        return log_error_errno(r, "sync: peer %s: address '%s' is not IP:port", p->config->name,
                                               p->config->address);
                /* Both nodes dial; the connection the lower key initiates is
                 * the one kept, so the other node waits a little first and,
                 * when both start together, usually finds it already there:
                 * one full-state send, not two. A little: when the other
                 * node has run for a while, its dials are in backoff, and
                 * this wait is all a catch-up from it waits for. */
                peer_schedule_dial(p, sync_connection_preferred(s->public_key, p->config->public_key, true)
                                              ? 0 : SYNC_BACKOFF_MIN_USEC);
        }
        adopt_orphans(s);
        r = listen_on(s);
        if (r < 0)
                return r;
        /* What was replicated before the restart goes to the devices first
         * (beside the loop); the first poll, when that is done, versions
         * what was added while we were down. */
        for (size_t i = 0; i < d->config->n_wireguard; i++) {
                const char *ifname = d->config->wireguard[i].interface;

                if (!sync_apply_device(s, ifname))
                        sync_poll_interface(s, ifname, true);
        }
        r = sd_event_add_time_relative(d->event, &s->poll_timer, CLOCK_MONOTONIC,
                                       (uint64_t) cfg->poll_interval_ms * USEC_PER_MSEC, USEC_PER_MSEC, on_poll, s);
        if (r < 0)
                return r;
        poll_timer_arm(s, false);
        r = sd_event_add_time_relative(d->event, &s->gc_timer, CLOCK_MONOTONIC, gc_interval(s), USEC_PER_SEC / 10, on_gc,
                                       s);
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
        sd_event_source_disable_unref(s->gc_timer);
        polls_cancel(s);
        if (s->listen_fd >= 0)
                close(s->listen_fd);
        /* On the loop, after the save in flight: nothing runs after this. */
        if (s->saver && !replica_bootstrapping(s->replica))
                (void) sync_saver_flush(s->saver);
        s->saver = sync_saver_free(s->saver);
        replica_free(s->replica);
        sodium_memzero(s->private_key, sizeof(s->private_key));
        free(s->peers);
        free(s->pinned);
        for (size_t i = 0; i < s->n_polls; i++) {
                wg_index_free(s->polls[i]->index);
                free(s->polls[i]->forget);
                free(s->polls[i]);
        }
        free(s->polls);
        free(s);
        d->sync = NULL;
}

/* ---- status and peers ----------------------------------------------------- */

int sync_status_json(struct hamgr_daemon *d, struct json_object **ret) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        struct hamgr_sync *s = d->sync;
        char key[WG_KEY_B64_LEN];
        json_object *peers, *devices;
        bool ok = true;

        if (!s) {
                *ret = NULL;
                return 0;
        }
        o = json_object_new_object();
        wg_key_to_base64(key, s->public_key);
        json_add_string(o, "public_key", key, &ok);
        json_add_string(o, "listen", s->config->listen, &ok);
        json_add_u64(o, "records", replica_n_records(s->replica), &ok);
        json_add_u64(o, "merges", s->merges, &ok);
        json_add_u64(o, "local_changes", s->local_changes, &ok);
        json_add_u64(o, "save_errors", s->save_errors, &ok);
        json_add_u64(o, "tombstones_collected", s->tombstones_collected, &ok);
        json_add_bool(o, "bootstrapping", replica_bootstrapping(s->replica), &ok);
        json_add_u64(o, "refused_batches", s->refused_batches, &ok);
        json_add_u64(o, "refused_local_changes", s->refused_local_changes, &ok);
        json_add_u64(o, "handshakes", s->handshakes, &ok);
        json_add_u64(o, "rekeys", s->rekeys, &ok);
        json_add_u64(o, "handshakes_pending", s->n_pending, &ok);
        json_add_u64(o, "refused_unknown_source", s->refused_unknown_source, &ok);
        json_add_u64(o, "handshake_timeouts", s->handshake_timeouts, &ok);
        json_add_u64(o, "handshakes_failed", s->handshakes_failed, &ok);
        json_add_u64(o, "handshakes_evicted", s->handshakes_evicted, &ok);
        json_add_u64(o, "refused_fd_reserve", s->refused_fd_reserve, &ok);
        json_add_u64(o, "rekey_interval_ms", s->config->rekey_interval_ms, &ok);
        devices = json_object_new_array();
        json_add(o, "devices", devices, &ok);
        for (size_t i = 0; ok && i < d->config->n_wireguard; i++) {
                const char *ifname = d->config->wireguard[i].interface;
                json_object *dv = json_object_new_object();
                const struct sync_poll_state *ps = poll_find(s, ifname);

                json_add_string(dv, "interface", ifname, &ok);
                json_add_bool(dv, "write_pending", replica_device_needs_apply(s->replica, ifname), &ok);
                json_add_u64(dv, "edits_writing", ps ? ps->local_writes : 0, &ok);
                if (ps && ps->last_write_wall_usec)
                        json_add_u64(dv, "last_write_unix_us", ps->last_write_wall_usec, &ok);
                else
                        json_add_null(dv, "last_write_unix_us", &ok);
                json_add_bool(dv, "missing", ps && ps->device_gone, &ok);
                json_add_bool(dv, "settling", ps && ps->settling, &ok);
                for (size_t k = 0; k < _POLL_READ_MAX; k++)
                        json_add_u64(dv, poll_read_names[k], ps ? ps->reads[k] : 0, &ok);
                json_add_u64(dv, "last_read_ms", ps ? ps->last_read_usec / USEC_PER_MSEC : 0, &ok);
                json_push(devices, dv, &ok);
        }
        peers = json_object_new_array();
        json_add(o, "peers", peers, &ok);
        for (size_t i = 0; ok && i < s->n_peers; i++) {
                const struct sync_peer_rt *p = &s->peers[i];
                json_object *po = json_object_new_object();

                json_add_string(po, "name", p->config->name, &ok);
                json_add_string(po, "address", p->config->address, &ok);
                json_add_bool(po, "connected", p->conn != NULL, &ok);
                json_add_bool(po, "caught_up", p->conn && !p->rx_catching_up, &ok);
                if (p->last_frame_usec)
                        json_add_u64(po, "last_frame_ms_ago", (daemon_now(d) - p->last_frame_usec) / USEC_PER_MSEC,
                                     &ok);
                else
                        json_add_null(po, "last_frame_ms_ago", &ok);
                /* With last_frame_ms_ago, how long the peer was silent
                 * before the connection was given up. */
                if (!p->conn && p->disconnected_usec)
                        json_add_u64(po, "disconnected_ms_ago",
                                     (daemon_now(d) - p->disconnected_usec) / USEC_PER_MSEC, &ok);
                else
                        json_add_null(po, "disconnected_ms_ago", &ok);
                if (p->offset_known)
                        json_add_i64(po, "clock_offset_ms", p->offset_usec / 1000, &ok);
                else
                        json_add_null(po, "clock_offset_ms", &ok);
                json_add_u64(po, "pending_changes", p->tx_seq - p->acked_seq, &ok);
                json_add_u64(po, "frames_rx", p->frames_rx, &ok);
                json_add_u64(po, "frames_tx", p->frames_tx, &ok);
                json_add_u64(po, "refused", p->refused, &ok);
                json_add_u64(po, "refused_batches", p->refused_batches, &ok);
                json_add_u64(po, "disconnects", p->disconnects, &ok);
                json_add_u64(po, "truncated", p->truncated, &ok);
                json_add_string(po, "last_error", p->last_error[0] ? p->last_error : NULL, &ok);
                json_push(peers, po, &ok);
        }
        if (!ok)
                return -ENOMEM;
        *ret = TAKE_PTR(o);
        return 0;
}

int sync_peers_json(struct hamgr_daemon *d, struct json_object **ret) {
        _cleanup_(json_object_putp) json_object *arr = json_object_new_array();
        _cleanup_(replica_changes_done) struct replica_changes all = {};
        struct hamgr_sync *s = d->sync;
        char key[WG_KEY_B64_LEN], ep[80], buf[INET6_ADDRSTRLEN + 24];
        bool ok = arr != NULL;

        if (ok && s && replica_changes_since(s->replica, (struct hlc_ts) {}, &all) < 0)
                replica_changes_done(&all);
        for (size_t i = 0; ok && s && i < all.n; i++) {
                const struct replica_rec *rec = &all.recs[i];
                const struct replica_peer *p = &rec->peer;
                bool everywhere = true;
                const char *origin = NULL;
                json_object *o, *ips;

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
                o = json_object_new_object();
                wg_key_to_base64(key, p->public_key);
                json_add_string(o, "interface", rec->ifname, &ok);
                json_add_string(o, "public_key", key, &ok);
                json_add_bool(o, "removed", p->deleted, &ok);
                snprintf(buf, sizeof(buf), "%" PRIu64 ".%u", p->version.wall_ms, p->version.logical);
                json_add_string(o, "version", buf, &ok);
                if (!origin) {
                        /* Not a configured node (any more): its id. */
                        snprintf(buf, sizeof(buf), "%016" PRIx64, p->version.node);
                        origin = buf;
                }
                json_add_string(o, "origin", origin, &ok);
                json_add_bool(o, "on_every_node", everywhere, &ok);
                json_add_u64(o, "keepalive", p->keepalive, &ok);
                ips = json_object_new_array();
                json_add(o, "allowed_ips", ips, &ok);
                for (size_t k = 0; ok && k < p->n_allowedips; k++) {
                        struct ip_address a = { .family = p->allowedips[k].family, .addr = p->allowedips[k].ip };
                        size_t n;

                        ip_address_to_string(&a, buf, sizeof(buf));
                        n = strlen(buf);
                        snprintf(buf + n, sizeof(buf) - n, "/%u", p->allowedips[k].cidr);
                        json_push_string(ips, buf, &ok);
                }
                json_add_string(o, "endpoint",
                                hlc_ts_is_zero(p->endpoint_version) ? NULL
                                                                   : wg_endpoint_to_string(&p->endpoint, ep, sizeof(ep)),
                                &ok);
                json_push(arr, o, &ok);
        }
        if (!ok)
                return -ENOMEM;
        *ret = TAKE_PTR(arr);
        return 0;
}

void sync_status_text(struct hamgr_daemon *d, struct buf *b) {
        struct hamgr_sync *s = d->sync;

        if (!s)
                return;
        buf_printf(b, "sync: %zu records, listening on %s\n", replica_n_records(s->replica), s->config->listen);
        if (replica_bootstrapping(s->replica))
                buf_printf(b, "sync: no state of its own yet: waiting for a peer's full state (bootstrap_grace_s %" PRIu32
                              ")\n", s->config->bootstrap_grace_s);
        buf_printf(b, "sync: %" PRIu64 " handshakes (%" PRIu64 " rekeys), %zu pending; refused: %" PRIu64
                      " unknown source, %" PRIu64 " handshake timeouts, %" PRIu64 " failed, %" PRIu64 " evicted, %" PRIu64
                      " for the descriptor reserve\n",
                   s->handshakes, s->rekeys, s->n_pending, s->refused_unknown_source, s->handshake_timeouts,
                   s->handshakes_failed, s->handshakes_evicted, s->refused_fd_reserve);
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
                /* A read in flight may be of an interface gone or moved to
                 * another backend. */
                polls_cancel(s);
                return 0;
        }
        sync_stop(d);
        return sync_start(d);
}
