/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * A reader for keepalived.conf's syntax, for hamgr import-keepalived: words
 * separated by blanks, one statement per line, a statement may open a block
 * "{ ... }" holding more statements, "!" and "#" start a comment, and double
 * quotes make one word of text with blanks. Only the syntax: what a keyword
 * means is the converter's business (import-keepalived.h). Pure: bytes in,
 * tree out, no files (an "include" is a statement like any other).
 */

#include <stdbool.h>
#include <stddef.h>

struct kconf_stmt {
        int line;                       /* 1-based line of the first word */
        char **words;                   /* n_words >= 1, unquoted */
        size_t n_words;
        bool has_block;                 /* followed by "{ ... }" */
        struct kconf_stmt *children;    /* the block's statements */
        size_t n_children;
        size_t allocated;               /* the parser's: room in children[] */
};

/* Blocks nest at most this deep; keepalived's own grammar needs four. */
#define KCONF_MAX_DEPTH 16

/*
 * Parse BUF (LEN bytes, need not be NUL-terminated; a NUL byte is an error)
 * into a root statement whose children are the top-level statements.
 * Returns 0 and *ret (free with kconf_free()), or -EBADMSG with *ret_line and
 * *ret_reason set (an unterminated quote, an unbalanced brace, a block
 * without a name, nesting too deep), or -ENOMEM. ret_line and ret_reason may
 * be NULL; outputs are untouched on failure.
 */
int kconf_parse(const char *buf, size_t len, struct kconf_stmt **ret, int *ret_line, const char **ret_reason);

/* Frees a tree from kconf_parse(); NULL is fine. Returns NULL. */
struct kconf_stmt *kconf_free(struct kconf_stmt *root);
