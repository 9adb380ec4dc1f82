/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>

#include "parse.h"

int parse_u64_decimal(const char *s, uint64_t max, uint64_t *ret) {
        uint64_t v = 0;

        if (*s == '\0')
                return -EINVAL;
        for (; *s; s++) {
                unsigned d;

                if (*s < '0' || *s > '9')
                        return -EINVAL;
                d = (unsigned) (*s - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -EINVAL;
                v = v * 10 + d;
        }
        if (v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}
