/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "config.h"
#include "import-keepalived.h"

/* keepalived.conf and its includes are small; anything this big is a mistake. */
#define IMPORT_MAX_FILE (16u << 20)

static int read_stream(FILE *f, char **ret_buf, size_t *ret_len) {
        char *buf = NULL;
        size_t len = 0, cap = 0;

        for (;;) {
                size_t n;

                if (len == cap) {
                        char *p;

                        if (cap >= IMPORT_MAX_FILE) {
                                free(buf);
                                return -EFBIG;
                        }
                        cap = cap ? cap * 2 : 65536;
                        p = realloc(buf, cap + 1);
                        if (!p) {
                                free(buf);
                                return -ENOMEM;
                        }
                        buf = p;
                }
                n = fread(buf + len, 1, cap - len, f);
                len += n;
                if (n == 0) {
                        if (ferror(f)) {
                                free(buf);
                                return -EIO;
                        }
                        break;
                }
        }
        if (!buf && !(buf = malloc(1)))
                return -ENOMEM;
        buf[len] = '\0';
        *ret_buf = buf;
        *ret_len = len;
        return 0;
}

static int read_path(const char *path, char **ret_buf, size_t *ret_len) {
        FILE *f = fopen(path, "re");
        int r;

        if (!f)
                return -errno;
        r = read_stream(f, ret_buf, ret_len);
        fclose(f);
        return r;
}

/* keepalived resolves a relative include against the including file's
 * directory; one level is good enough for the files seen in practice. */
static int include_file(const char *path, char **ret_buf, size_t *ret_len, void *userdata) {
        const char *dir = userdata;
        _cleanup_(freep) char *full = NULL;

        if (path[0] == '/' || !dir)
                return read_path(path, ret_buf, ret_len);
        if (asprintf(&full, "%s/%s", dir, path) < 0)
                return -ENOMEM;
        return read_path(full, ret_buf, ret_len);
}

int cmd_import_keepalived(int argc, char **argv) {
        struct hamgr_config_errors errors = {};
        struct hamgr_config *config = NULL;
        _cleanup_(freep) char *buf = NULL, *text = NULL, *dir = NULL;
        const char *path, *reason = NULL;
        size_t len = 0;
        int line = 0, r;

        if (argc != 2 || (argv[1][0] == '-' && argv[1][1] != '\0')) {
                fprintf(stderr, "Usage: hamgr import-keepalived FILE|-\n"
                                "Convert keepalived.conf's VRRP parts into a hamgr configuration on standard output.\n");
                return argc == 2 && (streq(argv[1], "-h") || streq(argv[1], "--help")) ? EXIT_SUCCESS : 2;
        }
        path = argv[1];
        if (streq(path, "-"))
                r = read_stream(stdin, &buf, &len);
        else {
                _cleanup_(freep) char *copy = strdup(path);

                if (!copy)
                        return EXIT_FAILURE;
                dir = strdup(dirname(copy));
                if (!dir)
                        return EXIT_FAILURE;
                r = read_path(path, &buf, &len);
        }
        if (r < 0) {
                fprintf(stderr, "hamgr import-keepalived: %s: %s\n", streq(path, "-") ? "standard input" : path,
                        strerror(-r));
                return EXIT_FAILURE;
        }
        r = keepalived_import(buf, len, streq(path, "-") ? "standard input" : path,
                              streq(path, "-") ? NULL : include_file, dir, &text, &line, &reason);
        if (r == -EBADMSG) {
                fprintf(stderr, "%s:%d: %s\n", streq(path, "-") ? "-" : path, line, reason);
                return EXIT_FAILURE;
        }
        if (r < 0) {
                fprintf(stderr, "hamgr import-keepalived: %s\n", strerror(-r));
                return EXIT_FAILURE;
        }
        fputs(text, stdout);
        if (fflush(stdout) != 0)
                return EXIT_FAILURE;

        /* The converter means its output to load; say so loudly when not. */
        r = hamgr_config_load_string(text, "output", &config, &errors);
        if (r < 0) {
                fprintf(stderr, "hamgr import-keepalived: the converted configuration does not pass hamgr check "
                                "(please report this):\n");
                hamgr_config_errors_print(&errors, "output", stderr);
        }
        hamgr_config_errors_clear(&errors);
        hamgr_config_free(config);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
