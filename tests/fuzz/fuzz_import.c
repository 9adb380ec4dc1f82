/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hamgr/config.h"
#include "hamgr/import-keepalived.h"
#include "hamgr/keepalived-parse.h"

/* libconfig's scanner leaks on some malformed input (see fuzz_config.c);
 * the converter's output is meant to be well-formed, but a bug there must
 * show as the failed load below, not as libconfig's leak. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
        return "leak:strbuf_append\n"
               "leak:libconfig_yylex\n";
}

/* Any input: the reader and the converter neither crash nor leak, they
 * fail only with -EBADMSG and a reason, and what the converter writes is a
 * configuration hamgr loads (its promise to hamgr check). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct hamgr_config_errors errors = {};
        struct hamgr_config *c = NULL;
        struct kconf_stmt *tree = NULL;
        const char *reason = NULL;
        char *text = NULL;
        int line = -1, r;

        r = kconf_parse((const char *) data, size, &tree, &line, &reason);
        if (r < 0) {
                if (r != -EBADMSG || !reason || line < 0)
                        abort();
        } else
                kconf_free(tree);

        r = keepalived_import((const char *) data, size, "fuzz", NULL, NULL, &text, &line, &reason);
        if (r < 0) {
                if (r != -EBADMSG || !reason)
                        abort();
                return 0;
        }
        if (hamgr_config_load_string(text, "fuzz", &c, &errors) < 0) {
                fputs(text, stderr);
                hamgr_config_errors_print(&errors, "fuzz", stderr);
                abort();
        }
        hamgr_config_errors_clear(&errors);
        hamgr_config_free(c);
        free(text);
        return 0;
}
