/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "common/macro.h"

static const char *const health_check_type_names[_HEALTH_CHECK_TYPE_MAX] = {
        [HEALTH_CHECK_WIREGUARD] = "wireguard",
        [HEALTH_CHECK_LINK] = "link",
        [HEALTH_CHECK_ICMP] = "icmp",
        [HEALTH_CHECK_TCP] = "tcp",
        [HEALTH_CHECK_EXEC] = "exec",
};

const char *health_check_type_to_string(enum health_check_type t) {
        return ENUM_NAME(health_check_type_names, t);
}

int health_check_type_from_string(const char *s) {
        for (size_t i = 0; s && i < ELEMENTSOF(health_check_type_names); i++)
                if (streq(health_check_type_names[i], s))
                        return (int) i;
        return -EINVAL;
}
