/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <limits.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include <sodium.h>

#include "common/macro.h"
#include "common/parse.h"
#include "wg/uapi.h"

#define NSEC_PER_SEC INT64_C(1000000000)
/* boringtun reports seconds since the handshake; wireguard-go (and the
 * kernel) seconds since the epoch. Anything below this (Sept. 2001) is the
 * former. */
#define RELATIVE_HANDSHAKE_LIMIT INT64_C(1000000000)
/* Socket I/O buffer; larger than a line so a partial line always fits. */
#define IO_CHUNK (64 * 1024)

_Static_assert(IO_CHUNK > WG_UAPI_LINE_MAX + 1, "a whole line must fit the read buffer");

/* ---- exchange deadline ---- */

static int64_t now_usec(void) {
        struct timespec ts;

        /* CLOCK_MONOTONIC cannot fail on Linux. */
        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The bounds of one exchange (monotonic usec): it fails when no byte went
 * either way for WG_UAPI_TIMEOUT_MSEC, or at WG_UAPI_TOTAL_MSEC in all. A
 * get of 50,000 peers from a loaded wireguard-go takes seconds but keeps
 * moving; a stalled daemon does not. */
struct exchange {
        int64_t progress;                     /* last byte sent or received */
        int64_t cap;
};

static struct exchange exchange_start(void) {
        int64_t now = now_usec();

        return (struct exchange) { .progress = now, .cap = now + (int64_t) WG_UAPI_TOTAL_MSEC * 1000 };
}

static void exchange_progress(struct exchange *ex) {
        ex->progress = now_usec();
}

/* Sockets whose daemon let an exchange time out, and until when they are
 * not asked again (monotonic usec). hamgr talks to the daemons from its
 * event loop: one stalled exchange delays VRRP by WG_UAPI_TIMEOUT_MSEC, a
 * stall on every call of a busy loop would stop it. Few slots: a node has a
 * handful of WireGuard interfaces; when full, the oldest entry goes.
 * hamgr's takeover calls in from a worker thread too: the lock. */
static pthread_mutex_t wedged_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
        char path[sizeof(((struct sockaddr_un *) NULL)->sun_path)];
        int64_t until;
} wedged[8];

static size_t wedged_find(const char *path) {
        for (size_t i = 0; i < ELEMENTSOF(wedged); i++)
                if (wedged[i].until != 0 && streq(wedged[i].path, path))
                        return i;
        return SIZE_MAX;
}

static bool wedged_now(const char *path) {
        bool wedged_until_later = false;
        size_t i;

        pthread_mutex_lock(&wedged_lock);
        i = wedged_find(path);
        if (i != SIZE_MAX) {
                if (now_usec() < wedged[i].until)
                        wedged_until_later = true;
                else
                        wedged[i].until = 0;
        }
        pthread_mutex_unlock(&wedged_lock);
        return wedged_until_later;
}

/* Note the outcome R of an exchange with the daemon at PATH. */
static int wedged_note(const char *path, int r) {
        size_t i;

        pthread_mutex_lock(&wedged_lock);
        i = wedged_find(path);
        if (r != -ETIMEDOUT) {
                if (i != SIZE_MAX)
                        wedged[i].until = 0;
                pthread_mutex_unlock(&wedged_lock);
                return r;
        }
        if (i == SIZE_MAX) {
                i = 0;
                for (size_t k = 1; k < ELEMENTSOF(wedged); k++)
                        if (wedged[k].until < wedged[i].until)
                                i = k;
        }
        snprintf(wedged[i].path, sizeof(wedged[i].path), "%s", path);
        wedged[i].until = now_usec() + (int64_t) WG_UAPI_HOLDOFF_MSEC * 1000;
        pthread_mutex_unlock(&wedged_lock);
        return r;
}

/* Arm FD's send or receive timeout (OPT) with what is left of EX: the
 * stall bound from the last progress, and never past the total cap, so a
 * daemon that trickles a byte now and then cannot stretch the exchange
 * beyond it. */
static int sock_arm(int fd, int opt, const struct exchange *ex) {
        int64_t stall = ex->progress + (int64_t) WG_UAPI_TIMEOUT_MSEC * 1000;
        int64_t left = MIN(stall, ex->cap) - now_usec();
        struct timeval tv;

        if (left <= 0)
                return -ETIMEDOUT;
        tv = (struct timeval) { .tv_sec = left / 1000000, .tv_usec = left % 1000000 };
        if (setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv)) < 0)
                return -errno;
        return 0;
}

/* ---- small parsers ---- */

/* errno=N of either sign (boringtun answers positive values, wireguard-go
 * negative ones); returns the value as -|N|, or 1 when malformed. */
static int parse_errno(const char *s) {
        uint64_t v;

        if (*s == '-')
                s++;
        if (parse_u64_decimal(s, 4095, &v) < 0)
                return 1;
        return -(int) v;
}

/* A digit's value and whether it is one, by lookup: the digits of random
 * keys defeat branch prediction, and every read of a large device parses
 * tens of thousands of them. */
static const uint8_t hex_value[256] = {
        ['0'] = 0,  ['1'] = 1,  ['2'] = 2,  ['3'] = 3,  ['4'] = 4,  ['5'] = 5,  ['6'] = 6,  ['7'] = 7,
        ['8'] = 8,  ['9'] = 9,  ['a'] = 10, ['b'] = 11, ['c'] = 12, ['d'] = 13, ['e'] = 14, ['f'] = 15,
        ['A'] = 10, ['B'] = 11, ['C'] = 12, ['D'] = 13, ['E'] = 14, ['F'] = 15,
};
static const uint8_t hex_valid[256] = {
        ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
        ['8'] = 1, ['9'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
        ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
};

/* N bytes from the 2 * N hex digits at S into RET; whether all were
 * digits. No early exit: one test at the end, no branch per digit. */
static bool hex_bytes(const char *s, size_t n, uint8_t *ret) {
        uint8_t valid = 1;

        for (size_t i = 0; i < n; i++) {
                uint8_t hi = (uint8_t) s[2 * i], lo = (uint8_t) s[2 * i + 1];

                valid &= hex_valid[hi] & hex_valid[lo];
                ret[i] = (uint8_t) (hex_value[hi] << 4 | hex_value[lo]);
        }
        return valid;
}

static int parse_hex_key(const char *s, uint8_t ret[static WG_KEY_LEN]) {
        uint8_t k[WG_KEY_LEN];
        int r = -EINVAL;

        if (strlen(s) != 2 * WG_KEY_LEN)
                return -EINVAL;
        if (hex_bytes(s, WG_KEY_LEN, k)) {
                memcpy(ret, k, WG_KEY_LEN);
                r = 0;
        }
        sodium_memzero(k, sizeof(k));
        return r;
}

static int parse_allowedip(const char *s, struct wg_allowedip *ret) {
        struct wg_allowedip a = {};
        char host[INET6_ADDRSTRLEN];
        const char *slash = strchr(s, '/');
        uint64_t cidr;
        size_t n;

        if (!slash)
                return -EINVAL;
        n = (size_t) (slash - s);
        if (n == 0 || n >= sizeof(host))
                return -EINVAL;
        memcpy(host, s, n);
        host[n] = '\0';
        a.family = strchr(host, ':') ? AF_INET6 : AF_INET;
        if (inet_pton(a.family, host, &a.ip) != 1)
                return -EINVAL;
        if (parse_u64_decimal(slash + 1, a.family == AF_INET ? 32 : 128, &cidr) < 0)
                return -EINVAL;
        a.cidr = (uint8_t) cidr;
        *ret = a;
        return 0;
}

/* ---- line splitting, shared by the pure parsers and the socket ---- */

/* Called with each line (without '\n', NUL-terminated, at most
 * WG_UAPI_LINE_MAX bytes). Returns <0 to stop with an error, 1 after the
 * final blank line, 0 to go on. */
typedef int (*line_fn)(void *userdata, char *line, size_t len, const char **reason);

static int feed_line(line_fn fn, void *userdata, const uint8_t *line, size_t len, const char **reason) {
        char copy[WG_UAPI_LINE_MAX + 1];
        int r;

        if (len > WG_UAPI_LINE_MAX) {
                *reason = "line too long";
                return -EBADMSG;
        }
        if (memchr(line, '\0', len)) {
                *reason = "NUL byte in line";
                return -EBADMSG;
        }
        memcpy(copy, line, len);
        copy[len] = '\0';
        r = fn(userdata, copy, len, reason);
        /* Lines may hold key material. */
        sodium_memzero(copy, len);
        return r;
}

static int parse_lines(const uint8_t *buf, size_t len, line_fn fn, void *userdata, const char **reason) {
        size_t pos = 0;
        int r;

        if (!buf && len > 0)
                return -EINVAL;
        while (pos < len) {
                const uint8_t *nl = memchr(buf + pos, '\n', len - pos);

                if (!nl) {
                        *reason = len - pos > WG_UAPI_LINE_MAX ? "line too long" : "last line not terminated";
                        return -EBADMSG;
                }
                r = feed_line(fn, userdata, buf + pos, (size_t) (nl - (buf + pos)), reason);
                pos = (size_t) (nl - buf) + 1;
                if (r < 0)
                        return r;
                if (r > 0) {
                        if (pos != len) {
                                *reason = "data after the end of the reply";
                                return -EBADMSG;
                        }
                        return 0;
                }
        }
        *reason = "reply does not end with a blank line";
        return -EBADMSG;
}

/* Read lines from FD until FN sees the final blank line, or EX runs out. */
static int read_lines(int fd, struct exchange *ex, line_fn fn, void *userdata, const char **reason) {
        _cleanup_(freep) uint8_t *buf = NULL;
        size_t start = 0, end = 0;
        bool got_any = false;
        int r;

        buf = malloc(IO_CHUNK);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                uint8_t *nl = memchr(buf + start, '\n', end - start);
                ssize_t n;

                if (nl) {
                        r = feed_line(fn, userdata, buf + start, (size_t) (nl - (buf + start)), reason);
                        start = (size_t) (nl - buf) + 1;
                        if (r != 0)
                                break;
                        continue;
                }
                if (end - start > WG_UAPI_LINE_MAX) {
                        *reason = "line too long";
                        r = -EBADMSG;
                        break;
                }
                memmove(buf, buf + start, end - start);
                end -= start;
                start = 0;
                r = sock_arm(fd, SO_RCVTIMEO, ex);
                if (r < 0)
                        break;
                n = recv(fd, buf + end, IO_CHUNK - end, 0);
                if (n > 0)
                        exchange_progress(ex);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
                        break;
                }
                if (n == 0) {
                        if (!got_any)
                                r = -ECONNRESET;
                        else {
                                *reason = "reply truncated";
                                r = -EBADMSG;
                        }
                        break;
                }
                got_any = true;
                end += (size_t) n;
        }
        sodium_memzero(buf, IO_CHUNK);
        return r < 0 ? r : 0;
}

/* ---- get ---- */

/* The keys of a get reply, looked up once per line: a reply of 50,000
 * peers has half a million lines. */
enum get_key {
        GET_KEY_UNKNOWN,
        GET_KEY_ERRNO,
        GET_KEY_PUBLIC_KEY,
        /* the device's */
        GET_KEY_PRIVATE_KEY,
        GET_KEY_OWN_PUBLIC_KEY,
        GET_KEY_LISTEN_PORT,
        GET_KEY_FWMARK,
        /* a peer's */
        GET_KEY_PRESHARED_KEY,
        GET_KEY_ENDPOINT,
        GET_KEY_PERSISTENT_KEEPALIVE_INTERVAL,
        GET_KEY_ALLOWED_IP,
        GET_KEY_LAST_HANDSHAKE_TIME_SEC,
        GET_KEY_LAST_HANDSHAKE_TIME_NSEC,
        GET_KEY_RX_BYTES,
        GET_KEY_TX_BYTES,
        GET_KEY_PROTOCOL_VERSION,
        _GET_KEY_MAX,
};

static const char *const get_key_names[_GET_KEY_MAX] = {
        [GET_KEY_ERRNO] = "errno",
        [GET_KEY_PUBLIC_KEY] = "public_key",
        [GET_KEY_PRIVATE_KEY] = "private_key",
        [GET_KEY_OWN_PUBLIC_KEY] = "own_public_key",
        [GET_KEY_LISTEN_PORT] = "listen_port",
        [GET_KEY_FWMARK] = "fwmark",
        [GET_KEY_PRESHARED_KEY] = "preshared_key",
        [GET_KEY_ENDPOINT] = "endpoint",
        [GET_KEY_PERSISTENT_KEEPALIVE_INTERVAL] = "persistent_keepalive_interval",
        [GET_KEY_ALLOWED_IP] = "allowed_ip",
        [GET_KEY_LAST_HANDSHAKE_TIME_SEC] = "last_handshake_time_sec",
        [GET_KEY_LAST_HANDSHAKE_TIME_NSEC] = "last_handshake_time_nsec",
        [GET_KEY_RX_BYTES] = "rx_bytes",
        [GET_KEY_TX_BYTES] = "tx_bytes",
        [GET_KEY_PROTOCOL_VERSION] = "protocol_version",
};

static enum get_key get_key_lookup(const char *key) {
        /* The keys by first letter: a line costs one or two compares. */
        static const enum get_key candidates[][5] = {
                ['a' - 'a'] = { GET_KEY_ALLOWED_IP },
                ['e' - 'a'] = { GET_KEY_ENDPOINT, GET_KEY_ERRNO },
                ['f' - 'a'] = { GET_KEY_FWMARK },
                ['l' - 'a'] = { GET_KEY_LAST_HANDSHAKE_TIME_SEC, GET_KEY_LAST_HANDSHAKE_TIME_NSEC, GET_KEY_LISTEN_PORT },
                ['o' - 'a'] = { GET_KEY_OWN_PUBLIC_KEY },
                ['p' - 'a'] = { GET_KEY_PUBLIC_KEY, GET_KEY_PRESHARED_KEY, GET_KEY_PERSISTENT_KEEPALIVE_INTERVAL,
                                GET_KEY_PRIVATE_KEY, GET_KEY_PROTOCOL_VERSION },
                ['r' - 'a'] = { GET_KEY_RX_BYTES },
                ['t' - 'a'] = { GET_KEY_TX_BYTES },
        };
        const enum get_key *c;

        if (key[0] < 'a' || key[0] > 't')
                return GET_KEY_UNKNOWN;
        c = candidates[key[0] - 'a'];
        for (size_t i = 0; i < ELEMENTSOF(candidates[0]) && c[i] != GET_KEY_UNKNOWN; i++)
                if (streq(key, get_key_names[c[i]]))
                        return c[i];
        return GET_KEY_UNKNOWN;
}

struct get_parser {
        struct wg_device *dev;
        int64_t now;
        size_t n_allowedips;
        bool in_peer;
        bool have_errno;
        int error;
        /* Only what the endpoint store needs (wg_uapi_get_endpoints()):
         * preshared keys and allowed IPs are skipped. */
        bool light;
};

/* boringtun's time since the handshake becomes wall-clock time. */
static void get_parser_finish_peer(struct get_parser *p) {
        struct wg_peer *peer;
        int64_t rel, now_ns, abs;

        if (!p->in_peer)
                return;
        peer = &p->dev->peers[p->dev->n_peers - 1];
        if (peer->last_handshake_time_sec >= RELATIVE_HANDSHAKE_LIMIT ||
            (peer->last_handshake_time_sec == 0 && peer->last_handshake_time_nsec == 0))
                return;
        rel = peer->last_handshake_time_sec * NSEC_PER_SEC + peer->last_handshake_time_nsec;
        now_ns = p->now > 0 && p->now < INT64_MAX / NSEC_PER_SEC ? p->now * NSEC_PER_SEC : 0;
        abs = now_ns - rel;
        if (abs < NSEC_PER_SEC)
                /* A clock before the handshake: a handshake happened, at
                 * some unknown time; 0 would claim there was none. */
                abs = NSEC_PER_SEC;
        peer->last_handshake_time_sec = abs / NSEC_PER_SEC;
        peer->last_handshake_time_nsec = abs % NSEC_PER_SEC;
}

static int get_device_line(struct get_parser *p, enum get_key key, const char *value, const char **reason) {
        struct wg_device *dev = p->dev;
        uint64_t v;
        int r;

        if (key == GET_KEY_PRIVATE_KEY) {
                if (parse_hex_key(value, dev->private_key) < 0)
                        goto bad;
                dev->flags &= ~(uint32_t) (WG_DEVICE_HAS_PRIVATE_KEY | WG_DEVICE_HAS_PUBLIC_KEY);
                if (wg_key_is_zero(dev->private_key))
                        return 0;
                r = wg_key_public_from_private(dev->public_key, dev->private_key);
                if (r < 0)
                        return r;
                dev->flags |= WG_DEVICE_HAS_PRIVATE_KEY | WG_DEVICE_HAS_PUBLIC_KEY;
        } else if (key == GET_KEY_OWN_PUBLIC_KEY) {
                if (parse_hex_key(value, dev->public_key) < 0)
                        goto bad;
                dev->flags |= WG_DEVICE_HAS_PUBLIC_KEY;
        } else if (key == GET_KEY_LISTEN_PORT) {
                if (parse_u64_decimal(value, UINT16_MAX, &v) < 0)
                        goto bad;
                dev->listen_port = (uint16_t) v;
                dev->flags |= WG_DEVICE_HAS_LISTEN_PORT;
        } else if (key == GET_KEY_FWMARK) {
                if (parse_u64_decimal(value, UINT32_MAX, &v) < 0)
                        goto bad;
                dev->fwmark = (uint32_t) v;
                dev->flags |= WG_DEVICE_HAS_FWMARK;
        }
        return 0;
bad:
        *reason = "bad device value";
        return -EBADMSG;
}

static int get_peer_line(struct get_parser *p, enum get_key key, const char *value, const char **reason) {
        struct wg_peer *peer = &p->dev->peers[p->dev->n_peers - 1];
        struct wg_allowedip a;
        uint64_t v;

        if (p->light && (key == GET_KEY_PRESHARED_KEY || key == GET_KEY_ALLOWED_IP))
                return 0;
        if (key == GET_KEY_PRESHARED_KEY) {
                if (parse_hex_key(value, peer->preshared_key) < 0)
                        goto bad;
                if (wg_key_is_zero(peer->preshared_key))
                        peer->flags &= ~(uint32_t) WG_PEER_HAS_PRESHARED_KEY;
                else
                        peer->flags |= WG_PEER_HAS_PRESHARED_KEY;
        } else if (key == GET_KEY_ENDPOINT) {
                if (wg_endpoint_parse(value, &peer->endpoint) < 0)
                        goto bad;
                peer->flags |= WG_PEER_HAS_ENDPOINT;
        } else if (key == GET_KEY_PERSISTENT_KEEPALIVE_INTERVAL) {
                if (parse_u64_decimal(value, UINT16_MAX, &v) < 0)
                        goto bad;
                peer->persistent_keepalive_interval = (uint16_t) v;
                peer->flags |= WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL;
        } else if (key == GET_KEY_ALLOWED_IP) {
                if (p->n_allowedips >= WG_UAPI_MAX_ALLOWEDIPS) {
                        *reason = "too many allowed IPs";
                        return -EBADMSG;
                }
                if (parse_allowedip(value, &a) < 0)
                        goto bad;
                if (wg_peer_add_allowedip(peer, &a) < 0)
                        return -ENOMEM;
                p->n_allowedips++;
        } else if (key == GET_KEY_LAST_HANDSHAKE_TIME_SEC) {
                if (parse_u64_decimal(value, INT64_MAX / NSEC_PER_SEC - 1, &v) < 0)
                        goto bad;
                peer->last_handshake_time_sec = (int64_t) v;
        } else if (key == GET_KEY_LAST_HANDSHAKE_TIME_NSEC) {
                if (parse_u64_decimal(value, NSEC_PER_SEC - 1, &v) < 0)
                        goto bad;
                peer->last_handshake_time_nsec = (int64_t) v;
        } else if (key == GET_KEY_RX_BYTES) {
                if (parse_u64_decimal(value, UINT64_MAX, &peer->rx_bytes) < 0)
                        goto bad;
        } else if (key == GET_KEY_TX_BYTES) {
                if (parse_u64_decimal(value, UINT64_MAX, &peer->tx_bytes) < 0)
                        goto bad;
        } else if (key == GET_KEY_PROTOCOL_VERSION) {
                /* Any later version is still a peer we can describe. */
                if (parse_u64_decimal(value, UINT64_MAX, &v) < 0)
                        goto bad;
        }
        return 0;
bad:
        *reason = "bad peer value";
        return -EBADMSG;
}

static bool is_device_key(enum get_key key) {
        return key >= GET_KEY_PRIVATE_KEY && key <= GET_KEY_FWMARK;
}

static bool is_peer_key(enum get_key key) {
        return key >= GET_KEY_PRESHARED_KEY && key <= GET_KEY_PROTOCOL_VERSION;
}

static int get_line(void *userdata, char *line, size_t len, const char **reason) {
        struct get_parser *p = userdata;
        struct wg_peer *peer;
        uint8_t key[WG_KEY_LEN];
        enum get_key k;
        char *eq;

        if (len == 0) {
                if (!p->have_errno) {
                        *reason = "reply has no errno line";
                        return -EBADMSG;
                }
                return 1;
        }
        if (p->have_errno) {
                *reason = "data after errno";
                return -EBADMSG;
        }
        eq = strchr(line, '=');
        if (!eq) {
                *reason = "line without '='";
                return -EBADMSG;
        }
        if (eq == line) {
                *reason = "empty key";
                return -EBADMSG;
        }
        *eq = '\0';
        k = get_key_lookup(line);

        if (k == GET_KEY_ERRNO) {
                int e = parse_errno(eq + 1);

                if (e > 0) {
                        *reason = "bad errno value";
                        return -EBADMSG;
                }
                get_parser_finish_peer(p);
                p->have_errno = true;
                p->error = e;
                return 0;
        }
        if (k == GET_KEY_PUBLIC_KEY) {
                if (parse_hex_key(eq + 1, key) < 0) {
                        *reason = "bad public key";
                        return -EBADMSG;
                }
                get_parser_finish_peer(p);
                if (p->dev->n_peers >= WG_UAPI_MAX_PEERS) {
                        *reason = "too many peers";
                        return -EBADMSG;
                }
                peer = wg_device_add_peer(p->dev);
                if (!peer)
                        return -ENOMEM;
                memcpy(peer->public_key, key, WG_KEY_LEN);
                peer->flags = WG_PEER_HAS_PUBLIC_KEY;
                p->in_peer = true;
                return 0;
        }
        if (is_device_key(k)) {
                if (p->in_peer) {
                        *reason = "device key after a peer";
                        return -EBADMSG;
                }
                return get_device_line(p, k, eq + 1, reason);
        }
        if (is_peer_key(k)) {
                if (!p->in_peer) {
                        *reason = "peer key before public_key";
                        return -EBADMSG;
                }
                return get_peer_line(p, k, eq + 1, reason);
        }
        /* Unknown keys: a newer daemon may report more than we know. */
        return 0;
}

/* The parse status R, else the daemon's errno. */
static int get_parser_status(const struct get_parser *p, int r) {
        return r < 0 ? r : p->error;
}

static int parse_get(const uint8_t *buf, size_t len, int64_t now_realtime_sec, bool light, struct wg_device **ret,
                     const char **ret_reason) {
        _cleanup_(wg_device_freep) struct wg_device *dev = NULL;
        const char *reason = NULL;
        struct get_parser p;
        int r;

        if (!ret)
                return -EINVAL;
        dev = calloc(1, sizeof(*dev));
        if (!dev)
                return -ENOMEM;
        p = (struct get_parser) { .dev = dev, .now = now_realtime_sec, .light = light };
        r = parse_lines(buf, len, get_line, &p, &reason);
        if (r >= 0 && p.error < 0) {
                /* Keeps "-EBADMSG comes with a reason" true for errno=74. */
                reason = "the daemon reported an error";
                r = p.error;
        }
        if (r < 0) {
                if (r == -EBADMSG && ret_reason)
                        *ret_reason = reason;
                return r;
        }
        *ret = TAKE_PTR(dev);
        return 0;
}

int wg_uapi_parse_get(const uint8_t *buf, size_t len, int64_t now_realtime_sec, struct wg_device **ret,
                      const char **ret_reason) {
        return parse_get(buf, len, now_realtime_sec, false, ret, ret_reason);
}

int wg_uapi_parse_get_endpoints(const uint8_t *buf, size_t len, int64_t now_realtime_sec, struct wg_device **ret,
                                const char **ret_reason) {
        return parse_get(buf, len, now_realtime_sec, true, ret, ret_reason);
}

/* ---- set reply ---- */

struct reply_parser {
        bool have_errno;
        int error;
};

static int reply_line(void *userdata, char *line, size_t len, const char **reason) {
        struct reply_parser *p = userdata;

        if (len == 0) {
                if (!p->have_errno) {
                        *reason = "reply has no errno line";
                        return -EBADMSG;
                }
                return 1;
        }
        if (p->have_errno) {
                *reason = "data after errno";
                return -EBADMSG;
        }
        if (strncmp(line, "errno=", 6) == 0) {
                int e = parse_errno(line + 6);

                if (e > 0) {
                        *reason = "bad errno value";
                        return -EBADMSG;
                }
                p->have_errno = true;
                p->error = e;
                return 0;
        }
        if (!strchr(line, '=')) {
                *reason = "line without '='";
                return -EBADMSG;
        }
        return 0;
}

int wg_uapi_parse_set_reply(const uint8_t *buf, size_t len, const char **ret_reason) {
        struct reply_parser p = {};
        const char *reason = NULL;
        int r;

        r = parse_lines(buf, len, reply_line, &p, &reason);
        if (r < 0) {
                if (r == -EBADMSG && ret_reason)
                        *ret_reason = reason;
                return r;
        }
        return p.error;
}

/* ---- set formatting ---- */

/* Text goes to a growing buffer (fd < 0) or, IO_CHUNK at a time, to a
 * socket, so a million peers never sit in memory as text. Buffers are
 * wiped before they are freed or reused: they hold keys. */
struct writer {
        int fd;
        struct exchange *ex;                  /* with fd >= 0 */
        char *buf;
        size_t len, cap;
        int error;
};

static void writer_flush(struct writer *w) {
        size_t off = 0;

        if (w->fd < 0 || w->error < 0)
                return;
        while (off < w->len) {
                ssize_t n;

                w->error = sock_arm(w->fd, SO_SNDTIMEO, w->ex);
                if (w->error < 0)
                        break;
                n = send(w->fd, w->buf + off, w->len - off, MSG_NOSIGNAL);
                if (n > 0)
                        exchange_progress(w->ex);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        w->error = errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
                        break;
                }
                off += (size_t) n;
        }
        sodium_memzero(w->buf, w->len);
        w->len = 0;
}

static void writer_append(struct writer *w, const char *s, size_t n) {
        if (w->error < 0)
                return;
        if (w->len + n > w->cap) {
                if (w->fd >= 0) {
                        writer_flush(w);
                        if (w->error < 0)
                                return;
                } else {
                        size_t cap = w->cap < 4096 ? 4096 : w->cap;
                        char *b;

                        while (cap < w->len + n) {
                                if (cap > SIZE_MAX / 2) {
                                        w->error = -ENOMEM;
                                        return;
                                }
                                cap *= 2;
                        }
                        b = malloc(cap);
                        if (!b) {
                                w->error = -ENOMEM;
                                return;
                        }
                        if (w->buf) {
                                memcpy(b, w->buf, w->len);
                                sodium_memzero(w->buf, w->cap);
                                free(w->buf);
                        }
                        w->buf = b;
                        w->cap = cap;
                }
        }
        memcpy(w->buf + w->len, s, n);
        w->len += n;
}

static void writer_done(struct writer *w) {
        if (w->buf)
                sodium_memzero(w->buf, w->cap);
        free(w->buf);
        w->buf = NULL;
        w->len = w->cap = 0;
}

_printf_(2, 3) static void writer_printf(struct writer *w, const char *fmt, ...) {
        char line[256];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t) n >= sizeof(line)) {
                w->error = w->error < 0 ? w->error : -EINVAL;
                return;
        }
        writer_append(w, line, (size_t) n);
}

static void writer_key(struct writer *w, const char *name, const uint8_t key[static WG_KEY_LEN]) {
        static const char hex[] = "0123456789abcdef";
        char line[32 + 2 * WG_KEY_LEN + 2];
        size_t n = strlen(name);

        memcpy(line, name, n);
        line[n++] = '=';
        for (size_t i = 0; i < WG_KEY_LEN; i++) {
                line[n++] = hex[key[i] >> 4];
                line[n++] = hex[key[i] & 0xf];
        }
        line[n++] = '\n';
        writer_append(w, line, n);
        sodium_memzero(line, sizeof(line));
}

static int validate_set(const struct wg_device *dev) {
        for (size_t i = 0; i < dev->n_peers; i++) {
                const struct wg_peer *p = &dev->peers[i];

                if (!(p->flags & WG_PEER_HAS_PUBLIC_KEY))
                        return -EINVAL;
                if (p->flags & WG_PEER_REMOVE_ME)
                        continue;
                if ((p->flags & WG_PEER_HAS_ENDPOINT) && p->endpoint.addr.sa_family != AF_UNSPEC &&
                    p->endpoint.addr.sa_family != AF_INET && p->endpoint.addr.sa_family != AF_INET6)
                        return -EINVAL;
                for (size_t k = 0; k < p->n_allowedips; k++) {
                        const struct wg_allowedip *a = &p->allowedips[k];

                        if (ip_family_addr_len(a->family) == 0 || a->cidr > ip_family_addr_len(a->family) * 8)
                                return -EINVAL;
                }
        }
        return 0;
}

static void format_set(const struct wg_device *dev, struct writer *w) {
        writer_append(w, "set=1\n", 6);
        if (dev->flags & WG_DEVICE_HAS_PRIVATE_KEY)
                writer_key(w, "private_key", dev->private_key);
        if (dev->flags & WG_DEVICE_HAS_LISTEN_PORT)
                writer_printf(w, "listen_port=%u\n", dev->listen_port);
        if (dev->flags & WG_DEVICE_HAS_FWMARK)
                writer_printf(w, "fwmark=%u\n", dev->fwmark);
        if (dev->flags & WG_DEVICE_REPLACE_PEERS)
                writer_append(w, "replace_peers=true\n", 19);

        for (size_t i = 0; i < dev->n_peers && w->error == 0; i++) {
                const struct wg_peer *p = &dev->peers[i];

                writer_key(w, "public_key", p->public_key);
                if (p->flags & WG_PEER_REMOVE_ME) {
                        writer_append(w, "remove=true\n", 12);
                        continue;
                }
                if (p->flags & WG_PEER_UPDATE_ONLY)
                        writer_append(w, "update_only=true\n", 17);
                if (p->flags & WG_PEER_HAS_PRESHARED_KEY)
                        writer_key(w, "preshared_key", p->preshared_key);
                if ((p->flags & WG_PEER_HAS_ENDPOINT) && p->endpoint.addr.sa_family != AF_UNSPEC) {
                        char e[INET6_ADDRSTRLEN + 24];

                        writer_printf(w, "endpoint=%s\n", wg_endpoint_to_string(&p->endpoint, e, sizeof(e)));
                }
                if (p->flags & WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL)
                        writer_printf(w, "persistent_keepalive_interval=%u\n", p->persistent_keepalive_interval);
                if (p->flags & WG_PEER_REPLACE_ALLOWEDIPS)
                        writer_append(w, "replace_allowed_ips=true\n", 25);
                for (size_t k = 0; k < p->n_allowedips; k++) {
                        const struct wg_allowedip *a = &p->allowedips[k];
                        char s[INET6_ADDRSTRLEN];

                        if (!inet_ntop(a->family, &a->ip, s, sizeof(s))) {
                                w->error = -EINVAL;
                                break;
                        }
                        writer_printf(w, "allowed_ip=%s/%u\n", s, a->cidr);
                }
        }
        writer_append(w, "\n", 1);
}

int wg_uapi_format_set(const struct wg_device *dev, char **ret_text) {
        struct writer w = { .fd = -1 };
        int r;

        if (!dev || !ret_text)
                return -EINVAL;
        r = validate_set(dev);
        if (r < 0)
                return r;
        format_set(dev, &w);
        writer_append(&w, "", 1);
        if (w.error < 0) {
                writer_done(&w);
                return w.error;
        }
        *ret_text = w.buf;
        return 0;
}

char *wg_uapi_text_free(char *text) {
        if (text) {
                sodium_memzero(text, strlen(text));
                free(text);
        }
        return NULL;
}

/* ---- retry for boringtun ---- */

static int peer_copy_into(struct wg_device *d, const struct wg_peer *src, uint32_t clear_flags) {
        struct wg_peer *p = wg_device_add_peer(d);

        if (!p)
                return -ENOMEM;
        *p = *src;
        p->flags &= ~clear_flags;
        p->allowedips = NULL;
        p->n_allowedips = 0;
        for (size_t k = 0; k < src->n_allowedips; k++)
                if (wg_peer_add_allowedip(p, &src->allowedips[k]) < 0)
                        return -ENOMEM;
        return 0;
}

static int add_removal(struct wg_device *d, const uint8_t key[static WG_KEY_LEN]) {
        struct wg_peer *p = wg_device_add_peer(d);

        if (!p)
                return -ENOMEM;
        memcpy(p->public_key, key, WG_KEY_LEN);
        p->flags = WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REMOVE_ME;
        return 0;
}

/* CUR with the changes in CHG applied, as a peer to add from scratch. */
static int add_merged(struct wg_device *d, const struct wg_peer *cur, const struct wg_peer *chg) {
        struct wg_peer *p = wg_device_add_peer(d);

        if (!p)
                return -ENOMEM;
        memcpy(p->public_key, chg->public_key, WG_KEY_LEN);
        p->flags = WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REPLACE_ALLOWEDIPS;
        if (cur->flags & WG_PEER_HAS_PRESHARED_KEY) {
                memcpy(p->preshared_key, cur->preshared_key, WG_KEY_LEN);
                p->flags |= WG_PEER_HAS_PRESHARED_KEY;
        }
        if (chg->flags & WG_PEER_HAS_PRESHARED_KEY) {
                memcpy(p->preshared_key, chg->preshared_key, WG_KEY_LEN);
                p->flags |= WG_PEER_HAS_PRESHARED_KEY;
        }
        if (cur->flags & WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL) {
                p->persistent_keepalive_interval = cur->persistent_keepalive_interval;
                p->flags |= WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL;
        }
        if (chg->flags & WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL) {
                p->persistent_keepalive_interval = chg->persistent_keepalive_interval;
                p->flags |= WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL;
        }
        if ((cur->flags & WG_PEER_HAS_ENDPOINT) && cur->endpoint.addr.sa_family != AF_UNSPEC) {
                p->endpoint = cur->endpoint;
                p->flags |= WG_PEER_HAS_ENDPOINT;
        }
        if ((chg->flags & WG_PEER_HAS_ENDPOINT) && chg->endpoint.addr.sa_family != AF_UNSPEC) {
                p->endpoint = chg->endpoint;
                p->flags |= WG_PEER_HAS_ENDPOINT;
        }
        if (!(chg->flags & WG_PEER_REPLACE_ALLOWEDIPS))
                for (size_t k = 0; k < cur->n_allowedips; k++)
                        if (wg_peer_add_allowedip(p, &cur->allowedips[k]) < 0)
                                return -ENOMEM;
        for (size_t k = 0; k < chg->n_allowedips; k++)
                if (wg_peer_add_allowedip(p, &chg->allowedips[k]) < 0)
                        return -ENOMEM;
        return 0;
}

int wg_uapi_readd_peers(const struct wg_device *dev, struct wg_device *current, struct wg_device **ret) {
        _cleanup_(wg_device_freep) struct wg_device *d = NULL;
        int r, n = 0;

        if (!dev || !current || !ret)
                return -EINVAL;
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        memcpy(d->name, dev->name, sizeof(d->name));
        d->ifindex = dev->ifindex;
        d->flags = dev->flags;
        memcpy(d->private_key, dev->private_key, WG_KEY_LEN);
        memcpy(d->public_key, dev->public_key, WG_KEY_LEN);
        d->listen_port = dev->listen_port;
        d->fwmark = dev->fwmark;
        wg_device_sort(current);

        for (size_t i = 0; i < dev->n_peers; i++) {
                const struct wg_peer *p = &dev->peers[i];
                const struct wg_peer *cur;

                if (p->flags & WG_PEER_REMOVE_ME) {
                        r = add_removal(d, p->public_key);
                        if (r < 0)
                                return r;
                        continue;
                }
                /* Right after its own removal, the peer is new: nothing of
                 * the current one carries over. */
                if ((dev->flags & WG_DEVICE_REPLACE_PEERS) ||
                    (i > 0 && (dev->peers[i - 1].flags & WG_PEER_REMOVE_ME) &&
                     memcmp(dev->peers[i - 1].public_key, p->public_key, WG_KEY_LEN) == 0))
                        cur = NULL;
                else
                        cur = wg_device_find_peer(current, p->public_key);
                if (!cur) {
                        if (p->flags & WG_PEER_UPDATE_ONLY)
                                continue;
                        r = peer_copy_into(d, p, 0);
                        if (r < 0)
                                return r;
                        continue;
                }
                r = add_removal(d, p->public_key);
                if (r < 0)
                        return r;
                r = add_merged(d, cur, p);
                if (r < 0)
                        return r;
                if (n < INT_MAX)
                        n++;
        }
        *ret = TAKE_PTR(d);
        return n;
}

/* ---- sockets ---- */

static bool ifname_valid(const char *s) {
        size_t n;

        if (!s)
                return false;
        n = strnlen(s, IFNAMSIZ);
        if (n == 0 || n >= IFNAMSIZ || streq(s, ".") || streq(s, ".."))
                return false;
        for (size_t i = 0; i < n; i++)
                if (s[i] == '/' || s[i] == ':' || s[i] <= ' ' || s[i] == 0x7f)
                        return false;
        return true;
}

int wg_uapi_socket_path(const char *ifname, char *buf, size_t len) {
        const char *dir;
        int n;

        if (!ifname_valid(ifname) || !buf)
                return -EINVAL;
        dir = secure_getenv(WG_UAPI_DIR_ENV);
        if (!dir || dir[0] == '\0')
                dir = WG_UAPI_SOCKET_DIR;
        n = snprintf(buf, len, "%s/%s.sock", dir, ifname);
        if (n < 0 || (size_t) n >= len)
                return -ENAMETOOLONG;
        return 0;
}

static int uapi_connect(const char *ifname, const struct exchange *ex, int *ret_fd) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_(closep) int fd = -1;
        int r;

        r = wg_uapi_socket_path(ifname, sa.sun_path, sizeof(sa.sun_path));
        if (r < 0)
                return r;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        /* A daemon whose accept queue is full makes connect() wait. */
        r = sock_arm(fd, SO_SNDTIMEO, ex);
        if (r < 0)
                return r;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                /* No socket, or a stale one left by a daemon that died. */
                if (errno == ENOENT || errno == ECONNREFUSED)
                        return -ENODEV;
                return errno == EAGAIN || errno == EINPROGRESS ? -ETIMEDOUT : -errno;
        }
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int wg_uapi_socket_probe(const char *ifname) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_(closep) int fd = -1;
        struct stat st;
        int r;

        r = wg_uapi_socket_path(ifname, sa.sun_path, sizeof(sa.sun_path));
        if (r < 0)
                return r;
        if (stat(sa.sun_path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISSOCK(st.st_mode))
                return 0;
        /* Non-blocking: a busy daemon (full accept queue) is still there,
         * and the probe must never wait for it. */
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0 || errno == EAGAIN || errno == EINPROGRESS)
                return 1;
        if (errno == ENOENT)
                return 0;
        if (errno != ECONNREFUSED)
                return -errno;
        /* Nobody listens: the daemon died without cleaning up. wg(8) drops
         * such a socket too, so that the next look finds the kernel. */
        if (unlink(sa.sun_path) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

static int send_all(int fd, struct exchange *ex, const char *s, size_t n) {
        while (n > 0) {
                ssize_t k;
                int r;

                r = sock_arm(fd, SO_SNDTIMEO, ex);
                if (r < 0)
                        return r;
                k = send(fd, s, n, MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
                }
                exchange_progress(ex);
                s += k;
                n -= (size_t) k;
        }
        return 0;
}

/* How many peers the last get of an interface listed, to size the next
 * one's array at once (wg_device_reserve_peers()). Only a hint: a wrong
 * or evicted entry costs the doubling it saves, nothing else. */
static pthread_mutex_t peer_hint_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
        char ifname[IFNAMSIZ];
        size_t n_peers;
} peer_hints[8];
static size_t peer_hint_next;

/* Peers to make room for in a read, from HINT (peer_hint()): a few more
 * than last time, as peers added since cost no move, and pages never
 * written are never faulted in. */
static size_t peers_expected(size_t hint) {
        return hint > 0 ? hint + hint / 8 + 16 : 0;
}

static size_t peer_hint(const char *ifname) {
        size_t n = 0;

        pthread_mutex_lock(&peer_hint_lock);
        for (size_t i = 0; i < ELEMENTSOF(peer_hints); i++)
                if (streq(peer_hints[i].ifname, ifname))
                        n = peer_hints[i].n_peers;
        pthread_mutex_unlock(&peer_hint_lock);
        return n;
}

static void peer_hint_note(const char *ifname, size_t n_peers) {
        size_t i;

        pthread_mutex_lock(&peer_hint_lock);
        for (i = 0; i < ELEMENTSOF(peer_hints); i++)
                if (streq(peer_hints[i].ifname, ifname))
                        break;
        if (i == ELEMENTSOF(peer_hints)) {
                i = peer_hint_next;
                peer_hint_next = (peer_hint_next + 1) % ELEMENTSOF(peer_hints);
                snprintf(peer_hints[i].ifname, sizeof(peer_hints[i].ifname), "%s", ifname);
        }
        peer_hints[i].n_peers = n_peers;
        pthread_mutex_unlock(&peer_hint_lock);
}

/* Connected to IFNAME's daemon with a get request sent: *RET_FD. */
static int uapi_get_start(const char *ifname, struct exchange *ex, int *ret_fd) {
        _cleanup_(closep) int fd = -1;
        int r;

        r = uapi_connect(ifname, ex, &fd);
        if (r < 0)
                return r;
        r = send_all(fd, ex, "get=1\n\n", 7);
        if (r < 0)
                return r;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int uapi_get_exchange(const char *ifname, bool light, struct wg_device **ret) {
        _cleanup_(wg_device_freep) struct wg_device *dev = NULL;
        _cleanup_(closep) int fd = -1;
        struct exchange ex = exchange_start();
        const char *reason = NULL;
        struct get_parser p;
        struct timespec ts;
        size_t hint;
        int r;

        if (!ret)
                return -EINVAL;
        r = uapi_get_start(ifname, &ex, &fd);
        if (r < 0)
                return r;
        dev = calloc(1, sizeof(*dev));
        if (!dev)
                return -ENOMEM;
        hint = peers_expected(peer_hint(ifname));
        if (hint > 0 && wg_device_reserve_peers(dev, hint) < 0)
                return -ENOMEM;
        if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
                return -errno;
        p = (struct get_parser) { .dev = dev, .now = ts.tv_sec, .light = light };
        r = get_parser_status(&p, read_lines(fd, &ex, get_line, &p, &reason));
        if (r < 0)
                return r;
        peer_hint_note(ifname, dev->n_peers);
        memcpy(dev->name, ifname, strlen(ifname) + 1);
        dev->ifindex = if_nametoindex(ifname);
        *ret = TAKE_PTR(dev);
        return 0;
}

/* Whether IFNAME's daemon is held off after a timeout. Such a call is no
 * exchange and does not extend the hold-off: the daemon is asked again
 * when it ends, however often hamgr tries meanwhile. */
static bool uapi_held_off(const char *ifname) {
        char path[sizeof(((struct sockaddr_un *) NULL)->sun_path)];

        return wg_uapi_socket_path(ifname, path, sizeof(path)) >= 0 && wedged_now(path);
}

static int uapi_note(const char *ifname, int r) {
        char path[sizeof(((struct sockaddr_un *) NULL)->sun_path)];

        /* A refused connection says nothing about a stall, and clears
         * nothing either: it is no exchange. */
        if (r == -EINVAL || r == -ENODEV || wg_uapi_socket_path(ifname, path, sizeof(path)) < 0)
                return r;
        return wedged_note(path, r);
}

int wg_uapi_get_device(const char *ifname, struct wg_device **ret) {
        if (uapi_held_off(ifname))
                return -ETIMEDOUT;
        return uapi_note(ifname, uapi_get_exchange(ifname, false, ret));
}

int wg_uapi_get_endpoints(const char *ifname, struct wg_device **ret) {
        if (uapi_held_off(ifname))
                return -ETIMEDOUT;
        return uapi_note(ifname, uapi_get_exchange(ifname, true, ret));
}

/* ---- configuration digest ---- */

/*
 * wireguard-go lists peers in Go map order, which changes from one get to
 * the next, so the digest is order-independent over peers: each section
 * (the device lines, then each peer from its public_key line on) is hashed
 * alone, and the section hashes are added up as two 64-bit lanes. A line
 * order inside a section is kept as the daemon gives it.
 *
 * The section hash is SipHash (128-bit output) under a key drawn once per
 * process: it only tells one read of this process from the next, and it
 * is three times as fast as BLAKE2b over a reply of 50,000 peers, which
 * an idle poll hashes every interval. A section longer than the buffer
 * (a peer with hundreds of allowed IPs) is hashed in chunks, each prefixed
 * with the hash of the chunks before it.
 */
#define DIGEST_CHAIN_LEN crypto_shorthash_siphashx24_BYTES

struct digest_state {
        uint8_t pend[4096];                   /* the current section: the chain value, then lines */
        size_t n_pend;
        bool in_section;
        bool section_ended;                   /* by the last line: its hash is in SECTION_HASH */
        uint64_t section_hash;
        uint64_t sum[2];
        bool have_errno, done;
        int error;
        const char *reason;
};

struct index_build;

/* A whole get parsed, hashed and its sections listed in one pass
 * (wg_uapi_get_indexed() without an index). */
struct get_digest_parser {
        struct get_parser get;
        struct digest_state digest;
        struct index_build *index;
};

static uint8_t digest_key[crypto_shorthash_siphashx24_KEYBYTES];
static pthread_once_t digest_key_once = PTHREAD_ONCE_INIT;

static void digest_key_init(void) {
        randombytes_buf(digest_key, sizeof(digest_key));
}

/* The chunk so far becomes the chain value of the next one. */
static void digest_chain(struct digest_state *d) {
        uint8_t h[DIGEST_CHAIN_LEN];

        crypto_shorthash_siphashx24(h, d->pend, d->n_pend, digest_key);
        memcpy(d->pend, h, sizeof(h));
        d->n_pend = sizeof(h);
}

/* LEN bytes of the current section. */
static void digest_add(struct digest_state *d, const uint8_t *buf, size_t len) {
        while (len > 0) {
                size_t n;

                if (d->n_pend == sizeof(d->pend))
                        digest_chain(d);
                n = MIN(len, sizeof(d->pend) - d->n_pend);
                memcpy(d->pend + d->n_pend, buf, n);
                d->n_pend += n;
                buf += n;
                len -= n;
        }
}

static void digest_section_end(struct digest_state *d) {
        if (!d->in_section)
                return;
        digest_chain(d);
        for (size_t i = 0; i < 2; i++) {
                uint64_t v;

                memcpy(&v, d->pend + 8 * i, 8);
                d->sum[i] += v;
                if (i == 0)
                        d->section_hash = v;
        }
        d->in_section = false;
        d->section_ended = true;
}

static bool has_prefix(const uint8_t *line, size_t len, const char *prefix) {
        size_t n = strlen(prefix);

        return len >= n && memcmp(line, prefix, n) == 0;
}

/* Lines that change without anyone editing the device. */
static bool line_volatile(const uint8_t *line, size_t len) {
        switch (line[0]) {
        case 'l':
                return has_prefix(line, len, "last_handshake_time_");
        case 'r':
                return has_prefix(line, len, "rx_bytes=");
        case 't':
                return has_prefix(line, len, "tx_bytes=");
        default:
                return false;
        }
}

/*
 * SipHash costs per byte, and an idle poll of 50,000 peers hashes nine
 * megabytes. Most of it is the names of the lines and a preshared key of
 * 64 zeros (a peer without one, as most are). A known name is hashed as a
 * NUL and its index, the zero key line as a NUL and a code of its own: no
 * line holds a NUL and every other line's input ends with its newline, so
 * no two sections that differ hash the same input.
 */
enum digest_name {
        DIGEST_NAME_PUBLIC_KEY = 1,
        DIGEST_NAME_PRESHARED_KEY,
        DIGEST_NAME_PROTOCOL_VERSION,
        DIGEST_NAME_PERSISTENT_KEEPALIVE_INTERVAL,
        DIGEST_NAME_ENDPOINT,
        DIGEST_NAME_ALLOWED_IP,
        _DIGEST_NAME_MAX,
};

static const char *const digest_names[_DIGEST_NAME_MAX] = {
        [DIGEST_NAME_PUBLIC_KEY] = "public_key=",
        [DIGEST_NAME_PRESHARED_KEY] = "preshared_key=",
        [DIGEST_NAME_PROTOCOL_VERSION] = "protocol_version=",
        [DIGEST_NAME_PERSISTENT_KEEPALIVE_INTERVAL] = "persistent_keepalive_interval=",
        [DIGEST_NAME_ENDPOINT] = "endpoint=",
        [DIGEST_NAME_ALLOWED_IP] = "allowed_ip=",
};

/* The zero key line's token: a NUL and no name's index. */
#define DIGEST_TOKEN_NO_PRESHARED_KEY 0xff

static const char digest_zero_key[] = "0000000000000000000000000000000000000000000000000000000000000000";

/* The name LINE starts with, by its first letters, or 0. */
static enum digest_name digest_name_of(const uint8_t *line, size_t len) {
        enum digest_name n;

        if (len < 2)
                return 0;
        switch (line[0]) {
        case 'a':
                n = DIGEST_NAME_ALLOWED_IP;
                break;
        case 'e':
                n = DIGEST_NAME_ENDPOINT;
                break;
        case 'p':
                n = line[1] == 'u'                   ? DIGEST_NAME_PUBLIC_KEY
                    : line[1] == 'e'                 ? DIGEST_NAME_PERSISTENT_KEEPALIVE_INTERVAL
                    : len > 2 && line[2] == 'e'      ? DIGEST_NAME_PRESHARED_KEY
                                                     : DIGEST_NAME_PROTOCOL_VERSION;
                break;
        default:
                return 0;
        }
        return has_prefix(line, len, digest_names[n]) ? n : 0;
}

/* LINE into the current section's input. */
static void digest_add_line(struct digest_state *d, const uint8_t *line, size_t len) {
        enum digest_name n = digest_name_of(line, len);
        size_t skip = n ? strlen(digest_names[n]) : 0;

        if (n == DIGEST_NAME_PRESHARED_KEY && len - skip == sizeof(digest_zero_key) - 1 &&
            memcmp(line + skip, digest_zero_key, len - skip) == 0) {
                digest_add(d, (const uint8_t[]) { '\0', DIGEST_TOKEN_NO_PRESHARED_KEY }, 2);
                return;
        }
        if (n)
                digest_add(d, (const uint8_t[]) { '\0', (uint8_t) n }, 2);
        /* With its newline, so that lines cannot run together. */
        digest_add(d, line + skip, len - skip);
        digest_add(d, (const uint8_t *) "\n", 1);
}

/* One line (without its newline, holding no NUL: the feeds check whole
 * chunks, cheaper than line by line). Returns 1 after the final blank
 * line, 0 to go on, -EBADMSG with d->reason. */
static int digest_line(struct digest_state *d, const uint8_t *line, size_t len) {
        if (len == 0) {
                if (!d->have_errno) {
                        d->reason = "no errno line";
                        return -EBADMSG;
                }
                digest_section_end(d);
                d->done = true;
                return 1;
        }
        if (len > WG_UAPI_LINE_MAX) {
                d->reason = "line too long";
                return -EBADMSG;
        }
        if (has_prefix(line, len, "errno=")) {
                char v[16] = {};

                memcpy(v, line + 6, MIN(len - 6, sizeof(v) - 1));
                d->have_errno = true;
                d->error = len - 6 < sizeof(v) ? parse_errno(v) : 1;
                if (d->error > 0) {
                        d->reason = "bad errno value";
                        return -EBADMSG;
                }
                return 0;
        }
        if (line_volatile(line, len))
                return 0;
        if (has_prefix(line, len, "public_key="))
                digest_section_end(d);
        if (!d->in_section) {
                /* The first chunk's chain value: zero. */
                memset(d->pend, 0, DIGEST_CHAIN_LEN);
                d->n_pend = DIGEST_CHAIN_LEN;
                d->in_section = true;
        }
        digest_add_line(d, line, len);
        return 0;
}

/* Feed BUF[0..LEN): every complete line. Returns the bytes consumed, or
 * <0; d->done after the final blank line (anything after it is an error). */
static ssize_t digest_feed(struct digest_state *d, const uint8_t *buf, size_t len) {
        size_t pos = 0;

        if (memchr(buf, '\0', len)) {
                d->reason = "NUL byte in line";
                return -EBADMSG;
        }

        while (pos < len) {
                const uint8_t *nl = memchr(buf + pos, '\n', len - pos);
                int r;

                if (!nl)
                        break;
                if (d->done) {
                        d->reason = "data after the end of the reply";
                        return -EBADMSG;
                }
                r = digest_line(d, buf + pos, (size_t) (nl - (buf + pos)));
                pos = (size_t) (nl - buf) + 1;
                if (r < 0)
                        return r;
        }
        if (d->done && pos < len) {
                d->reason = "data after the end of the reply";
                return -EBADMSG;
        }
        return (ssize_t) pos;
}

static int digest_finish(struct digest_state *d, int r, uint8_t ret[static WG_DIGEST_LEN]) {
        if (r >= 0 && !d->done) {
                d->reason = "reply does not end with a blank line";
                r = -EBADMSG;
        }
        if (r >= 0 && d->error != 0)
                r = d->error;
        if (r >= 0)
                crypto_generichash(ret, WG_DIGEST_LEN, (const uint8_t *) d->sum, sizeof(d->sum), NULL, 0);
        sodium_memzero(d->pend, sizeof(d->pend));
        return r;
}

static int digest_begin(void) {
        if (sodium_init() < 0)
                return -EINVAL;
        (void) pthread_once(&digest_key_once, digest_key_init);
        return 0;
}

static int digest_end(struct digest_state *d, int r, uint8_t ret[static WG_DIGEST_LEN]) {
        r = digest_finish(d, r, ret);
        sodium_memzero(d, sizeof(*d));
        return r;
}

/* Each line to the digest as the daemon sent it, then to the parser
 * (which may cut it up). */
static int index_add(struct index_build *b, uint64_t hash, const uint8_t *key);

static int get_digest_line(void *userdata, char *line, size_t len, const char **reason) {
        struct get_digest_parser *p = userdata;
        int r;

        p->digest.section_ended = false;
        r = digest_line(&p->digest, (const uint8_t *) line, len);
        if (r < 0) {
                *reason = p->digest.reason;
                return r;
        }
        /* The section that ended is the parser's current peer, or the
         * device's own lines before the first peer (no key). */
        if (p->index && p->digest.section_ended) {
                const struct wg_device *dev = p->get.dev;

                r = index_add(p->index, p->digest.section_hash,
                              p->get.in_peer ? dev->peers[dev->n_peers - 1].public_key : NULL);
                if (r < 0)
                        return r;
        }
        return get_line(&p->get, line, len, reason);
}

int wg_uapi_parse_digest(const uint8_t *buf, size_t len, uint8_t ret[static WG_DIGEST_LEN], const char **ret_reason) {
        struct digest_state d = {};
        ssize_t n;
        int r;

        if (!ret || (!buf && len > 0) || sodium_init() < 0)
                return -EINVAL;
        (void) pthread_once(&digest_key_once, digest_key_init);
        n = digest_feed(&d, buf, len);
        if (n >= 0 && (size_t) n < len) {
                d.reason = len - (size_t) n > WG_UAPI_LINE_MAX ? "line too long" : "last line not terminated";
                n = -EBADMSG;
        }
        r = digest_finish(&d, n < 0 ? (int) n : 0, ret);
        if (r == -EBADMSG && ret_reason)
                *ret_reason = d.reason;
        sodium_memzero(&d, sizeof(d));
        return r;
}

/* ---- what changed since the last read ---- */

/*
 * The sections of one get reply (the device's own lines, then each peer's,
 * as the digest cuts them): each peer's section hash under its key. The
 * next read hashes its sections as they arrive and keeps the text of
 * those that differ: a change to a few of 50,000 peers then costs one get
 * and parsing those few, not a digest read, a second full get and
 * comparing every peer. Keys are kept whole, so a removed peer is named
 * exactly.
 */

/* A section as a read lists it. */
struct wg_index_entry {
        uint64_t hash;
        uint8_t key[WG_KEY_LEN];              /* zero: the device's own lines */
};

/* A peer's slot: its key's first 8 bytes, where a read can find it from
 * its public_key= line (and fetch it from memory while the section is
 * hashed: looked up by section hash instead, every section of an idle
 * read of 50,000 peers was a cache miss). */
struct index_slot {
        uint64_t key;                         /* 0: empty */
        uint64_t hash;
};

struct wg_index {
        uint8_t digest[WG_DIGEST_LEN];
        bool have_device;                     /* the reply had the device's own lines, hashed DEVICE_HASH */
        uint64_t device_hash;
        size_t n;
        uint8_t (*key)[WG_KEY_LEN];           /* the peers' whole keys, for those that go */
        struct index_slot *slot;              /* by key, open addressing */
        uint32_t *slot_entry;                 /* into KEY */
        uint8_t *forgotten;                   /* by slot: reported as changed (wg_index_forget()); NULL: none */
        /* Forgotten while not listed: hamgr wrote them since the read, so
         * a read that does not find them reports them gone. */
        uint8_t (*absent)[WG_KEY_LEN];
        size_t n_absent, cap_absent;
        size_t mask;
};

struct wg_index *wg_index_free(struct wg_index *x) {
        if (!x)
                return NULL;
        free(x->key);
        free(x->slot);
        free(x->slot_entry);
        free(x->forgotten);
        free(x->absent);
        sodium_memzero(x->digest, sizeof(x->digest));
        free(x);
        return NULL;
}

static uint64_t key_slot_id(const uint8_t key[static WG_KEY_LEN]) {
        uint64_t v;

        memcpy(&v, key, sizeof(v));
        return v;
}

static size_t slot_of(uint64_t id, size_t mask);

int wg_index_forget(struct wg_index *x, const uint8_t key[static WG_KEY_LEN]) {
        uint64_t id = key_slot_id(key);

        if (!x)
                return -EINVAL;
        for (size_t k = slot_of(id, x->mask); x->slot[k].key != 0; k = (k + 1) & x->mask) {
                if (x->slot[k].key != id)
                        continue;
                /* A key that only shares its first 8 bytes with one listed
                 * cannot be on the device: index_make() refuses such pairs,
                 * and a read that finds one is whole. */
                if (!x->forgotten) {
                        x->forgotten = calloc(x->mask + 1, 1);
                        if (!x->forgotten)
                                return -ENOMEM;
                }
                x->forgotten[k] = 1;
                return 0;
        }
        /* Not listed: a read finds it new if the device has it. If not
         * (removed by hand since the write), only this list tells the read
         * that the write's peer is gone: the device may then be just as
         * the last read saw it, and its digest the same. Appended as they
         * come (50,000 peers added on the master arrive as many merged
         * batches before the next read); delta_finish() drops duplicates. */
        if (x->n_absent == x->cap_absent) {
                size_t cap = x->cap_absent ? 2 * x->cap_absent : 16;
                uint8_t (*grown)[WG_KEY_LEN] = reallocarray(x->absent, cap, sizeof(*grown));

                if (!grown)
                        return -ENOMEM;
                x->absent = grown;
                x->cap_absent = cap;
        }
        memcpy(x->absent[x->n_absent++], key, WG_KEY_LEN);
        return 0;
}

/* Where ID's probe starts. Keys are random but chosen by whoever holds
 * them: mixed with a secret of the process (the digest's key) so that
 * nobody can line theirs up in one long probe run. */
static size_t slot_of(uint64_t id, size_t mask) {
        uint64_t salt;

        memcpy(&salt, digest_key, sizeof(salt));
        return (size_t) (((id ^ salt) * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & mask;
}

/* Sections collected during one read. */
struct index_build {
        const struct wg_index *prev;          /* a read compared with it; NULL: a full read */
        uint8_t *found;                       /* PREV's slots seen again unchanged */
        bool found_device;                    /* PREV's device lines seen again unchanged */
        uint64_t sec_key;                     /* the current section's key_slot_id() (0: none or unreadable) */
        struct wg_index_entry *e;             /* a full read's sections; a compared one's new or changed */
        size_t n, cap;
        struct writer text;                   /* a compared read: the lines of its new or changed sections */
        bool sec_is_peer;                     /* the current section began with public_key= */
        bool stale;                           /* not describable as peer changes: read again in full */
};

static void index_build_done(struct index_build *b) {
        free(b->found);
        free(b->e);
        writer_done(&b->text); /* wipes: preshared keys */
}

static int index_add(struct index_build *b, uint64_t hash, const uint8_t *key) {
        if (b->n == b->cap) {
                size_t cap = b->cap ? 2 * b->cap : 1024;
                struct wg_index_entry *e = reallocarray(b->e, cap, sizeof(*e));

                if (!e)
                        return -ENOMEM;
                b->e = e;
                b->cap = cap;
        }
        b->e[b->n].hash = hash;
        if (key)
                memcpy(b->e[b->n].key, key, WG_KEY_LEN);
        else
                memset(b->e[b->n].key, 0, WG_KEY_LEN);
        b->n++;
        return 0;
}

static int key_cmp(const void *x, const void *y) {
        return memcmp(x, y, WG_KEY_LEN);
}

/* ENTRIES (taken) as an index with DIGEST; NULL when two peers' keys
 * share their first 8 bytes or the device's lines come twice (then
 * sections could not be told apart), or out of memory. */
static struct wg_index *index_make(struct wg_index_entry *entries, size_t n, const uint8_t digest[static WG_DIGEST_LEN]) {
        struct wg_index *x = NULL;
        size_t slots = 64, kept = 0;

        if (n > UINT32_MAX / 4)
                goto fail;
        /* At most 4 in 5 slots used: 65,536 for 50,000 peers. */
        while (slots < n + n / 4)
                slots *= 2;
        x = calloc(1, sizeof(*x));
        if (!x)
                goto fail;
        x->slot = calloc(slots, sizeof(*x->slot));
        x->slot_entry = malloc(slots * sizeof(*x->slot_entry));
        x->key = malloc((n + 1) * sizeof(*x->key));
        if (!x->slot || !x->slot_entry || !x->key)
                goto fail;
        x->mask = slots - 1;
        for (size_t i = 0; i < n; i++) {
                uint64_t id = key_slot_id(entries[i].key);
                size_t k;

                if (wg_key_is_zero(entries[i].key)) {
                        if (x->have_device)
                                goto fail;
                        x->have_device = true;
                        x->device_hash = entries[i].hash;
                        continue;
                }
                if (id == 0)
                        goto fail;
                for (k = slot_of(id, x->mask); x->slot[k].key != 0; k = (k + 1) & x->mask)
                        if (x->slot[k].key == id)
                                goto fail;
                memcpy(x->key[kept], entries[i].key, WG_KEY_LEN);
                x->slot[k] = (struct index_slot) { .key = id, .hash = entries[i].hash };
                x->slot_entry[k] = (uint32_t) kept++;
        }
        free(entries);
        x->n = kept;
        memcpy(x->digest, digest, WG_DIGEST_LEN);
        return x;
fail:
        free(entries);
        return wg_index_free(x);
}

static int text_append(struct index_build *b, const char *s, size_t len) {
        writer_append(&b->text, s, len);
        return b->text.error;
}

/* Whether the section that ended, hashed HASH, is as the last read had
 * it: marked seen. */
static bool delta_seen(struct index_build *b, bool peer, uint64_t hash) {
        const struct index_slot *slot = b->prev->slot;
        size_t mask = b->prev->mask;

        if (!peer) {
                if (!b->prev->have_device || b->prev->device_hash != hash || b->found_device)
                        return false;
                b->found_device = true;
                return true;
        }
        if (b->sec_key == 0)
                return false;
        for (size_t k = slot_of(b->sec_key, mask); slot[k].key != 0; k = (k + 1) & mask)
                if (slot[k].key == b->sec_key) {
                        if (slot[k].hash != hash || (b->prev->forgotten && b->prev->forgotten[k]))
                                return false;
                        if (b->found[k])
                                b->stale = true; /* a section twice */
                        b->found[k] = 1;
                        return true;
                }
        return false;
}

/* The key_slot_id() of a public_key= line (0: unreadable), its slot
 * fetched from memory meanwhile. */
static uint64_t delta_section_key(struct index_build *b, const uint8_t *line, size_t len) {
        const uint8_t *hex = line + strlen("public_key=");
        uint8_t id[8];
        uint64_t v;

        if (len < strlen("public_key=") + 2 * sizeof(id) || !hex_bytes((const char *) hex, sizeof(id), id))
                return 0;
        memcpy(&v, id, sizeof(v));
        __builtin_prefetch(&b->prev->slot[slot_of(v, b->prev->mask)]);
        return v;
}

#define NO_SECTION SIZE_MAX

/* A compared read. A section's lines stay where they were read until its
 * hash says whether it is new: only then are they copied (most are not),
 * or, when a section outgrows the read buffer, its start is (SPILLED). */
struct delta_reader {
        struct digest_state digest;
        struct index_build *index;
        size_t sec_off;                       /* where the current section starts in the buffer, or NO_SECTION */
        size_t errno_off;                     /* where the errno line starts, or NO_SECTION */
        bool spilled;                         /* the section's start was copied to the index's text */
        size_t spill_start;                   /* where in the text */
};

/* The current section, ended by the line at END_OFF in BUF. */
static int delta_section_end(struct delta_reader *p, const uint8_t *buf, size_t end_off) {
        struct index_build *b = p->index;
        bool peer = b->sec_is_peer, spilled = p->spilled;
        size_t from = p->sec_off;

        b->sec_is_peer = false;
        p->spilled = false;
        p->sec_off = NO_SECTION;
        if (delta_seen(b, peer, p->digest.section_hash)) {
                if (spilled)
                        b->text.len = p->spill_start;
                return 0;
        }
        if (!peer)
                b->stale = true; /* the device's own settings: a whole read versions them */
        if (from != NO_SECTION && end_off > from) {
                int r = text_append(b, (const char *) buf + from, end_off - from);

                if (r < 0)
                        return r;
        }
        return index_add(b, p->digest.section_hash, NULL);
}

/* The line at OFF in BUF, LEN bytes (BUF[OFF + LEN] is its newline). */
static int delta_line(struct delta_reader *p, const uint8_t *buf, size_t off, size_t len) {
        const uint8_t *line = buf + off;
        int r, k;

        p->digest.section_ended = false;
        r = digest_line(&p->digest, line, len);
        if (r < 0)
                return r;
        if (p->digest.section_ended) {
                k = delta_section_end(p, buf, p->errno_off != NO_SECTION ? p->errno_off : off);
                if (k < 0)
                        return k;
        }
        if (len == 0)
                return r;
        if (line[0] == 'e' && has_prefix(line, len, "errno=")) {
                p->errno_off = off;
                return r;
        }
        if (line[0] == 'p' && has_prefix(line, len, "public_key=")) {
                p->sec_off = off;
                p->index->sec_is_peer = true;
                p->index->sec_key = delta_section_key(p->index, line, len);
        } else if (p->sec_off == NO_SECTION && !p->spilled)
                p->sec_off = off; /* the device's own lines */
        return r;
}

/* Every complete line of BUF[*POS..LEN), *POS moved past them. Returns
 * where what must stay in the buffer starts (the current section), or <0. */
static ssize_t delta_feed(struct delta_reader *p, const uint8_t *buf, size_t len, size_t *pos) {
        if (memchr(buf + *pos, '\0', len - *pos)) {
                p->digest.reason = "NUL byte in line";
                return -EBADMSG;
        }
        while (*pos < len) {
                const uint8_t *nl = memchr(buf + *pos, '\n', len - *pos);
                size_t off = *pos;
                int r;

                if (!nl)
                        break;
                if (p->digest.done) {
                        p->digest.reason = "data after the end of the reply";
                        return -EBADMSG;
                }
                *pos = (size_t) (nl - buf) + 1;
                r = delta_line(p, buf, off, (size_t) (nl - (buf + off)));
                if (r < 0)
                        return r;
        }
        if (p->digest.done && *pos < len) {
                p->digest.reason = "data after the end of the reply";
                return -EBADMSG;
        }
        return (ssize_t) MIN(*pos, MIN(p->sec_off, p->errno_off));
}

/* BUF[KEEP..) moves to the start of the buffer: offsets follow. */
static void delta_shift(struct delta_reader *p, size_t keep) {
        if (p->sec_off != NO_SECTION)
                p->sec_off -= keep;
        if (p->errno_off != NO_SECTION)
                p->errno_off -= keep;
}

/* The buffer is full of one section: its start goes to the text. */
static int delta_spill(struct delta_reader *p, const uint8_t *buf, size_t pos) {
        struct index_build *b = p->index;
        int r;

        if (p->sec_off == NO_SECTION)
                return 0;
        if (!p->spilled) {
                p->spill_start = b->text.len;
                p->spilled = true;
        }
        r = text_append(b, (const char *) buf + p->sec_off, pos - p->sec_off);
        p->sec_off = pos;
        return r;
}

/*
 * The end of a read compared with B->prev whose digest was DIGEST: into
 * *RET the peers it found new or changed, whole, and those gone as
 * WG_PEER_REMOVE_ME; into *RET_INDEX the index of this read. -ESTALE when
 * the change is more than peers (the device's own settings) or the read
 * does not add up.
 */
static int delta_finish(struct index_build *b, const uint8_t digest[static WG_DIGEST_LEN], int64_t now,
                        struct wg_device **ret, struct wg_index **ret_index) {
        _cleanup_(wg_device_freep) struct wg_device *dev = NULL;
        _cleanup_(freep) uint8_t *keys = NULL;
        struct wg_index_entry *all;
        size_t n_all = 0, n_keys;
        const char *reason;
        int r;

        if (b->stale)
                return -ESTALE;
        r = text_append(b, "errno=0\n\n", 9);
        if (r < 0)
                return r;
        r = parse_get((const uint8_t *) b->text.buf, b->text.len, now, false, &dev, &reason);
        if (r < 0)
                return r == -ENOMEM ? r : -ESTALE;
        if (dev->n_peers != b->n)
                return -ESTALE;
        n_keys = dev->n_peers;
        keys = malloc(n_keys * WG_KEY_LEN + 1);
        if (!keys)
                return -ENOMEM;
        for (size_t i = 0; i < n_keys; i++) {
                if (wg_key_is_zero(dev->peers[i].public_key))
                        return -ESTALE;
                memcpy(b->e[i].key, dev->peers[i].public_key, WG_KEY_LEN);
                memcpy(keys + i * WG_KEY_LEN, dev->peers[i].public_key, WG_KEY_LEN);
        }
        qsort_safe(keys, n_keys, WG_KEY_LEN, key_cmp);
        if (b->prev->have_device && !b->found_device)
                return -ESTALE; /* the device's own lines went */
        for (size_t k = 0; k <= b->prev->mask; k++) {
                const uint8_t *o;
                struct wg_peer *gone;

                if (b->prev->slot[k].key == 0)
                        continue;
                if (b->found[k]) {
                        n_all++;
                        continue;
                }
                o = b->prev->key[b->prev->slot_entry[k]];
                if (n_keys > 0 && bsearch(o, keys, n_keys, WG_KEY_LEN, key_cmp))
                        continue; /* changed, not gone */
                gone = wg_device_add_peer(dev);
                if (!gone)
                        return -ENOMEM;
                memcpy(gone->public_key, o, WG_KEY_LEN);
                gone->flags = WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REMOVE_ME;
        }
        if (b->prev->n_absent > 0) {
                _cleanup_(freep) uint8_t (*absent)[WG_KEY_LEN] = malloc(b->prev->n_absent * WG_KEY_LEN);

                if (!absent)
                        return -ENOMEM;
                memcpy(absent, b->prev->absent, b->prev->n_absent * WG_KEY_LEN);
                qsort_safe(absent, b->prev->n_absent, WG_KEY_LEN, key_cmp);
                for (size_t i = 0; i < b->prev->n_absent; i++) {
                        struct wg_peer *gone;

                        if (i > 0 && memcmp(absent[i], absent[i - 1], WG_KEY_LEN) == 0)
                                continue; /* forgotten twice */
                        if (n_keys > 0 && bsearch(absent[i], keys, n_keys, WG_KEY_LEN, key_cmp))
                                continue; /* on the device: listed as new */
                        gone = wg_device_add_peer(dev);
                        if (!gone)
                                return -ENOMEM;
                        memcpy(gone->public_key, absent[i], WG_KEY_LEN);
                        gone->flags = WG_PEER_HAS_PUBLIC_KEY | WG_PEER_REMOVE_ME;
                }
        }
        all = malloc((n_all + b->n + 2) * sizeof(*all));
        if (!all)
                return -ENOMEM;
        n_all = 0;
        if (b->found_device)
                all[n_all++] = (struct wg_index_entry) { .hash = b->prev->device_hash };
        for (size_t k = 0; k <= b->prev->mask; k++)
                if (b->prev->slot[k].key != 0 && b->found[k]) {
                        all[n_all].hash = b->prev->slot[k].hash;
                        memcpy(all[n_all++].key, b->prev->key[b->prev->slot_entry[k]], WG_KEY_LEN);
                }
        if (b->n > 0)
                memcpy(all + n_all, b->e, b->n * sizeof(*all));
        *ret_index = index_make(all, n_all + b->n, digest);
        *ret = TAKE_PTR(dev);
        return 0;
}

/* Where a reply comes from: a buffer, or a socket (wg_uapi_parse_indexed(),
 * wg_uapi_get_indexed()). LINES feeds its lines to a line function, RAW
 * to a compared read. */
struct reply_source {
        int (*lines)(const struct reply_source *src, line_fn fn, void *userdata, const char **reason);
        int (*raw)(const struct reply_source *src, struct delta_reader *p);
        const uint8_t *buf;
        size_t len;
        int fd;
        struct exchange *ex;
        size_t hint;                          /* peers the last read of the device listed */
};

static int indexed(const struct reply_source *src, int64_t now, const struct wg_index *prev,
                   struct wg_index **ret_index, struct wg_device **ret, bool *ret_partial, const char **ret_reason) {
        _cleanup_(wg_device_freep) struct wg_device *dev = NULL;
        struct index_build b = { .prev = prev, .text.fd = -1 };
        struct wg_index *next = NULL;
        uint8_t digest[WG_DIGEST_LEN];
        const char *reason = NULL;
        int r;

        if (digest_begin() < 0)
                return -EINVAL;
        if (b.prev) {
                struct delta_reader d = { .index = &b, .sec_off = NO_SECTION, .errno_off = NO_SECTION };

                b.found = calloc(b.prev->mask + 1, 1);
                if (!b.found)
                        return -ENOMEM;
                r = src->raw(src, &d);
                if (!reason)
                        reason = d.digest.reason;
                r = digest_end(&d.digest, r, digest);
                /* The same reply as before says nothing of a forgotten peer:
                 * hamgr wrote it since, and an edit by hand may have put
                 * back what the last read saw. */
                if (r >= 0 && !b.prev->forgotten && b.prev->n_absent == 0 &&
                    sodium_memcmp(digest, b.prev->digest, WG_DIGEST_LEN) == 0) {
                        index_build_done(&b);
                        *ret_index = NULL;
                        *ret = NULL;
                        *ret_partial = false;
                        return 0;
                }
                if (r >= 0)
                        r = delta_finish(&b, digest, now, &dev, &next);
                index_build_done(&b);
                if (r < 0)
                        goto fail;
                *ret_index = next;
                *ret = TAKE_PTR(dev);
                *ret_partial = true;
                return 0;
        }
        {
                struct get_digest_parser gd = { .index = &b };

                dev = calloc(1, sizeof(*dev));
                /* Sized at once from the last read, as uapi_get_exchange(). */
                b.cap = peers_expected(src->hint);
                if (dev && b.cap > 0)
                        b.e = malloc(b.cap * sizeof(*b.e));
                if (!dev || (b.cap > 0 && (!b.e || wg_device_reserve_peers(dev, b.cap) < 0))) {
                        index_build_done(&b);
                        return -ENOMEM;
                }
                gd.get = (struct get_parser) { .dev = dev, .now = now };
                r = src->lines(src, get_digest_line, &gd, &reason);
                if (r >= 0 && gd.get.error < 0) {
                        reason = "the daemon reported an error";
                        r = gd.get.error;
                }
                if (!reason)
                        reason = gd.digest.reason;
                r = digest_end(&gd.digest, r, digest);
        }
        if (r >= 0) {
                next = index_make(TAKE_PTR(b.e), b.n, digest);
                b.n = 0;
        }
        index_build_done(&b);
        if (r < 0)
                goto fail;
        *ret_index = next;
        *ret = TAKE_PTR(dev);
        *ret_partial = false;
        return 0;
fail:
        if (r == -EBADMSG && ret_reason)
                *ret_reason = reason ? reason : "malformed reply";
        return r;
}

static int buffer_lines(const struct reply_source *src, line_fn fn, void *userdata, const char **reason) {
        return parse_lines(src->buf, src->len, fn, userdata, reason);
}

static int buffer_raw(const struct reply_source *src, struct delta_reader *p) {
        size_t pos = 0;
        ssize_t n = delta_feed(p, src->buf, src->len, &pos);

        if (n >= 0 && pos < src->len) {
                p->digest.reason = src->len - pos > WG_UAPI_LINE_MAX ? "line too long" : "last line not terminated";
                n = -EBADMSG;
        }
        return n < 0 ? (int) n : 0;
}

int wg_uapi_parse_indexed(const uint8_t *buf, size_t len, int64_t now_realtime_sec, const struct wg_index *prev,
                          struct wg_index **ret_index, struct wg_device **ret, bool *ret_partial,
                          const char **ret_reason) {
        struct reply_source src = { .lines = buffer_lines, .raw = buffer_raw, .buf = buf, .len = len, .fd = -1 };

        if (!ret_index || !ret || !ret_partial || (!buf && len > 0))
                return -EINVAL;
        return indexed(&src, now_realtime_sec, prev, ret_index, ret, ret_partial, ret_reason);
}

static int socket_lines(const struct reply_source *src, line_fn fn, void *userdata, const char **reason) {
        return read_lines(src->fd, src->ex, fn, userdata, reason);
}

/* Reads as read_lines() does (the same deadline), but feeds a compared read
 * whole chunks. */
static int socket_raw(const struct reply_source *src, struct delta_reader *p) {
        _cleanup_(freep) uint8_t *buf = malloc(IO_CHUNK);
        size_t end = 0, pos = 0;
        bool got_any = false;
        int r = 0;

        if (!buf)
                return -ENOMEM;
        while (!p->digest.done) {
                ssize_t n;

                r = sock_arm(src->fd, SO_RCVTIMEO, src->ex);
                if (r < 0)
                        break;
                n = recv(src->fd, buf + end, IO_CHUNK - end, 0);
                if (n > 0)
                        exchange_progress(src->ex);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
                        break;
                }
                if (n == 0) {
                        r = got_any ? -EBADMSG : -ECONNRESET;
                        if (got_any)
                                p->digest.reason = "reply truncated";
                        break;
                }
                got_any = true;
                end += (size_t) n;
                n = delta_feed(p, buf, end, &pos);
                if (n >= 0 && n == 0 && end == IO_CHUNK && pos > 0) {
                        /* One section fills the buffer. */
                        r = delta_spill(p, buf, pos);
                        if (r < 0)
                                break;
                        n = (ssize_t) MIN(pos, MIN(p->sec_off, p->errno_off));
                }
                if (n < 0) {
                        r = (int) n;
                        break;
                }
                memmove(buf, buf + n, end - (size_t) n);
                end -= (size_t) n;
                pos -= (size_t) n;
                delta_shift(p, (size_t) n);
                if (end - pos > WG_UAPI_LINE_MAX) {
                        p->digest.reason = "line too long";
                        r = -EBADMSG;
                        break;
                }
        }
        sodium_memzero(buf, IO_CHUNK);
        return r;
}

static int uapi_indexed_exchange(const char *ifname, const struct wg_index *prev, struct wg_index **ret_index,
                                 struct wg_device **ret, bool *ret_partial) {
        _cleanup_(closep) int fd = -1;
        struct exchange ex = exchange_start();
        struct reply_source src = { .lines = socket_lines, .raw = socket_raw, .ex = &ex, .hint = peer_hint(ifname) };
        struct timespec ts;
        const char *reason = NULL;
        int r;

        r = uapi_get_start(ifname, &ex, &fd);
        if (r < 0)
                return r;
        if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
                return -errno;
        src.fd = fd;
        r = indexed(&src, ts.tv_sec, prev, ret_index, ret, ret_partial, &reason);
        if (r < 0)
                return r;
        if (*ret) {
                memcpy((*ret)->name, ifname, strlen(ifname) + 1);
                (*ret)->ifindex = if_nametoindex(ifname);
                if (!*ret_partial)
                        peer_hint_note(ifname, (*ret)->n_peers);
        }
        return 0;
}

int wg_uapi_get_indexed(const char *ifname, const struct wg_index *prev, struct wg_index **ret_index,
                        struct wg_device **ret, bool *ret_partial) {
        if (!ret_index || !ret || !ret_partial)
                return -EINVAL;
        if (uapi_held_off(ifname))
                return -ETIMEDOUT;
        return uapi_note(ifname, uapi_indexed_exchange(ifname, prev, ret_index, ret, ret_partial));
}

/* One set request, one exchange. */
static int uapi_set_exchange(const struct wg_device *dev) {
        _cleanup_(closep) int fd = -1;
        struct exchange ex = exchange_start();
        struct writer w = {};
        struct reply_parser p = {};
        const char *reason = NULL;
        int r, rw;

        r = validate_set(dev);
        if (r < 0)
                return r;
        r = uapi_connect(dev->name, &ex, &fd);
        if (r < 0)
                return r;
        w = (struct writer) { .fd = fd, .ex = &ex, .cap = IO_CHUNK, .buf = malloc(IO_CHUNK) };
        if (!w.buf)
                return -ENOMEM;
        format_set(dev, &w);
        writer_flush(&w);
        rw = w.error;
        writer_done(&w);
        if (rw < 0 && rw != -EPIPE && rw != -ECONNRESET)
                return rw;
        /* wireguard-go stops reading at the first bad line, answers, and
         * drops the connection: our write fails, yet its answer may be
         * waiting, and it says more than EPIPE. */
        r = read_lines(fd, &ex, reply_line, &p, &reason);
        if (r < 0)
                return rw < 0 ? rw : r;
        return p.error;
}

static int uapi_set_once(const struct wg_device *dev) {
        if (uapi_held_off(dev->name))
                return -ETIMEDOUT;
        return uapi_note(dev->name, uapi_set_exchange(dev));
}

int wg_uapi_set_device(const struct wg_device *dev) {
        if (!dev)
                return -EINVAL;
        return uapi_set_once(dev);
}

/* ---- boringtun ---- */

/* Whether AFTER (sorted) holds what WANT (sorted, peers in full) says. */
static bool boringtun_applied(const struct wg_device *want, const struct wg_device *after) {
        for (size_t i = 0; i < want->n_peers; i++) {
                const struct wg_peer *w = &want->peers[i];
                const struct wg_peer *a = wg_device_find_peer(after, w->public_key);
                bool w_psk = (w->flags & WG_PEER_HAS_PRESHARED_KEY) && !wg_key_is_zero(w->preshared_key);
                bool a_psk = (a ? a->flags & WG_PEER_HAS_PRESHARED_KEY : 0) != 0;
                char e1[80], e2[80];

                if (w->flags & WG_PEER_REMOVE_ME) {
                        if (a)
                                return false;
                        continue;
                }
                if (!a || w_psk != a_psk || (w_psk && sodium_memcmp(w->preshared_key, a->preshared_key, WG_KEY_LEN) != 0))
                        return false;
                if ((w->flags & WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL ? w->persistent_keepalive_interval : 0) !=
                    a->persistent_keepalive_interval)
                        return false;
                if ((w->flags & WG_PEER_HAS_ENDPOINT) && w->endpoint.addr.sa_family != AF_UNSPEC &&
                    !streq(wg_endpoint_to_string(&w->endpoint, e1, sizeof(e1)),
                           wg_endpoint_to_string(&a->endpoint, e2, sizeof(e2))))
                        return false;
                if (w->n_allowedips != a->n_allowedips)
                        return false;
                for (size_t k = 0; k < w->n_allowedips; k++)
                        if (w->allowedips[k].family != a->allowedips[k].family ||
                            w->allowedips[k].cidr != a->allowedips[k].cidr ||
                            memcmp(&w->allowedips[k].ip, &a->allowedips[k].ip,
                                   ip_family_addr_len(w->allowedips[k].family)) != 0)
                                return false;
        }
        if (want->flags & WG_DEVICE_HAS_PRIVATE_KEY) {
                uint8_t pub[WG_KEY_LEN];

                if (!(after->flags & WG_DEVICE_HAS_PUBLIC_KEY) ||
                    wg_key_public_from_private(pub, want->private_key) < 0 ||
                    memcmp(pub, after->public_key, WG_KEY_LEN) != 0)
                        return false;
        }
        if ((want->flags & WG_DEVICE_HAS_LISTEN_PORT) && want->listen_port != 0 &&
            want->listen_port != after->listen_port)
                return false;
        if ((want->flags & WG_DEVICE_HAS_FWMARK) && want->fwmark != after->fwmark)
                return false;
        return true;
}

int wg_uapi_boringtun_set_device(const struct wg_device *dev) {
        _cleanup_(wg_device_freep) struct wg_device *current = NULL, *plan = NULL, *want = NULL, *after = NULL;
        struct wg_device one = {};
        int r;

        if (!dev)
                return -EINVAL;
        r = validate_set(dev);
        if (r < 0)
                return r;
        r = wg_uapi_get_device(dev->name, &current);
        if (r < 0)
                return r;
        r = wg_uapi_readd_peers(dev, current, &plan);
        if (r < 0)
                return r;
        want = calloc(1, sizeof(*want));
        if (!want)
                return -ENOMEM;

        /* Device fields first, alone. */
        memcpy(one.name, dev->name, sizeof(one.name));
        one.flags = dev->flags & (WG_DEVICE_HAS_PRIVATE_KEY | WG_DEVICE_HAS_LISTEN_PORT | WG_DEVICE_HAS_FWMARK |
                                  WG_DEVICE_REPLACE_PEERS);
        memcpy(one.private_key, dev->private_key, WG_KEY_LEN);
        one.listen_port = dev->listen_port;
        one.fwmark = dev->fwmark;
        want->flags = one.flags;
        memcpy(want->private_key, dev->private_key, WG_KEY_LEN);
        want->listen_port = dev->listen_port;
        want->fwmark = dev->fwmark;
        if (one.flags != 0) {
                r = uapi_set_once(&one);
                if (r < 0)
                        goto finish;
        }

        /* Then one peer per request: boringtun carries a peer's remove,
         * endpoint, keepalive and preshared key over to the next peer of
         * the same request. */
        one.flags = 0;
        one.n_peers = 1;
        for (size_t i = 0; i < plan->n_peers; i++) {
                const struct wg_peer *p = &plan->peers[i];
                bool superseded = i + 1 < plan->n_peers &&
                                  memcmp(plan->peers[i + 1].public_key, p->public_key, WG_KEY_LEN) == 0;

                one.peers = &plan->peers[i];
                r = uapi_set_once(&one);
                if (r < 0)
                        goto finish;
                if (!superseded) {
                        r = peer_copy_into(want, p, 0);
                        if (r < 0)
                                goto finish;
                }
        }

        /* boringtun acknowledges lines it does not apply the way we mean
         * them; only the device read back tells. */
        r = wg_uapi_get_device(dev->name, &after);
        if (r < 0)
                goto finish;
        wg_device_sort(after);
        wg_device_sort(want);
        r = boringtun_applied(want, after) ? 0 : -EPROTO;
finish:
        sodium_memzero(&one, sizeof(one));
        return r;
}
