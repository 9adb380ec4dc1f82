/* SPDX-License-Identifier: GPL-2.0-or-later */

#include <limits.h>

#include "common/macro.h"
#include "health/core.h"

static const char *const health_status_table[_HEALTH_STATUS_MAX] = {
        [HEALTH_UNKNOWN] = "unknown",
        [HEALTH_UP]      = "up",
        [HEALTH_DOWN]    = "down",
};

const char *health_status_to_string(enum health_status s) {
        return ENUM_NAME(health_status_table, s);
}

void health_core_init(struct health_core *h, unsigned rise, unsigned fall) {
        *h = (struct health_core) {
                .rise = rise > 0 ? rise : 1,
                .fall = fall > 0 ? fall : 1,
                .status = HEALTH_UNKNOWN,
        };
}

/* A check that stays healthy for years must not wrap back to a short run. */
static void inc_saturating(unsigned *c) {
        if (*c < UINT_MAX)
                (*c)++;
}

bool health_core_update(struct health_core *h, bool ok, uint64_t now) {
        enum health_status next = h->status;

        if (ok) {
                inc_saturating(&h->consecutive_ok);
                h->consecutive_fail = 0;
                if (h->consecutive_ok >= h->rise)
                        next = HEALTH_UP;
        } else {
                inc_saturating(&h->consecutive_fail);
                h->consecutive_ok = 0;
                if (h->consecutive_fail >= h->fall)
                        next = HEALTH_DOWN;
        }

        if (next == h->status)
                return false;

        h->status = next;
        h->last_change_usec = now;
        return true;
}

int health_priority_adjust(int base_priority, const struct health_weight *checks, size_t n) {
        /* 64 bits: each term is at most 2^31 in magnitude, so the sum
         * cannot overflow below 2^32 checks, far beyond any configuration. */
        int64_t p = base_priority;

        if (base_priority == 255)
                return 255;

        for (size_t i = 0; i < n; i++) {
                const struct health_weight *c = &checks[i];

                if ((c->weight > 0 && c->status == HEALTH_UP) ||
                    (c->weight < 0 && c->status == HEALTH_DOWN))
                        p += c->weight;
        }

        if (p < 1)
                return 1;
        if (p > 254)
                return 254;
        return (int) p;
}
