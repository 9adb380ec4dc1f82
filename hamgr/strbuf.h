/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* A growable string for the text status replies; on allocation failure it
 * sticks in the failed state, so callers check once at the end. JSON is
 * built with json-c (json-util.h), never by hand. */

#include <stdbool.h>
#include <stddef.h>

#include "common/macro.h"

struct buf {
        char *s;
        size_t len, cap;
        bool failed;
};

void buf_printf(struct buf *b, const char *fmt, ...) _printf_(2, 3);
