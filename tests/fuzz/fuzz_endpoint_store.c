/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The endpoint store's parser on arbitrary bytes. A store it accepts is
 * written back in the current format and must parse to the same records:
 * nothing is lost or invented between the file and the takeover. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hamgr/endpoint-store.h"

#define check(x)                 \
        do {                     \
                if (!(x))        \
                        abort(); \
        } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct endpoint_record *recs = NULL, *again = NULL;
        size_t n = 0, n2 = 0, len = 0;
        unsigned line = 0;
        const char *why = NULL;
        char *text = NULL;
        int r;

        r = endpoint_store_parse(data, size, &recs, &n, &line, &why);
        if (r < 0) {
                check(r == -EBADMSG || r == -ENOMEM);
                check(r != -EBADMSG || (why && line >= 1));
                return 0;
        }
        check(endpoint_store_format(recs, n, &text, &len) == 0);
        check(endpoint_store_parse((const uint8_t *) text, len, &again, &n2, NULL, NULL) == 0);
        check(n2 == n);
        for (size_t i = 0; i < n; i++) {
                char a[64], b[64];

                check(memcmp(recs[i].public_key, again[i].public_key, WG_KEY_LEN) == 0);
                check(strcmp(wg_endpoint_to_string(&recs[i].endpoint, a, sizeof(a)),
                             wg_endpoint_to_string(&again[i].endpoint, b, sizeof(b))) == 0);
                check(recs[i].keepalive == again[i].keepalive);
                check(recs[i].learned_ms == again[i].learned_ms);
                check(recs[i].handshake_ms == again[i].handshake_ms);
        }
        free(text);
        free(recs);
        free(again);
        return 0;
}
