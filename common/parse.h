/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

#include <stdint.h>

/* S as a decimal number of at most MAX: digits only (no sign, no space,
 * no base prefix), at least one. Returns 0 and *ret, or -EINVAL (empty,
 * another character, above MAX or past 64 bits) leaving *ret untouched. */
int parse_u64_decimal(const char *s, uint64_t max, uint64_t *ret);
