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
#include "import-keepalived.h"
#include "log.h"
#include "sync/sync_proto.h"
#include "wg/key.h"
#include "wireguard.h"

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
                "  peer add IFACE PUBKEY --allowed-ips LIST [--preshared-key-file F] [--keepalive S]\n"
                "  peer remove IFACE PUBKEY\n"
                "            change a replicated WireGuard peer on every node\n"
                "  peers     list the replicated peers (--json)\n"
                "  genkey    print a new sync private key (base64, like wg genkey)\n"
                "  import-keepalived FILE|-\n"
                "            convert keepalived.conf's VRRP parts to a hamgr configuration (stdout)\n"
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

/* A fresh install ships only the example (as documentation, so that
 * installing never starts VRRP on a host): say how to get a configuration
 * rather than only that there is none. */
static void config_missing_hint(const char *command) {
        if (access(arg_config, F_OK) >= 0 || errno != ENOENT)
                return;
        fprintf(stderr,
                "hamgr %s: there is no configuration file at %s. To create one from the annotated example:\n"
                "  install -D -m 0600 %s %s\n"
                "then edit it (node name, interfaces, VRIDs, virtual IPs), validate it with\n"
                "  hamgr check -c %s\n"
                "and start the daemon (systemctl enable --now hamgr). See hamgr(8).\n",
                command, arg_config, HAMGR_EXAMPLE_CONFIG, arg_config, arg_config);
}

static int cmd_check(void) {
        _cleanup_(hamgr_config_freep) struct hamgr_config *config = NULL;
        struct hamgr_config_errors errors = {};
        int r;

        r = hamgr_config_load(arg_config, &config, &errors);
        hamgr_config_errors_print(&errors, arg_config, stderr);
        hamgr_config_errors_clear(&errors);
        if (r < 0) {
                config_missing_hint("check");
                return EXIT_FAILURE;
        }
        /* The host that checks may lack the interfaces: only one that is
         * there and not WireGuard is worth a word. */
        for (size_t i = 0; i < config->n_wireguard; i++) {
                const struct hamgr_wireguard_config *w = &config->wireguard[i];
                char why[512];

                if (wg_interface_verify(w, why, sizeof(why)) == -EMEDIUMTYPE)
                        fprintf(stderr,
                                "%s:%d: warning: %s; hamgr run refuses to start with this wireguard entry "
                                "(it would take the interface down while passive)\n",
                                arg_config, w->line, why);
        }
        /* Warnings do not fail the check: the file loads as it is. */
        if (hamgr_config_warnings(config, &errors) < 0)
                fprintf(stderr, "%s: out of memory while checking for warnings\n", arg_config);
        hamgr_config_errors_print(&errors, arg_config, stderr);
        hamgr_config_errors_clear(&errors);
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
                config_missing_hint("run");
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

static const char *socket_path(struct hamgr_config **config) {
        struct hamgr_config_errors errors = {};
        const char *path = arg_socket;

        if (!path && hamgr_config_load(arg_config, config, &errors) >= 0)
                path = (*config)->control_socket;
        hamgr_config_errors_clear(&errors);
        return path ? path : HAMGR_DEFAULT_CONTROL_SOCKET;
}

static int request(const char *what, const char *line, bool print_reply) {
        _cleanup_(hamgr_config_freep) struct hamgr_config *config = NULL;
        const char *path = socket_path(&config);
        char *reply = NULL;
        int r;

        r = control_request(path, line, &reply);
        if (r < 0) {
                fprintf(stderr, "hamgr %s: cannot reach the daemon at %s: %s\n", what, path, strerror(-r));
                return EXIT_FAILURE;
        }
        r = strncmp(reply, "ERROR", 5) == 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        if (r != EXIT_SUCCESS)
                fprintf(stderr, "hamgr %s: %s", what, reply + (reply[5] == ' ' ? 6 : 5));
        else if (print_reply)
                fputs(reply, stdout);
        free(reply);
        return r;
}

static int cmd_peer(int argc, char **argv) {
        static const struct option options[] = {
                { "allowed-ips", required_argument, NULL, 'a' },
                { "preshared-key-file", required_argument, NULL, 'p' },
                { "keepalive", required_argument, NULL, 'k' },
                { "config", required_argument, NULL, 'c' },
                { "socket", required_argument, NULL, 's' },
                {},
        };
        const char *allowed = NULL, *psk_file = NULL, *keepalive = NULL;
        _cleanup_(freep) char *line = NULL;
        char psk[WG_KEY_B64_LEN + 8] = "";
        int c, r;

        optind = 1;
        while ((c = getopt_long(argc, argv, ":a:p:k:c:s:", options, NULL)) >= 0)
                switch (c) {
                case 'a': allowed = optarg; break;
                case 'p': psk_file = optarg; break;
                case 'k': keepalive = optarg; break;
                case 'c': arg_config = optarg; break;
                case 's': arg_socket = optarg; break;
                default:
                        fprintf(stderr, "hamgr peer: bad option '%s'\n", argv[optind - 1]);
                        usage(stderr);
                        return EXIT_USAGE;
                }
        if (argc - optind != 3 || (!streq(argv[optind], "add") && !streq(argv[optind], "remove"))) {
                fprintf(stderr, "hamgr peer: expected 'add IFACE PUBKEY' or 'remove IFACE PUBKEY'\n");
                usage(stderr);
                return EXIT_USAGE;
        }
        if (streq(argv[optind], "remove")) {
                if (allowed || psk_file || keepalive) {
                        fprintf(stderr, "hamgr peer remove: takes no options besides -c and -s\n");
                        return EXIT_USAGE;
                }
                if (asprintf(&line, "PEER REMOVE %s %s", argv[optind + 1], argv[optind + 2]) < 0)
                        return EXIT_FAILURE;
                return request("peer remove", line, false);
        }
        if (!allowed) {
                fprintf(stderr, "hamgr peer add: --allowed-ips is required\n");
                return EXIT_USAGE;
        }
        if (psk_file) {
                FILE *f = fopen(psk_file, "re");
                size_t n;

                if (!f) {
                        fprintf(stderr, "hamgr peer add: %s: %s\n", psk_file, strerror(errno));
                        return EXIT_FAILURE;
                }
                n = fread(psk, 1, sizeof(psk) - 1, f);
                fclose(f);
                psk[n] = '\0';
                psk[strcspn(psk, "\r\n")] = '\0';
        }
        r = asprintf(&line, "PEER ADD %s %s allowed=%s%s%s%s%s", argv[optind + 1], argv[optind + 2], allowed,
                     keepalive ? " keepalive=" : "", keepalive ? keepalive : "", psk[0] ? " psk=" : "", psk);
        sodium_memzero(psk, sizeof(psk));
        if (r < 0)
                return EXIT_FAILURE;
        r = request("peer add", line, false);
        sodium_memzero(line, strlen(line));
        return r;
}

static int cmd_peers(void) {
        _cleanup_(hamgr_config_freep) struct hamgr_config *config = NULL;
        const char *path = socket_path(&config);
        char *reply = NULL;
        int r;

        if (arg_json)
                return request("peers", "PEERS JSON", true);
        r = control_request(path, "PEERS JSON", &reply);
        if (r < 0) {
                fprintf(stderr, "hamgr peers: cannot reach the daemon at %s: %s\n", path, strerror(-r));
                return EXIT_FAILURE;
        }
        /* Text view without a JSON parser: one peer per line from the
         * daemon's records, fields in a fixed order. */
        printf("%-10s %-44s %-8s %-14s %s\n", "INTERFACE", "PUBLIC KEY", "STATE", "ORIGIN", "ON EVERY NODE");
        for (char *p = strstr(reply, "{\"interface\":\""); p; p = strstr(p + 1, "{\"interface\":\"")) {
                char ifname[64] = "", key[64] = "", origin[64] = "";
                const char *removed = strstr(p, "\"removed\":true") && strstr(p, "\"removed\":true") < strchr(p, '}')
                                              ? "removed" : "live";
                const char *every = strstr(p, "\"on_every_node\":true") && strstr(p, "\"on_every_node\":true") < strchr(p, '}')
                                            ? "yes" : "no";
                char *o;

                sscanf(p, "{\"interface\":\"%63[^\"]\",\"public_key\":\"%63[^\"]\"", ifname, key);
                o = strstr(p, "\"origin\":\"");
                if (o)
                        sscanf(o, "\"origin\":\"%63[^\"]\"", origin);
                printf("%-10s %-44s %-8s %-14s %s\n", ifname, key, removed, origin, every);
        }
        free(reply);
        return EXIT_SUCCESS;
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
        if (streq(command, "peer"))
                return cmd_peer(argc - 1, argv + 1);
        if (streq(command, "import-keepalived"))
                return cmd_import_keepalived(argc - 1, argv + 1);
        if (streq(command, "peers")) {
                if (parse_options(argc - 1, argv + 1, command, "csj") < 0)
                        return EXIT_USAGE;
                return cmd_peers();
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
