/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "common/macro.h"
#include "packet.h"

#define IPV4_MIN_HEADER_LEN 20

/* The v3 IPv4 multicast group. Old keepalived put it in the pseudo-header even
 * when it sent unicast, so a receiver that wants to talk to it must try it. */
#define VRRP_MCAST_GROUP_V4 0xe0000012u

static const char *const checksum_mode_names[_VRRP_CHECKSUM_MAX] = {
        [VRRP_CHECKSUM_RFC5798] = "rfc5798",
        [VRRP_CHECKSUM_RFC9568] = "rfc9568",
};

const char *vrrp_checksum_mode_to_string(enum vrrp_checksum_mode m) {
        return ENUM_NAME(checksum_mode_names, m);
}

int vrrp_checksum_mode_from_string(const char *s) {
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(checksum_mode_names); i++)
                if (streq(s, checksum_mode_names[i]))
                        return (int) i;
        return -EINVAL;
}

/* Folds after every call so that a caller can chain any number of chunks
 * without the 32-bit accumulator overflowing. Only the last chunk may have an
 * odd length: an odd byte is padded as the high half of a final word. */
uint32_t inet_checksum_add(uint32_t sum, const void *data, size_t len) {
        const uint8_t *p = data;
        uint64_t acc = sum;

        for (; len >= 2; p += 2, len -= 2)
                acc += (uint32_t) p[0] << 8 | p[1];
        if (len > 0)
                acc += (uint32_t) p[0] << 8;
        while (acc >> 16)
                acc = (acc & 0xffff) + (acc >> 16);
        return (uint32_t) acc;
}

uint16_t inet_checksum_finish(uint32_t sum) {
        while (sum >> 16)
                sum = (sum & 0xffff) + (sum >> 16);
        return (uint16_t) ~sum;
}

/* Sum of the pseudo-header that precedes the VRRP message in the checksum:
 * RFC 768 style for IPv4 (as keepalived and FRR send v3), RFC 8200 8.1 for
 * IPv6. Addresses are read from the unions as raw bytes in network order. */
static uint32_t pseudo_header_sum(int family, const union in_addr_union *src,
                                  const union in_addr_union *dst, size_t vrrp_len) {
        size_t alen = ip_family_addr_len(family);
        uint8_t tail[8] = {};
        uint32_t sum = 0;

        sum = inet_checksum_add(sum, src->bytes, alen);
        sum = inet_checksum_add(sum, dst->bytes, alen);
        if (family == AF_INET) {
                /* zero, protocol, 16-bit length */
                tail[1] = VRRP_IPPROTO;
                tail[2] = (uint8_t) (vrrp_len >> 8);
                tail[3] = (uint8_t) vrrp_len;
                return inet_checksum_add(sum, tail, 4);
        }
        /* 32-bit length, three zero bytes, next header */
        tail[2] = (uint8_t) (vrrp_len >> 8);
        tail[3] = (uint8_t) vrrp_len;
        tail[7] = VRRP_IPPROTO;
        return inet_checksum_add(sum, tail, 8);
}

static bool checksum_ok(uint32_t pseudo, const uint8_t *buf, size_t len) {
        return inet_checksum_finish(inet_checksum_add(pseudo, buf, len)) == 0;
}

/* Finds the checksum form BUF carries, trying the forms peers are known to
 * send. Returns 0 and the mode, or -EBADMSG. */
static int checksum_verify(uint8_t version, const uint8_t *buf, size_t len,
                           const struct vrrp_ip_meta *meta, enum vrrp_checksum_mode *ret_mode) {
        union in_addr_union group = {};

        /* v2 never had a pseudo-header; IPv6 v3 always has one, and both RFCs
         * agree on it, so it is reported under the current one. RFC5798 is
         * reported only when an IPv4 pseudo-header was needed to match. */
        if (version == 2) {
                if (!checksum_ok(0, buf, len))
                        return -EBADMSG;
                *ret_mode = VRRP_CHECKSUM_RFC9568;
                return 0;
        }
        if (meta->family == AF_INET6) {
                if (!checksum_ok(pseudo_header_sum(AF_INET6, &meta->src.addr, &meta->dst.addr, len),
                                 buf, len))
                        return -EBADMSG;
                *ret_mode = VRRP_CHECKSUM_RFC9568;
                return 0;
        }

        /* Deployed peers overwhelmingly use the pseudo-header form, so try it first. */
        if (checksum_ok(pseudo_header_sum(AF_INET, &meta->src.addr, &meta->dst.addr, len), buf, len)) {
                *ret_mode = VRRP_CHECKSUM_RFC5798;
                return 0;
        }
        if (checksum_ok(0, buf, len)) {
                *ret_mode = VRRP_CHECKSUM_RFC9568;
                return 0;
        }
        group.in.s_addr = htonl(VRRP_MCAST_GROUP_V4);
        if (memcmp(meta->dst.addr.bytes, group.bytes, 4) != 0 &&
            checksum_ok(pseudo_header_sum(AF_INET, &meta->src.addr, &group, len), buf, len)) {
                *ret_mode = VRRP_CHECKSUM_RFC5798;
                return 0;
        }
        return -EBADMSG;
}

static const char *const parse_error_names[_VRRP_PARSE_ERROR_MAX] = {
        [VRRP_PARSE_TRUNCATED] = "truncated header",
        [VRRP_PARSE_FAMILY] = "unknown address family",
        [VRRP_PARSE_VERSION] = "bad version",
        [VRRP_PARSE_V2_OVER_IPV6] = "v2 over IPv6",
        [VRRP_PARSE_TYPE] = "bad type",
        [VRRP_PARSE_TTL] = "ttl is not 255",
        [VRRP_PARSE_VRID] = "vrid 0",
        [VRRP_PARSE_ZERO_ADDRESSES] = "zero address count",
        [VRRP_PARSE_LENGTH] = "address count does not match length",
        [VRRP_PARSE_CHECKSUM] = "bad checksum",
        [VRRP_PARSE_AUTH_TYPE] = "unsupported authentication type",
        [VRRP_PARSE_ZERO_INTERVAL] = "zero advertisement interval",
};

const char *vrrp_parse_error_to_string(enum vrrp_parse_error e) {
        return ENUM_NAME(parse_error_names, e);
}

static int fail(const char **ret_reason, const char *reason) {
        if (ret_reason)
                *ret_reason = reason;
        return -EBADMSG;
}

static int reject(enum vrrp_parse_error *ret_error, enum vrrp_parse_error e) {
        if (ret_error)
                *ret_error = e;
        return -EBADMSG;
}

int vrrp_advert_parse(const uint8_t *buf, size_t len, const struct vrrp_ip_meta *meta,
                      struct vrrp_advert *ret, const char **ret_reason) {
        enum vrrp_parse_error e;
        int r;

        r = vrrp_advert_check(buf, len, meta, ret, &e);
        if (r < 0)
                return fail(ret_reason, vrrp_parse_error_to_string(e));
        return 0;
}

int vrrp_advert_check(const uint8_t *buf, size_t len, const struct vrrp_ip_meta *meta,
                      struct vrrp_advert *ret, enum vrrp_parse_error *ret_error) {
        struct vrrp_advert adv = {};
        size_t alen, expected;
        uint8_t version, type;

        if (!buf || len < VRRP_HEADER_LEN)
                return reject(ret_error, VRRP_PARSE_TRUNCATED);
        if (!meta || (meta->family != AF_INET && meta->family != AF_INET6))
                return reject(ret_error, VRRP_PARSE_FAMILY);

        version = buf[0] >> 4;
        type = buf[0] & 0x0f;
        if (version != 2 && version != 3)
                return reject(ret_error, VRRP_PARSE_VERSION);
        if (version == 2 && meta->family == AF_INET6)
                return reject(ret_error, VRRP_PARSE_V2_OVER_IPV6);
        if (type != VRRP_TYPE_ADVERTISEMENT)
                return reject(ret_error, VRRP_PARSE_TYPE);
        /* A lower TTL means the message crossed a router and could come
         * from anywhere (RFC 9568 7.1). */
        if (meta->ttl >= 0 && meta->ttl != VRRP_TTL)
                return reject(ret_error, VRRP_PARSE_TTL);
        if (buf[1] == 0)
                return reject(ret_error, VRRP_PARSE_VRID);
        /* RFC 9568 5.2.5 (erratum 8299): such a message must be ignored. */
        if (buf[3] == 0)
                return reject(ret_error, VRRP_PARSE_ZERO_ADDRESSES);

        alen = ip_family_addr_len(meta->family);
        expected = VRRP_HEADER_LEN + (size_t) buf[3] * alen + (version == 2 ? VRRP_V2_AUTH_LEN : 0);
        if (len != expected)
                return reject(ret_error, VRRP_PARSE_LENGTH);

        if (checksum_verify(version, buf, len, meta, &adv.checksum_mode) < 0)
                return reject(ret_error, VRRP_PARSE_CHECKSUM);

        adv.version = version;
        adv.vrid = buf[1];
        adv.priority = buf[2];
        adv.n_addrs = buf[3];
        adv.family = meta->family;
        if (version == 2) {
                /* Type 2 (IP AH) was removed from RFC 3768 and needs an IPsec
                 * layer we do not have; RFC 3768 7.1 says to discard what we
                 * cannot authenticate. Type 1 is parsed: whether its password
                 * is the right one depends on the configuration. */
                if (buf[4] != VRRP_AUTH_NONE && buf[4] != VRRP_AUTH_SIMPLE)
                        return reject(ret_error, VRRP_PARSE_AUTH_TYPE);
                if (buf[5] == 0)
                        return reject(ret_error, VRRP_PARSE_ZERO_INTERVAL);
                adv.auth_type = buf[4];
                adv.max_adver_int_cs = (uint16_t) (buf[5] * 100);
                if (adv.auth_type == VRRP_AUTH_SIMPLE)
                        memcpy(adv.auth_data, buf + len - VRRP_V2_AUTH_LEN, VRRP_V2_AUTH_LEN);
        } else {
                /* The 4 reserved bits are ignored on receipt (RFC 9568 5.2.6). */
                adv.max_adver_int_cs = (uint16_t) ((buf[4] & 0x0f) << 8 | buf[5]);
                if (adv.max_adver_int_cs == 0)
                        return reject(ret_error, VRRP_PARSE_ZERO_INTERVAL);
        }
        for (size_t i = 0; i < adv.n_addrs; i++)
                memcpy(adv.addrs[i].bytes, buf + VRRP_HEADER_LEN + i * alen, alen);

        *ret = adv;
        return 0;
}

int vrrp_advert_build(const struct vrrp_advert *adv, const struct vrrp_ip_meta *meta,
                      enum vrrp_checksum_mode mode, uint8_t *buf, size_t bufsize) {
        bool pseudo;
        size_t alen, len;
        uint32_t sum = 0;
        uint16_t ck;

        if (!adv || (adv->version != 2 && adv->version != 3) || adv->vrid == 0 || adv->n_addrs == 0 ||
            (unsigned) mode >= _VRRP_CHECKSUM_MAX)
                return -EINVAL;
        if (adv->family != AF_INET && adv->family != AF_INET6)
                return -EINVAL;
        if (adv->version == 2) {
                if (adv->family != AF_INET ||
                    (adv->auth_type != VRRP_AUTH_NONE && adv->auth_type != VRRP_AUTH_SIMPLE) ||
                    adv->max_adver_int_cs == 0 || adv->max_adver_int_cs % 100 != 0 ||
                    adv->max_adver_int_cs / 100 > UINT8_MAX)
                        return -EINVAL;
        } else if (adv->max_adver_int_cs == 0 || adv->max_adver_int_cs > VRRP_V3_MAX_INTERVAL_CS)
                return -EINVAL;

        pseudo = adv->version == 3 && (adv->family == AF_INET6 || mode == VRRP_CHECKSUM_RFC5798);
        if (pseudo && (!meta || meta->family != adv->family ||
                       meta->src.family != adv->family || meta->dst.family != adv->family))
                return -EINVAL;

        alen = ip_family_addr_len(adv->family);
        len = VRRP_HEADER_LEN + (size_t) adv->n_addrs * alen + (adv->version == 2 ? VRRP_V2_AUTH_LEN : 0);
        if (!buf || bufsize < len)
                return -ENOBUFS;

        memset(buf, 0, len);
        buf[0] = (uint8_t) (adv->version << 4 | VRRP_TYPE_ADVERTISEMENT);
        buf[1] = adv->vrid;
        buf[2] = adv->priority;
        buf[3] = adv->n_addrs;
        if (adv->version == 2) {
                buf[4] = adv->auth_type;
                buf[5] = (uint8_t) (adv->max_adver_int_cs / 100);
                if (adv->auth_type == VRRP_AUTH_SIMPLE)
                        memcpy(buf + len - VRRP_V2_AUTH_LEN, adv->auth_data, VRRP_V2_AUTH_LEN);
        } else {
                buf[4] = (uint8_t) (adv->max_adver_int_cs >> 8);
                buf[5] = (uint8_t) adv->max_adver_int_cs;
        }
        for (size_t i = 0; i < adv->n_addrs; i++)
                memcpy(buf + VRRP_HEADER_LEN + i * alen, adv->addrs[i].bytes, alen);

        if (pseudo)
                sum = pseudo_header_sum(adv->family, &meta->src.addr, &meta->dst.addr, len);
        ck = inet_checksum_finish(inet_checksum_add(sum, buf, len));
        buf[6] = (uint8_t) (ck >> 8);
        buf[7] = (uint8_t) ck;
        return (int) len;
}

int vrrp_ipv4_split(const uint8_t *buf, size_t len, struct vrrp_ip_meta *ret_meta,
                    const uint8_t **ret_payload, size_t *ret_payload_len, const char **ret_reason) {
        struct vrrp_ip_meta meta = {};
        size_t hlen, total;

        if (!buf || len < IPV4_MIN_HEADER_LEN)
                return fail(ret_reason, "truncated IPv4 header");
        if (buf[0] >> 4 != 4)
                return fail(ret_reason, "not IPv4");
        hlen = (size_t) (buf[0] & 0x0f) * 4;
        if (hlen < IPV4_MIN_HEADER_LEN)
                return fail(ret_reason, "IPv4 header length below 20");
        if (hlen > len)
                return fail(ret_reason, "truncated IPv4 options");
        total = (size_t) buf[2] << 8 | buf[3];
        if (total < hlen)
                return fail(ret_reason, "IPv4 total length below header length");
        /* Longer buffers happen with link-layer padding; the IP length rules. */
        if (total > len)
                return fail(ret_reason, "truncated IPv4 packet");
        if (buf[9] != VRRP_IPPROTO)
                return fail(ret_reason, "protocol is not VRRP");

        meta.family = AF_INET;
        meta.ttl = buf[8];
        meta.src.family = AF_INET;
        memcpy(&meta.src.addr.in, buf + 12, 4);
        meta.dst.family = AF_INET;
        memcpy(&meta.dst.addr.in, buf + 16, 4);

        *ret_meta = meta;
        *ret_payload = buf + hlen;
        *ret_payload_len = total - hlen;
        return 0;
}
