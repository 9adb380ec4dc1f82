/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Pure core of the gateway-to-gateway sync channel: key file text, the
 * Noise IK handshake, the encrypted frame stream and the small decisions
 * around it (which duplicate connection to keep, when to send a heartbeat,
 * when a peer is dead). No sockets, no clocks, no files: bytes and times
 * come in as arguments (reading the key file is hamgr/sync-file.h).
 * docs/sync-protocol.md is the wire format and the security argument.
 *
 * Every entry point that needs libsodium initialises it itself. Nothing here
 * logs; failures come back as -errno, and wire errors as -EBADMSG with a
 * static reason string (stable text, suitable as a counter label). Secrets
 * are wiped before memory is released.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wg/key.h"

#define SYNC_KEY_LEN WG_KEY_LEN
#define SYNC_PROTO_VERSION 1

/* Handshake messages have fixed sizes: version, type, then Noise IK. */
#define SYNC_MSG1_LEN (2 + 32 + (32 + 16) + (8 + 16))
#define SYNC_MSG2_LEN (2 + 32 + 16)
/* Each direction of the transport opens with a secretstream header. */
#define SYNC_STREAM_HEADER_LEN 24
/* Frame plaintext (version, type, payload) limit; the 4-byte length prefix
 * counts the ciphertext, which is SYNC_FRAME_OVERHEAD bytes longer. */
#define SYNC_FRAME_MAX (16u * 1024u * 1024u)
#define SYNC_FRAME_OVERHEAD 17
/* sync_session_feed() refuses to buffer more than this many unread bytes:
 * a whole maximal frame plus one generous read. */
#define SYNC_FEED_MAX (4 + SYNC_FRAME_MAX + SYNC_FRAME_OVERHEAD + 1024u * 1024u)
/* RESUME payload: a version (u64 wall ms, u16 logical, u64 node), a kind
 * (u8), an interface name (16 bytes, NUL-padded) and a public key (32). */
#define SYNC_RESUME_IFNAME_LEN 16
#define SYNC_RESUME_LEN (8 + 2 + 8 + 1 + SYNC_RESUME_IFNAME_LEN + 32)

enum sync_resume_kind {
        SYNC_RESUME_BEFORE_KEY = 0,   /* before every record of the version */
        SYNC_RESUME_AT_DEVICE = 1,    /* after the device record of the interface */
        SYNC_RESUME_AT_PEER = 2,      /* after that peer of the interface */
        _SYNC_RESUME_KIND_MAX,
};
/* Node names in HELLO: 1..63 bytes of printable ASCII without spaces. */
#define SYNC_NAME_MAX 63

/* ---- Key file ---------------------------------------------------------- */

/* Parse the text of a sync key file: exactly one line holding a base64
 * X25519 private key (44 characters), with or without a final newline.
 * Returns 0; -EBADMSG (with *ret_reason) for anything else, including an
 * all-zero key. ret_private is untouched on failure; ret_reason may be NULL. */
int sync_key_parse(const char *text, size_t len, uint8_t ret_private[static SYNC_KEY_LEN],
                   const char **ret_reason);

/* ---- Frames ------------------------------------------------------------ */

enum sync_frame_type {
        SYNC_FRAME_HELLO = 1,
        SYNC_FRAME_HEARTBEAT = 2,
        SYNC_FRAME_CHANGES = 3,
        SYNC_FRAME_ACK = 4,
        SYNC_FRAME_CLOSE = 5,
        SYNC_FRAME_CAUGHT_UP = 6,  /* no payload: ends a catch-up stream; see sync_frame_caught_up() */
        SYNC_FRAME_RESUME = 7,     /* watermark: where the receiver's catch-up stream starts */
        _SYNC_FRAME_TYPE_MAX,
};

enum sync_close_reason {
        SYNC_CLOSE_NORMAL = 0,
        SYNC_CLOSE_SHUTDOWN = 1,   /* the daemon is stopping */
        SYNC_CLOSE_DUPLICATE = 2,  /* a preferred connection to the same peer exists */
        SYNC_CLOSE_PROTOCOL = 3,   /* the peer sent something we refused */
        _SYNC_CLOSE_REASON_MAX,
};

struct sync_frame {
        enum sync_frame_type type;
        union {
                /* First frame each way: who we are and our clock, so the
                 * receiver can estimate the offset between the two nodes. */
                struct {
                        uint64_t clock_usec;
                        char name[SYNC_NAME_MAX + 1];
                } hello;
                struct {
                        uint64_t clock_usec;
                } heartbeat;
                /* Opaque replication records, numbered by the sender. After
                 * parsing, DATA points into the parsed buffer. */
                struct {
                        uint64_t seq;
                        const uint8_t *data;
                        size_t len;
                } changes;
                /* All CHANGES up to and including SEQ were applied. */
                struct {
                        uint64_t seq;
                } ack;
                /* Sent once per connection after HELLO, by each side as a
                 * receiver: stream me the records after this position in the
                 * stream order (the last record merged from the other node's
                 * stream; all zero: everything). Wall below 2^48; node
                 * nonzero unless the version is zero; BEFORE_KEY has no
                 * interface and no key, AT_DEVICE an interface (1..15
                 * printable bytes, NUL-padded) and no key, AT_PEER both. */
                struct {
                        uint64_t wall_ms;
                        uint16_t logical;
                        uint64_t node;
                        enum sync_resume_kind kind;
                        char ifname[SYNC_RESUME_IFNAME_LEN];
                        uint8_t public_key[32];
                } resume;
                /* The catch-up stream since RESUME is complete: every record
                 * the sender held when it found nothing more to send went in
                 * the CHANGES frames up to and including SEQ (0: none); what
                 * follows are live changes. Numbered like CHANGES and
                 * acknowledged once the receiver saved. A bootstrapping
                 * sender holds no complete state: it sends none until its
                 * bootstrap ends, then streams again and sends it. */
                struct {
                        uint64_t seq;
                } caught_up;
                struct {
                        enum sync_close_reason reason;
                } close;
        };
};

/* Name of a frame type or close reason, NULL when out of range. */
const char *sync_frame_type_to_string(enum sync_frame_type t);
const char *sync_close_reason_to_string(enum sync_close_reason r);

/* Parse one decrypted frame (version byte, type byte, payload). Returns 0
 * with *ret filled (pointers into BUF), or -EBADMSG with *ret_reason; ret is
 * untouched on failure. Trailing bytes are an error. */
int sync_frame_parse(const uint8_t *buf, size_t len, struct sync_frame *ret, const char **ret_reason);

/* Serialise FRAME (without encrypting) into a new buffer. Returns 0,
 * -EINVAL for a frame sync_frame_parse() would refuse, or -ENOMEM. */
int sync_frame_build(const struct sync_frame *frame, uint8_t **ret_buf, size_t *ret_len);

/* ---- Handshake (message level) ----------------------------------------- */

/* A pinned peer. The responder keeps, per peer, the newest timestamp it
 * accepted in a message 1, and refuses any message 1 that is not newer. */
struct sync_peer {
        uint8_t public_key[SYNC_KEY_LEN];
        uint64_t last_timestamp;
};

/* What a completed handshake yields: one key per direction and the final
 * transcript hash (identical on both sides; usable as a session id). */
struct sync_keys {
        uint8_t send[SYNC_KEY_LEN];
        uint8_t recv[SYNC_KEY_LEN];
        uint8_t hash[32];
};

/* Initiator state between sending message 1 and reading message 2. Defined
 * here so callers can place it anywhere; treat the fields as private. */
struct sync_initiator {
        uint8_t h[32];
        uint8_t ck[32];
        uint8_t e_private[SYNC_KEY_LEN];
        uint8_t s_private[SYNC_KEY_LEN];
        uint8_t remote_public[SYNC_KEY_LEN];
        bool pending;
};

/* Start a handshake to the peer pinned as REMOTE_PUBLIC: generate an
 * ephemeral key and write message 1 carrying TIMESTAMP, which must exceed
 * every timestamp this node sent that peer before (e.g. CLOCK_REALTIME in
 * microseconds). Returns 0, -EINVAL for an unusable key, -EIO if libsodium
 * cannot start. On failure *hs holds no secrets and cannot be finished. */
int sync_handshake_initiate(struct sync_initiator *hs, const uint8_t local_private[static SYNC_KEY_LEN],
                            const uint8_t remote_public[static SYNC_KEY_LEN], uint64_t timestamp,
                            uint8_t ret_msg1[static SYNC_MSG1_LEN]);

/* Responder: check message 1 against our private key and the pinned PEERS;
 * on success write message 2, derive the session keys, raise the peer's
 * last_timestamp and report which peer connected (ret_peer may be NULL).
 * Returns 0, -EBADMSG with *ret_reason (outputs and PEERS untouched),
 * -EINVAL for an all-zero LOCAL_PRIVATE, or -EIO. */
int sync_handshake_respond(const uint8_t local_private[static SYNC_KEY_LEN], struct sync_peer *peers,
                           size_t n_peers, const uint8_t *msg1, size_t len,
                           uint8_t ret_msg2[static SYNC_MSG2_LEN], struct sync_keys *ret_keys,
                           size_t *ret_peer, const char **ret_reason);

/* Initiator: check message 2 and derive the session keys. Success or
 * failure, *hs is wiped and single-use. Returns 0, or -EBADMSG with
 * *ret_reason (ret_keys untouched). */
int sync_handshake_finish(struct sync_initiator *hs, const uint8_t *msg2, size_t len,
                          struct sync_keys *ret_keys, const char **ret_reason);

/* Wipe an initiator state (safe on a wiped or NULL one). */
void sync_initiator_wipe(struct sync_initiator *hs);

/* ---- Session (stream level) -------------------------------------------- */

/*
 * One TCP connection: the handshake, then a stream of encrypted frames each
 * way. Bytes read from the socket go to sync_session_feed(); frames come
 * out of sync_session_next_frame(). Bytes to write come from
 * sync_session_take_output() (handshake messages, stream header) and
 * sync_frame_encode(). Any error is final: the session then refuses all
 * further input and the caller closes the connection.
 */
struct sync_session;

/* Connect-side session: message 1 is queued for take_output(). Same
 * arguments and errors as sync_handshake_initiate(), plus -ENOMEM. */
int sync_session_new_initiator(struct sync_session **ret, const uint8_t local_private[static SYNC_KEY_LEN],
                               const uint8_t remote_public[static SYNC_KEY_LEN], uint64_t timestamp);

/* Accept-side session. PEERS is borrowed, not copied, and must stay valid
 * until the handshake completed or the session is freed: the responder
 * updates last_timestamp in it. Returns 0, -EIO or -ENOMEM. */
int sync_session_new_responder(struct sync_session **ret, const uint8_t local_private[static SYNC_KEY_LEN],
                               struct sync_peer *peers, size_t n_peers);

/* Session over keys from the message-level handshake, for callers that ran
 * it themselves; our stream header is queued for take_output(). REMOTE_PUBLIC
 * is the authenticated peer key. KEYS is not wiped (the caller's copy).
 * Returns 0, -EIO or -ENOMEM. */
int sync_session_new_established(struct sync_session **ret, const struct sync_keys *keys, bool initiator,
                                 const uint8_t remote_public[static SYNC_KEY_LEN]);

/* Wipe and free. Accepts NULL; returns NULL. */
struct sync_session *sync_session_free(struct sync_session *s);

/* Append bytes read from the connection. Returns 0, -ENOBUFS when more than
 * SYNC_FEED_MAX bytes would be waiting (drain next_frame() after every
 * feed), -ESHUTDOWN after an error or CLOSE, or -ENOMEM. */
int sync_session_feed(struct sync_session *s, const uint8_t *buf, size_t len);

/* Consume buffered input: finish the handshake when its message is
 * complete, then decrypt the next frame. Returns 1 with *ret (pointers
 * valid until the next call or free), 0 when more input is needed, or
 * -EBADMSG with *ret_reason: oversize or runt length, bad tag (tampering,
 * replay, reordering), unknown version or frame type, a CLOSE not marked
 * final or a final frame that is not CLOSE, data after CLOSE, handshake
 * refusal. -ENOMEM on allocation failure. After the peer's CLOSE: 0, or
 * -EBADMSG if any byte follows it. */
int sync_session_next_frame(struct sync_session *s, struct sync_frame *ret, const char **ret_reason);

/* Hand over bytes queued by the session itself (message 1, message 2, our
 * stream header). Returns 1 with a malloc'ed buffer, 0 when nothing is
 * queued, -ENOMEM. */
int sync_session_take_output(struct sync_session *s, uint8_t **ret_buf, size_t *ret_len);

/* Encrypt FRAME into a new buffer to write: any bytes still queued for
 * take_output() come first, so call order cannot reorder the stream. A
 * CLOSE frame ends our direction of the stream. Returns 0, -ENOTCONN before
 * the handshake completed, -ESHUTDOWN after CLOSE was sent, -EINVAL for an
 * invalid frame, -ENOMEM. */
int sync_frame_encode(struct sync_session *s, const struct sync_frame *frame, uint8_t **ret_buf,
                      size_t *ret_len);

/* Call at EOF from the peer: 0 when the peer's stream ended with CLOSE and
 * nothing followed, -EBADMSG with *ret_reason when it was cut short
 * (truncation attack or crash: no final frame, or a partial one). */
int sync_session_end(struct sync_session *s, const char **ret_reason);

/* Whether the handshake completed (frames may be encoded). */
bool sync_session_is_established(const struct sync_session *s);
/* Whether we initiated this connection. */
bool sync_session_is_initiator(const struct sync_session *s);
/* The peer's static public key once known (initiator: from the start;
 * responder: once established). Returns 0, or -ENOTCONN. */
int sync_session_remote_public(const struct sync_session *s, uint8_t ret_key[static SYNC_KEY_LEN]);
/* Responder: index into PEERS of the peer that connected. Returns 0, or
 * -ENOTCONN before that is known or for sessions without a peer list. */
int sync_session_peer_index(const struct sync_session *s, size_t *ret_index);

/* ---- Connection policy and liveness ------------------------------------ */

/* Both nodes dial each other, so a pair can end up with two connections.
 * Each node keeps the one initiated by the node with the lower public key
 * (byte-wise comparison), and both nodes reach the same answer. Returns
 * whether a connection that LOCAL_INITIATED (we dialled it) is the one to
 * keep; false also for identical keys (a node must not talk to itself). */
bool sync_connection_preferred(const uint8_t local_public[static SYNC_KEY_LEN],
                               const uint8_t remote_public[static SYNC_KEY_LEN], bool local_initiated);

enum {
        SYNC_LIVENESS_SEND_HEARTBEAT = 1 << 0,
        SYNC_LIVENESS_DEAD = 1 << 1,
};

/* Given when we last received anything (LAST_RX) and last sent anything
 * (LAST_TX), decide at NOW: send a heartbeat once INTERVAL passed since the
 * last send; the peer is dead once TIMEOUT passed since the last receive.
 * Times in any one unit; a clock that went backwards counts as no time
 * elapsed. Returns a mask of SYNC_LIVENESS_* flags. */
unsigned sync_liveness(uint64_t last_rx, uint64_t last_tx, uint64_t now, uint64_t interval, uint64_t timeout);

/* The earliest time at which sync_liveness() may change its answer, for
 * arming a timer: min(LAST_TX + INTERVAL, LAST_RX + TIMEOUT), saturating. */
uint64_t sync_liveness_next(uint64_t last_rx, uint64_t last_tx, uint64_t interval, uint64_t timeout);
