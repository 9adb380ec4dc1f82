/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <inttypes.h>
#include <stdio.h>

#include "ratelimit.h"

bool ratelimit_below(struct ratelimit *rl, uint64_t now, uint64_t *ret_suppressed) {
        /* A clock that went back counts as inside the window, so that it
         * cannot open the gate on every event. */
        if (rl->started && (now < rl->last || now - rl->last < rl->interval_usec)) {
                rl->suppressed++;
                return false;
        }
        if (ret_suppressed)
                *ret_suppressed = rl->suppressed;
        rl->suppressed = 0;
        rl->last = now;
        rl->started = true;
        return true;
}

bool ratelimit_log(struct ratelimit *rl, uint64_t now, char *more, size_t len) {
        uint64_t suppressed = 0;

        if (!ratelimit_below(rl, now, &suppressed))
                return false;
        if (suppressed > 0)
                snprintf(more, len, " (%" PRIu64 " more since the last line)", suppressed);
        else
                more[0] = '\0';
        return true;
}
