/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Input layout. Byte 0 holds flags:
 *   bit 0   the rest is a whole IPv4 packet for vrrp_ipv4_split()
 *   bit 1   IPv6 (otherwise IPv4), when bit 0 is clear
 *   bit 2-3 TTL: 0 -> -1 (unchecked), 1 and 2 -> 255, 3 -> 254
 *   bit 4   build/parse the struct made from the message bytes in RFC 9568 mode
 *   bit 5-6 before parsing, overwrite the message's checksum with one
 *           computed here: 0 leave it, 1 over the pseudo-header of META,
 *           2 over the message alone, 3 over the IPv4 pseudo-header with
 *           224.0.0.18 as destination (old keepalived's unicast form)
 * Without bit 0: source address, destination address (4 or 16 bytes each),
 * then the VRRP message. A message the parser accepts must rebuild to a
 * message that parses to the same advert; a struct the builder accepts must
 * parse back unchanged.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "vrrp/packet.h"

#define check(x)                 \
        do {                     \
                if (!(x))        \
                        abort(); \
        } while (0)

/* RFC 1071 sum written out here rather than taken from packet.c, so that a
 * mistake there does not cancel out. */
static uint32_t sum16(uint32_t sum, const uint8_t *p, size_t len) {
        for (size_t i = 0; i + 1 < len; i += 2)
                sum += (uint32_t) p[i] << 8 | p[i + 1];
        if (len & 1)
                sum += (uint32_t) p[len - 1] << 8;
        while (sum >> 16)
                sum = (sum & 0xffff) + (sum >> 16);
        return sum;
}

enum fixup {
        FIXUP_NONE,
        FIXUP_PSEUDO,
        FIXUP_MESSAGE,
        FIXUP_PSEUDO_GROUP,
};

/* Rewrite MSG's checksum in the form FORM. Returns whether the parser must
 * accept that form for this message's version and META's family. */
static bool checksum_fixup(uint8_t *msg, size_t len, const struct vrrp_ip_meta *meta, enum fixup form) {
        static const uint8_t group[4] = { 224, 0, 0, 18 };
        size_t alen = ip_family_addr_len(meta->family);
        uint8_t version, tail[8] = {};
        uint32_t sum = 0;

        if (form == FIXUP_NONE || len < VRRP_HEADER_LEN)
                return false;
        if (form == FIXUP_PSEUDO_GROUP && meta->family != AF_INET)
                return false;
        msg[6] = msg[7] = 0;
        if (form != FIXUP_MESSAGE) {
                sum = sum16(sum, meta->src.addr.bytes, alen);
                sum = sum16(sum, form == FIXUP_PSEUDO_GROUP ? group : meta->dst.addr.bytes, alen);
                if (meta->family == AF_INET6) {
                        tail[0] = (uint8_t) (len >> 24);
                        tail[1] = (uint8_t) (len >> 16);
                        tail[2] = (uint8_t) (len >> 8);
                        tail[3] = (uint8_t) len;
                        tail[7] = VRRP_IPPROTO;
                        sum = sum16(sum, tail, 8);
                } else {
                        tail[1] = VRRP_IPPROTO;
                        tail[2] = (uint8_t) (len >> 8);
                        tail[3] = (uint8_t) len;
                        sum = sum16(sum, tail, 4);
                }
        }
        sum = sum16(sum, msg, len);
        msg[6] = (uint8_t) (~sum >> 8);
        msg[7] = (uint8_t) ~sum;

        version = msg[0] >> 4;
        if (version == 2)
                return form == FIXUP_MESSAGE;
        if (meta->family == AF_INET6)
                return form == FIXUP_PSEUDO;
        return true;
}

static bool advert_equal(const struct vrrp_advert *a, const struct vrrp_advert *b) {
        size_t alen = ip_family_addr_len(a->family);

        if (a->version != b->version || a->vrid != b->vrid || a->priority != b->priority ||
            a->auth_type != b->auth_type || memcmp(a->auth_data, b->auth_data, VRRP_V2_AUTH_LEN) != 0 ||
            a->max_adver_int_cs != b->max_adver_int_cs ||
            a->family != b->family || a->n_addrs != b->n_addrs)
                return false;
        for (size_t i = 0; i < a->n_addrs; i++)
                if (memcmp(a->addrs[i].bytes, b->addrs[i].bytes, alen) != 0)
                        return false;
        return true;
}

/* What the builder writes for a field the parser ignores may differ from
 * the input: the checksum (0x0000 and 0xffff are both valid when the sum is
 * zero), v3's reserved bits and v2's authentication data. */
static bool same_wire_fields(const uint8_t *a, const uint8_t *b, size_t len, uint8_t version) {
        size_t end = version == 2 ? len - VRRP_V2_AUTH_LEN : len;

        if (memcmp(a, b, 4) != 0)
                return false;
        if ((version == 2 ? a[4] : a[4] & 0x0f) != (version == 2 ? b[4] : b[4] & 0x0f) || a[5] != b[5])
                return false;
        return memcmp(a + VRRP_HEADER_LEN, b + VRRP_HEADER_LEN, end - VRRP_HEADER_LEN) == 0;
}

static void parse_roundtrip(const uint8_t *msg, size_t len, const struct vrrp_ip_meta *meta,
                            bool checksum_valid) {
        static uint8_t buf[VRRP_MAX_MESSAGE_LEN];
        struct vrrp_advert adv, again;
        const char *reason = NULL;
        int n;

        if (vrrp_advert_parse(msg, len, meta, &adv, &reason) < 0) {
                check(reason);
                check(!checksum_valid || strcmp(reason, "bad checksum") != 0);
                return;
        }
        check(adv.vrid != 0 && adv.n_addrs != 0 && adv.max_adver_int_cs != 0);

        n = vrrp_advert_build(&adv, meta, adv.checksum_mode, buf, sizeof(buf));
        check(n >= 0 && (size_t) n == len);
        check(same_wire_fields(msg, buf, len, adv.version));
        check(vrrp_advert_parse(buf, len, meta, &again, NULL) == 0);
        check(advert_equal(&adv, &again));
        check(adv.checksum_mode == again.checksum_mode);
}

static void build_roundtrip(const uint8_t *p, size_t len, const struct vrrp_ip_meta *meta,
                            enum vrrp_checksum_mode mode) {
        static uint8_t buf[VRRP_MAX_MESSAGE_LEN];
        struct vrrp_advert adv = {}, out;
        struct vrrp_ip_meta any_ttl = *meta;
        size_t alen = ip_family_addr_len(meta->family);
        int n;

        if (len < 7)
                return;
        adv.version = p[0] & 0x07;
        adv.vrid = p[1];
        adv.priority = p[2];
        adv.auth_type = p[3] & 0x03;
        adv.max_adver_int_cs = (uint16_t) (p[4] << 8 | p[5]);
        adv.family = meta->family;
        adv.n_addrs = p[6];
        p += 7;
        len -= 7;
        for (size_t i = 0; i < adv.n_addrs && len > 0; i++) {
                size_t k = len < alen ? len : alen;

                memcpy(adv.addrs[i].bytes, p, k);
                p += k;
                len -= k;
        }

        n = vrrp_advert_build(&adv, meta, mode, buf, sizeof(buf));
        if (n < 0)
                return;
        /* The TTL is the receiver's business, not the message's. */
        any_ttl.ttl = -1;
        check(vrrp_advert_parse(buf, (size_t) n, &any_ttl, &out, NULL) == 0);
        /* auth_type is a v2 field; v3 has no such byte to carry it. */
        if (adv.version == 3)
                adv.auth_type = 0;
        check(advert_equal(&adv, &out));
}

/* The message, copied so its checksum can be rewritten. */
static void fix_and_parse(const uint8_t *msg, size_t len, const struct vrrp_ip_meta *meta, uint8_t flags) {
        static uint8_t copy[1 << 16];
        bool valid;

        if (len > sizeof(copy))
                return;
        memcpy(copy, msg, len);
        valid = checksum_fixup(copy, len, meta, (enum fixup) ((flags >> 5) & 0x03));
        parse_roundtrip(copy, len, meta, valid);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct vrrp_ip_meta meta = {};
        static const int ttls[] = { -1, 255, 255, 254 };
        const uint8_t *payload;
        size_t payload_len, alen;
        const char *reason = NULL;
        uint8_t flags;

        if (size < 1)
                return 0;
        flags = data[0];
        data++;
        size--;

        if (flags & 0x01) {
                if (vrrp_ipv4_split(data, size, &meta, &payload, &payload_len, &reason) < 0) {
                        check(reason);
                        return 0;
                }
                check(meta.family == AF_INET && payload >= data && payload + payload_len <= data + size);
                fix_and_parse(payload, payload_len, &meta, flags);
                return 0;
        }

        meta.family = flags & 0x02 ? AF_INET6 : AF_INET;
        meta.ttl = ttls[(flags >> 2) & 0x03];
        alen = ip_family_addr_len(meta.family);
        if (size < 2 * alen)
                return 0;
        meta.src.family = meta.dst.family = meta.family;
        memcpy(meta.src.addr.bytes, data, alen);
        memcpy(meta.dst.addr.bytes, data + alen, alen);
        data += 2 * alen;
        size -= 2 * alen;

        fix_and_parse(data, size, &meta, flags);
        build_roundtrip(data, size, &meta, flags & 0x10 ? VRRP_CHECKSUM_RFC9568 : VRRP_CHECKSUM_RFC5798);
        return 0;
}
