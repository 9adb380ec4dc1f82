/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * sync_rogue: a configured sync peer gone bad, for integration tests of
 * the threat model in docs/sync-protocol.md (a compromised node that holds
 * its own sync key). It completes the real handshake with that key, so
 * everything it sends is authenticated, and then sends what an honest
 * hamgr never would.
 *
 *   sync_rogue KEY_FILE REMOTE_PUBLIC HOST:PORT NAME STEP...
 *
 * Connects to HOST:PORT (the node whose sync public key is REMOTE_PUBLIC,
 * base64) as the node whose private key is in KEY_FILE, sends HELLO (as
 * NAME) and an empty catch-up (CAUGHT_UP, so that what follows is merged
 * as live changes), then runs the STEPs in order on that one connection:
 *
 *   batch:KIND[:N]  one CHANGES batch of N (default 1) peer records on
 *                   interface wg0, each a new peer with one allowed IP in
 *                   10.250.0.0/16, stamped now by this node, except
 *                   (KIND may join several with '+': a record of each):
 *                     ok                 nothing wrong with it
 *                     future             stamped an hour ahead
 *                     max                stamped with the greatest version
 *                     writer-target      written by the remote node
 *                     writer-invented    written by a node nobody knows
 *                     endpoint-loopback  endpoint 127.0.0.1:51820
 *                     endpoint-port0     endpoint 198.51.100.7:0
 *                     endpoint-multicast endpoint 224.0.0.9:51820
 *   flood:N         N "ok" batches of one record, sent without waiting for
 *                   a single acknowledgement
 *   expect-ack      the last batch is acknowledged within 5 s
 *   expect-close    the remote closes the connection within 10 s
 *   sleep:MS        keep the connection (heartbeats, acks) for MS ms
 *
 * Prints one line per event: "sent SEQ KIND PUBLIC_KEY" for each record,
 * "acked SEQ", "closed REASON". Exits 0 when every expect- step held, 1
 * otherwise (the reason on stderr), 2 on a usage or setup error. Sends no
 * RESUME: the remote streams it nothing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "common/macro.h"
#include "sync/replica.h"
#include "sync/sync_proto.h"
#include "wg/key.h"
#include "wg/wg.h"

#define ROGUE_IFNAME "wg0"
#define ROGUE_ACK_WAIT_MS 5000
#define ROGUE_CLOSE_WAIT_MS 10000
#define ROGUE_HEARTBEAT_MS 1000

struct rogue {
        int fd;
        struct sync_session *session;
        uint8_t local_public[SYNC_KEY_LEN];
        uint8_t remote_public[SYNC_KEY_LEN];
        uint64_t seq;                         /* the last CHANGES or CAUGHT_UP we numbered */
        uint64_t acked;                       /* the greatest seq the remote acknowledged */
        uint64_t records;                     /* records sent: their allowed IPs */
        uint16_t logical;
        uint64_t last_tx_ms;
        bool closed;
};

static bool startswith(const char *s, const char *prefix) {
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

static uint64_t realtime_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static uint64_t mono_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static void die(const char *what) {
        fprintf(stderr, "sync_rogue: %s\n", what);
        exit(2);
}

static int send_all(struct rogue *g, const uint8_t *buf, size_t len) {
        while (len > 0) {
                ssize_t n = send(g->fd, buf, len, MSG_NOSIGNAL);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                buf += n;
                len -= (size_t) n;
        }
        g->last_tx_ms = mono_ms();
        return 0;
}

static int send_frame(struct rogue *g, const struct sync_frame *f) {
        uint8_t *buf = NULL;
        size_t len = 0;
        int r = sync_frame_encode(g->session, f, &buf, &len);

        if (r < 0)
                return r;
        r = send_all(g, buf, len);
        free(buf);
        return r;
}

static void note_closed(struct rogue *g, const char *why) {
        if (g->closed)
                return;
        g->closed = true;
        printf("closed %s\n", why);
        fflush(stdout);
}

/* Read what has come within TIMEOUT_MS and answer it as a node would:
 * CHANGES and CAUGHT_UP acknowledged. Returns when something was read or
 * the time is up. */
static void pump(struct rogue *g, int timeout_ms) {
        uint8_t buf[65536];
        struct pollfd p = { .fd = g->fd, .events = POLLIN };
        ssize_t n;

        if (g->closed)
                return;
        if (poll(&p, 1, timeout_ms) <= 0)
                return;
        n = recv(g->fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR)
                return;
        if (n <= 0) {
                note_closed(g, n == 0 ? "eof" : strerror(errno));
                return;
        }
        if (sync_session_feed(g->session, buf, (size_t) n) < 0) {
                note_closed(g, "unreadable stream");
                return;
        }
        for (;;) {
                struct sync_frame f;
                const char *reason = NULL;
                uint8_t *out = NULL;
                size_t out_len = 0;
                int r = sync_session_next_frame(g->session, &f, &reason);

                if (sync_session_take_output(g->session, &out, &out_len) > 0) {
                        (void) send_all(g, out, out_len);
                        free(out);
                }
                if (r < 0) {
                        note_closed(g, reason ? reason : "protocol error");
                        return;
                }
                if (r == 0)
                        return;
                switch (f.type) {
                case SYNC_FRAME_CHANGES:
                case SYNC_FRAME_CAUGHT_UP: {
                        struct sync_frame ack = { .type = SYNC_FRAME_ACK,
                                                  .ack.seq = f.type == SYNC_FRAME_CHANGES ? f.changes.seq
                                                                                           : f.caught_up.seq };

                        (void) send_frame(g, &ack);
                        break;
                }
                case SYNC_FRAME_ACK:
                        if (f.ack.seq > g->acked) {
                                g->acked = f.ack.seq;
                                printf("acked %" PRIu64 "\n", f.ack.seq);
                                fflush(stdout);
                        }
                        break;
                case SYNC_FRAME_CLOSE: {
                        char why[64];

                        snprintf(why, sizeof(why), "by CLOSE (%s)", sync_close_reason_to_string(f.close.reason) ?: "?");
                        note_closed(g, why);
                        return;
                }
                default:
                        break;
                }
        }
}

/* Keep the connection for MS: read, acknowledge, send heartbeats. */
static void hold(struct rogue *g, uint64_t ms, bool (*done)(const struct rogue *g)) {
        uint64_t until = mono_ms() + ms;

        while (!g->closed && mono_ms() < until && !(done && done(g))) {
                if (mono_ms() - g->last_tx_ms >= ROGUE_HEARTBEAT_MS) {
                        struct sync_frame hb = { .type = SYNC_FRAME_HEARTBEAT, .heartbeat.clock_usec = realtime_ms() * 1000 };

                        if (send_frame(g, &hb) < 0)
                                note_closed(g, "send failed");
                }
                pump(g, 50);
        }
}

static bool all_acked(const struct rogue *g) {
        return g->acked >= g->seq;
}

static void rogue_connect(struct rogue *g, const char *key_file, const char *remote, const char *hostport,
                          const char *name) {
        uint8_t private_key[SYNC_KEY_LEN];
        char text[256] = {}, host[64];
        struct sockaddr_in sa = { .sin_family = AF_INET };
        const char *reason = NULL, *colon = strrchr(hostport, ':');
        uint8_t *out = NULL;
        size_t n, out_len = 0;
        FILE *f;

        f = fopen(key_file, "re");
        if (!f)
                die("cannot open the key file");
        n = fread(text, 1, sizeof(text) - 1, f);
        fclose(f);
        if (sync_key_parse(text, n, private_key, &reason) < 0)
                die("bad key file");
        sodium_memzero(text, sizeof(text));
        crypto_scalarmult_base(g->local_public, private_key);
        if (wg_key_from_base64(g->remote_public, remote) < 0)
                die("bad remote public key");
        if (!colon || (size_t) (colon - hostport) >= sizeof(host))
                die("bad HOST:PORT");
        snprintf(host, sizeof(host), "%.*s", (int) (colon - hostport), hostport);
        sa.sin_port = htons((uint16_t) atoi(colon + 1));
        if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
                die("bad HOST (IPv4 only)");

        g->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (g->fd < 0 || connect(g->fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                die("cannot connect");
        if (sync_session_new_initiator(&g->session, private_key, g->remote_public, realtime_ms() * 1000) < 0)
                die("cannot start the handshake");
        sodium_memzero(private_key, sizeof(private_key));
        if (sync_session_take_output(g->session, &out, &out_len) <= 0 || send_all(g, out, out_len) < 0)
                die("cannot send message 1");
        free(out);
        for (uint64_t until = mono_ms() + 5000; !sync_session_is_established(g->session);) {
                if (g->closed || mono_ms() >= until)
                        die("handshake failed");
                pump(g, 100);
        }

        {
                struct sync_frame hello = { .type = SYNC_FRAME_HELLO, .hello.clock_usec = realtime_ms() * 1000 };
                struct sync_frame caught_up = { .type = SYNC_FRAME_CAUGHT_UP, .caught_up.seq = ++g->seq };

                snprintf(hello.hello.name, sizeof(hello.hello.name), "%s", name);
                if (send_frame(g, &hello) < 0 || send_frame(g, &caught_up) < 0)
                        die("cannot send HELLO");
        }
        hold(g, ROGUE_ACK_WAIT_MS, all_acked);
        if (!all_acked(g))
                die("the empty catch-up was not acknowledged");
}

/* One record of KIND: a new peer, as this node would write it but for
 * what KIND breaks. */
static void make_record(struct rogue *g, const char *kind, struct replica_rec *rec, struct wg_allowedip *ip) {
        uint64_t now = realtime_ms(), me = replica_node_id(g->local_public);
        uint8_t secret[32];
        struct replica_peer *p = &rec->peer;

        *rec = (struct replica_rec) { .type = REPLICA_REC_PEER };
        snprintf(rec->ifname, sizeof(rec->ifname), "%s", ROGUE_IFNAME);
        crypto_box_keypair(p->public_key, secret);
        sodium_memzero(secret, sizeof(secret));
        g->records++;
        *ip = (struct wg_allowedip) { .family = AF_INET, .cidr = 32 };
        ip->ip.in.s_addr = htonl(0x0afa0000u | (uint32_t) (g->records & 0xffff));
        p->allowedips = ip;
        p->n_allowedips = 1;
        p->version = (struct hlc_ts) { .wall_ms = now, .logical = g->logical++, .node = me };

        if (streq(kind, "future"))
                p->version.wall_ms = now + 3600 * 1000;
        else if (streq(kind, "max"))
                p->version = (struct hlc_ts) { .wall_ms = HLC_WALL_MAX, .logical = UINT16_MAX, .node = me };
        else if (streq(kind, "writer-target"))
                p->version.node = replica_node_id(g->remote_public);
        else if (streq(kind, "writer-invented"))
                p->version.node = me ^ UINT64_C(0x5a5a5a5a5a5a5a5a);
        else if (startswith(kind, "endpoint-")) {
                struct sockaddr_in *a = &p->endpoint.addr4;
                const char *addr = streq(kind, "endpoint-loopback")    ? "127.0.0.1"
                                   : streq(kind, "endpoint-port0")     ? "198.51.100.7"
                                   : streq(kind, "endpoint-multicast") ? "224.0.0.9"
                                                                       : NULL;

                if (!addr)
                        die("unknown record kind");
                a->sin_family = AF_INET;
                a->sin_port = htons(streq(kind, "endpoint-port0") ? 0 : 51820);
                inet_pton(AF_INET, addr, &a->sin_addr);
                p->endpoint_version = p->version;
        } else if (!streq(kind, "ok"))
                die("unknown record kind");
}

/* KINDS: one or more kinds joined by '+', a record of each, N times. */
static void send_batch(struct rogue *g, const char *kinds, size_t n) {
        char kind[64], *names[16];
        size_t n_kinds = 0, n_recs;
        struct replica_rec *recs;
        struct wg_allowedip *ips;
        struct replica_changes c;
        struct sync_frame f = { .type = SYNC_FRAME_CHANGES };
        uint8_t *data = NULL;
        size_t len = 0;

        snprintf(kind, sizeof(kind), "%s", kinds);
        for (char *save = NULL, *t = strtok_r(kind, "+", &save); t && n_kinds < ELEMENTSOF(names);
             t = strtok_r(NULL, "+", &save))
                names[n_kinds++] = t;
        if (n_kinds == 0)
                die("no record kind");
        n_recs = n * n_kinds;
        recs = calloc(n_recs, sizeof(*recs));
        ips = calloc(n_recs, sizeof(*ips));
        if (!recs || !ips)
                die("out of memory");
        for (size_t i = 0; i < n_recs; i++)
                make_record(g, names[i % n_kinds], &recs[i], &ips[i]);
        c = (struct replica_changes) { .recs = recs, .n = n_recs };
        if (replica_changes_encode(&c, &data, &len) < 0)
                die("cannot encode the batch");
        f.changes.seq = ++g->seq;
        f.changes.data = data;
        f.changes.len = len;
        if (send_frame(g, &f) < 0)
                note_closed(g, "send failed");
        for (size_t i = 0; i < n_recs; i++) {
                char b64[WG_KEY_B64_LEN];

                wg_key_to_base64(b64, recs[i].peer.public_key);
                printf("sent %" PRIu64 " %s %s\n", g->seq, names[i % n_kinds], b64);
        }
        fflush(stdout);
        free(data);
        free(recs);
        free(ips);
}

int main(int argc, char **argv) {
        struct rogue g = { .fd = -1 };
        int failed = 0;

        if (argc < 6) {
                fprintf(stderr, "Usage: sync_rogue KEY_FILE REMOTE_PUBLIC HOST:PORT NAME STEP...\n");
                return 2;
        }
        if (sodium_init() < 0)
                die("libsodium");
        setvbuf(stdout, NULL, _IOLBF, 0);
        rogue_connect(&g, argv[1], argv[2], argv[3], argv[4]);
        for (int i = 5; i < argc; i++) {
                const char *step = argv[i];

                if (startswith(step, "batch:")) {
                        char kind[64];
                        const char *colon = strchr(step + 6, ':');
                        size_t n = colon ? strtoul(colon + 1, NULL, 10) : 1;

                        snprintf(kind, sizeof(kind), "%.*s", (int) (colon ? (size_t) (colon - (step + 6)) : strlen(step + 6)),
                                 step + 6);
                        if (n == 0)
                                die("a batch of no records");
                        send_batch(&g, kind, n);
                        pump(&g, 0);
                } else if (startswith(step, "flood:")) {
                        unsigned long n = strtoul(step + 6, NULL, 10);

                        for (unsigned long k = 0; k < n && !g.closed; k++)
                                send_batch(&g, "ok", 1);
                } else if (streq(step, "expect-ack")) {
                        hold(&g, ROGUE_ACK_WAIT_MS, all_acked);
                        if (!all_acked(&g)) {
                                fprintf(stderr, "sync_rogue: batch %" PRIu64 " not acknowledged (last ack %" PRIu64 ")\n",
                                        g.seq, g.acked);
                                failed = 1;
                        }
                } else if (streq(step, "expect-close")) {
                        hold(&g, ROGUE_CLOSE_WAIT_MS, NULL);
                        if (!g.closed) {
                                fprintf(stderr, "sync_rogue: the connection is still open\n");
                                failed = 1;
                        }
                } else if (startswith(step, "sleep:"))
                        hold(&g, strtoull(step + 6, NULL, 10), NULL);
                else
                        die("unknown step");
        }
        sync_session_free(g.session);
        if (g.fd >= 0)
                close(g.fd);
        return failed;
}
