/* SPDX-License-Identifier: GPL-2.0-or-later */

#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "common/macro.h"
#include "sync/sync_proto.h"

/* Noise protocol name: exactly HASHLEN (32) bytes, so it is used as the
 * initial hash unpadded. The prologue binds our own protocol and version
 * so a Noise IK handshake of another application cannot be replayed here. */
static const char noise_name[] = "Noise_IK_25519_ChaChaPoly_SHA256";
static const uint8_t noise_prologue[] = { 'h', 'a', 'm', 'g', 'r', '-', 's', 'y', 'n', 'c', SYNC_PROTO_VERSION };

#define HASHLEN crypto_hash_sha256_BYTES
#define TAGLEN crypto_aead_chacha20poly1305_ietf_ABYTES

#define MSG_TYPE_1 1
#define MSG_TYPE_2 2

_Static_assert(sizeof(noise_name) - 1 == HASHLEN, "protocol name is used as the initial hash");
_Static_assert(SYNC_KEY_LEN == crypto_scalarmult_curve25519_BYTES, "X25519 keys");
_Static_assert(SYNC_STREAM_HEADER_LEN == crypto_secretstream_xchacha20poly1305_HEADERBYTES, "stream header");
_Static_assert(SYNC_FRAME_OVERHEAD == crypto_secretstream_xchacha20poly1305_ABYTES, "stream overhead");
_Static_assert(SYNC_KEY_LEN == crypto_secretstream_xchacha20poly1305_KEYBYTES, "stream key");
_Static_assert(sizeof(((struct sync_keys *) 0)->hash) == HASHLEN, "transcript hash");
_Static_assert(TAGLEN == 16, "Noise ChaChaPoly tag");

static int ensure_sodium(void) {
        return sodium_init() < 0 ? -EIO : 0;
}

static void set_reason(const char **ret_reason, const char *reason) {
        if (ret_reason)
                *ret_reason = reason;
}

static void put_be64(uint8_t *p, uint64_t v) {
        for (int i = 7; i >= 0; i--) {
                p[i] = (uint8_t) v;
                v >>= 8;
        }
}

static uint64_t get_be64(const uint8_t *p) {
        uint64_t v = 0;

        for (int i = 0; i < 8; i++)
                v = (v << 8) | p[i];
        return v;
}

static void put_be32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) (v >> 24);
        p[1] = (uint8_t) (v >> 16);
        p[2] = (uint8_t) (v >> 8);
        p[3] = (uint8_t) v;
}

static uint32_t get_be32(const uint8_t *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

/* ---- Key file ---------------------------------------------------------- */

int sync_key_parse(const char *text, size_t len, uint8_t ret_private[static SYNC_KEY_LEN],
                   const char **ret_reason) {
        char line[WG_KEY_B64_LEN];
        uint8_t key[SYNC_KEY_LEN];
        int r = -EBADMSG;

        if (!text)
                return -EINVAL;
        if (len == WG_KEY_B64_LEN && text[len - 1] == '\n')
                len--;
        if (len != WG_KEY_B64_LEN - 1 || memchr(text, '\0', len)) {
                set_reason(ret_reason, "key file must hold exactly one line with a base64 key");
                return -EBADMSG;
        }

        memcpy(line, text, len);
        line[len] = '\0';
        if (wg_key_from_base64(key, line) < 0) {
                set_reason(ret_reason, "key file does not hold a valid base64 key");
                goto finish;
        }
        if (wg_key_is_zero(key)) {
                set_reason(ret_reason, "key is all zero");
                goto finish;
        }

        memcpy(ret_private, key, SYNC_KEY_LEN);
        r = 0;
finish:
        sodium_memzero(line, sizeof(line));
        sodium_memzero(key, sizeof(key));
        return r;
}

/* ---- Frames ------------------------------------------------------------ */

static const char *const frame_type_names[_SYNC_FRAME_TYPE_MAX] = {
        [SYNC_FRAME_HELLO] = "hello",
        [SYNC_FRAME_HEARTBEAT] = "heartbeat",
        [SYNC_FRAME_CHANGES] = "changes",
        [SYNC_FRAME_ACK] = "ack",
        [SYNC_FRAME_CLOSE] = "close",
        [SYNC_FRAME_RESUME] = "resume",
        [SYNC_FRAME_CAUGHT_UP] = "caught-up",
};

static const char *const close_reason_names[_SYNC_CLOSE_REASON_MAX] = {
        [SYNC_CLOSE_NORMAL] = "normal",
        [SYNC_CLOSE_SHUTDOWN] = "shutdown",
        [SYNC_CLOSE_DUPLICATE] = "duplicate",
        [SYNC_CLOSE_PROTOCOL] = "protocol-error",
};

const char *sync_frame_type_to_string(enum sync_frame_type t) {
        return ENUM_NAME(frame_type_names, t);
}

const char *sync_close_reason_to_string(enum sync_close_reason r) {
        return ENUM_NAME(close_reason_names, r);
}

static bool name_valid(const char *name, size_t len) {
        if (len < 1 || len > SYNC_NAME_MAX)
                return false;
        for (size_t i = 0; i < len; i++)
                if (name[i] < 0x21 || name[i] > 0x7e)
                        return false;
        return true;
}

/* A stream position: a replication version (wall time below 2^48 and a
 * writer, or all zero), then as its kind says an interface name and a key. */
static bool resume_valid(const struct sync_frame *f) {
        const char *n = f->resume.ifname;
        size_t len = strnlen(n, SYNC_RESUME_IFNAME_LEN);

        if (f->resume.wall_ms >= UINT64_C(1) << 48)
                return false;
        if (f->resume.node == 0 && (f->resume.wall_ms != 0 || f->resume.logical != 0))
                return false;
        if ((unsigned) f->resume.kind >= _SYNC_RESUME_KIND_MAX || len == SYNC_RESUME_IFNAME_LEN)
                return false;
        for (size_t i = len; i < SYNC_RESUME_IFNAME_LEN; i++)
                if (n[i] != '\0')
                        return false;
        if ((f->resume.kind == SYNC_RESUME_BEFORE_KEY) != (len == 0) || (len > 0 && !name_valid(n, len)))
                return false;
        if (f->resume.kind != SYNC_RESUME_AT_PEER && !sodium_is_zero(f->resume.public_key, 32))
                return false;
        return true;
}

int sync_frame_parse(const uint8_t *buf, size_t len, struct sync_frame *ret, const char **ret_reason) {
        struct sync_frame f = {};
        const uint8_t *p;
        size_t plen;

        if (len < 2) {
                set_reason(ret_reason, "frame too short");
                return -EBADMSG;
        }
        if (len > SYNC_FRAME_MAX) {
                set_reason(ret_reason, "frame too long");
                return -EBADMSG;
        }
        if (buf[0] != SYNC_PROTO_VERSION) {
                set_reason(ret_reason, "unknown frame version");
                return -EBADMSG;
        }

        p = buf + 2;
        plen = len - 2;
        f.type = buf[1];
        switch (buf[1]) {
        case SYNC_FRAME_HELLO: {
                size_t nlen;

                if (plen < 9) {
                        set_reason(ret_reason, "truncated hello");
                        return -EBADMSG;
                }
                f.hello.clock_usec = get_be64(p);
                nlen = p[8];
                if (plen != 9 + nlen) {
                        set_reason(ret_reason, "hello length mismatch");
                        return -EBADMSG;
                }
                if (!name_valid((const char *) p + 9, nlen)) {
                        set_reason(ret_reason, "invalid node name in hello");
                        return -EBADMSG;
                }
                memcpy(f.hello.name, p + 9, nlen);
                f.hello.name[nlen] = '\0';
                break;
        }
        case SYNC_FRAME_HEARTBEAT:
                if (plen != 8) {
                        set_reason(ret_reason, "heartbeat length mismatch");
                        return -EBADMSG;
                }
                f.heartbeat.clock_usec = get_be64(p);
                break;
        case SYNC_FRAME_CHANGES:
                if (plen < 8) {
                        set_reason(ret_reason, "truncated changes");
                        return -EBADMSG;
                }
                f.changes.seq = get_be64(p);
                f.changes.data = p + 8;
                f.changes.len = plen - 8;
                break;
        case SYNC_FRAME_ACK:
                if (plen != 8) {
                        set_reason(ret_reason, "ack length mismatch");
                        return -EBADMSG;
                }
                f.ack.seq = get_be64(p);
                break;
        case SYNC_FRAME_RESUME:
                if (plen != SYNC_RESUME_LEN) {
                        set_reason(ret_reason, "resume length mismatch");
                        return -EBADMSG;
                }
                f.resume.wall_ms = get_be64(p);
                f.resume.logical = (uint16_t) ((p[8] << 8) | p[9]);
                f.resume.node = get_be64(p + 10);
                f.resume.kind = p[18];
                memcpy(f.resume.ifname, p + 19, SYNC_RESUME_IFNAME_LEN);
                memcpy(f.resume.public_key, p + 19 + SYNC_RESUME_IFNAME_LEN, 32);
                if (!resume_valid(&f)) {
                        set_reason(ret_reason, "invalid resume watermark");
                        return -EBADMSG;
                }
                break;
        case SYNC_FRAME_CAUGHT_UP:
                if (plen != 8) {
                        set_reason(ret_reason, "caught-up length mismatch");
                        return -EBADMSG;
                }
                f.caught_up.seq = get_be64(p);
                break;
        case SYNC_FRAME_CLOSE:
                if (plen != 1) {
                        set_reason(ret_reason, "close length mismatch");
                        return -EBADMSG;
                }
                if (p[0] >= _SYNC_CLOSE_REASON_MAX) {
                        set_reason(ret_reason, "unknown close reason");
                        return -EBADMSG;
                }
                f.close.reason = p[0];
                break;
        default:
                set_reason(ret_reason, "unknown frame type");
                return -EBADMSG;
        }

        *ret = f;
        return 0;
}

/* Serialised size of FRAME, or 0 when it is not valid. */
static size_t frame_size(const struct sync_frame *f) {
        switch (f->type) {
        case SYNC_FRAME_HELLO: {
                size_t n = strnlen(f->hello.name, sizeof(f->hello.name));

                return name_valid(f->hello.name, n) ? 2 + 9 + n : 0;
        }
        case SYNC_FRAME_HEARTBEAT:
        case SYNC_FRAME_ACK:
        case SYNC_FRAME_CAUGHT_UP:
                return 2 + 8;
        case SYNC_FRAME_RESUME:
                return resume_valid(f) ? 2 + SYNC_RESUME_LEN : 0;
        case SYNC_FRAME_CHANGES:
                if (f->changes.len > SYNC_FRAME_MAX - 2 - 8 || (f->changes.len > 0 && !f->changes.data))
                        return 0;
                return 2 + 8 + f->changes.len;
        case SYNC_FRAME_CLOSE:
                return (unsigned) f->close.reason < _SYNC_CLOSE_REASON_MAX ? 2 + 1 : 0;
        default:
                return 0;
        }
}

/* Write FRAME into BUF, which holds frame_size() bytes. */
static void frame_write(const struct sync_frame *f, uint8_t *buf) {
        uint8_t *p = buf + 2;

        buf[0] = SYNC_PROTO_VERSION;
        buf[1] = (uint8_t) f->type;
        switch (f->type) {
        case SYNC_FRAME_HELLO: {
                size_t n = strnlen(f->hello.name, sizeof(f->hello.name));

                put_be64(p, f->hello.clock_usec);
                p[8] = (uint8_t) n;
                memcpy(p + 9, f->hello.name, n);
                break;
        }
        case SYNC_FRAME_HEARTBEAT:
                put_be64(p, f->heartbeat.clock_usec);
                break;
        case SYNC_FRAME_CHANGES:
                put_be64(p, f->changes.seq);
                if (f->changes.len > 0)
                        memcpy(p + 8, f->changes.data, f->changes.len);
                break;
        case SYNC_FRAME_ACK:
                put_be64(p, f->ack.seq);
                break;
        case SYNC_FRAME_RESUME:
                put_be64(p, f->resume.wall_ms);
                p[8] = (uint8_t) (f->resume.logical >> 8);
                p[9] = (uint8_t) f->resume.logical;
                put_be64(p + 10, f->resume.node);
                p[18] = (uint8_t) f->resume.kind;
                memcpy(p + 19, f->resume.ifname, SYNC_RESUME_IFNAME_LEN);
                memcpy(p + 19 + SYNC_RESUME_IFNAME_LEN, f->resume.public_key, 32);
                break;
        case SYNC_FRAME_CAUGHT_UP:
                put_be64(p, f->caught_up.seq);
                break;
        case SYNC_FRAME_CLOSE:
                p[0] = (uint8_t) f->close.reason;
                break;
        default:
                break;
        }
}

int sync_frame_build(const struct sync_frame *frame, uint8_t **ret_buf, size_t *ret_len) {
        size_t n = frame_size(frame);
        uint8_t *buf;

        if (n == 0)
                return -EINVAL;
        buf = malloc(n);
        if (!buf)
                return -ENOMEM;
        frame_write(frame, buf);
        *ret_buf = buf;
        *ret_len = n;
        return 0;
}

/* ---- Noise symmetric state (Noise spec rev. 34, sections 4 and 5) ------- */

struct symmetric {
        uint8_t h[HASHLEN];
        uint8_t ck[HASHLEN];
        uint8_t k[32];
        uint64_t n;
};

static void hmac(uint8_t out[static HASHLEN], const uint8_t key[static HASHLEN], const uint8_t *a, size_t alen,
                 const uint8_t *b, size_t blen) {
        crypto_auth_hmacsha256_state st;

        crypto_auth_hmacsha256_init(&st, key, HASHLEN);
        crypto_auth_hmacsha256_update(&st, a, alen);
        if (blen > 0)
                crypto_auth_hmacsha256_update(&st, b, blen);
        crypto_auth_hmacsha256_final(&st, out);
        sodium_memzero(&st, sizeof(st));
}

/* HKDF(ck, ikm) with two outputs, as Noise defines it over HMAC-SHA256. */
static void hkdf2(uint8_t out1[static HASHLEN], uint8_t out2[static HASHLEN], const uint8_t ck[static HASHLEN],
                  const uint8_t *ikm, size_t ikm_len) {
        static const uint8_t one = 1, two = 2;
        uint8_t temp[HASHLEN], o1[HASHLEN];

        hmac(temp, ck, ikm, ikm_len, NULL, 0);
        hmac(o1, temp, &one, 1, NULL, 0);
        hmac(out2, temp, o1, HASHLEN, &two, 1);
        memcpy(out1, o1, HASHLEN);
        sodium_memzero(temp, sizeof(temp));
        sodium_memzero(o1, sizeof(o1));
}

static void mix_hash(struct symmetric *ss, const uint8_t *data, size_t len) {
        crypto_hash_sha256_state st;

        crypto_hash_sha256_init(&st);
        crypto_hash_sha256_update(&st, ss->h, HASHLEN);
        crypto_hash_sha256_update(&st, data, len);
        crypto_hash_sha256_final(&st, ss->h);
}

static void mix_key(struct symmetric *ss, const uint8_t *ikm, size_t len) {
        hkdf2(ss->ck, ss->k, ss->ck, ikm, len);
        ss->n = 0;
}

/* MixKey(DH(priv, pub)), refusing the all-zero result a low-order public
 * key produces (crypto_scalarmult() reports it). */
static int mix_dh(struct symmetric *ss, const uint8_t priv[static SYNC_KEY_LEN], const uint8_t pub[static SYNC_KEY_LEN]) {
        uint8_t dh[SYNC_KEY_LEN];
        int r = 0;

        if (crypto_scalarmult_curve25519(dh, priv, pub) < 0)
                r = -EBADMSG;
        else
                mix_key(ss, dh, sizeof(dh));
        sodium_memzero(dh, sizeof(dh));
        return r;
}

static void noise_nonce(uint8_t nonce[static 12], uint64_t n) {
        /* 32 zero bits then the counter little-endian, per the Noise spec. */
        memset(nonce, 0, 4);
        for (int i = 0; i < 8; i++)
                nonce[4 + i] = (uint8_t) (n >> (8 * i));
}

static void encrypt_and_hash(struct symmetric *ss, uint8_t *out, const uint8_t *plain, size_t len) {
        uint8_t nonce[12];

        noise_nonce(nonce, ss->n++);
        crypto_aead_chacha20poly1305_ietf_encrypt(out, NULL, plain, len, ss->h, HASHLEN, NULL, nonce, ss->k);
        mix_hash(ss, out, len + TAGLEN);
}

/* CIPHER holds len + TAGLEN bytes. */
static int decrypt_and_hash(struct symmetric *ss, uint8_t *plain, const uint8_t *cipher, size_t len) {
        uint8_t nonce[12];

        noise_nonce(nonce, ss->n++);
        if (crypto_aead_chacha20poly1305_ietf_decrypt(plain, NULL, NULL, cipher, len + TAGLEN, ss->h, HASHLEN,
                                                      nonce, ss->k) < 0)
                return -EBADMSG;
        mix_hash(ss, cipher, len + TAGLEN);
        return 0;
}

/* InitializeSymmetric, MixHash(prologue), then the IK pre-message "<- s". */
static void symmetric_init(struct symmetric *ss, const uint8_t responder_public[static SYNC_KEY_LEN]) {
        *ss = (struct symmetric) {};
        memcpy(ss->h, noise_name, HASHLEN);
        memcpy(ss->ck, ss->h, HASHLEN);
        mix_hash(ss, noise_prologue, sizeof(noise_prologue));
        mix_hash(ss, responder_public, SYNC_KEY_LEN);
}

/* Split(): the first key carries initiator-to-responder traffic. */
static void symmetric_split(struct symmetric *ss, bool initiator, struct sync_keys *ret) {
        uint8_t k1[HASHLEN], k2[HASHLEN];

        hkdf2(k1, k2, ss->ck, NULL, 0);
        memcpy(ret->send, initiator ? k1 : k2, SYNC_KEY_LEN);
        memcpy(ret->recv, initiator ? k2 : k1, SYNC_KEY_LEN);
        memcpy(ret->hash, ss->h, HASHLEN);
        sodium_memzero(k1, sizeof(k1));
        sodium_memzero(k2, sizeof(k2));
}

/* ---- Handshake --------------------------------------------------------- */

void sync_initiator_wipe(struct sync_initiator *hs) {
        if (hs)
                sodium_memzero(hs, sizeof(*hs));
}

int sync_handshake_initiate(struct sync_initiator *hs, const uint8_t local_private[static SYNC_KEY_LEN],
                            const uint8_t remote_public[static SYNC_KEY_LEN], uint64_t timestamp,
                            uint8_t ret_msg1[static SYNC_MSG1_LEN]) {
        struct symmetric ss;
        uint8_t s_public[SYNC_KEY_LEN], e_private[SYNC_KEY_LEN], ts[8];
        uint8_t msg[SYNC_MSG1_LEN], *p = msg;
        int r;

        sync_initiator_wipe(hs);
        r = ensure_sodium();
        if (r < 0)
                return r;
        r = wg_key_public_from_private(s_public, local_private);
        if (r < 0)
                return r;
        if (wg_key_equal(s_public, remote_public))
                return -EINVAL;

        symmetric_init(&ss, remote_public);
        *p++ = SYNC_PROTO_VERSION;
        *p++ = MSG_TYPE_1;

        /* e */
        r = wg_key_generate_private(e_private);
        if (r < 0)
                goto finish;
        r = wg_key_public_from_private(p, e_private);
        if (r < 0)
                goto finish;
        mix_hash(&ss, p, SYNC_KEY_LEN);
        p += SYNC_KEY_LEN;
        /* es: a low-order pinned key is a configuration error. */
        if (mix_dh(&ss, e_private, remote_public) < 0) {
                r = -EINVAL;
                goto finish;
        }
        /* s */
        encrypt_and_hash(&ss, p, s_public, SYNC_KEY_LEN);
        p += SYNC_KEY_LEN + TAGLEN;
        /* ss */
        if (mix_dh(&ss, local_private, remote_public) < 0) {
                r = -EINVAL;
                goto finish;
        }
        /* payload: the timestamp the responder requires to increase. */
        put_be64(ts, timestamp);
        encrypt_and_hash(&ss, p, ts, sizeof(ts));

        memcpy(hs->h, ss.h, HASHLEN);
        memcpy(hs->ck, ss.ck, HASHLEN);
        memcpy(hs->e_private, e_private, SYNC_KEY_LEN);
        memcpy(hs->s_private, local_private, SYNC_KEY_LEN);
        memcpy(hs->remote_public, remote_public, SYNC_KEY_LEN);
        hs->pending = true;
        memcpy(ret_msg1, msg, SYNC_MSG1_LEN);
        r = 0;
finish:
        sodium_memzero(&ss, sizeof(ss));
        sodium_memzero(e_private, sizeof(e_private));
        return r;
}

/* The version and type bytes, as far as LEN covers them. */
static int check_prefix(const uint8_t *msg, size_t len, uint8_t type, const char **ret_reason) {
        if (len >= 1 && msg[0] != SYNC_PROTO_VERSION) {
                set_reason(ret_reason, "unknown handshake version");
                return -EBADMSG;
        }
        if (len >= 2 && msg[1] != type) {
                set_reason(ret_reason, "unexpected handshake message type");
                return -EBADMSG;
        }
        return 0;
}

static int check_header(const uint8_t *msg, size_t len, uint8_t type, size_t want, const char **ret_reason) {
        int r = check_prefix(msg, len, type, ret_reason);

        if (r < 0)
                return r;
        if (len < want) {
                set_reason(ret_reason, "truncated handshake message");
                return -EBADMSG;
        }
        if (len > want) {
                set_reason(ret_reason, "oversize handshake message");
                return -EBADMSG;
        }
        return 0;
}

int sync_handshake_respond(const uint8_t local_private[static SYNC_KEY_LEN], struct sync_peer *peers,
                           size_t n_peers, const uint8_t *msg1, size_t len,
                           uint8_t ret_msg2[static SYNC_MSG2_LEN], struct sync_keys *ret_keys,
                           size_t *ret_peer, const char **ret_reason) {
        struct symmetric ss;
        struct sync_keys keys;
        uint8_t s_public[SYNC_KEY_LEN], re[SYNC_KEY_LEN], rs[SYNC_KEY_LEN], e_private[SYNC_KEY_LEN];
        uint8_t ts[8], msg[SYNC_MSG2_LEN], *q = msg;
        const uint8_t *p = msg1;
        uint64_t timestamp;
        size_t peer = SIZE_MAX;
        int r;

        r = check_header(msg1, len, MSG_TYPE_1, SYNC_MSG1_LEN, ret_reason);
        if (r < 0)
                return r;
        r = ensure_sodium();
        if (r < 0)
                return r;
        r = wg_key_public_from_private(s_public, local_private);
        if (r < 0)
                return r;

        symmetric_init(&ss, s_public);
        p += 2;
        r = -EBADMSG;

        /* e */
        memcpy(re, p, SYNC_KEY_LEN);
        mix_hash(&ss, re, SYNC_KEY_LEN);
        p += SYNC_KEY_LEN;
        /* es */
        if (mix_dh(&ss, local_private, re) < 0) {
                set_reason(ret_reason, "invalid ephemeral key in handshake");
                goto finish;
        }
        /* s */
        if (decrypt_and_hash(&ss, rs, p, SYNC_KEY_LEN) < 0) {
                set_reason(ret_reason, "handshake authentication failed");
                goto finish;
        }
        p += SYNC_KEY_LEN + TAGLEN;
        if (wg_key_equal(rs, s_public)) {
                set_reason(ret_reason, "reflected handshake (peer uses our own key)");
                goto finish;
        }
        for (size_t i = 0; i < n_peers; i++)
                if (wg_key_equal(peers[i].public_key, rs)) {
                        peer = i;
                        break;
                }
        if (peer == SIZE_MAX) {
                set_reason(ret_reason, "unknown peer key");
                goto finish;
        }
        /* ss */
        if (mix_dh(&ss, local_private, rs) < 0) {
                set_reason(ret_reason, "invalid static key in handshake");
                goto finish;
        }
        /* payload */
        if (decrypt_and_hash(&ss, ts, p, sizeof(ts)) < 0) {
                set_reason(ret_reason, "handshake authentication failed");
                goto finish;
        }
        timestamp = get_be64(ts);
        if (timestamp <= peers[peer].last_timestamp) {
                set_reason(ret_reason, "replayed handshake (timestamp not newer)");
                goto finish;
        }

        /* Message 2: e, ee, se, empty payload. */
        *q++ = SYNC_PROTO_VERSION;
        *q++ = MSG_TYPE_2;
        r = wg_key_generate_private(e_private);
        if (r < 0)
                goto finish;
        r = wg_key_public_from_private(q, e_private);
        if (r < 0)
                goto finish;
        r = -EBADMSG;
        mix_hash(&ss, q, SYNC_KEY_LEN);
        q += SYNC_KEY_LEN;
        if (mix_dh(&ss, e_private, re) < 0) {
                set_reason(ret_reason, "invalid ephemeral key in handshake");
                goto finish;
        }
        if (mix_dh(&ss, e_private, rs) < 0) {
                set_reason(ret_reason, "invalid static key in handshake");
                goto finish;
        }
        encrypt_and_hash(&ss, q, NULL, 0);
        symmetric_split(&ss, false, &keys);

        peers[peer].last_timestamp = timestamp;
        memcpy(ret_msg2, msg, SYNC_MSG2_LEN);
        *ret_keys = keys;
        if (ret_peer)
                *ret_peer = peer;
        r = 0;
finish:
        sodium_memzero(&ss, sizeof(ss));
        sodium_memzero(&keys, sizeof(keys));
        sodium_memzero(e_private, sizeof(e_private));
        return r;
}

int sync_handshake_finish(struct sync_initiator *hs, const uint8_t *msg2, size_t len,
                          struct sync_keys *ret_keys, const char **ret_reason) {
        struct symmetric ss = {};
        struct sync_keys keys;
        const uint8_t *re;
        int r;

        if (!hs->pending) {
                set_reason(ret_reason, "no handshake in progress");
                r = -EBADMSG;
                goto finish;
        }
        r = check_header(msg2, len, MSG_TYPE_2, SYNC_MSG2_LEN, ret_reason);
        if (r < 0)
                goto finish;

        memcpy(ss.h, hs->h, HASHLEN);
        memcpy(ss.ck, hs->ck, HASHLEN);
        r = -EBADMSG;
        /* e */
        re = msg2 + 2;
        mix_hash(&ss, re, SYNC_KEY_LEN);
        /* ee, se */
        if (mix_dh(&ss, hs->e_private, re) < 0 || mix_dh(&ss, hs->s_private, re) < 0) {
                set_reason(ret_reason, "invalid ephemeral key in handshake");
                goto finish;
        }
        if (decrypt_and_hash(&ss, NULL, re + SYNC_KEY_LEN, 0) < 0) {
                set_reason(ret_reason, "handshake authentication failed");
                goto finish;
        }
        symmetric_split(&ss, true, &keys);
        *ret_keys = keys;
        r = 0;
finish:
        sodium_memzero(&ss, sizeof(ss));
        sodium_memzero(&keys, sizeof(keys));
        sync_initiator_wipe(hs);
        return r;
}

/* ---- Session ----------------------------------------------------------- */

enum session_state {
        STATE_AWAIT_MSG1,
        STATE_AWAIT_MSG2,
        STATE_ESTABLISHED,
        STATE_CLOSED,   /* the peer's CLOSE arrived */
        STATE_FAILED,
};

struct buffer {
        uint8_t *data;
        size_t len;
        size_t alloc;
};

struct sync_session {
        enum session_state state;
        bool initiator;
        bool sent_close;
        bool rx_started;        /* the peer's stream header arrived */

        uint8_t local_private[SYNC_KEY_LEN];
        uint8_t remote_public[SYNC_KEY_LEN];
        struct sync_initiator hs;
        struct sync_peer *peers;
        size_t n_peers;
        size_t peer_index;

        uint8_t rx_key[SYNC_KEY_LEN];
        crypto_secretstream_xchacha20poly1305_state tx;
        crypto_secretstream_xchacha20poly1305_state rx;

        struct buffer in;       /* unread bytes start at in_off */
        size_t in_off;
        struct buffer out;      /* queued for take_output() */
        uint8_t *plain;         /* last decrypted frame, wiped on reuse */
        size_t plain_alloc;
};

static void buffer_wipe(struct buffer *b) {
        if (b->data)
                sodium_memzero(b->data, b->alloc);
        free(b->data);
        *b = (struct buffer) {};
}

static int buffer_reserve(struct buffer *b, size_t extra) {
        size_t want, n;
        uint8_t *d;

        if (extra > SIZE_MAX / 2 - b->len)
                return -ENOMEM;
        want = b->len + extra;
        if (want <= b->alloc)
                return 0;
        n = MAX(want, MAX(b->alloc * 2, (size_t) 256));
        d = realloc(b->data, n);
        if (!d)
                return -ENOMEM;
        b->data = d;
        b->alloc = n;
        return 0;
}

static int buffer_append(struct buffer *b, const uint8_t *data, size_t len) {
        int r = buffer_reserve(b, len);

        if (r < 0)
                return r;
        if (len > 0)
                memcpy(b->data + b->len, data, len);
        b->len += len;
        return 0;
}

struct sync_session *sync_session_free(struct sync_session *s) {
        if (!s)
                return NULL;
        buffer_wipe(&s->in);
        buffer_wipe(&s->out);
        if (s->plain)
                sodium_memzero(s->plain, s->plain_alloc);
        free(s->plain);
        sodium_memzero(s, sizeof(*s));
        free(s);
        return NULL;
}

static void sync_session_freep(struct sync_session **s) {
        sync_session_free(*s);
}

/* Both sides start their half of the transport with a fresh secretstream
 * header, queued right behind the last handshake message. */
static int session_establish(struct sync_session *s, struct sync_keys *keys) {
        uint8_t header[SYNC_STREAM_HEADER_LEN];
        int r;

        crypto_secretstream_xchacha20poly1305_init_push(&s->tx, header, keys->send);
        memcpy(s->rx_key, keys->recv, SYNC_KEY_LEN);
        sodium_memzero(keys, sizeof(*keys));
        sodium_memzero(s->local_private, sizeof(s->local_private));
        s->peers = NULL;
        s->n_peers = 0;
        r = buffer_append(&s->out, header, sizeof(header));
        if (r < 0)
                return r;
        s->state = STATE_ESTABLISHED;
        return 0;
}

int sync_session_new_initiator(struct sync_session **ret, const uint8_t local_private[static SYNC_KEY_LEN],
                               const uint8_t remote_public[static SYNC_KEY_LEN], uint64_t timestamp) {
        _cleanup_(sync_session_freep) struct sync_session *s = NULL;
        uint8_t msg1[SYNC_MSG1_LEN];
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->initiator = true;
        s->peer_index = SIZE_MAX;
        s->state = STATE_AWAIT_MSG2;
        memcpy(s->remote_public, remote_public, SYNC_KEY_LEN);

        r = sync_handshake_initiate(&s->hs, local_private, remote_public, timestamp, msg1);
        if (r < 0)
                return r;
        r = buffer_append(&s->out, msg1, sizeof(msg1));
        if (r < 0)
                return r;

        *ret = TAKE_PTR(s);
        return 0;
}

int sync_session_new_responder(struct sync_session **ret, const uint8_t local_private[static SYNC_KEY_LEN],
                               struct sync_peer *peers, size_t n_peers) {
        struct sync_session *s;
        int r;

        r = ensure_sodium();
        if (r < 0)
                return r;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->state = STATE_AWAIT_MSG1;
        s->peer_index = SIZE_MAX;
        memcpy(s->local_private, local_private, SYNC_KEY_LEN);
        s->peers = peers;
        s->n_peers = n_peers;

        *ret = s;
        return 0;
}

int sync_session_new_established(struct sync_session **ret, const struct sync_keys *keys, bool initiator,
                                 const uint8_t remote_public[static SYNC_KEY_LEN]) {
        _cleanup_(sync_session_freep) struct sync_session *s = NULL;
        struct sync_keys copy = *keys;
        int r;

        r = ensure_sodium();
        if (r < 0)
                goto finish;
        s = calloc(1, sizeof(*s));
        if (!s) {
                r = -ENOMEM;
                goto finish;
        }
        s->initiator = initiator;
        s->peer_index = SIZE_MAX;
        memcpy(s->remote_public, remote_public, SYNC_KEY_LEN);
        r = session_establish(s, &copy);
        if (r < 0)
                goto finish;
        *ret = TAKE_PTR(s);
finish:
        sodium_memzero(&copy, sizeof(copy));
        return r;
}

int sync_session_feed(struct sync_session *s, const uint8_t *buf, size_t len) {
        size_t pending = s->in.len - s->in_off;

        if (s->state == STATE_FAILED || s->state == STATE_CLOSED)
                return -ESHUTDOWN;
        if (len > SYNC_FEED_MAX - pending)
                return -ENOBUFS;
        /* Compact: what was consumed is never looked at again. */
        if (s->in_off > 0) {
                memmove(s->in.data, s->in.data + s->in_off, pending);
                s->in.len = pending;
                s->in_off = 0;
        }
        return buffer_append(&s->in, buf, len);
}

/* The unread input; NULL (with *ret_avail 0) before anything was fed. */
static const uint8_t *unread(const struct sync_session *s, size_t *ret_avail) {
        *ret_avail = s->in.len - s->in_off;
        return s->in.data ? s->in.data + s->in_off : NULL;
}

static int fail(struct sync_session *s, const char **ret_reason, const char *reason) {
        s->state = STATE_FAILED;
        /* Nothing else may come out of this session: drop key material. */
        sodium_memzero(&s->tx, sizeof(s->tx));
        sodium_memzero(&s->rx, sizeof(s->rx));
        sodium_memzero(s->rx_key, sizeof(s->rx_key));
        sodium_memzero(s->local_private, sizeof(s->local_private));
        sync_initiator_wipe(&s->hs);
        set_reason(ret_reason, reason);
        return -EBADMSG;
}

static int session_handshake(struct sync_session *s, const char **ret_reason) {
        size_t avail;
        const uint8_t *p = unread(s, &avail);
        bool responder = s->state == STATE_AWAIT_MSG1;
        size_t want = responder ? SYNC_MSG1_LEN : SYNC_MSG2_LEN;
        struct sync_keys keys = {};
        const char *reason = NULL;
        int r;

        /* Refuse a wrong version or type as soon as its byte arrives,
         * rather than waiting for a length that may never come. */
        if (check_prefix(p, MIN(avail, want), responder ? MSG_TYPE_1 : MSG_TYPE_2, &reason) < 0)
                return fail(s, ret_reason, reason);
        if (avail < want)
                return 0;

        if (responder) {
                uint8_t msg2[SYNC_MSG2_LEN];

                r = sync_handshake_respond(s->local_private, s->peers, s->n_peers, p, want, msg2, &keys,
                                           &s->peer_index, &reason);
                if (r >= 0) {
                        memcpy(s->remote_public, s->peers[s->peer_index].public_key, SYNC_KEY_LEN);
                        r = buffer_append(&s->out, msg2, sizeof(msg2));
                }
        } else
                r = sync_handshake_finish(&s->hs, p, want, &keys, &reason);
        if (r >= 0) {
                s->in_off += want;
                r = session_establish(s, &keys);
        }
        sodium_memzero(&keys, sizeof(keys));
        if (r == -EBADMSG)
                return fail(s, ret_reason, reason);
        if (r < 0)
                /* The handshake cannot be retried (the initiator state or
                 * the peer's timestamp is spent): the session is dead. */
                s->state = STATE_FAILED;
        return r;
}

int sync_session_next_frame(struct sync_session *s, struct sync_frame *ret, const char **ret_reason) {
        unsigned long long mlen;
        const uint8_t *p;
        size_t avail;
        uint32_t clen;
        uint8_t tag;
        struct sync_frame f;
        const char *reason = NULL;
        int r;

        if (s->state == STATE_FAILED) {
                set_reason(ret_reason, "session already failed");
                return -EBADMSG;
        }
        if (s->state == STATE_AWAIT_MSG1 || s->state == STATE_AWAIT_MSG2) {
                r = session_handshake(s, ret_reason);
                if (r < 0)
                        return r;
                if (s->state != STATE_ESTABLISHED)
                        return 0;
        }

        p = unread(s, &avail);
        if (s->state == STATE_CLOSED) {
                if (avail > 0)
                        return fail(s, ret_reason, "data after close");
                return 0;
        }

        if (!s->rx_started) {
                if (avail < SYNC_STREAM_HEADER_LEN)
                        return 0;
                if (crypto_secretstream_xchacha20poly1305_init_pull(&s->rx, p, s->rx_key) < 0)
                        return fail(s, ret_reason, "invalid stream header");
                sodium_memzero(s->rx_key, sizeof(s->rx_key));
                s->rx_started = true;
                s->in_off += SYNC_STREAM_HEADER_LEN;
                p += SYNC_STREAM_HEADER_LEN;
                avail -= SYNC_STREAM_HEADER_LEN;
        }

        if (avail < 4)
                return 0;
        clen = get_be32(p);
        /* Judge the length before waiting for its bytes: a forged huge
         * length must not make us buffer 4 GiB. */
        if (clen > SYNC_FRAME_MAX + SYNC_FRAME_OVERHEAD)
                return fail(s, ret_reason, "oversize frame length");
        if (clen < 2 + SYNC_FRAME_OVERHEAD)
                return fail(s, ret_reason, "runt frame length");
        if (avail - 4 < clen)
                return 0;

        if (s->plain_alloc < clen) {
                uint8_t *n;

                if (s->plain)
                        sodium_memzero(s->plain, s->plain_alloc);
                free(s->plain);
                s->plain_alloc = 0;
                n = malloc(clen);
                s->plain = n;
                if (!n)
                        return -ENOMEM;
                s->plain_alloc = clen;
        } else
                sodium_memzero(s->plain, s->plain_alloc);

        /* The length prefix is additional data: a cut or grown frame fails
         * authentication, like any tampered, replayed or reordered one. */
        if (crypto_secretstream_xchacha20poly1305_pull(&s->rx, s->plain, &mlen, &tag, p + 4, clen, p, 4) < 0)
                return fail(s, ret_reason, "bad frame tag (tampered, replayed or reordered)");
        s->in_off += 4 + clen;

        r = sync_frame_parse(s->plain, (size_t) mlen, &f, &reason);
        if (r < 0)
                return fail(s, ret_reason, reason);
        if (tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL) {
                if (f.type != SYNC_FRAME_CLOSE)
                        return fail(s, ret_reason, "final stream tag on a frame other than close");
                s->state = STATE_CLOSED;
                sodium_memzero(&s->rx, sizeof(s->rx));
        } else if (tag != crypto_secretstream_xchacha20poly1305_TAG_MESSAGE)
                return fail(s, ret_reason, "unexpected stream tag");
        else if (f.type == SYNC_FRAME_CLOSE)
                return fail(s, ret_reason, "close frame without final stream tag");

        *ret = f;
        return 1;
}

int sync_session_take_output(struct sync_session *s, uint8_t **ret_buf, size_t *ret_len) {
        uint8_t *b;

        if (s->out.len == 0)
                return 0;
        b = malloc(s->out.len);
        if (!b)
                return -ENOMEM;
        memcpy(b, s->out.data, s->out.len);
        *ret_buf = b;
        *ret_len = s->out.len;
        sodium_memzero(s->out.data, s->out.alloc);
        s->out.len = 0;
        return 1;
}

int sync_frame_encode(struct sync_session *s, const struct sync_frame *frame, uint8_t **ret_buf,
                      size_t *ret_len) {
        _cleanup_(freep) uint8_t *buf = NULL;
        uint8_t *plain = NULL;
        size_t plen, clen, pre, total;
        uint8_t tag;

        if (s->state == STATE_AWAIT_MSG1 || s->state == STATE_AWAIT_MSG2)
                return -ENOTCONN;
        if (s->state == STATE_FAILED || s->sent_close)
                return -ESHUTDOWN;
        plen = frame_size(frame);
        if (plen == 0)
                return -EINVAL;
        clen = plen + SYNC_FRAME_OVERHEAD;
        pre = s->out.len;
        total = pre + 4 + clen;

        buf = malloc(total);
        plain = malloc(plen);
        if (!buf || !plain) {
                free(plain);
                return -ENOMEM;
        }
        frame_write(frame, plain);

        tag = frame->type == SYNC_FRAME_CLOSE ? crypto_secretstream_xchacha20poly1305_TAG_FINAL
                                              : crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;
        if (pre > 0)
                memcpy(buf, s->out.data, pre);
        put_be32(buf + pre, (uint32_t) clen);
        crypto_secretstream_xchacha20poly1305_push(&s->tx, buf + pre + 4, NULL, plain, plen, buf + pre, 4, tag);
        sodium_memzero(plain, plen);
        free(plain);

        if (pre > 0) {
                sodium_memzero(s->out.data, s->out.alloc);
                s->out.len = 0;
        }
        if (tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL) {
                s->sent_close = true;
                sodium_memzero(&s->tx, sizeof(s->tx));
        }
        *ret_buf = TAKE_PTR(buf);
        *ret_len = total;
        return 0;
}

int sync_session_end(struct sync_session *s, const char **ret_reason) {
        if (s->state == STATE_CLOSED && s->in.len == s->in_off)
                return 0;
        if (s->state == STATE_FAILED)
                set_reason(ret_reason, "session already failed");
        else if (s->state != STATE_ESTABLISHED && s->state != STATE_CLOSED)
                set_reason(ret_reason, "connection closed during handshake");
        else
                set_reason(ret_reason, "stream truncated (no close frame)");
        return -EBADMSG;
}

bool sync_session_is_established(const struct sync_session *s) {
        return s->state == STATE_ESTABLISHED || s->state == STATE_CLOSED;
}

bool sync_session_is_initiator(const struct sync_session *s) {
        return s->initiator;
}

int sync_session_remote_public(const struct sync_session *s, uint8_t ret_key[static SYNC_KEY_LEN]) {
        if (!s->initiator && !sync_session_is_established(s))
                return -ENOTCONN;
        memcpy(ret_key, s->remote_public, SYNC_KEY_LEN);
        return 0;
}

int sync_session_peer_index(const struct sync_session *s, size_t *ret_index) {
        if (s->peer_index == SIZE_MAX || !sync_session_is_established(s))
                return -ENOTCONN;
        *ret_index = s->peer_index;
        return 0;
}

/* ---- Connection policy and liveness ------------------------------------ */

bool sync_connection_preferred(const uint8_t local_public[static SYNC_KEY_LEN],
                               const uint8_t remote_public[static SYNC_KEY_LEN], bool local_initiated) {
        int c = memcmp(local_public, remote_public, SYNC_KEY_LEN);

        if (c == 0)
                return false;
        return local_initiated == (c < 0);
}

static uint64_t elapsed(uint64_t since, uint64_t now) {
        return now > since ? now - since : 0;
}

static uint64_t add_sat(uint64_t a, uint64_t b) {
        return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

unsigned sync_liveness(uint64_t last_rx, uint64_t last_tx, uint64_t now, uint64_t interval, uint64_t timeout) {
        unsigned mask = 0;

        if (elapsed(last_tx, now) >= interval)
                mask |= SYNC_LIVENESS_SEND_HEARTBEAT;
        if (elapsed(last_rx, now) >= timeout)
                mask |= SYNC_LIVENESS_DEAD;
        return mask;
}

uint64_t sync_liveness_next(uint64_t last_rx, uint64_t last_tx, uint64_t interval, uint64_t timeout) {
        return MIN(add_sat(last_tx, interval), add_sat(last_rx, timeout));
}
