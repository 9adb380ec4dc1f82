/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * json-c helpers for the control socket's JSON (status, peers). json-c
 * escapes; these only make building a document short: each adder takes
 * the value it was given (freeing it when it cannot be added) and records
 * a failed allocation in *ok, so a document is built through and checked
 * once at the end, as struct buf is. json-c keeps members in insertion
 * order: the documented key order is the order of the adders.
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

static inline void json_object_putp(json_object **o) {
        json_object_put(*o);
}

/* Add V (NULL: allocation failed) to object O as KEY. */
static inline void json_add(json_object *o, const char *key, json_object *v, bool *ok) {
        if (!v || !o || json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                *ok = false;
        }
}

/* KEY: null. */
static inline void json_add_null(json_object *o, const char *key, bool *ok) {
        if (!o || json_object_object_add(o, key, NULL) < 0)
                *ok = false;
}

/* KEY: S as a string, or null when S is NULL. */
static inline void json_add_string(json_object *o, const char *key, const char *s, bool *ok) {
        if (s)
                json_add(o, key, json_object_new_string(s), ok);
        else
                json_add_null(o, key, ok);
}

static inline void json_add_u64(json_object *o, const char *key, uint64_t v, bool *ok) {
        json_add(o, key, json_object_new_uint64(v), ok);
}

static inline void json_add_i64(json_object *o, const char *key, int64_t v, bool *ok) {
        json_add(o, key, json_object_new_int64(v), ok);
}

static inline void json_add_bool(json_object *o, const char *key, bool v, bool *ok) {
        json_add(o, key, json_object_new_boolean(v), ok);
}

/* Append V (NULL: allocation failed) to array A. */
static inline void json_push(json_object *a, json_object *v, bool *ok) {
        if (!v || !a || json_object_array_add(a, v) < 0) {
                json_object_put(v);
                *ok = false;
        }
}

static inline void json_push_string(json_object *a, const char *s, bool *ok) {
        json_push(a, json_object_new_string(s), ok);
}

/* O compact, without escaped slashes, and a newline: a new string, or NULL. */
static inline char *json_render(json_object *o) {
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        size_t n;
        char *r;

        if (!s)
                return NULL;
        n = strlen(s);
        r = malloc(n + 2);
        if (!r)
                return NULL;
        memcpy(r, s, n);
        r[n] = '\n';
        r[n + 1] = '\0';
        return r;
}
