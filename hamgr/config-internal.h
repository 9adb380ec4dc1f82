/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Shared by the parts of the config loader (config.c: node, vrrp, groups,
 * notify and the loading itself; config-wg.c: checks, track_checks,
 * wireguard, endpoints). Not installed, not used outside hamgr_config.
 */

#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/macro.h"
#include "hamgr/config.h"

#define NAME_LEN_MAX 32

/* One load: where errors go. */
struct loader {
        struct hamgr_config_errors *errors; /* may be NULL: only count */
        size_t n_errors;
        bool oom;
};

/* Record an error at LINE (0: none). Never fails: running out of memory
 * is remembered in l->oom and reported by the load as -ENOMEM. */
_printf_(3, 4)
void error_at(struct loader *l, int line, const char *fmt, ...);

/* The line of the file setting S starts on. */
static inline int line_of(const config_setting_t *s) {
        return (int) config_setting_source_line(s);
}

/* 1 to NAME_LEN_MAX characters of A-Z a-z 0-9 _ . -: a name that needs
 * no quoting in notify arguments, environment variables and status. */
bool name_is_valid(const char *s);

/* KEY is one of the NULL-terminated KEYS. */
bool key_is_known(const char *key, const char *const *keys);

/* Record each member of GROUP not in KEYS; WHERE completes "unknown setting
 * 'x' ...", e.g. "in node". */
void check_keys(struct loader *l, const config_setting_t *group, const char *const *keys, const char *where);

/*
 * Getters of one setting KEY of GROUP. They return 1 when it is present and
 * valid, 0 when it is absent (*ret untouched) and -EINVAL after recording
 * why it is invalid. Strings point into libconfig's storage: copy them
 * before config_destroy(). *ret_setting, when not NULL, gets the setting
 * (for its line).
 */
int get_uint(struct loader *l, config_setting_t *group, const char *key, uint32_t min, uint32_t max,
             uint32_t *ret);
int get_int(struct loader *l, config_setting_t *group, const char *key, int min, int max, int *ret);
int get_bool(struct loader *l, config_setting_t *group, const char *key, bool *ret);
int get_string(struct loader *l, config_setting_t *group, const char *key, const char **ret,
               config_setting_t **ret_setting);

/* Replace *ret (freed) with a copy of S. Returns 0 or -ENOMEM (*ret untouched). */
int strdup_to(const char *s, char **ret);

/* The "interface" setting of GRP, required ("missing required setting
 * 'interface' WHERE"); copied to *ret when it is a valid name. Returns 0,
 * also after recording an error, or -ENOMEM. */
int parse_ifname(struct loader *l, config_setting_t *grp, const char *where, char **ret);

/* Returned by a list_spec's parse to leave the element out of the array. */
#define LIST_DROP 1

/* How parse_list() reads one list setting. */
struct list_spec {
        const char *key;
        /* A list of groups ( { ... }, ... ) when NOUN is set: NOT_LIST is the
         * whole error when KEY is no list, and an element that is no group
         * gets "NOUN #2 must be a group SHAPE" (SHAPE NULL: "{ ... }").
         * NOUN NULL: a list of strings, [ "a" ] or ( "a" ). */
        const char *not_list;
        const char *noun;
        const char *shape;
        /* Absent: "missing required setting 'KEY' WHERE" at the parent. */
        bool required;
        /* Optional, once the length N is known and before anything is
         * allocated: checks it (recording why it is wrong) or prepares
         * per-element state in USERDATA. 1: go on, 0: stop, < 0: fail.
         * Without it an empty list is simply empty. */
        int (*count)(struct loader *l, config_setting_t *list, int n, void *userdata);
        /* Element E, at position IDX of the list, into ITEM (zeroed; the
         * array and its count include only the elements before it). 0 keeps
         * ITEM; LIST_DROP leaves it out and must leave ITEM untouched; < 0
         * fails the load, with ITEM kept so what it holds is freed with the
         * config. */
        int (*parse)(struct loader *l, config_setting_t *e, int idx, void *item, void *userdata);
};

/*
 * The list SPEC->key of PARENT, parsed element by element into a new array
 * *ITEMS of elements of SIZE bytes (at most one per list element), *N_ITEMS
 * counting those kept. A list that is absent, malformed or empty leaves both
 * untouched. Returns 0, also after recording errors, or a negative errno
 * from allocating or from SPEC's functions. Use PARSE_LIST().
 */
int parse_list(struct loader *l, config_setting_t *parent, const struct list_spec *spec, const char *where,
               void *userdata, void **items, size_t size, size_t *n_items);

/* parse_list() into ARRAY (a pointer, NULL so far) and its count N. */
#define PARSE_LIST(l, parent, spec, where, userdata, array, n) \
        parse_list((l), (parent), (spec), (where), (userdata), (void **) &(array), sizeof(*(array)), &(n))

/* The sections of config-wg.c. Each returns 0, also after recording errors,
 * or a negative errno. Checks come before the instances tracking them,
 * instances and groups before wireguard. */
int parse_checks(struct loader *l, config_setting_t *root, struct hamgr_config *c);
int parse_wireguard(struct loader *l, config_setting_t *root, struct hamgr_config *c);
int parse_endpoints(struct loader *l, config_setting_t *root, struct hamgr_config *c);

/* config-sync.c: the sync section (after wireguard, which it replicates). */
int parse_sync(struct loader *l, config_setting_t *root, struct hamgr_config *c);
void free_sync(struct hamgr_sync_config *sc);

/* "track_checks" of instance INST (named WHAT in messages) into V; every
 * name must be one of C's checks. */
int parse_track_checks(struct loader *l, config_setting_t *inst, const char *what, const struct hamgr_config *c,
                       struct hamgr_vrrp_config *v);

/* config-routes.c: "virtual_routes" of instance INST (named WHAT in
 * messages) into V, and the checks across all instances of C (after the
 * vrrp section: one route may belong to one instance only). */
int parse_virtual_routes(struct loader *l, config_setting_t *inst, const char *what, struct hamgr_vrrp_config *v);
void check_virtual_routes(struct loader *l, const struct hamgr_config *c);
void free_virtual_routes(struct hamgr_vrrp_config *v);

/* 1 to IFNAMSIZ-1 characters, none of '/', ':' or whitespace, not "." or "..". */
bool ifname_is_valid(const char *s);

/* Why P cannot be a virtual IP (unspecified, multicast, loopback, IPv4
 * link-local or broadcast, the network or broadcast address of its prefix),
 * as words to follow "is", or NULL when it can. For hamgr import-keepalived,
 * which leaves such addresses out rather than write a file check refuses. */
const char *hamgr_vip_unusable(const struct ip_prefix *p);
/* The same for a unicast peer's address. */
const char *hamgr_peer_unusable(const struct ip_address *a);
