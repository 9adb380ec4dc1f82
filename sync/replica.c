/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/macro.h"
#include "sync/replica.h"

struct replica_iface {
        char name[IFNAMSIZ];
        struct replica_device device;
        struct replica_peer *peers;           /* sorted by public key, tombstones included */
        size_t n_peers;
        bool needs_apply;
        uint64_t generation;                  /* replica_device_generation() */
};

struct replica {
        struct hlc clock;
        struct replica_iface *ifaces;         /* sorted by name */
        size_t n_ifaces;
        bool bootstrapping;                   /* see replica_bootstrap_begin() */
};

/* ---- hybrid logical clock ---- */

static uint64_t wall_clamp(uint64_t w) {
        return w > HLC_WALL_MAX ? HLC_WALL_MAX : w;
}

/* One logical step; a full counter borrows a millisecond from the future
 * rather than wrap. False, C untouched, at the very end of time: there is
 * no greater stamp, and repeating one would give two writes one version. */
static bool hlc_tick(struct hlc *c) {
        if (c->logical < UINT16_MAX)
                c->logical++;
        else if (c->wall_ms < HLC_WALL_MAX) {
                c->wall_ms++;
                c->logical = 0;
        } else
                return false;
        return true;
}

static struct hlc_ts hlc_stamp(const struct hlc *c) {
        return (struct hlc_ts) { .wall_ms = c->wall_ms, .logical = c->logical, .node = c->node };
}

void hlc_init(struct hlc *c, uint64_t node) {
        *c = (struct hlc) { .node = node };
}

int hlc_now(struct hlc *c, uint64_t wall_ms, struct hlc_ts *ret) {
        uint64_t w = wall_clamp(wall_ms);
        struct hlc n = *c;

        if (w > n.wall_ms) {
                n.wall_ms = w;
                n.logical = 0;
        } else if (!hlc_tick(&n))
                return -EOVERFLOW;
        *c = n;
        *ret = hlc_stamp(c);
        return 0;
}

int hlc_update(struct hlc *c, struct hlc_ts remote, uint64_t wall_ms, uint64_t max_wall_ms, struct hlc_ts *ret) {
        uint64_t w = wall_clamp(wall_ms), rw = wall_clamp(remote.wall_ms);
        uint64_t l = MAX(MAX(c->wall_ms, rw), w);
        struct hlc n = *c;
        bool ok = true;

        if (remote.wall_ms > max_wall_ms)
                return -ERANGE;
        if (l == n.wall_ms && l == rw) {
                n.logical = MAX(n.logical, remote.logical);
                ok = hlc_tick(&n);
        } else if (l == n.wall_ms)
                ok = hlc_tick(&n);
        else if (l == rw) {
                n.wall_ms = l;
                n.logical = remote.logical;
                ok = hlc_tick(&n);
        } else {
                n.wall_ms = l;
                n.logical = 0;
        }
        if (!ok)
                return -EOVERFLOW;
        *c = n;
        if (ret)
                *ret = hlc_stamp(c);
        return 0;
}

/* Move C to at least T without issuing anything: the next hlc_now() is
 * then above T. Cheaper than hlc_update() for a batch of merged versions,
 * whose logical counters would otherwise climb once per record. */
static void hlc_observe(struct hlc *c, struct hlc_ts t) {
        uint64_t tw = wall_clamp(t.wall_ms);

        if (tw > c->wall_ms || (tw == c->wall_ms && t.logical > c->logical)) {
                c->wall_ms = tw;
                c->logical = t.logical;
        }
}

int hlc_compare(struct hlc_ts a, struct hlc_ts b) {
        if (a.wall_ms != b.wall_ms)
                return a.wall_ms < b.wall_ms ? -1 : 1;
        if (a.logical != b.logical)
                return a.logical < b.logical ? -1 : 1;
        if (a.node != b.node)
                return a.node < b.node ? -1 : 1;
        return 0;
}

bool hlc_ts_is_zero(struct hlc_ts t) {
        return t.wall_ms == 0 && t.logical == 0 && t.node == 0;
}

static struct hlc_ts ts_max(struct hlc_ts a, struct hlc_ts b) {
        return hlc_compare(a, b) >= 0 ? a : b;
}

/* ---- records ---- */

static const char *const rec_type_names[_REPLICA_REC_MAX] = {
        [REPLICA_REC_DEVICE] = "device",
        [REPLICA_REC_PEER] = "peer",
};

const char *replica_rec_type_to_string(enum replica_rec_type t) {
        return ENUM_NAME(rec_type_names, t);
}

/* As the kernel's dev_valid_name(): what could never name an interface
 * cannot be replicated to one. */
static bool ifname_valid(const char *s, size_t len) {
        if (len == 0 || len >= IFNAMSIZ)
                return false;
        if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
                return false;
        for (size_t i = 0; i < len; i++)
                if (s[i] == '\0' || s[i] == '/' || s[i] == ':' || isspace((unsigned char) s[i]))
                        return false;
        return true;
}

static bool ifname_valid_str(const char *s) {
        return s && ifname_valid(s, strnlen(s, IFNAMSIZ));
}

/* Copy a name known to be valid (shorter than IFNAMSIZ) and terminate. */
static void ifname_copy(char dst[static IFNAMSIZ], const char *src) {
        size_t n = strnlen(src, IFNAMSIZ - 1);

        memcpy(dst, src, n);
        memset(dst + n, 0, IFNAMSIZ - n);
}

static size_t family_len(int family) {
        return family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0;
}

static int allowedip_cmp(const struct wg_allowedip *a, const struct wg_allowedip *b) {
        int r;

        if (a->family != b->family)
                return a->family < b->family ? -1 : 1;
        r = memcmp(a->ip.bytes, b->ip.bytes, family_len(a->family));
        if (r != 0)
                return r;
        return a->cidr < b->cidr ? -1 : a->cidr > b->cidr;
}

static bool allowedip_canonical(const struct wg_allowedip *a) {
        size_t len = family_len(a->family);

        if (len == 0 || a->cidr > len * 8)
                return false;
        for (size_t i = 0; i < sizeof(a->ip.bytes); i++) {
                unsigned bit = (unsigned) i * 8;
                uint8_t host = i >= len || a->cidr <= bit ? 0xff
                               : a->cidr >= bit + 8      ? 0
                                                         : (uint8_t) (0xffu >> (a->cidr - bit));

                if (a->ip.bytes[i] & host)
                        return false;
        }
        return true;
}

static bool allowedips_canonical(const struct wg_allowedip *a, size_t n) {
        for (size_t i = 0; i < n; i++) {
                if (!allowedip_canonical(&a[i]))
                        return false;
                if (i > 0 && allowedip_cmp(&a[i - 1], &a[i]) >= 0)
                        return false;
        }
        return true;
}

static bool allowedips_equal(const struct wg_allowedip *a, size_t na, const struct wg_allowedip *b, size_t nb) {
        if (na != nb)
                return false;
        for (size_t i = 0; i < na; i++)
                if (allowedip_cmp(&a[i], &b[i]) != 0)
                        return false;
        return true;
}

/* Only what WireGuard keeps of an endpoint, so equal endpoints encode and
 * compare equal whatever else the sockaddr carried. */
static union wg_endpoint endpoint_normalize(const union wg_endpoint *e) {
        union wg_endpoint n = {};

        switch (e->addr.sa_family) {
        case AF_INET:
                n.addr4.sin_family = AF_INET;
                n.addr4.sin_port = e->addr4.sin_port;
                n.addr4.sin_addr = e->addr4.sin_addr;
                break;
        case AF_INET6:
                n.addr6.sin6_family = AF_INET6;
                n.addr6.sin6_port = e->addr6.sin6_port;
                n.addr6.sin6_addr = e->addr6.sin6_addr;
                n.addr6.sin6_scope_id = e->addr6.sin6_scope_id;
                break;
        default:
                break;
        }
        return n;
}

static bool endpoint_equal(const union wg_endpoint *a, const union wg_endpoint *b) {
        union wg_endpoint x = endpoint_normalize(a), y = endpoint_normalize(b);

        return memcmp(&x, &y, sizeof(x)) == 0;
}

static bool key_is_zero(const uint8_t k[static WG_KEY_LEN]) {
        return sodium_is_zero(k, WG_KEY_LEN);
}

static bool ts_valid(struct hlc_ts t) {
        return t.wall_ms <= HLC_WALL_MAX && (t.node != 0 || hlc_ts_is_zero(t));
}

/* NULL when R could be encoded and decoded back; else why not. */
static const char *peer_check(const struct replica_peer *p) {
        if (key_is_zero(p->public_key))
                return "peer with a zero public key";
        if (!ts_valid(p->version) || hlc_ts_is_zero(p->version))
                return "peer version invalid";
        if (!ts_valid(p->endpoint_version))
                return "endpoint version invalid";
        if (p->n_allowedips > REPLICA_ALLOWEDIPS_MAX)
                return "too many allowed IPs";
        if (p->n_allowedips > 0 && !p->allowedips)
                return "allowed IPs missing";
        if (!allowedips_canonical(p->allowedips, p->n_allowedips))
                return "allowed IPs not canonical";
        if (p->deleted && (!key_is_zero(p->preshared_key) || p->keepalive != 0 || p->n_allowedips != 0))
                return "tombstone carries data";
        if (hlc_ts_is_zero(p->endpoint_version) != (family_len(p->endpoint.addr.sa_family) == 0))
                return "endpoint and its version disagree";
        return NULL;
}

static const char *device_check(const struct replica_device *d) {
        if (!ts_valid(d->version) || hlc_ts_is_zero(d->version))
                return "device version invalid";
        return NULL;
}

static const char *rec_check(const struct replica_rec *rec) {
        if (!ifname_valid_str(rec->ifname))
                return "invalid interface name";
        switch (rec->type) {
        case REPLICA_REC_DEVICE:
                return device_check(&rec->device);
        case REPLICA_REC_PEER:
                return peer_check(&rec->peer);
        default:
                return "unknown record type";
        }
}

static void peer_done(struct replica_peer *p) {
        free(p->allowedips);
        sodium_memzero(p, sizeof(*p));
}

/* A deep copy of SRC's main fields (from MAIN) and endpoint register (from
 * EP) into *RET. */
static int peer_combine(const struct replica_peer *main, const struct replica_peer *ep, struct replica_peer *ret) {
        struct replica_peer p = {};

        memcpy(p.public_key, main->public_key, WG_KEY_LEN);
        p.version = main->version;
        p.deleted = main->deleted;
        memcpy(p.preshared_key, main->preshared_key, WG_KEY_LEN);
        p.keepalive = main->keepalive;
        if (main->n_allowedips > 0) {
                p.allowedips = malloc(main->n_allowedips * sizeof(*p.allowedips));
                if (!p.allowedips) {
                        sodium_memzero(&p, sizeof(p));
                        return -ENOMEM;
                }
                memcpy(p.allowedips, main->allowedips, main->n_allowedips * sizeof(*p.allowedips));
                p.n_allowedips = main->n_allowedips;
        }
        p.endpoint_version = ep->endpoint_version;
        p.endpoint = endpoint_normalize(&ep->endpoint);
        *ret = p;
        sodium_memzero(&p, sizeof(p));
        return 0;
}

static int peer_copy(const struct replica_peer *src, struct replica_peer *ret) {
        return peer_combine(src, src, ret);
}

void replica_changes_done(struct replica_changes *c) {
        if (!c)
                return;
        for (size_t i = 0; i < c->n; i++)
                peer_done(&c->recs[i].peer);
        if (c->recs)
                sodium_memzero(c->recs, c->n * sizeof(*c->recs));
        free(c->recs);
        *c = (struct replica_changes) {};
}

/* Room for N more records in C, so that appending cannot fail later. */
static int changes_reserve(struct replica_changes *c, size_t n) {
        struct replica_rec *p;

        if (n == 0)
                return 0;
        if (n > SIZE_MAX / sizeof(*p) - c->n)
                return -ENOMEM;
        /* Copy rather than realloc(): the old block holds keys. */
        p = malloc((c->n + n) * sizeof(*p));
        if (!p)
                return -ENOMEM;
        if (c->n > 0)
                memcpy(p, c->recs, c->n * sizeof(*p));
        if (c->recs) {
                sodium_memzero(c->recs, c->n * sizeof(*c->recs));
                free(c->recs);
        }
        c->recs = p;
        return 0;
}

/* ---- encoding ---- */

#define ENC_TS_LEN (8 + 2 + 8)
#define ENC_DEVICE_MIN (1 + 2 + ENC_TS_LEN + WG_KEY_LEN + 2 + 4)

/* Counts only when buf is NULL, so one function sizes and writes. */
struct writer {
        uint8_t *buf;
        size_t pos;
};

static void put(struct writer *w, const void *p, size_t n) {
        if (w->buf && n > 0)
                memcpy(w->buf + w->pos, p, n);
        w->pos += n;
}

static void put_u8(struct writer *w, uint8_t v) {
        put(w, &v, 1);
}

static void put_u16(struct writer *w, uint16_t v) {
        uint8_t b[2] = { (uint8_t) (v >> 8), (uint8_t) v };

        put(w, b, sizeof(b));
}

static void put_u32(struct writer *w, uint32_t v) {
        uint8_t b[4] = { (uint8_t) (v >> 24), (uint8_t) (v >> 16), (uint8_t) (v >> 8), (uint8_t) v };

        put(w, b, sizeof(b));
}

static void put_u64(struct writer *w, uint64_t v) {
        put_u32(w, (uint32_t) (v >> 32));
        put_u32(w, (uint32_t) v);
}

static void put_ts(struct writer *w, struct hlc_ts t) {
        put_u64(w, t.wall_ms);
        put_u16(w, t.logical);
        put_u64(w, t.node);
}

static void put_ifname(struct writer *w, const char *name) {
        size_t len = strnlen(name, IFNAMSIZ);

        put_u8(w, (uint8_t) len);
        put(w, name, len);
}

static void put_device(struct writer *w, const char *ifname, const struct replica_device *d) {
        put_u8(w, 1);
        put_ifname(w, ifname);
        put_ts(w, d->version);
        put(w, d->private_key, WG_KEY_LEN);
        put_u16(w, d->listen_port);
        put_u32(w, d->fwmark);
}

static void put_peer(struct writer *w, const char *ifname, const struct replica_peer *p) {
        put_u8(w, 2);
        put_ifname(w, ifname);
        put(w, p->public_key, WG_KEY_LEN);
        put_ts(w, p->version);
        put_u8(w, p->deleted ? 1 : 0);
        put(w, p->preshared_key, WG_KEY_LEN);
        put_u16(w, p->keepalive);
        put_ts(w, p->endpoint_version);
        switch (p->endpoint.addr.sa_family) {
        case AF_INET:
                put_u8(w, 4);
                put(w, &p->endpoint.addr4.sin_addr, 4);
                put(w, &p->endpoint.addr4.sin_port, 2);
                break;
        case AF_INET6:
                put_u8(w, 6);
                put(w, &p->endpoint.addr6.sin6_addr, 16);
                put(w, &p->endpoint.addr6.sin6_port, 2);
                put_u32(w, p->endpoint.addr6.sin6_scope_id);
                break;
        default:
                put_u8(w, 0);
                break;
        }
        put_u16(w, (uint16_t) p->n_allowedips);
        for (size_t i = 0; i < p->n_allowedips; i++) {
                const struct wg_allowedip *a = &p->allowedips[i];

                put_u8(w, a->family == AF_INET ? 4 : 6);
                put(w, a->ip.bytes, family_len(a->family));
                put_u8(w, a->cidr);
        }
}

static void put_header(struct writer *w, size_t count) {
        put_u8(w, REPLICA_FORMAT_VERSION);
        put_u32(w, (uint32_t) count);
}

static int changes_write(const struct replica_changes *c, struct writer *w) {
        put_header(w, c->n);
        for (size_t i = 0; i < c->n; i++) {
                const struct replica_rec *rec = &c->recs[i];

                if (rec->type == REPLICA_REC_DEVICE)
                        put_device(w, rec->ifname, &rec->device);
                else
                        put_peer(w, rec->ifname, &rec->peer);
        }
        return 0;
}

int replica_changes_encode(const struct replica_changes *c, uint8_t **ret, size_t *ret_len) {
        struct writer w = {};

        if (!c || !ret || !ret_len || (c->n > 0 && !c->recs))
                return -EINVAL;
        if (c->n > REPLICA_RECORDS_MAX)
                return -EINVAL;
        for (size_t i = 0; i < c->n; i++)
                if (rec_check(&c->recs[i]))
                        return -EINVAL;
        changes_write(c, &w);
        w.buf = malloc(w.pos);
        if (!w.buf)
                return -ENOMEM;
        w.pos = 0;
        changes_write(c, &w);
        *ret = w.buf;
        *ret_len = w.pos;
        return 0;
}

struct reader {
        const uint8_t *p;
        size_t left;
};

static bool get(struct reader *r, void *out, size_t n) {
        if (r->left < n)
                return false;
        memcpy(out, r->p, n);
        r->p += n;
        r->left -= n;
        return true;
}

static bool get_u8(struct reader *r, uint8_t *v) {
        return get(r, v, 1);
}

static bool get_u16(struct reader *r, uint16_t *v) {
        uint8_t b[2];

        if (!get(r, b, sizeof(b)))
                return false;
        *v = (uint16_t) (b[0] << 8 | b[1]);
        return true;
}

static bool get_u32(struct reader *r, uint32_t *v) {
        uint8_t b[4];

        if (!get(r, b, sizeof(b)))
                return false;
        *v = (uint32_t) b[0] << 24 | (uint32_t) b[1] << 16 | (uint32_t) b[2] << 8 | b[3];
        return true;
}

static bool get_u64(struct reader *r, uint64_t *v) {
        uint32_t hi, lo;

        if (!get_u32(r, &hi) || !get_u32(r, &lo))
                return false;
        *v = (uint64_t) hi << 32 | lo;
        return true;
}

static bool get_ts(struct reader *r, struct hlc_ts *t) {
        return get_u64(r, &t->wall_ms) && get_u16(r, &t->logical) && get_u64(r, &t->node);
}

/* Readers return 0, -EBADMSG with *why set, or -ENOMEM. */
static int bad(const char **why, const char *reason) {
        *why = reason;
        return -EBADMSG;
}

#define TRUNCATED "record truncated"

static int get_endpoint(struct reader *r, union wg_endpoint *e, const char **why) {
        uint8_t fam;

        if (!get_u8(r, &fam))
                return bad(why, TRUNCATED);
        switch (fam) {
        case 0:
                return 0;
        case 4:
                e->addr4.sin_family = AF_INET;
                if (!get(r, &e->addr4.sin_addr, 4) || !get(r, &e->addr4.sin_port, 2))
                        return bad(why, TRUNCATED);
                return 0;
        case 6:
                e->addr6.sin6_family = AF_INET6;
                if (!get(r, &e->addr6.sin6_addr, 16) || !get(r, &e->addr6.sin6_port, 2) ||
                    !get_u32(r, &e->addr6.sin6_scope_id))
                        return bad(why, TRUNCATED);
                return 0;
        default:
                return bad(why, "unknown endpoint family");
        }
}

static int get_allowedips(struct reader *r, struct replica_peer *p, const char **why) {
        uint16_t n;

        if (!get_u16(r, &n))
                return bad(why, TRUNCATED);
        if (n > REPLICA_ALLOWEDIPS_MAX)
                return bad(why, "too many allowed IPs");
        /* Each takes at least 6 bytes: nothing is allocated for entries
         * that are not there. */
        if ((size_t) n * 6 > r->left)
                return bad(why, TRUNCATED);
        if (n == 0)
                return 0;
        p->allowedips = calloc(n, sizeof(*p->allowedips));
        if (!p->allowedips)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                struct wg_allowedip *a = &p->allowedips[i];
                uint8_t fam;

                if (!get_u8(r, &fam))
                        return bad(why, TRUNCATED);
                if (fam != 4 && fam != 6)
                        return bad(why, "unknown allowed IP family");
                a->family = fam == 4 ? AF_INET : AF_INET6;
                if (!get(r, a->ip.bytes, family_len(a->family)) || !get_u8(r, &a->cidr))
                        return bad(why, TRUNCATED);
                p->n_allowedips = i + 1;
        }
        return 0;
}

static int get_rec(struct reader *r, struct replica_rec *rec, const char **why) {
        uint8_t type, len, flags;
        const char *reason;
        int k;

        if (!get_u8(r, &type) || !get_u8(r, &len))
                return bad(why, TRUNCATED);
        if (type != 1 && type != 2)
                return bad(why, "unknown record type");
        if (len == 0 || len >= IFNAMSIZ)
                return bad(why, "interface name length out of range");
        if (!get(r, rec->ifname, len))
                return bad(why, TRUNCATED);
        if (!ifname_valid(rec->ifname, len))
                return bad(why, "invalid interface name");

        if (type == 1) {
                rec->type = REPLICA_REC_DEVICE;
                if (!get_ts(r, &rec->device.version) || !get(r, rec->device.private_key, WG_KEY_LEN) ||
                    !get_u16(r, &rec->device.listen_port) || !get_u32(r, &rec->device.fwmark))
                        return bad(why, TRUNCATED);
                reason = device_check(&rec->device);
                return reason ? bad(why, reason) : 0;
        }

        rec->type = REPLICA_REC_PEER;
        if (!get(r, rec->peer.public_key, WG_KEY_LEN) || !get_ts(r, &rec->peer.version) || !get_u8(r, &flags) ||
            !get(r, rec->peer.preshared_key, WG_KEY_LEN) || !get_u16(r, &rec->peer.keepalive) ||
            !get_ts(r, &rec->peer.endpoint_version))
                return bad(why, TRUNCATED);
        if (flags & ~1u)
                return bad(why, "reserved peer flags set");
        rec->peer.deleted = flags & 1;
        k = get_endpoint(r, &rec->peer.endpoint, why);
        if (k < 0)
                return k;
        k = get_allowedips(r, &rec->peer, why);
        if (k < 0)
                return k;
        reason = peer_check(&rec->peer);
        return reason ? bad(why, reason) : 0;
}

int replica_changes_decode(const uint8_t *buf, size_t len, struct replica_changes *ret, const char **ret_reason) {
        struct replica_changes c = {};
        struct reader rd = { buf, len };
        const char *why = NULL;
        uint8_t version;
        uint32_t count;
        int r = 0;

        if ((!buf && len > 0) || !ret)
                return -EINVAL;
        if (!get_u8(&rd, &version) || !get_u32(&rd, &count)) {
                r = bad(&why, "header truncated");
                goto finish;
        }
        if (version != REPLICA_FORMAT_VERSION) {
                r = bad(&why, "unsupported format version");
                goto finish;
        }
        if (count > REPLICA_RECORDS_MAX) {
                r = bad(&why, "too many records");
                goto finish;
        }
        /* The smallest record is a device record: a count that cannot fit
         * is refused before anything is allocated for it. */
        if ((size_t) count > rd.left / ENC_DEVICE_MIN) {
                r = bad(&why, "record count exceeds the message");
                goto finish;
        }
        if (count > 0) {
                c.recs = calloc(count, sizeof(*c.recs));
                if (!c.recs)
                        return -ENOMEM;
        }
        for (uint32_t i = 0; i < count; i++) {
                c.n = i + 1;
                r = get_rec(&rd, &c.recs[i], &why);
                if (r < 0)
                        goto finish;
        }
        if (rd.left > 0) {
                r = bad(&why, "trailing bytes after the last record");
                goto finish;
        }
        *ret = c;
        return 0;
finish:
        if (r == -EBADMSG && ret_reason)
                *ret_reason = why;
        replica_changes_done(&c);
        return r;
}

/* ---- the replica ---- */

uint64_t replica_node_id(const uint8_t sync_public_key[static WG_KEY_LEN]) {
        static const uint8_t personal[] = "hamgr-node-id";
        uint8_t h[8];
        uint64_t id = 0;

        crypto_generichash(h, sizeof(h), sync_public_key, WG_KEY_LEN, personal, sizeof(personal) - 1);
        for (size_t i = 0; i < sizeof(h); i++)
                id = id << 8 | h[i];
        return id != 0 ? id : 1;
}

int replica_new(uint64_t node, struct replica **ret) {
        struct replica *r;

        if (node == 0 || !ret)
                return -EINVAL;
        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        hlc_init(&r->clock, node);
        *ret = r;
        return 0;
}

static void iface_done(struct replica_iface *f) {
        for (size_t i = 0; i < f->n_peers; i++)
                peer_done(&f->peers[i]);
        free(f->peers);
        sodium_memzero(f, sizeof(*f));
}

struct replica *replica_free(struct replica *r) {
        if (!r)
                return NULL;
        for (size_t i = 0; i < r->n_ifaces; i++)
                iface_done(&r->ifaces[i]);
        free(r->ifaces);
        sodium_memzero(r, sizeof(*r));
        free(r);
        return NULL;
}

uint64_t replica_node(const struct replica *r) {
        return r ? r->clock.node : 0;
}

static int iface_name_cmp(const void *key, const void *elem) {
        const struct replica_iface *f = elem;

        return strncmp(key, f->name, IFNAMSIZ);
}

static struct replica_iface *iface_find(const struct replica *r, const char *name) {
        if (r->n_ifaces == 0)
                return NULL;
        return bsearch(name, r->ifaces, r->n_ifaces, sizeof(*r->ifaces), iface_name_cmp);
}

static int iface_cmp(const void *x, const void *y) {
        const struct replica_iface *a = x, *b = y;

        return strncmp(a->name, b->name, IFNAMSIZ);
}

/*
 * Both the merge and the local poll compute an interface's new state
 * beside the old one, then commit with no allocation, so either fails
 * with the replica untouched. The new peer array holds every key of the
 * old one (records are never dropped); entries taken over unchanged share
 * the old allowed-IP arrays, FRESH ones own new copies.
 */
struct pending {
        struct replica_iface *iface;          /* NULL: a new interface */
        char name[IFNAMSIZ];
        struct replica_device device;
        struct replica_peer *peers;
        bool *fresh;
        size_t n_peers;
        bool changed;
};

static void pending_done(struct pending *p) {
        if (p->peers) {
                for (size_t i = 0; i < p->n_peers; i++)
                        if (p->fresh[i])
                                peer_done(&p->peers[i]);
                sodium_memzero(p->peers, p->n_peers * sizeof(*p->peers));
        }
        free(p->peers);
        free(p->fresh);
        sodium_memzero(&p->device, sizeof(p->device));
        *p = (struct pending) {};
}

static int pending_init(struct pending *p, struct replica_iface *iface, const char *name, size_t cap) {
        *p = (struct pending) { .iface = iface };
        ifname_copy(p->name, name);
        if (iface)
                p->device = iface->device;
        if (cap == 0)
                return 0;
        p->peers = calloc(cap, sizeof(*p->peers));
        p->fresh = calloc(cap, sizeof(*p->fresh));
        if (!p->peers || !p->fresh) {
                free(p->peers);
                free(p->fresh);
                *p = (struct pending) {};
                return -ENOMEM;
        }
        return 0;
}

static void pending_keep(struct pending *p, const struct replica_peer *old) {
        p->peers[p->n_peers] = *old;
        p->fresh[p->n_peers] = false;
        p->n_peers++;
}

static struct replica_peer *pending_fresh(struct pending *p) {
        p->fresh[p->n_peers] = true;
        p->changed = true;
        return &p->peers[p->n_peers++];
}

/* Install P into its interface (F, already in R's array). Cannot fail. */
static void pending_commit(struct pending *p, struct replica_iface *f, bool needs_apply) {
        size_t j = 0;

        for (size_t i = 0; i < f->n_peers; i++) {
                while (memcmp(p->peers[j].public_key, f->peers[i].public_key, WG_KEY_LEN) != 0)
                        j++;
                if (p->fresh[j])
                        peer_done(&f->peers[i]);
        }
        if (f->peers)
                sodium_memzero(f->peers, f->n_peers * sizeof(*f->peers));
        free(f->peers);
        f->peers = TAKE_PTR(p->peers);
        f->n_peers = p->n_peers;
        f->device = p->device;
        f->generation++;
        if (needs_apply)
                f->needs_apply = true;
        free(p->fresh);
        sodium_memzero(&p->device, sizeof(p->device));
        *p = (struct pending) {};
}

/* Commit N pendings (the changed ones) into R; new interfaces go into the
 * array reserved for them by ifaces_reserve(). Cannot fail. */
static void pendings_commit(struct replica *r, struct pending *pend, size_t n, bool needs_apply) {
        bool added = false;

        for (size_t i = 0; i < n; i++) {
                struct replica_iface *f = pend[i].iface;

                if (!pend[i].changed) {
                        pending_done(&pend[i]);
                        continue;
                }
                if (!f) {
                        f = &r->ifaces[r->n_ifaces++];
                        *f = (struct replica_iface) {};
                        memcpy(f->name, pend[i].name, IFNAMSIZ);
                        added = true;
                }
                pending_commit(&pend[i], f, needs_apply);
        }
        if (added)
                qsort_safe(r->ifaces, r->n_ifaces, sizeof(*r->ifaces), iface_cmp);
}

/* Room for N_NEW more interfaces. Pointers into r->ifaces (the pendings')
 * are rebased. */
static int ifaces_reserve(struct replica *r, size_t n_new, struct pending *pend, size_t n_pend) {
        struct replica_iface *p;

        if (n_new == 0)
                return 0;
        p = malloc((r->n_ifaces + n_new) * sizeof(*p));
        if (!p)
                return -ENOMEM;
        if (r->n_ifaces > 0)
                memcpy(p, r->ifaces, r->n_ifaces * sizeof(*p));
        for (size_t i = 0; i < n_pend; i++)
                if (pend[i].iface)
                        pend[i].iface = p + (pend[i].iface - r->ifaces);
        if (r->ifaces)
                sodium_memzero(r->ifaces, r->n_ifaces * sizeof(*r->ifaces));
        free(r->ifaces);
        r->ifaces = p;
        return 0;
}

static int rec_from_peer(const char *ifname, const struct replica_peer *p, struct replica_rec *ret) {
        *ret = (struct replica_rec) { .type = REPLICA_REC_PEER };
        ifname_copy(ret->ifname, ifname);
        return peer_copy(p, &ret->peer);
}

static void rec_from_device(const char *ifname, const struct replica_device *d, struct replica_rec *ret) {
        *ret = (struct replica_rec) { .type = REPLICA_REC_DEVICE, .device = *d };
        ifname_copy(ret->ifname, ifname);
}

/* Append the changed records of P to OUT (a local list, freed by the
 * caller on failure). */
static int pending_collect(const struct pending *p, bool device_changed, struct replica_changes *out) {
        size_t n = device_changed ? 1 : 0;
        int r;

        for (size_t i = 0; i < p->n_peers; i++)
                n += p->fresh[i];
        r = changes_reserve(out, n);
        if (r < 0)
                return r;
        if (device_changed)
                rec_from_device(p->name, &p->device, &out->recs[out->n++]);
        for (size_t i = 0; i < p->n_peers; i++) {
                if (!p->fresh[i])
                        continue;
                r = rec_from_peer(p->name, &p->peers[i], &out->recs[out->n]);
                if (r < 0)
                        return r;
                out->n++;
        }
        return 0;
}

/* Move IN's records to the end of *OUT (OUT may be NULL: IN is freed). */
static int changes_append(struct replica_changes *out, struct replica_changes *in) {
        int r;

        if (!out || in->n == 0) {
                replica_changes_done(in);
                return 0;
        }
        r = changes_reserve(out, in->n);
        if (r < 0)
                return r;
        memcpy(out->recs + out->n, in->recs, in->n * sizeof(*in->recs));
        out->n += in->n;
        sodium_memzero(in->recs, in->n * sizeof(*in->recs));
        free(in->recs);
        *in = (struct replica_changes) {};
        return 0;
}

/* ---- merge ---- */

static int rec_ptr_cmp(const void *x, const void *y) {
        const struct replica_rec *a = *(const struct replica_rec *const *) x;
        const struct replica_rec *b = *(const struct replica_rec *const *) y;
        int r;

        r = strncmp(a->ifname, b->ifname, IFNAMSIZ);
        if (r != 0)
                return r;
        if (a->type != b->type)
                return a->type < b->type ? -1 : 1;
        if (a->type == REPLICA_REC_PEER)
                return memcmp(a->peer.public_key, b->peer.public_key, WG_KEY_LEN);
        return 0;
}

/* Merge the sorted records V[0..N) (all of one interface) into P. */
static int merge_iface(struct pending *p, const struct replica_rec *const *v, size_t n, bool *ret_device_changed) {
        const struct replica_iface *f = p->iface;
        const struct replica_peer *main = NULL, *ep = NULL;
        size_t n_old = f ? f->n_peers : 0, i = 0, j = 0, run_end = 0;
        int r;

        *ret_device_changed = false;
        while (j < n && v[j]->type == REPLICA_REC_DEVICE) {
                if (hlc_compare(v[j]->device.version, p->device.version) > 0) {
                        p->device = v[j]->device;
                        *ret_device_changed = true;
                        p->changed = true;
                }
                j++;
        }

        while (i < n_old || j < n) {
                const struct replica_peer *old;
                bool main_wins, ep_wins;
                int c;

                if (j < n && run_end <= j) {
                        /* Fold the run of one key, register by register. */
                        main = ep = &v[j]->peer;
                        for (run_end = j + 1;
                             run_end < n && memcmp(v[run_end]->peer.public_key, main->public_key, WG_KEY_LEN) == 0;
                             run_end++) {
                                if (hlc_compare(v[run_end]->peer.version, main->version) > 0)
                                        main = &v[run_end]->peer;
                                if (hlc_compare(v[run_end]->peer.endpoint_version, ep->endpoint_version) > 0)
                                        ep = &v[run_end]->peer;
                        }
                }
                if (j >= n)
                        c = -1;
                else if (i >= n_old)
                        c = 1;
                else
                        c = memcmp(f->peers[i].public_key, main->public_key, WG_KEY_LEN);

                if (c < 0) {
                        pending_keep(p, &f->peers[i++]);
                        continue;
                }
                j = run_end;
                old = c == 0 ? &f->peers[i++] : NULL;
                main_wins = !old || hlc_compare(main->version, old->version) > 0;
                ep_wins = old ? hlc_compare(ep->endpoint_version, old->endpoint_version) > 0
                              : !hlc_ts_is_zero(ep->endpoint_version);
                if (!main_wins && !ep_wins) {
                        pending_keep(p, old);
                        continue;
                }
                r = peer_combine(main_wins ? main : old, ep_wins ? ep : (old ? old : main), pending_fresh(p));
                if (r < 0) {
                        p->fresh[--p->n_peers] = false;
                        return r;
                }
        }
        return 0;
}

static void pendings_free(struct pending *pend, size_t n) {
        for (size_t i = 0; i < n; i++)
                pending_done(&pend[i]);
        free(pend);
}

int replica_merge(struct replica *r, const struct replica_changes *remote, struct replica_changes *ret_applied) {
        _cleanup_(freep) const struct replica_rec **v = NULL;
        struct replica_changes applied = {};
        struct pending *pend = NULL;
        size_t n_pend = 0, n_groups = 0, n_new = 0;
        int k = 0;

        if (!r || !remote || (remote->n > 0 && !remote->recs))
                return -EINVAL;
        for (size_t i = 0; i < remote->n; i++)
                if (rec_check(&remote->recs[i]))
                        return -EINVAL;
        if (remote->n == 0)
                return 0;

        v = malloc(remote->n * sizeof(*v));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < remote->n; i++)
                v[i] = &remote->recs[i];
        qsort_safe(v, remote->n, sizeof(*v), rec_ptr_cmp);
        for (size_t i = 0; i < remote->n; i++)
                if (i == 0 || strncmp(v[i]->ifname, v[i - 1]->ifname, IFNAMSIZ) != 0)
                        n_groups++;
        pend = calloc(n_groups, sizeof(*pend));
        if (!pend)
                return -ENOMEM;

        for (size_t a = 0, b; a < remote->n; a = b) {
                struct replica_iface *f = iface_find(r, v[a]->ifname);
                struct pending *p = &pend[n_pend];
                bool device_changed;
                size_t cap;

                for (b = a + 1; b < remote->n && strncmp(v[a]->ifname, v[b]->ifname, IFNAMSIZ) == 0; b++)
                        ;
                cap = (f ? f->n_peers : 0) + (b - a);
                k = pending_init(p, f, v[a]->ifname, cap);
                if (k < 0)
                        goto fail;
                n_pend++;
                k = merge_iface(p, v + a, b - a, &device_changed);
                if (k < 0)
                        goto fail;
                k = pending_collect(p, device_changed, &applied);
                if (k < 0)
                        goto fail;
                if (p->changed && !f)
                        n_new++;
        }
        k = ifaces_reserve(r, n_new, pend, n_pend);
        if (k < 0)
                goto fail;
        k = changes_append(ret_applied, &applied);
        if (k < 0)
                goto fail;

        pendings_commit(r, pend, n_pend, true);
        free(pend);
        for (size_t i = 0; i < remote->n; i++) {
                hlc_observe(&r->clock, remote->recs[i].type == REPLICA_REC_DEVICE ? remote->recs[i].device.version
                                                                                  : remote->recs[i].peer.version);
                if (remote->recs[i].type == REPLICA_REC_PEER)
                        hlc_observe(&r->clock, remote->recs[i].peer.endpoint_version);
        }
        return 0;
fail:
        replica_changes_done(&applied);
        pendings_free(pend, n_pend);
        return k;
}

/* ---- what another node may send ---- */

uint64_t replica_future_limit(uint64_t now_ms, int64_t offset_ms) {
        uint64_t ahead = offset_ms > 0 ? MIN((uint64_t) offset_ms, (uint64_t) REPLICA_OFFSET_MAX_MS) : 0;

        /* Both terms are far below 2^63: no overflow before the clamp. */
        return wall_clamp(wall_clamp(now_ms) + ahead + REPLICA_FUTURE_TOLERANCE_MS);
}

static const char *endpoint4_refusal(uint32_t a) {
        if ((a >> 24) == 0)
                return "endpoint address is unspecified";
        if ((a >> 24) == 127)
                return "endpoint address is loopback";
        if ((a >> 28) == 0xe)
                return "endpoint address is multicast";
        if (a == UINT32_MAX)
                return "endpoint address is broadcast";
        return NULL;
}

const char *replica_endpoint_refusal(const union wg_endpoint *e) {
        static const uint8_t v4mapped[12] = { [10] = 0xff, [11] = 0xff };
        const char *why;
        uint16_t port;

        if (!e)
                return "no endpoint";
        switch (e->addr.sa_family) {
        case AF_INET:
                why = endpoint4_refusal(ntohl(e->addr4.sin_addr.s_addr));
                port = e->addr4.sin_port;
                break;
        case AF_INET6: {
                const uint8_t *b = e->addr6.sin6_addr.s6_addr;
                static const uint8_t zero[16] = {}, loop[16] = { [15] = 1 };

                if (memcmp(b, v4mapped, sizeof(v4mapped)) == 0)
                        why = endpoint4_refusal((uint32_t) b[12] << 24 | (uint32_t) b[13] << 16 |
                                                (uint32_t) b[14] << 8 | b[15]);
                else if (memcmp(b, zero, 16) == 0)
                        why = "endpoint address is unspecified";
                else if (memcmp(b, loop, 16) == 0)
                        why = "endpoint address is loopback";
                else if (b[0] == 0xff)
                        why = "endpoint address is multicast";
                else
                        why = NULL;
                port = e->addr6.sin6_port;
                break;
        }
        default:
                return "endpoint family unknown";
        }
        if (why)
                return why;
        return port == 0 ? "endpoint port is 0" : NULL;
}

static int u64_cmp(const void *x, const void *y) {
        uint64_t a = *(const uint64_t *) x, b = *(const uint64_t *) y;

        return a < b ? -1 : a > b;
}

/* The writer ids of R's records, sorted and unique, for the relay rule. */
static int held_writers(const struct replica *r, uint64_t **ret, size_t *ret_n) {
        size_t n = 0, cap = 2 * replica_n_records(r) + 1;
        uint64_t *ids;

        ids = malloc(cap * sizeof(*ids));
        if (!ids)
                return -ENOMEM;
        for (size_t i = 0; i < r->n_ifaces; i++) {
                const struct replica_iface *f = &r->ifaces[i];

                if (!hlc_ts_is_zero(f->device.version))
                        ids[n++] = f->device.version.node;
                for (size_t j = 0; j < f->n_peers; j++) {
                        ids[n++] = f->peers[j].version.node;
                        if (!hlc_ts_is_zero(f->peers[j].endpoint_version))
                                ids[n++] = f->peers[j].endpoint_version.node;
                }
        }
        qsort_safe(ids, n, sizeof(*ids), u64_cmp);
        *ret_n = 0;
        for (size_t i = 0; i < n; i++)
                if (*ret_n == 0 || ids[*ret_n - 1] != ids[i])
                        ids[(*ret_n)++] = ids[i];
        *ret = ids;
        return 0;
}

struct writer_check {
        const struct replica *r;
        const struct replica_source *src;
        uint64_t *held;                       /* built on the first writer not otherwise known */
        size_t n_held;
        bool held_built;
};

/* 0 when T's writer may come from the sender, -EPERM if not, -ENOMEM. */
static int writer_allowed(struct writer_check *w, struct hlc_ts t) {
        int k;

        if (t.node == w->src->sender || t.node == w->r->clock.node)
                return 0;
        for (size_t i = 0; i < w->src->n_relay; i++)
                if (w->src->relay[i] == t.node)
                        return 0;
        if (!w->held_built) {
                k = held_writers(w->r, &w->held, &w->n_held);
                if (k < 0)
                        return k;
                w->held_built = true;
        }
        if (w->n_held > 0 && bsearch(&t.node, w->held, w->n_held, sizeof(*w->held), u64_cmp))
                return 0;
        return -EPERM;
}

/* Check one version: NULL if acceptable, else why not (*ret_err set). */
static const char *version_refusal(struct writer_check *w, struct hlc_ts t, uint64_t limit, int *ret_err) {
        int k;

        if (t.wall_ms > limit) {
                *ret_err = -EPERM;
                return "version too far in the future";
        }
        k = writer_allowed(w, t);
        if (k < 0) {
                *ret_err = k;
                return k == -EPERM ? "record written by a node the sender may not write for" : NULL;
        }
        return NULL;
}

static int changes_admissible(const struct replica *r, const struct replica_changes *remote,
                              const struct replica_source *src, const char **ret_reason) {
        struct writer_check w = { .r = r, .src = src };
        uint64_t limit = replica_future_limit(src->now_ms, src->offset_ms);
        const char *why = NULL;
        int k = 0;

        for (size_t i = 0; i < remote->n && k == 0; i++) {
                const struct replica_rec *rec = &remote->recs[i];

                if (rec->type == REPLICA_REC_DEVICE) {
                        why = version_refusal(&w, rec->device.version, limit, &k);
                        continue;
                }
                why = version_refusal(&w, rec->peer.version, limit, &k);
                if (k < 0 || hlc_ts_is_zero(rec->peer.endpoint_version))
                        continue;
                why = version_refusal(&w, rec->peer.endpoint_version, limit, &k);
                if (k < 0)
                        continue;
                why = replica_endpoint_refusal(&rec->peer.endpoint);
                if (why)
                        k = -EPERM;
        }
        free(w.held);
        if (k == -EPERM && ret_reason)
                *ret_reason = why;
        return k;
}

int replica_merge_from(struct replica *r, const struct replica_changes *remote, const struct replica_source *src,
                       struct replica_changes *ret_applied, const char **ret_reason) {
        int k;

        if (!r || !remote || !src || src->sender == 0 || (src->n_relay > 0 && !src->relay) ||
            (remote->n > 0 && !remote->recs))
                return -EINVAL;
        for (size_t i = 0; i < remote->n; i++)
                if (rec_check(&remote->recs[i]))
                        return -EINVAL;
        k = changes_admissible(r, remote, src, ret_reason);
        if (k < 0)
                return k;
        /* Every version is now at most the limit, so the clock, which
         * moves past them, stays within it too. */
        return replica_merge(r, remote, ret_applied);
}

static bool writer_orphan(const struct replica *r, struct hlc_ts t, const uint64_t *known, size_t n_known) {
        if (hlc_ts_is_zero(t) || t.node == r->clock.node)
                return false;
        for (size_t i = 0; i < n_known; i++)
                if (known[i] == t.node)
                        return false;
        return true;
}

int replica_adopt_orphans(struct replica *r, const uint64_t *known, size_t n_known, uint64_t wall_ms,
                          struct replica_changes *ret) {
        struct replica_changes out = {};
        struct hlc clock;
        struct hlc_ts ts;
        size_t n = 0;
        int k;

        if (!r || (n_known > 0 && !known))
                return -EINVAL;
        for (size_t i = 0; i < r->n_ifaces; i++) {
                const struct replica_iface *f = &r->ifaces[i];

                n += writer_orphan(r, f->device.version, known, n_known);
                for (size_t j = 0; j < f->n_peers; j++)
                        n += writer_orphan(r, f->peers[j].version, known, n_known) ||
                             writer_orphan(r, f->peers[j].endpoint_version, known, n_known);
        }
        if (n == 0)
                return 0;
        clock = r->clock;
        k = hlc_now(&clock, wall_ms, &ts);
        if (k < 0)
                return k;
        k = changes_reserve(&out, n);
        if (k < 0)
                return k;
        for (size_t i = 0; i < r->n_ifaces; i++) {
                const struct replica_iface *f = &r->ifaces[i];

                if (writer_orphan(r, f->device.version, known, n_known)) {
                        rec_from_device(f->name, &f->device, &out.recs[out.n]);
                        out.recs[out.n++].device.version = ts;
                }
                for (size_t j = 0; j < f->n_peers; j++) {
                        const struct replica_peer *p = &f->peers[j];
                        bool main = writer_orphan(r, p->version, known, n_known),
                             ep = writer_orphan(r, p->endpoint_version, known, n_known);

                        if (!main && !ep)
                                continue;
                        k = rec_from_peer(f->name, p, &out.recs[out.n]);
                        if (k < 0)
                                goto finish;
                        if (main)
                                out.recs[out.n].peer.version = ts;
                        if (ep)
                                out.recs[out.n].peer.endpoint_version = ts;
                        out.n++;
                }
        }
        /* Each new version is above everything R holds, so all of them win,
         * and the merge moves R's clock to TS. */
        k = replica_merge(r, &out, ret);
finish:
        replica_changes_done(&out);
        return k;
}

/* ---- local poll ---- */

/* A copy of OBSERVED's peers, sorted and with canonical allowed IPs;
 * -EINVAL for a zero public key or an allowed IP with a bad family or
 * prefix length, -E2BIG for more allowed IPs than the format carries. */
static int observed_sorted(const struct wg_device *observed, struct wg_device **ret) {
        _cleanup_(wg_device_freep) struct wg_device *d = NULL;

        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        for (size_t i = 0; i < observed->n_peers; i++) {
                const struct wg_peer *src = &observed->peers[i];
                struct wg_peer *p = wg_device_add_peer(d);

                if (!p)
                        return -ENOMEM;
                *p = *src;
                p->allowedips = NULL;
                p->n_allowedips = 0;
                if (src->n_allowedips > 0) {
                        if (!src->allowedips)
                                return -EINVAL;
                        p->allowedips = malloc(src->n_allowedips * sizeof(*p->allowedips));
                        if (!p->allowedips)
                                return -ENOMEM;
                        memcpy(p->allowedips, src->allowedips, src->n_allowedips * sizeof(*p->allowedips));
                        p->n_allowedips = src->n_allowedips;
                }
        }
        wg_device_sort(d);
        /* What could not be encoded must not get into the replica: its
         * state file would no longer load. */
        for (size_t i = 0; i < d->n_peers; i++) {
                const struct wg_peer *p = &d->peers[i];

                if (key_is_zero(p->public_key) || !allowedips_canonical(p->allowedips, p->n_allowedips))
                        return -EINVAL;
                if (p->n_allowedips > REPLICA_ALLOWEDIPS_MAX)
                        return -E2BIG;
        }
        *ret = TAKE_PTR(d);
        return 0;
}

static bool observed_endpoint(const struct wg_peer *p) {
        return (p->flags & WG_PEER_HAS_ENDPOINT) && family_len(p->endpoint.addr.sa_family) > 0 &&
               !replica_endpoint_refusal(&p->endpoint);
}

/* The device record OBSERVED implies, starting from OLD. False when the
 * device does not show enough to tell (no private key, and a public key
 * that is not the replicated one's). */
static bool observed_device(const struct wg_device *obs, const struct replica_device *old, struct replica_device *ret) {
        struct replica_device d = *old;
        bool known = !hlc_ts_is_zero(old->version);

        if (obs->flags & WG_DEVICE_HAS_PRIVATE_KEY)
                memcpy(d.private_key, obs->private_key, WG_KEY_LEN);
        else {
                uint8_t pub[WG_KEY_LEN];
                bool same;

                if (!known || !(obs->flags & WG_DEVICE_HAS_PUBLIC_KEY))
                        return false;
                if (wg_key_public_from_private(pub, old->private_key) < 0)
                        return false;
                same = wg_key_equal(pub, obs->public_key);
                sodium_memzero(pub, sizeof(pub));
                if (!same)
                        return false;
        }
        /* Port 0: not bound (yet); the configured port is what counts. */
        if ((obs->flags & WG_DEVICE_HAS_LISTEN_PORT) && obs->listen_port != 0)
                d.listen_port = obs->listen_port;
        d.fwmark = (obs->flags & WG_DEVICE_HAS_FWMARK) ? obs->fwmark : 0;
        *ret = d;
        sodium_memzero(&d, sizeof(d));
        return true;
}

static bool device_equal(const struct replica_device *a, const struct replica_device *b) {
        return sodium_memcmp(a->private_key, b->private_key, WG_KEY_LEN) == 0 && a->listen_port == b->listen_port &&
               a->fwmark == b->fwmark;
}

/* The record of an observed peer: main fields from OBS at version TS. */
static int peer_from_observed(const struct wg_peer *obs, struct hlc_ts ts, struct replica_peer *ret) {
        struct replica_peer p = {};

        memcpy(p.public_key, obs->public_key, WG_KEY_LEN);
        p.version = ts;
        if (obs->flags & WG_PEER_HAS_PRESHARED_KEY)
                memcpy(p.preshared_key, obs->preshared_key, WG_KEY_LEN);
        if (obs->flags & WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL)
                p.keepalive = obs->persistent_keepalive_interval;
        p.allowedips = obs->allowedips;
        p.n_allowedips = obs->n_allowedips;
        return peer_copy(&p, ret);
}

static bool peer_main_equal(const struct replica_peer *a, const struct replica_peer *b) {
        return a->deleted == b->deleted && sodium_memcmp(a->preshared_key, b->preshared_key, WG_KEY_LEN) == 0 &&
               a->keepalive == b->keepalive &&
               allowedips_equal(a->allowedips, a->n_allowedips, b->allowedips, b->n_allowedips);
}

/* PARTIAL: OBS holds only the peers to change, a removed one flagged
 * WG_PEER_REMOVE_ME; the others stay as they are. */
static int poll_peers(struct pending *p, const struct wg_device *obs, struct hlc_ts ts, bool may_write_endpoints,
                      bool partial) {
        const struct replica_iface *f = p->iface;
        size_t n_old = f ? f->n_peers : 0, i = 0, j = 0;
        int r = 0;

        while (i < n_old || j < obs->n_peers) {
                const struct replica_peer *old = NULL;
                const struct wg_peer *o = NULL;
                struct replica_peer now = {};
                bool main_changed, ep_changed;
                int c;

                if (j >= obs->n_peers)
                        c = -1;
                else if (i >= n_old)
                        c = 1;
                else
                        c = memcmp(f->peers[i].public_key, obs->peers[j].public_key, WG_KEY_LEN);
                if (c <= 0)
                        old = &f->peers[i++];
                if (c >= 0) {
                        o = &obs->peers[j++];
                        /* A backend never reports a key twice; if one did,
                         * the first entry stands for it. */
                        while (j < obs->n_peers && memcmp(obs->peers[j].public_key, o->public_key, WG_KEY_LEN) == 0)
                                j++;
                }
                if (o && (o->flags & WG_PEER_REMOVE_ME)) {
                        if (!old)
                                continue; /* never held: nothing to remove */
                        o = NULL;
                } else if (!o && partial) {
                        pending_keep(p, old);
                        continue;
                }

                if (!o) {
                        if (old->deleted) {
                                pending_keep(p, old);
                                continue;
                        }
                        /* Gone from the device: a tombstone that keeps the
                         * endpoint register as it was. */
                        now = *old;
                        now.version = ts;
                        now.deleted = true;
                        memset(now.preshared_key, 0, WG_KEY_LEN);
                        now.keepalive = 0;
                        now.allowedips = NULL;
                        now.n_allowedips = 0;
                        r = peer_copy(&now, pending_fresh(p));
                        sodium_memzero(&now, sizeof(now));
                        if (r < 0)
                                goto fail;
                        continue;
                }

                r = peer_from_observed(o, ts, &now);
                if (r < 0)
                        return r;
                main_changed = !old || !peer_main_equal(old, &now);
                ep_changed = may_write_endpoints && observed_endpoint(o) &&
                             (!old || hlc_ts_is_zero(old->endpoint_version) || !endpoint_equal(&old->endpoint, &o->endpoint));
                if (!main_changed && !ep_changed) {
                        peer_done(&now);
                        pending_keep(p, old);
                        continue;
                }
                if (!main_changed) {
                        /* Only the endpoint moved: the main register keeps
                         * its version, so it does not override a newer
                         * remote edit that crossed this one. */
                        peer_done(&now);
                        r = peer_copy(old, &now);
                        if (r < 0)
                                return r;
                } else if (old) {
                        now.endpoint_version = old->endpoint_version;
                        now.endpoint = old->endpoint;
                }
                if (ep_changed) {
                        now.endpoint_version = ts;
                        now.endpoint = endpoint_normalize(&o->endpoint);
                }
                p->peers[p->n_peers] = now;
                sodium_memzero(&now, sizeof(now));
                (void) pending_fresh(p);
        }
        return 0;
fail:
        p->fresh[--p->n_peers] = false;
        return r;
}

static int apply_local(struct replica *r, const char *ifname, const struct wg_device *observed, bool partial,
                       uint64_t wall_ms, bool may_write_endpoints, struct replica_changes *ret) {
        _cleanup_(wg_device_freep) struct wg_device *obs = NULL;
        struct replica_changes made = {};
        struct replica_device dev;
        struct pending p = {};
        struct replica_iface *f;
        struct hlc clock;
        struct hlc_ts ts = {};
        bool device_changed = false, saturated;
        int k;

        if (!r || !ifname_valid_str(ifname) || !observed || (observed->n_peers > 0 && !observed->peers))
                return -EINVAL;
        if (r->bootstrapping)
                return -EAGAIN;
        f = iface_find(r, ifname);
        /* A poll would take the device from before the merge for local
         * edits; an edit hamgr made itself is known exactly. */
        if (f && f->needs_apply && !partial)
                return -EAGAIN;
        k = observed_sorted(observed, &obs);
        if (k < 0)
                return k;

        /* One version for everything this poll found; issued for real only
         * when something changed. A saturated clock fails only then. */
        clock = r->clock;
        saturated = hlc_now(&clock, wall_ms, &ts) < 0;

        k = pending_init(&p, f, ifname, (f ? f->n_peers : 0) + obs->n_peers);
        if (k < 0)
                return k;
        if (!partial && observed_device(observed, &p.device, &dev)) {
                if (hlc_ts_is_zero(p.device.version) || !device_equal(&dev, &p.device)) {
                        p.device = dev;
                        p.device.version = ts;
                        p.changed = device_changed = true;
                }
                sodium_memzero(&dev, sizeof(dev));
        }
        k = poll_peers(&p, obs, ts, may_write_endpoints, partial);
        if (k < 0)
                goto fail;
        if (!p.changed) {
                pending_done(&p);
                return 0;
        }
        if (saturated) {
                k = -EOVERFLOW;
                goto fail;
        }
        k = pending_collect(&p, device_changed, &made);
        if (k < 0)
                goto fail;
        k = ifaces_reserve(r, f ? 0 : 1, &p, 1);
        if (k < 0)
                goto fail;
        k = changes_append(ret, &made);
        if (k < 0)
                goto fail;
        pendings_commit(r, &p, 1, false);
        r->clock = clock;
        return 0;
fail:
        replica_changes_done(&made);
        pending_done(&p);
        return k;
}

int replica_apply_local_device(struct replica *r, const char *ifname, const struct wg_device *observed,
                               uint64_t wall_ms, bool may_write_endpoints, struct replica_changes *ret) {
        return apply_local(r, ifname, observed, false, wall_ms, may_write_endpoints, ret);
}

int replica_apply_local_peers(struct replica *r, const char *ifname, const struct wg_device *peers, uint64_t wall_ms,
                              bool may_write_endpoints, struct replica_changes *ret) {
        return apply_local(r, ifname, peers, true, wall_ms, may_write_endpoints, ret);
}

/* ---- reading the replica ---- */

/* The live peers of IFNAME as a device; with KEY, only that peer (none
 * when it is not live). */
static int device_for(struct replica *r, const char *ifname, bool include_endpoints, const uint8_t *key,
                      struct wg_device **ret) {
        _cleanup_(wg_device_freep) struct wg_device *d = NULL;
        const struct replica_iface *f;

        if (!r || !ifname || !ret)
                return -EINVAL;
        f = iface_find(r, ifname);
        if (!f)
                return -ENOENT;
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        memcpy(d->name, f->name, IFNAMSIZ);
        if (!hlc_ts_is_zero(f->device.version)) {
                d->flags |= WG_DEVICE_HAS_PRIVATE_KEY | WG_DEVICE_HAS_LISTEN_PORT | WG_DEVICE_HAS_FWMARK;
                memcpy(d->private_key, f->device.private_key, WG_KEY_LEN);
                d->listen_port = f->device.listen_port;
                d->fwmark = f->device.fwmark;
                if (!wg_key_is_zero(d->private_key) && wg_key_public_from_private(d->public_key, d->private_key) == 0)
                        d->flags |= WG_DEVICE_HAS_PUBLIC_KEY;
        }
        for (size_t i = 0; i < f->n_peers; i++) {
                const struct replica_peer *src = &f->peers[i];
                struct wg_peer *p;

                if (src->deleted || (key && memcmp(src->public_key, key, WG_KEY_LEN) != 0))
                        continue;
                p = wg_device_add_peer(d);
                if (!p)
                        return -ENOMEM;
                memcpy(p->public_key, src->public_key, WG_KEY_LEN);
                memcpy(p->preshared_key, src->preshared_key, WG_KEY_LEN);
                p->persistent_keepalive_interval = src->keepalive;
                p->flags = WG_PEER_HAS_PUBLIC_KEY | WG_PEER_HAS_PRESHARED_KEY |
                           WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL | WG_PEER_REPLACE_ALLOWEDIPS;
                if (include_endpoints && !hlc_ts_is_zero(src->endpoint_version)) {
                        p->endpoint = src->endpoint;
                        p->flags |= WG_PEER_HAS_ENDPOINT;
                }
                for (size_t a = 0; a < src->n_allowedips; a++)
                        if (wg_peer_add_allowedip(p, &src->allowedips[a]) < 0)
                                return -ENOMEM;
        }
        *ret = TAKE_PTR(d);
        return 0;
}

int replica_device_for(struct replica *r, const char *ifname, bool include_endpoints, struct wg_device **ret) {
        return device_for(r, ifname, include_endpoints, NULL, ret);
}

int replica_peer_for(struct replica *r, const char *ifname, const uint8_t public_key[static WG_KEY_LEN],
                     bool include_endpoints, struct wg_device **ret) {
        if (!public_key)
                return -EINVAL;
        return device_for(r, ifname, include_endpoints, public_key, ret);
}

static int peer_key_cmp(const void *key, const void *elem) {
        return memcmp(key, ((const struct replica_peer *) elem)->public_key, WG_KEY_LEN);
}

struct hlc_ts replica_endpoint_version(const struct replica *r, const char *ifname,
                                       const uint8_t public_key[static WG_KEY_LEN]) {
        const struct replica_iface *f;
        const struct replica_peer *p;

        if (!r || !ifname || !public_key)
                return (struct hlc_ts) {};
        f = iface_find(r, ifname);
        if (!f || f->n_peers == 0)
                return (struct hlc_ts) {};
        p = bsearch(public_key, f->peers, f->n_peers, sizeof(*f->peers), peer_key_cmp);
        return p && !p->deleted ? p->endpoint_version : (struct hlc_ts) {};
}

bool replica_peer_live(const struct replica *r, const char *ifname, const uint8_t public_key[static WG_KEY_LEN]) {
        const struct replica_iface *f;
        const struct replica_peer *p;

        if (!r || !ifname || !public_key)
                return false;
        f = iface_find(r, ifname);
        if (!f || f->n_peers == 0)
                return false;
        p = bsearch(public_key, f->peers, f->n_peers, sizeof(*f->peers), peer_key_cmp);
        return p && !p->deleted;
}

int replica_device_record(const struct replica *r, const char *ifname, struct replica_device *ret) {
        const struct replica_iface *f;

        if (!r || !ifname || !ret)
                return -EINVAL;
        f = iface_find(r, ifname);
        if (!f || hlc_ts_is_zero(f->device.version))
                return -ENOENT;
        *ret = f->device;
        return 0;
}

int replica_device_applied(struct replica *r, const char *ifname) {
        struct replica_iface *f;

        if (!r || !ifname)
                return -EINVAL;
        f = iface_find(r, ifname);
        if (!f)
                return -ENOENT;
        f->needs_apply = false;
        return 0;
}

uint64_t replica_device_generation(const struct replica *r, const char *ifname) {
        const struct replica_iface *f;

        if (!r || !ifname)
                return 0;
        f = iface_find(r, ifname);
        return f ? f->generation : 0;
}

bool replica_device_needs_apply(const struct replica *r, const char *ifname) {
        const struct replica_iface *f;

        if (!r || !ifname)
                return false;
        f = iface_find(r, ifname);
        return f && f->needs_apply;
}

bool replica_peer_removed(const struct replica *r, const char *ifname, const uint8_t public_key[static WG_KEY_LEN]) {
        const struct replica_iface *f;
        const struct replica_peer *p;

        if (!r || !ifname || !public_key)
                return false;
        f = iface_find(r, ifname);
        if (!f || f->n_peers == 0)
                return false;
        p = bsearch(public_key, f->peers, f->n_peers, sizeof(*f->peers), peer_key_cmp);
        return p && p->deleted;
}

void replica_bootstrap_begin(struct replica *r) {
        if (r)
                r->bootstrapping = true;
}

void replica_bootstrap_end(struct replica *r) {
        if (r)
                r->bootstrapping = false;
}

bool replica_bootstrapping(const struct replica *r) {
        return r && r->bootstrapping;
}

struct since_ref {
        const struct replica_iface *iface;
        const struct replica_peer *peer;      /* NULL: the device record */
        struct hlc_ts key;
};

static int since_ref_cmp(const void *x, const void *y) {
        const struct since_ref *a = x, *b = y;

        return hlc_compare(a->key, b->key);
}

int replica_changes_since(const struct replica *r, struct hlc_ts since, struct replica_changes *ret) {
        _cleanup_(freep) struct since_ref *refs = NULL;
        struct replica_changes out = {};
        size_t n = 0, total = replica_n_records(r);
        int k;

        if (!r || !ret)
                return -EINVAL;
        if (total == 0)
                return 0;
        refs = malloc(total * sizeof(*refs));
        if (!refs)
                return -ENOMEM;
        for (size_t i = 0; i < r->n_ifaces; i++) {
                const struct replica_iface *f = &r->ifaces[i];

                if (!hlc_ts_is_zero(f->device.version) && hlc_compare(f->device.version, since) > 0)
                        refs[n++] = (struct since_ref) { f, NULL, f->device.version };
                for (size_t j = 0; j < f->n_peers; j++) {
                        struct hlc_ts key = ts_max(f->peers[j].version, f->peers[j].endpoint_version);

                        if (hlc_compare(key, since) > 0)
                                refs[n++] = (struct since_ref) { f, &f->peers[j], key };
                }
        }
        if (n == 0)
                return 0;
        qsort_safe(refs, n, sizeof(*refs), since_ref_cmp);
        k = changes_reserve(&out, n);
        if (k < 0)
                return k;
        for (size_t i = 0; i < n; i++) {
                if (!refs[i].peer) {
                        rec_from_device(refs[i].iface->name, &refs[i].iface->device, &out.recs[out.n++]);
                        continue;
                }
                k = rec_from_peer(refs[i].iface->name, refs[i].peer, &out.recs[out.n]);
                if (k < 0)
                        goto fail;
                out.n++;
        }
        k = changes_append(ret, &out);
        if (k < 0)
                goto fail;
        return 0;
fail:
        replica_changes_done(&out);
        return k;
}

struct hlc_ts replica_max_version(const struct replica *r, uint64_t node) {
        struct hlc_ts best = {};

        if (!r)
                return best;
        for (size_t i = 0; i < r->n_ifaces; i++) {
                const struct replica_iface *f = &r->ifaces[i];

                if (f->device.version.node == node)
                        best = ts_max(best, f->device.version);
                for (size_t j = 0; j < f->n_peers; j++) {
                        if (f->peers[j].version.node == node)
                                best = ts_max(best, f->peers[j].version);
                        if (f->peers[j].endpoint_version.node == node)
                                best = ts_max(best, f->peers[j].endpoint_version);
                }
        }
        return node == 0 ? (struct hlc_ts) {} : best;
}

size_t replica_n_records(const struct replica *r) {
        size_t n = 0;

        if (!r)
                return 0;
        for (size_t i = 0; i < r->n_ifaces; i++)
                n += r->ifaces[i].n_peers + !hlc_ts_is_zero(r->ifaces[i].device.version);
        return n;
}

static void replica_write(const struct replica *r, struct writer *w) {
        put_header(w, replica_n_records(r));
        for (size_t i = 0; i < r->n_ifaces; i++) {
                const struct replica_iface *f = &r->ifaces[i];

                if (!hlc_ts_is_zero(f->device.version))
                        put_device(w, f->name, &f->device);
                for (size_t j = 0; j < f->n_peers; j++)
                        put_peer(w, f->name, &f->peers[j]);
        }
}

int replica_encode(const struct replica *r, uint8_t **ret, size_t *ret_len) {
        struct writer w = {};

        if (!r || !ret || !ret_len)
                return -EINVAL;
        if (replica_n_records(r) > REPLICA_RECORDS_MAX)
                return -E2BIG;
        replica_write(r, &w);
        w.buf = malloc(w.pos);
        if (!w.buf)
                return -ENOMEM;
        w.pos = 0;
        replica_write(r, &w);
        *ret = w.buf;
        *ret_len = w.pos;
        return 0;
}

int replica_decode(const uint8_t *buf, size_t len, uint64_t node, struct replica **ret, const char **ret_reason) {
        _cleanup_(replica_freep) struct replica *r = NULL;
        struct replica_changes c = {};
        int k;

        if (!ret || node == 0)
                return -EINVAL;
        k = replica_changes_decode(buf, len, &c, ret_reason);
        if (k < 0)
                return k;
        k = replica_new(node, &r);
        if (k >= 0)
                k = replica_merge(r, &c, NULL);
        replica_changes_done(&c);
        if (k < 0)
                return k;
        *ret = TAKE_PTR(r);
        return 0;
}

/* ---- streaming catch-up ---- */

/* The stream key of a peer record: what replica_changes_since() orders by. */
static struct hlc_ts peer_key(const struct replica_peer *p) {
        return ts_max(p->version, p->endpoint_version);
}

/* Whether every version in the record was written by NODE (nonzero). */
static bool peer_written_by(const struct replica_peer *p, uint64_t node) {
        return p->version.node == node && (hlc_ts_is_zero(p->endpoint_version) || p->endpoint_version.node == node);
}

/* Stream order: key, then interface name, then the device record before
 * the peers, then public key. Keys alone may tie (one poll versions all its
 * changes alike), positions never do. */
static int ref_pos_cmp(const struct since_ref *a, const struct since_ref *b) {
        int r = hlc_compare(a->key, b->key);

        if (r != 0)
                return r;
        r = strncmp(a->iface->name, b->iface->name, IFNAMSIZ);
        if (r != 0)
                return r;
        if (!a->peer || !b->peer)
                return (a->peer != NULL) - (b->peer != NULL);
        return memcmp(a->peer->public_key, b->peer->public_key, WG_KEY_LEN);
}

static int ref_pos_qsort_cmp(const void *x, const void *y) {
        return ref_pos_cmp(x, y);
}

/* Whether REF comes after the cursor C. */
static bool ref_after(const struct since_ref *ref, const struct replica_cursor *c) {
        int r = hlc_compare(ref->key, c->key);

        if (r != 0)
                return r > 0;
        r = strncmp(ref->iface->name, c->ifname, IFNAMSIZ);
        if (r != 0)
                return r > 0;
        if (!ref->peer)
                return false; /* a device record is never after its own interface's position */
        if (!c->peer)
                return true;
        return memcmp(ref->peer->public_key, c->public_key, WG_KEY_LEN) > 0;
}

static void cursor_from_ref(const struct since_ref *ref, struct replica_cursor *ret) {
        *ret = (struct replica_cursor) { .key = ref->key, .peer = ref->peer != NULL };
        ifname_copy(ret->ifname, ref->iface->name);
        if (ref->peer)
                memcpy(ret->public_key, ref->peer->public_key, WG_KEY_LEN);
}

struct replica_cursor replica_cursor_at(struct hlc_ts watermark) {
        return (struct replica_cursor) { .key = watermark };
}

/* A max-heap of at most CAP refs by position: after a pass over all records
 * it holds the CAP first positions after the cursor, without sorting all. */
struct ref_heap {
        struct since_ref *v;
        size_t n, cap;
};

static void ref_swap(struct since_ref *a, struct since_ref *b) {
        struct since_ref t = *a;

        *a = *b;
        *b = t;
}

static void heap_sift_down(struct ref_heap *h, size_t i) {
        for (;;) {
                size_t l = 2 * i + 1, m = i;

                if (l < h->n && ref_pos_cmp(&h->v[l], &h->v[m]) > 0)
                        m = l;
                if (l + 1 < h->n && ref_pos_cmp(&h->v[l + 1], &h->v[m]) > 0)
                        m = l + 1;
                if (m == i)
                        return;
                ref_swap(&h->v[i], &h->v[m]);
                i = m;
        }
}

static void heap_offer(struct ref_heap *h, struct since_ref ref) {
        if (h->n < h->cap) {
                size_t i = h->n++;

                h->v[i] = ref;
                while (i > 0 && ref_pos_cmp(&h->v[(i - 1) / 2], &h->v[i]) < 0) {
                        ref_swap(&h->v[i], &h->v[(i - 1) / 2]);
                        i = (i - 1) / 2;
                }
                return;
        }
        if (ref_pos_cmp(&ref, &h->v[0]) >= 0)
                return;
        h->v[0] = ref;
        heap_sift_down(h, 0);
}

size_t replica_rec_encoded_size(const struct replica_rec *rec) {
        struct writer w = {};

        if (!rec)
                return 0;
        if (rec->type == REPLICA_REC_DEVICE)
                put_device(&w, rec->ifname, &rec->device);
        else
                put_peer(&w, rec->ifname, &rec->peer);
        return w.pos;
}

/* Call FN for every record after AFTER that SKIP_NODE does not exclude. */
static void refs_after(const struct replica *r, const struct replica_cursor *after, uint64_t skip_node,
                       void (*fn)(void *userdata, struct since_ref ref), void *userdata) {
        for (size_t i = 0; i < r->n_ifaces; i++) {
                const struct replica_iface *f = &r->ifaces[i];

                if (!hlc_ts_is_zero(f->device.version) && (skip_node == 0 || f->device.version.node != skip_node)) {
                        struct since_ref ref = { f, NULL, f->device.version };

                        if (ref_after(&ref, after))
                                fn(userdata, ref);
                }
                for (size_t j = 0; j < f->n_peers; j++) {
                        const struct replica_peer *p = &f->peers[j];
                        struct since_ref ref = { f, p, peer_key(p) };

                        if ((skip_node == 0 || !peer_written_by(p, skip_node)) && ref_after(&ref, after))
                                fn(userdata, ref);
                }
        }
}

static void offer_cb(void *userdata, struct since_ref ref) {
        heap_offer(userdata, ref);
}

struct tie_check {
        struct hlc_ts key;
        bool found;
};

static void tie_cb(void *userdata, struct since_ref ref) {
        struct tie_check *t = userdata;

        if (hlc_compare(ref.key, t->key) == 0)
                t->found = true;
}

int replica_changes_batch(const struct replica *r, const struct replica_cursor *after, uint64_t skip_node,
                          size_t max_records, size_t max_bytes, struct replica_changes *ret,
                          struct replica_cursor *ret_last, bool *ret_key_complete) {
        _cleanup_(freep) struct since_ref *refs = NULL;
        struct replica_changes out = {};
        struct ref_heap h = {};
        struct tie_check tie = {};
        size_t bytes = 5; /* format byte and count */
        struct replica_cursor last;
        int k;

        if (!r || !after || !ret || max_records == 0)
                return -EINVAL;
        h.cap = MIN(max_records, replica_n_records(r));
        if (h.cap == 0)
                return 0;
        refs = h.v = malloc(h.cap * sizeof(*h.v));
        if (!refs)
                return -ENOMEM;
        refs_after(r, after, skip_node, offer_cb, &h);
        if (h.n == 0)
                return 0;
        qsort_safe(h.v, h.n, sizeof(*h.v), ref_pos_qsort_cmp);
        k = changes_reserve(&out, h.n);
        if (k < 0)
                return k;
        for (size_t i = 0; i < h.n; i++) {
                struct replica_rec *rec = &out.recs[out.n];
                size_t size;

                if (!h.v[i].peer)
                        rec_from_device(h.v[i].iface->name, &h.v[i].iface->device, rec);
                else {
                        k = rec_from_peer(h.v[i].iface->name, h.v[i].peer, rec);
                        if (k < 0)
                                goto fail;
                }
                size = replica_rec_encoded_size(rec);
                /* The first record always goes: any one record fits a frame. */
                if (out.n > 0 && bytes + size > max_bytes) {
                        peer_done(&rec->peer);
                        sodium_memzero(rec, sizeof(*rec));
                        break;
                }
                bytes += size;
                out.n++;
        }
        cursor_from_ref(&h.v[out.n - 1], &last);
        /* Whether anything of the last key is left for a later batch. */
        tie.key = last.key;
        refs_after(r, &last, skip_node, tie_cb, &tie);
        k = changes_append(ret, &out);
        if (k < 0)
                goto fail;
        if (ret_last)
                *ret_last = last;
        if (ret_key_complete)
                *ret_key_complete = !tie.found;
        return 0;
fail:
        replica_changes_done(&out);
        return k;
}

static struct replica_cursor cursor_of_rec(const struct replica_rec *rec) {
        struct replica_cursor c = { .peer = rec->type == REPLICA_REC_PEER };

        c.key = c.peer ? peer_key(&rec->peer) : rec->device.version;
        ifname_copy(c.ifname, rec->ifname);
        if (c.peer)
                memcpy(c.public_key, rec->peer.public_key, WG_KEY_LEN);
        return c;
}

int replica_cursor_compare(const struct replica_cursor *a, const struct replica_cursor *b) {
        int r = hlc_compare(a->key, b->key);

        if (r != 0)
                return r;
        r = strncmp(a->ifname, b->ifname, IFNAMSIZ);
        if (r != 0)
                return r;
        if (a->peer != b->peer)
                return a->peer ? 1 : -1;
        return a->peer ? memcmp(a->public_key, b->public_key, WG_KEY_LEN) : 0;
}

struct replica_cursor replica_changes_last_cursor(const struct replica_changes *c) {
        struct replica_cursor best = {};

        for (size_t i = 0; c && i < c->n; i++) {
                struct replica_cursor k = cursor_of_rec(&c->recs[i]);

                if (replica_cursor_compare(&k, &best) > 0)
                        best = k;
        }
        return best;
}

struct hlc_ts replica_changes_last_key(const struct replica_changes *c) {
        struct hlc_ts best = {};

        if (!c)
                return best;
        for (size_t i = 0; i < c->n; i++) {
                const struct replica_rec *rec = &c->recs[i];

                best = ts_max(best, rec->type == REPLICA_REC_PEER ? peer_key(&rec->peer) : rec->device.version);
        }
        return best;
}

/* ---- tombstone collection ---- */

static bool tombstone_collectable(const struct replica *r, const struct replica_peer *p, uint64_t before_wall_ms,
                                  const struct replica_ack *acks, size_t n_acks) {
        struct hlc_ts key = peer_key(p);
        uint64_t origin = p->version.node;

        if (!p->deleted || key.wall_ms >= before_wall_ms)
                return false;
        /* Records are not relayed: another node's acknowledgement of our
         * stream proves it holds this tombstone only if we wrote it, or if
         * that node wrote it itself. A third node's tombstone may not have
         * reached a fourth through us. */
        if (origin != r->clock.node && !(n_acks == 1 && acks[0].node == origin))
                return false;
        for (size_t i = 0; i < n_acks; i++)
                if (acks[i].node != origin && hlc_compare(acks[i].acked, key) < 0)
                        return false;
        return true;
}

int replica_collect_tombstones(struct replica *r, uint64_t before_wall_ms, const struct replica_ack *acks,
                               size_t n_acks, size_t *ret_collected) {
        size_t collected = 0;

        if (!r || (n_acks > 0 && !acks))
                return -EINVAL;
        for (size_t i = 0; i < r->n_ifaces; i++) {
                struct replica_iface *f = &r->ifaces[i];
                size_t kept = 0;

                for (size_t j = 0; j < f->n_peers; j++) {
                        if (tombstone_collectable(r, &f->peers[j], before_wall_ms, acks, n_acks)) {
                                peer_done(&f->peers[j]);
                                collected++;
                                continue;
                        }
                        if (kept != j) {
                                f->peers[kept] = f->peers[j];
                                sodium_memzero(&f->peers[j], sizeof(f->peers[j]));
                        }
                        kept++;
                }
                if (kept != f->n_peers)
                        f->generation++;
                f->n_peers = kept;
        }
        if (ret_collected)
                *ret_collected = collected;
        return 0;
}
