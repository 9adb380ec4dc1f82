/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The replicated WireGuard state of a gateway pair: a pure core (no
 * sockets, no clocks; wall time is a parameter) that the sync channel and
 * the daemon drive.
 *
 * What is replicated, per WireGuard interface (by name):
 *  - a device record: private key, listen port, fwmark, one version;
 *  - per peer (by public key) a record: preshared key, allowed IPs,
 *    persistent keepalive, a tombstone flag, one version; and next to it an
 *    endpoint register with its own version, written only by the node that
 *    serves the tunnels (the caller says whether this node may).
 * Handshake times, transfer counters and (on a non-master) endpoints stay
 * local and are never compared.
 *
 * Versions are hybrid logical clock timestamps (Kulkarni et al., "Logical
 * Physical Clocks", 2014): wall milliseconds, a logical counter, and the
 * writing node's id, so two versions are never equal and every node orders
 * them the same way. Each record (and each endpoint register) is a
 * last-writer-wins register: the higher version wins, whatever the order
 * in which changes arrive, so merging is commutative, associative and
 * idempotent, and two nodes that exchanged their changes hold the same
 * state. An edit of a record after a node has seen a version of it always
 * gets a higher version, because the replica's clock moves past every
 * version it merges.
 *
 * A removed peer becomes a tombstone (its version, no keys, no allowed IPs)
 * and stays while any node may still hold the live record: a stale node
 * that replays the old record loses against it, so a revoked peer never
 * comes back. A later re-add (a newer version, from any node) wins over the
 * tombstone. Each costs about 110 bytes encoded and about 200 in memory.
 * replica_collect_tombstones() drops the ones every configured node has
 * acknowledged and that are older than a retention period; the channel
 * supplies the acknowledgements (docs/sync-protocol.md, "Tombstones").
 *
 * The echo rule: hamgr applies merged state to the device with
 * replica_device_for() and wg_device_diff(); the next poll then shows
 * exactly the replicated values, so replica_apply_local_device() finds no
 * difference and issues no version. To keep a poll from mistaking changes
 * not yet applied for local edits (and reverting them), an interface whose
 * state changed by a merge or a load refuses local polls (-EAGAIN) until
 * the caller confirms with replica_device_applied().
 *
 * Revocation is final, also across restarts: at start-up hamgr removes
 * from a device the peers that the replica holds as tombstones
 * (replica_peer_removed()) instead of letting the first poll version them
 * as local additions. A node that starts without its state (missing,
 * unreadable, or encrypted with a sync key since rotated) cannot tell a
 * revoked peer still on its device from a new one, so it bootstraps
 * (replica_bootstrap_begin()): local polls are refused until it has merged
 * the full state of a node that is not bootstrapping itself, or until the
 * caller gives up waiting (replica_bootstrap_end()); see
 * docs/sync-protocol.md, "Revocation and bootstrap".
 *
 * Catch-up after a reconnect: each side streams bounded batches from
 * replica_changes_batch(), starting just after the other's watermark: the
 * position (replica_changes_last_cursor()) of the last record the receiver
 * merged from this sender's stream. Records go in stream order and a batch
 * is merged whole or not at all, so everything up to the watermark is
 * already held. A zero watermark sends everything (a first sync, or a node
 * that restarted) and is always correct.
 * The watermark is a position in one sender's stream, taken only from
 * batches that sender sent directly; it is no per-writer watermark, so a
 * record relayed by a third node never moves it past records the receiver
 * lacks.
 *
 * The encoding (for the wire and, encrypted, the state file; big endian):
 *   u8 format (1), u32 count, then count records, each
 *   u8 type (1 device, 2 peer), u8 ifname length (1..15), ifname;
 *   device: version, private key[32], u16 listen port, u32 fwmark;
 *   peer: public key[32], version, u8 flags (bit 0: tombstone),
 *         preshared key[32], u16 keepalive, endpoint version,
 *         u8 endpoint family (0 none, 4, 6), address, u16 port,
 *         (IPv6) u32 scope id, u16 allowed IP count (at most 10000),
 *         per allowed IP u8 family (4, 6), address, u8 cidr;
 *   a version is u64 wall ms (< 2^48), u16 logical, u64 node.
 * Only the canonical form is accepted (tombstones empty, allowed IPs
 * masked, sorted and unique, endpoint present exactly when its version is
 * set, reserved bits zero), so a decoded message re-encodes to the same
 * bytes.
 *
 * Keys are secrets: records and encodings are wiped when freed, and
 * nothing here logs.
 */

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wg/wg.h"

/* ---- hybrid logical clock ---- */

/* Wall times are clamped below 2^48 ms (year 10889), so the clock never
 * wraps; the decoder refuses larger ones. */
#define HLC_WALL_MAX ((UINT64_C(1) << 48) - 1)

struct hlc_ts {
        uint64_t wall_ms;
        uint16_t logical;
        uint64_t node;                        /* writer's id; 0 only in the zero timestamp */
};

struct hlc {
        uint64_t node;
        uint64_t wall_ms;                     /* of the last timestamp issued or seen */
        uint16_t logical;
};

/* A clock for NODE (nonzero) that has issued nothing yet. */
void hlc_init(struct hlc *c, uint64_t node);

/* A timestamp for a local event at wall time WALL_MS into *RET: greater
 * than every timestamp C issued or saw, also when the wall clock went
 * backwards. When the logical counter would overflow, the physical part
 * advances by one millisecond instead (at most one per 65536 stamps).
 * Returns 0, or -EOVERFLOW when C stands at the greatest timestamp
 * (HLC_WALL_MAX, UINT16_MAX): no stamp above it exists, and repeating one
 * would let two different writes share a version, so the event must be
 * refused. C and *RET are untouched on failure. */
int hlc_now(struct hlc *c, uint64_t wall_ms, struct hlc_ts *ret);

/* Receive REMOTE at wall time WALL_MS: C moves past it, and the timestamp
 * of the receive event (into *RET when not NULL) is greater than both
 * REMOTE and everything C issued before. REMOTE's physical part must not
 * exceed MAX_WALL_MS (the caller's bound on how far ahead another node may
 * be, see replica_future_limit()), so a peer cannot drag C into the
 * future. Returns 0, -ERANGE for a REMOTE beyond MAX_WALL_MS, or
 * -EOVERFLOW as hlc_now(); C and *RET untouched on failure. */
int hlc_update(struct hlc *c, struct hlc_ts remote, uint64_t wall_ms, uint64_t max_wall_ms, struct hlc_ts *ret);

/* Total order: wall, then logical, then node. Returns <0, 0, >0. */
int hlc_compare(struct hlc_ts a, struct hlc_ts b);

/* Whether T is the zero timestamp ("never written"). */
bool hlc_ts_is_zero(struct hlc_ts t);

/* ---- records ---- */

enum replica_rec_type {
        REPLICA_REC_DEVICE,
        REPLICA_REC_PEER,
        _REPLICA_REC_MAX,
};

/* "device" or "peer"; NULL when out of range. */
const char *replica_rec_type_to_string(enum replica_rec_type t);

struct replica_device {
        struct hlc_ts version;                /* zero: no device record */
        uint8_t private_key[WG_KEY_LEN];
        uint16_t listen_port;
        uint32_t fwmark;
};

struct replica_peer {
        uint8_t public_key[WG_KEY_LEN];
        struct hlc_ts version;                /* version.node is the origin node */
        bool deleted;                         /* tombstone: no keys, no allowed IPs */
        uint8_t preshared_key[WG_KEY_LEN];    /* all zero: none */
        uint16_t keepalive;                   /* seconds; 0 = off */
        struct wg_allowedip *allowedips;      /* masked, sorted, unique */
        size_t n_allowedips;
        struct hlc_ts endpoint_version;       /* zero: no endpoint known */
        union wg_endpoint endpoint;           /* address, port, IPv6 scope only */
};

/* One record of one interface, as it travels. */
struct replica_rec {
        enum replica_rec_type type;
        char ifname[IFNAMSIZ];
        struct replica_device device;         /* type DEVICE */
        struct replica_peer peer;             /* type PEER */
};

/* A list of records: local changes to send, remote changes to merge, or
 * what a merge changed. Zero-initialise; free with replica_changes_done(). */
struct replica_changes {
        struct replica_rec *recs;
        size_t n;
};

/* Free and wipe the records and reset C to empty; accepts NULL. */
void replica_changes_done(struct replica_changes *c);

/* Limits the decoder enforces (and the encoder refuses to exceed). */
#define REPLICA_RECORDS_MAX 1000000
#define REPLICA_ALLOWEDIPS_MAX 10000
#define REPLICA_FORMAT_VERSION 1

/* Encode C (in its order) as above. Returns 0 and a new buffer the caller
 * wipes and frees, -EINVAL for a record that would not decode (bad name,
 * zero version, non-canonical allowed IPs, too many), or -ENOMEM. */
int replica_changes_encode(const struct replica_changes *c, uint8_t **ret, size_t *ret_len);

/* Decode BUF. Returns 0 and the records in *ret (which the caller frees
 * with replica_changes_done()), -EBADMSG with a static reason in
 * *ret_reason (when not NULL) for anything malformed, truncated, over a
 * limit or not canonical, or -ENOMEM. Never reads past LEN; *ret is
 * untouched on failure. */
int replica_changes_decode(const uint8_t *buf, size_t len, struct replica_changes *ret, const char **ret_reason);

/* ---- the replica ---- */

struct replica;

/* A 64-bit node id from the node's sync public key (never 0). */
uint64_t replica_node_id(const uint8_t sync_public_key[static WG_KEY_LEN]);

/* An empty replica for node NODE (nonzero). Returns 0, -EINVAL or -ENOMEM. */
int replica_new(uint64_t node, struct replica **ret);
/* Wipes keys; accepts NULL. Returns NULL. */
struct replica *replica_free(struct replica *r);
static inline void replica_freep(struct replica **r) {
        replica_free(*r);
}

uint64_t replica_node(const struct replica *r);

/*
 * A poll of interface IFNAME: OBSERVED is what the device shows now.
 * Issues a new version (from the replica's clock at WALL_MS) for each real
 * difference from the replica: a peer added, a peer gone (tombstone), a
 * changed preshared key, keepalive or allowed-IP set, a changed private
 * key, listen port or fwmark; and, when MAY_WRITE_ENDPOINTS, a changed
 * endpoint. Allowed IPs compare as sets (order, duplicates and host bits
 * do not matter); a listen port of 0 (not bound) is no change; a device
 * that reports only its public key (boringtun) leaves the device record
 * alone unless that key matches the replicated private key. Appends the
 * new records to *ret when RET is not NULL.
 *
 * An endpoint replica_endpoint_refusal() refuses counts as no endpoint
 * seen: other nodes would refuse the record carrying it.
 *
 * Call only once the device was written from replica_device_for(): the
 * interface's first poll, with nothing replicated yet, takes the device
 * as it is. Returns 0; -EAGAIN while merged or loaded changes wait for
 * replica_device_applied() or while R bootstraps; -EINVAL (also for a peer with a zero key or
 * an allowed IP with a bad family or prefix); -E2BIG for a peer with more
 * than REPLICA_ALLOWEDIPS_MAX allowed IPs; -EOVERFLOW when the clock is
 * saturated (hlc_now()) and a change needs a version: the change is
 * refused, never stamped with a repeated version; -ENOMEM. On failure
 * nothing changed.
 */
int replica_apply_local_device(struct replica *r, const char *ifname, const struct wg_device *observed,
                               uint64_t wall_ms, bool may_write_endpoints, struct replica_changes *ret);

/*
 * replica_apply_local_device() for an edit of a few peers that hamgr made
 * itself (hamgr peer add / remove), in O(peers held) without a read of the
 * device: PEERS holds only the peers to change, each as the device now
 * shows it in full (replica_peer_for() with the edit applied), or flagged
 * WG_PEER_REMOVE_ME when it was removed. Peers not in PEERS, and the
 * device record, are left as they are. Same returns, but for one: merged
 * changes waiting for replica_device_applied() do not refuse it (the edit
 * is known exactly, not read from a device that predates them; its
 * version, newer than theirs, wins when the state is written).
 */
int replica_apply_local_peers(struct replica *r, const char *ifname, const struct wg_device *peers, uint64_t wall_ms,
                              bool may_write_endpoints, struct replica_changes *ret);

/*
 * Merge REMOTE (records in any order, duplicates allowed) into R: per
 * record and per endpoint register the higher version wins. R's clock
 * moves past every version seen, however far ahead: for records from
 * other nodes use replica_merge_from(), which bounds them. Appends the
 * records whose local state changed, as they now are, to *ret_applied
 * when not NULL, and marks their interfaces as waiting for
 * replica_device_applied().
 * All or nothing: returns 0, or -EINVAL (invalid record) or -ENOMEM with R
 * unchanged.
 */
int replica_merge(struct replica *r, const struct replica_changes *remote, struct replica_changes *ret_applied);

/*
 * What a receiver accepts from another node (replica_merge_from()).
 *
 * Time: no version may be further ahead of the receiver's wall clock than
 * the sender's clock is (its measured offset, counted only when ahead and
 * at most REPLICA_OFFSET_MAX_MS) plus REPLICA_FUTURE_TOLERANCE_MS (the
 * error of the offset measurement: one-way delay, drift between
 * heartbeats). Without this bound, one version at the end of time would
 * win over every later edit. An offset behind counts as zero: the sender's
 * stamps legitimately carry the receiver's own time after it merged the
 * receiver's records. With three nodes or more the caller passes the
 * largest offset of the nodes it knows, since stamps carry the clock of
 * the furthest-ahead node through any relay.
 *
 * Writers: the node id in each version must be the sender's, the
 * receiver's own (its records relayed back: how a node that lost its
 * state recovers them), one of RELAY (the other configured nodes, whose
 * records the sender may relay), or a writer whose records the receiver
 * already holds (a node removed from the configuration leaves records that
 * keep travelling). An id that is none of these is invented.
 *
 * Endpoints: a replicated endpoint must be one a WireGuard peer can be
 * reached at: not unspecified (0.0.0.0/8, ::), loopback (127.0.0.0/8,
 * ::1), multicast (224.0.0.0/4, ff00::/8) or broadcast (255.255.255.255),
 * also IPv4-mapped, and not port 0.
 */
#define REPLICA_FUTURE_TOLERANCE_MS 5000
#define REPLICA_OFFSET_MAX_MS (5 * 60 * 1000)

struct replica_source {
        uint64_t sender;                      /* node id of the authenticated sender */
        const uint64_t *relay;                /* node ids it may relay for */
        size_t n_relay;
        uint64_t now_ms;                      /* the receiver's wall clock */
        int64_t offset_ms;                    /* sender's clock minus ours; 0 when unknown */
};

/* The greatest physical time accepted at NOW_MS from a node whose clock is
 * OFFSET_MS ahead (negative: behind), as described above; saturates at
 * HLC_WALL_MAX. */
uint64_t replica_future_limit(uint64_t now_ms, int64_t offset_ms);

/* Whether E is an endpoint a replicated record may carry (see above). NULL
 * when it may, else why not (a static string). */
const char *replica_endpoint_refusal(const union wg_endpoint *e);

/*
 * replica_merge() for a batch from another node, refused whole (-EPERM,
 * with a static reason in *ret_reason when not NULL, R unchanged) when any
 * record breaks the rules of struct replica_source: a version beyond
 * replica_future_limit(), a writer the sender may not write for, an
 * endpoint replica_endpoint_refusal() refuses. Otherwise as replica_merge()
 * (-EINVAL, -ENOMEM, or 0), and R's clock stays within the limit. Use
 * replica_merge() only for input this node wrote itself (its state file).
 */
int replica_merge_from(struct replica *r, const struct replica_changes *remote, const struct replica_source *src,
                       struct replica_changes *ret_applied, const char **ret_reason);

/*
 * Take over the records of nodes that are no longer configured: every
 * device record, peer record and endpoint register whose writer is
 * neither R's node nor in KNOWN (the configured nodes) gets one new
 * version from R's clock at WALL_MS, its content unchanged. Other nodes
 * accept a writer only if it is configured or already held (see struct
 * replica_source), so without this a node added under a new key would
 * refuse every batch carrying a removed node's records. Every node must
 * therefore list all the others. Appends the new records to *ret when
 * not NULL; as after a merge, their interfaces wait for
 * replica_device_applied(). Returns 0 (also when there was nothing to
 * take over), -EOVERFLOW as hlc_now(), -EINVAL or -ENOMEM, with R
 * unchanged on failure.
 */
int replica_adopt_orphans(struct replica *r, const uint64_t *known, size_t n_known, uint64_t wall_ms,
                          struct replica_changes *ret);

/*
 * The device IFNAME should be: its device record (private key, listen
 * port, fwmark with their HAS_ flags, when there is one) and its live
 * peers sorted by key, each with preshared key and keepalive flagged (so
 * that none means cleared) and, when INCLUDE_ENDPOINTS, its endpoint.
 * Feed it to wg_device_diff() as the desired device. Returns 0 and a new
 * device, -ENOENT when nothing is replicated for IFNAME, or -ENOMEM.
 */
int replica_device_for(struct replica *r, const char *ifname, bool include_endpoints, struct wg_device **ret);

/* replica_device_for() with only the peer PUBLIC_KEY (no peer when it is
 * not live). Same returns. */
int replica_peer_for(struct replica *r, const char *ifname, const uint8_t public_key[static WG_KEY_LEN],
                     bool include_endpoints, struct wg_device **ret);

/* The version of the endpoint of IFNAME's peer PUBLIC_KEY: zero when no
 * endpoint is known (or no such live peer). */
struct hlc_ts replica_endpoint_version(const struct replica *r, const char *ifname,
                                       const uint8_t public_key[static WG_KEY_LEN]);

/* Whether R holds IFNAME's peer PUBLIC_KEY as a live record (not a
 * tombstone). */
bool replica_peer_live(const struct replica *r, const char *ifname, const uint8_t public_key[static WG_KEY_LEN]);

/* A copy of IFNAME's device record (holds the private key: wipe it).
 * Returns 0, -ENOENT when there is none, or -EINVAL. */
int replica_device_record(const struct replica *r, const char *ifname, struct replica_device *ret);

/* The caller wrote IFNAME's replicated state to the device: local polls of
 * it are accepted again. Returns 0, or -ENOENT. */
int replica_device_applied(struct replica *r, const char *ifname);

/* Whether IFNAME has merged or loaded changes not yet confirmed with
 * replica_device_applied(). */
bool replica_device_needs_apply(const struct replica *r, const char *ifname);

/* A number that changes whenever IFNAME's replicated state does (a merge,
 * a local change, a collected tombstone), and only then; 0 for an
 * interface R does not hold. A caller that wrote the state to the device
 * beside the event loop compares it with the one it wrote from before it
 * calls replica_device_applied(). */
uint64_t replica_device_generation(const struct replica *r, const char *ifname);

/* Whether R holds IFNAME's peer PUBLIC_KEY as a tombstone: it was removed,
 * and the device must not keep it. False for a live peer and for a key R
 * has never seen (a peer added while hamgr was not running). */
bool replica_peer_removed(const struct replica *r, const char *ifname, const uint8_t public_key[static WG_KEY_LEN]);

/*
 * Bootstrap: R's own state was lost, so what the devices show cannot be
 * versioned yet (a revoked peer on a device would get a version newer
 * than its tombstone and come back everywhere). From replica_bootstrap_begin()
 * until replica_bootstrap_end(), replica_apply_local_device() refuses with
 * -EAGAIN and issues nothing; merges work as usual. The caller ends it once
 * it merged a complete state from a node that is not bootstrapping, or
 * after its grace period. A new or decoded replica is not bootstrapping.
 */
void replica_bootstrap_begin(struct replica *r);
void replica_bootstrap_end(struct replica *r);
bool replica_bootstrapping(const struct replica *r);

/* Append to *ret every record whose version or endpoint version is greater
 * than SINCE, in increasing order of that version (the zero timestamp:
 * everything). Returns 0 or -ENOMEM (*ret as it was). */
int replica_changes_since(const struct replica *r, struct hlc_ts since, struct replica_changes *ret);

/* The size of REC in an encoding (without the 5-byte list header); 0 for
 * NULL. */
size_t replica_rec_encoded_size(const struct replica_rec *rec);

/*
 * A position in a catch-up stream. Records go in order of key (the greater
 * of version and endpoint version), then interface name, then the device
 * record before the peers, then public key: keys may tie (one poll
 * versions all its changes alike), positions do not.
 */
struct replica_cursor {
        struct hlc_ts key;
        char ifname[IFNAMSIZ];
        bool peer;                            /* false: at the device record */
        uint8_t public_key[WG_KEY_LEN];
};

/* The cursor before every record whose key is WATERMARK or greater: where
 * a stream resumes from a receiver's watermark (replica_changes_last_key()
 * of its last merged batch). Records tied at WATERMARK are sent again. */
struct replica_cursor replica_cursor_at(struct hlc_ts watermark);

/*
 * One batch of a catch-up stream: append to *ret the records after AFTER,
 * in stream order, at most MAX_RECORDS of them and, encoded with
 * replica_changes_encode(), at most MAX_BYTES long (the first record is
 * always included, whatever its size). Records every version of which was
 * written by SKIP_NODE (nonzero) are passed over: that node holds them or
 * newer. *ret_last (may be NULL) gets the position of the last record
 * appended, the next call's AFTER; *ret_key_complete (may be NULL) whether
 * no record with that last key is left after it, i.e. whether every record
 * up to and including that key has now been returned. Nothing appended
 * (both outputs untouched) means the stream is caught up. Costs two passes
 * over all records and a heap of MAX_RECORDS, not a sort of everything.
 * Returns 0, -EINVAL (MAX_RECORDS 0) or -ENOMEM (*ret as it was).
 */
int replica_changes_batch(const struct replica *r, const struct replica_cursor *after, uint64_t skip_node,
                          size_t max_records, size_t max_bytes, struct replica_changes *ret,
                          struct replica_cursor *ret_last, bool *ret_key_complete);

/* Stream order of two positions: <0, 0, >0. A cursor at a key with an
 * empty interface name is before every record of that key. */
int replica_cursor_compare(const struct replica_cursor *a, const struct replica_cursor *b);

/* The greatest position of a record in C (the zero cursor when C is
 * empty). After merging a batch whole, the receiver holds everything up to
 * it: where the stream resumes without sending anything twice. */
struct replica_cursor replica_changes_last_cursor(const struct replica_changes *c);

/* The greatest key (as replica_changes_batch() orders) in C; zero when C
 * is empty. After merging a batch whole, the receiver's new watermark. */
struct hlc_ts replica_changes_last_key(const struct replica_changes *c);

/* What one other configured node has acknowledged of our stream: every
 * record with a key up to ACKED. */
struct replica_ack {
        uint64_t node;
        struct hlc_ts acked;
};

/*
 * Drop the tombstones that no configured node can still need. A tombstone
 * goes when its key's wall time is before BEFORE_WALL_MS (now minus the
 * retention period) and every node in ACKS (all configured nodes, N_ACKS
 * of them) other than its writer acknowledged it, and when it was written
 * by R's own node or (in a pair) by the only other node: records are not
 * relayed, so another node's acknowledgement of our stream proves nothing
 * about a third node's tombstone. Cannot fail for valid arguments: returns 0 and the
 * number dropped in *ret_collected (may be NULL), or -EINVAL.
 */
int replica_collect_tombstones(struct replica *r, uint64_t before_wall_ms, const struct replica_ack *acks,
                               size_t n_acks, size_t *ret_collected);

/* The highest version (of a record or endpoint register) written by NODE
 * that R holds; zero when none. The receiver's watermark for catch-up. */
struct hlc_ts replica_max_version(const struct replica *r, uint64_t node);

/* Number of records (device records, peers and tombstones). */
size_t replica_n_records(const struct replica *r);

/* Every record in canonical order (interfaces by name, the device record
 * first, peers by key), encoded as replica_changes_encode() does. Two
 * replicas with the same state encode to the same bytes. Returns 0 and a
 * new buffer the caller wipes and frees, -E2BIG beyond
 * REPLICA_RECORDS_MAX records, or -ENOMEM. */
int replica_encode(const struct replica *r, uint8_t **ret, size_t *ret_len);

/* A replica for NODE from an encoding: decoded and merged into a fresh
 * replica, whose clock then stands past every version in it, and every
 * interface waits for replica_device_applied(). Returns 0, -EBADMSG with a
 * reason, -EINVAL or -ENOMEM; *ret untouched on failure. */
int replica_decode(const uint8_t *buf, size_t len, uint64_t node, struct replica **ret, const char **ret_reason);
