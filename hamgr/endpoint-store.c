/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "common/parse.h"
#include "endpoint-store.h"

#define FIELDS_MAX 6

/* Split LINE (NUL-terminated, modified) at spaces and tabs. Returns the
 * number of fields, FIELDS_MAX + 1 when there are more. */
static size_t split(char *line, char *fields[static FIELDS_MAX]) {
        size_t n = 0;
        char *p = line;

        for (;;) {
                while (*p == ' ' || *p == '\t')
                        p++;
                if (!*p)
                        return n;
                if (n == FIELDS_MAX)
                        return FIELDS_MAX + 1;
                fields[n++] = p;
                while (*p && *p != ' ' && *p != '\t')
                        p++;
                if (*p)
                        *p++ = '\0';
        }
}

static int parse_record(char *line, bool v1, struct endpoint_record *ret, const char **ret_reason) {
        char *f[FIELDS_MAX];
        struct endpoint_record rec = {};
        uint64_t keepalive;
        size_t n = split(line, f);

        if (v1 ? n != 3 : n != 4 && n != 5) {
                *ret_reason = v1 ? "expected 3 fields" : "expected 4 or 5 fields";
                return -EBADMSG;
        }
        if (wg_key_from_base64(rec.public_key, f[0]) < 0) {
                *ret_reason = "not a public key";
                return -EBADMSG;
        }
        if (wg_endpoint_parse(f[1], &rec.endpoint) < 0) {
                *ret_reason = "not a numeric endpoint";
                return -EBADMSG;
        }
        if (parse_u64_decimal(f[2], UINT16_MAX, &keepalive) < 0) {
                *ret_reason = "keepalive not a number of 0..65535";
                return -EBADMSG;
        }
        rec.keepalive = (uint16_t) keepalive;
        if (n >= 4 && parse_u64_decimal(f[3], UINT64_MAX, &rec.learned_ms) < 0) {
                *ret_reason = "learned time not a 64-bit number";
                return -EBADMSG;
        }
        if (n == 5 && parse_u64_decimal(f[4], UINT64_MAX, &rec.handshake_ms) < 0) {
                *ret_reason = "handshake time not a 64-bit number";
                return -EBADMSG;
        }
        *ret = rec;
        return 0;
}

int endpoint_store_parse(const uint8_t *buf, size_t len, struct endpoint_record **ret, size_t *ret_n,
                         unsigned *ret_line, const char **ret_reason) {
        _cleanup_(freep) struct endpoint_record *recs = NULL;
        const char *reason = NULL;
        size_t n = 0, cap = 0, pos = 0;
        unsigned lineno = 0;
        bool v1 = false;
        int r = 0;

        if (!buf && len > 0)
                return -EINVAL;
        if (!ret || !ret_n)
                return -EINVAL;
        if (len == 0) {
                lineno = 1;
                reason = "empty file";
                r = -EBADMSG;
                goto out;
        }
        while (pos < len) {
                char line[ENDPOINT_STORE_LINE_MAX + 1];
                const uint8_t *nl = memchr(buf + pos, '\n', len - pos);
                size_t l = nl ? (size_t) (nl - (buf + pos)) : len - pos;

                lineno++;
                if (l + 1 > ENDPOINT_STORE_LINE_MAX) {
                        reason = "line too long";
                        r = -EBADMSG;
                        goto out;
                }
                if (memchr(buf + pos, '\0', l)) {
                        reason = "NUL byte";
                        r = -EBADMSG;
                        goto out;
                }
                memcpy(line, buf + pos, l);
                line[l] = '\0';
                pos += l + (nl ? 1 : 0);
                if (lineno == 1) {
                        v1 = streq(line, ENDPOINT_STORE_MAGIC_V1);
                        if (!v1 && !streq(line, ENDPOINT_STORE_MAGIC)) {
                                reason = "not an endpoint store (no magic line)";
                                r = -EBADMSG;
                                goto out;
                        }
                        continue;
                }
                if (n == cap) {
                        size_t want = cap ? cap * 2 : 64;
                        struct endpoint_record *g = reallocarray(recs, want, sizeof(*recs));

                        if (!g) {
                                r = -ENOMEM;
                                goto out;
                        }
                        recs = g;
                        cap = want;
                }
                r = parse_record(line, v1, &recs[n], &reason);
                if (r < 0)
                        goto out;
                n++;
        }
        *ret = n ? TAKE_PTR(recs) : NULL;
        *ret_n = n;
        return 0;
out:
        if (r == -EBADMSG) {
                if (ret_line)
                        *ret_line = lineno;
                if (ret_reason)
                        *ret_reason = reason;
        }
        return r;
}

int endpoint_store_format(const struct endpoint_record *recs, size_t n, char **ret, size_t *ret_len) {
        char *text = NULL;
        size_t len = 0;
        FILE *out;
        int r = 0;

        if ((!recs && n > 0) || !ret || !ret_len)
                return -EINVAL;
        out = open_memstream(&text, &len);
        if (!out)
                return -ENOMEM;
        fprintf(out, "%s\n", ENDPOINT_STORE_MAGIC);
        for (size_t i = 0; i < n; i++) {
                char key[WG_KEY_B64_LEN], ep[64];

                wg_key_to_base64(key, recs[i].public_key);
                fprintf(out, "%s %s %u %" PRIu64 " %" PRIu64 "\n", key,
                        wg_endpoint_to_string(&recs[i].endpoint, ep, sizeof(ep)), recs[i].keepalive,
                        recs[i].learned_ms, recs[i].handshake_ms);
        }
        if (ferror(out))
                r = -ENOMEM;
        if (fclose(out) != 0 && r == 0)
                r = -ENOMEM;
        if (r < 0) {
                free(text);
                return r;
        }
        *ret = text;
        *ret_len = len;
        return 0;
}
