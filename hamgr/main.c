/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/macro.h"
#include "config.h"
#include "control.h"
#include "daemon.h"
#include "log.h"
#include "sync_proto.h"
#include "wg/key.h"

#include <sodium.h>

#define EXIT_USAGE 2

static const char *arg_config = HAMGR_DEFAULT_CONFIG;
static const char *arg_socket = NULL;
static bool arg_json = false;
static bool arg_debug = false;

static void usage(FILE *out) {
        fprintf(out,
                "Usage: hamgr COMMAND [OPTIONS]\n"
                "\n"
                "High-availability failover manager for WireGuard gateways (VRRP v2/v3).\n"
                "\n"
                "Commands:\n"
                "  run       run the daemon in the foreground (systemd Type=notify)\n"
                "  check     validate the configuration, print FILE:LINE: message per error\n"
                "  status    show the running daemon's instances\n"
                "  genkey    print a new sync private key (base64, like wg genkey)\n"
                "  pubkey    read a sync private key on stdin, print its public key\n"
                "  version   print the version\n"
                "\n"
                "Options:\n"
                "  -c, --config FILE   configuration file (default %s)\n"
                "  -s, --socket PATH   control socket (default: node.control_socket, else %s)\n"
                "      --json          status as JSON\n"
                "  -d, --debug         log debug messages (run)\n"
                "  -h, --help          show this help\n",
                HAMGR_DEFAULT_CONFIG, HAMGR_DEFAULT_CONTROL_SOCKET);
}

/* Options valid for each command; anything else is a usage error. */
static int parse_options(int argc, char **argv, const char *command, const char *allowed) {
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "socket", required_argument, NULL, 's' },
                { "json", no_argument, NULL, 'j' },
                { "debug", no_argument, NULL, 'd' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int c;

        optind = 1;
        while ((c = getopt_long(argc, argv, ":c:s:dh", options, NULL)) >= 0) {
                if (c == 'h') {
                        usage(stdout);
                        exit(EXIT_SUCCESS);
                }
                if (c == '?' || c == ':') {
                        if (c == ':')
                                fprintf(stderr, "hamgr %s: option '%s' needs an argument\n", command,
                                        argv[optind - 1]);
                        else
                                fprintf(stderr, "hamgr %s: unknown option '%s'\n", command, argv[optind - 1]);
                        usage(stderr);
                        return -EINVAL;
                }
                if (!strchr(allowed, c)) {
                        fprintf(stderr, "hamgr %s: option '%s' does not apply here\n", command, argv[optind - 1]);
                        usage(stderr);
                        return -EINVAL;
                }
                switch (c) {
                case 'c':
                        arg_config = optarg;
                        break;
                case 's':
                        arg_socket = optarg;
                        break;
                case 'j':
                        arg_json = true;
                        break;
                case 'd':
                        arg_debug = true;
                        break;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "hamgr %s: unexpected argument '%s'\n", command, argv[optind]);
                usage(stderr);
                return -EINVAL;
        }
        return 0;
}

static int cmd_check(void) {
        _cleanup_(hamgr_config_freep) struct hamgr_config *config = NULL;
        struct hamgr_config_errors errors = {};
        int r;

        r = hamgr_config_load(arg_config, &config, &errors);
        hamgr_config_errors_print(&errors, arg_config, stderr);
        hamgr_config_errors_clear(&errors);
        if (r < 0)
                return EXIT_FAILURE;
        printf("%s: OK (%zu VRRP instance%s, %zu group%s)\n", arg_config, config->n_vrrp,
               config->n_vrrp == 1 ? "" : "s", config->n_groups, config->n_groups == 1 ? "" : "s");
        return EXIT_SUCCESS;
}

static int cmd_run(void) {
        struct hamgr_daemon *d = NULL;
        int r;

        log_setup(LOG_TARGET_AUTO, arg_debug ? LOG_DEBUG : LOG_INFO);
        r = daemon_new(arg_config, &d);
        if (r < 0) {
                log_error_errno(r, "cannot start: %m");
                return EXIT_FAILURE;
        }
        r = daemon_run(d);
        daemon_free(d);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

static int cmd_status(void) {
        _cleanup_(hamgr_config_freep) struct hamgr_config *config = NULL;
        const char *path = arg_socket;
        char *reply = NULL;
        int r;

        if (!path) {
                struct hamgr_config_errors errors = {};

                /* Follow node.control_socket when the config is readable. */
                if (hamgr_config_load(arg_config, &config, &errors) >= 0)
                        path = config->control_socket;
                hamgr_config_errors_clear(&errors);
        }
        if (!path)
                path = HAMGR_DEFAULT_CONTROL_SOCKET;
        r = control_request(path, arg_json ? "STATUS JSON" : "STATUS", &reply);
        if (r < 0) {
                fprintf(stderr, "hamgr status: cannot reach the daemon at %s: %s\n", path, strerror(-r));
                return EXIT_FAILURE;
        }
        fputs(reply, stdout);
        r = strncmp(reply, "ERROR", 5) == 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        free(reply);
        return r;
}

static int cmd_genkey(void) {
        uint8_t key[WG_KEY_LEN];
        char b64[WG_KEY_B64_LEN];

        if (isatty(STDOUT_FILENO))
                fprintf(stderr, "hamgr genkey: warning: writing a private key to a terminal\n");
        if (wg_key_generate_private(key) < 0) {
                fprintf(stderr, "hamgr genkey: cannot generate a key\n");
                return EXIT_FAILURE;
        }
        wg_key_to_base64(b64, key);
        puts(b64);
        sodium_memzero(key, sizeof(key));
        sodium_memzero(b64, sizeof(b64));
        return fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

static int cmd_pubkey(void) {
        uint8_t key[WG_KEY_LEN], pub[WG_KEY_LEN];
        char text[256], b64[WG_KEY_B64_LEN];
        const char *reason = NULL;
        size_t len;
        int r;

        len = fread(text, 1, sizeof(text) - 1, stdin);
        text[len] = '\0';
        r = sync_key_parse(text, len, key, &reason);
        sodium_memzero(text, sizeof(text));
        if (r < 0) {
                fprintf(stderr, "hamgr pubkey: %s\n", reason ? reason : "not a base64 private key");
                return EXIT_FAILURE;
        }
        r = wg_key_public_from_private(pub, key);
        sodium_memzero(key, sizeof(key));
        if (r < 0) {
                fprintf(stderr, "hamgr pubkey: cannot derive the public key\n");
                return EXIT_FAILURE;
        }
        wg_key_to_base64(b64, pub);
        puts(b64);
        return EXIT_SUCCESS;
}

int main(int argc, char **argv) {
        const char *command;

        if (argc < 2) {
                usage(stderr);
                return EXIT_USAGE;
        }
        command = argv[1];
        if (streq(command, "-h") || streq(command, "--help") || streq(command, "help")) {
                usage(stdout);
                return EXIT_SUCCESS;
        }
        if (streq(command, "version") || streq(command, "--version")) {
                if (parse_options(argc - 1, argv + 1, "version", "") < 0)
                        return EXIT_USAGE;
                printf("hamgr %s\n", HAMGR_VERSION);
                return EXIT_SUCCESS;
        }
        if (streq(command, "genkey") || streq(command, "pubkey")) {
                if (parse_options(argc - 1, argv + 1, command, "") < 0)
                        return EXIT_USAGE;
                return streq(command, "genkey") ? cmd_genkey() : cmd_pubkey();
        }
        if (streq(command, "run")) {
                if (parse_options(argc - 1, argv + 1, command, "cd") < 0)
                        return EXIT_USAGE;
                return cmd_run();
        }
        if (streq(command, "check")) {
                if (parse_options(argc - 1, argv + 1, command, "c") < 0)
                        return EXIT_USAGE;
                return cmd_check();
        }
        if (streq(command, "status")) {
                if (parse_options(argc - 1, argv + 1, command, "csj") < 0)
                        return EXIT_USAGE;
                return cmd_status();
        }
        fprintf(stderr, "hamgr: unknown command '%s'\n", command);
        usage(stderr);
        return EXIT_USAGE;
}
