/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * hamgr import-keepalived: the VRRP parts of a keepalived.conf as a hamgr
 * configuration. Pure apart from the include callback: text in, text out.
 * Whatever has no hamgr equivalent becomes a "# import-keepalived: ..."
 * comment saying what and why, at the place it would have gone.
 */

#include <stddef.h>

/*
 * Reads the file an "include" names, for keepalived_import(). PATH is as
 * written (the callback resolves it, e.g. against the including file's
 * directory; globs are the callback's business too). Returns 0 with a
 * malloc()ed buffer in *ret_buf and its length in *ret_len, or a negative
 * errno, which makes the include a comment.
 */
typedef int (*keepalived_include_fn)(const char *path, char **ret_buf, size_t *ret_len, void *userdata);

/*
 * Convert the keepalived configuration BUF (LEN bytes). SOURCE names it in
 * the header comment. INCLUDE may be NULL: includes then become comments, as
 * do included files that cannot be read or parsed. Returns 0 and a
 * NUL-terminated malloc()ed text in *ret_text, or -EBADMSG when BUF is not
 * keepalived syntax, with *ret_line and *ret_reason set, or -ENOMEM.
 * ret_line and ret_reason may be NULL; outputs are untouched on failure.
 *
 * The text is meant to pass "hamgr check": instances that lack what hamgr
 * requires (an interface, a vrid, a virtual IP) or clash with an earlier one
 * are commented out whole, and values out of hamgr's ranges are commented
 * out with the reason.
 */
int keepalived_import(const char *buf, size_t len, const char *source, keepalived_include_fn include,
                      void *userdata, char **ret_text, int *ret_line, const char **ret_reason);

/* The command line "hamgr import-keepalived FILE|-" (ARGV[0] is the command
 * name): converts, writes to standard output and verifies that the result
 * loads. Returns the exit status. */
int cmd_import_keepalived(int argc, char **argv);
