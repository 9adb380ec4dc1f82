/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/macro.h"
#include "config.h"
#include "control.h"
#include "daemon.h"
#include "json-util.h"
#include "import-keepalived.h"
#include "log.h"
#include "sync-file.h"
#include "sync/sync_proto.h"
#include "wg/key.h"
#include "wireguard.h"

#include <sodium.h>

#define EXIT_USAGE 2
/* status: the daemon did not answer (Nagios' UNKNOWN, systemctl's "not running"). */
#define EXIT_UNREACHABLE 3

static const char *arg_config = HAMGR_DEFAULT_CONFIG;
static const char *arg_socket = NULL;
static bool arg_json = false;
static bool arg_debug = false;
/* peer add */
static const char *arg_allowed_ips = NULL;
static const char *arg_psk_file = NULL;
static const char *arg_keepalive = NULL;

/* Every option of every command: options go before or after the command.
 * A command's row in `verbs` lists the letters it accepts. */
static const struct option options[] = {
        { "config", required_argument, NULL, 'c' },
        { "socket", required_argument, NULL, 's' },
        { "json", no_argument, NULL, 'j' },
        { "debug", no_argument, NULL, 'd' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { "allowed-ips", required_argument, NULL, 'a' },
        { "preshared-key-file", required_argument, NULL, 'p' },
        { "keepalive", required_argument, NULL, 'k' },
        {},
};

struct verb {
        const char *name;
        const char *synopsis;        /* what follows "hamgr NAME" in the usage line */
        const char *summary;         /* one line, for the command list */
        const char *help;            /* `hamgr help NAME`: the details; NULL = the summary says it all */
        const char *letters;         /* options accepted (of `options`) */
        unsigned min_args, max_args; /* operands after the command */
        int (*run)(char **args, unsigned n);
};

static const struct verb *find_verb(const char *name);

static void short_usage(const struct verb *v) {
        if (v)
                fprintf(stderr, "Usage: hamgr %s%s%s\nRun 'hamgr help %s' for details.\n", v->name,
                        v->synopsis[0] ? " " : "", v->synopsis, v->name);
        else
                fprintf(stderr, "Usage: hamgr [OPTIONS] COMMAND [ARGS]\nRun 'hamgr help' for the commands.\n");
}

/* A fresh install ships only the example (as documentation, so that
 * installing never starts VRRP on a host): say how to get a configuration
 * rather than only that there is none. */
static void config_missing_hint(const char *command) {
        if (streq(arg_config, "-") || access(arg_config, F_OK) >= 0 || errno != ENOENT)
                return;
        fprintf(stderr,
                "hamgr %s: there is no configuration file at %s. To create one from the annotated example:\n"
                "  install -D -m 0600 %s %s\n"
                "then edit it (node name, interfaces, VRIDs, virtual IPs), validate it with\n"
                "  hamgr check -c %s\n"
                "and start the daemon (systemctl enable --now hamgr). See hamgr(8).\n",
                command, arg_config, HAMGR_EXAMPLE_CONFIG, arg_config, arg_config);
}

/* How the configuration is named in messages. */
static const char *config_name(void) {
        return streq(arg_config, "-") ? "<stdin>" : arg_config;
}

/* What `run` would refuse beyond the file itself: the sync key. */
static bool check_sync_key(const struct hamgr_config *config) {
        const struct hamgr_sync_config *sc = &config->sync;
        uint8_t key[SYNC_KEY_LEN];
        const char *reason = NULL;
        int r;

        if (!sc->enabled || !sc->private_key_file)
                return true;
        r = sync_key_load(sc->private_key_file, key, &reason);
        sodium_memzero(key, sizeof(key));
        if (r >= 0)
                return true;
        fprintf(stderr, "%s:%d: private_key_file %s: %s", config_name(), sc->private_key_file_line,
                sc->private_key_file, reason ?: "cannot be used");
        if (r != -EPERM && r != -EBADMSG)
                fprintf(stderr, ": %s", strerror(-r));
        if (r == -ENOENT)
                fprintf(stderr, " (create it: umask 077; hamgr genkey > %s)", sc->private_key_file);
        fputc('\n', stderr);
        return false;
}

static int cmd_check(char **args, unsigned n) {
        _cleanup_(hamgr_config_freep) struct hamgr_config *config = NULL;
        struct hamgr_config_errors errors = {};
        bool ok;
        int r;

        r = hamgr_config_load(arg_config, &config, &errors);
        hamgr_config_errors_print(&errors, config_name(), stderr);
        hamgr_config_errors_clear(&errors);
        if (r < 0) {
                config_missing_hint("check");
                return EXIT_FAILURE;
        }
        ok = check_sync_key(config);
        /* The host that checks may lack the interfaces: only one that is
         * there and not WireGuard is worth a word. */
        for (size_t i = 0; i < config->n_wireguard; i++) {
                const struct hamgr_wireguard_config *w = &config->wireguard[i];
                char why[512];

                if (wg_interface_verify(w, why, sizeof(why)) == -EMEDIUMTYPE)
                        fprintf(stderr,
                                "%s:%d: warning: %s; hamgr run refuses to start with this wireguard entry "
                                "(it would take the interface down while passive)\n",
                                config_name(), w->line, why);
        }
        /* Warnings do not fail the check: the file loads as it is. */
        if (hamgr_config_warnings(config, &errors) < 0)
                fprintf(stderr, "%s: out of memory while checking for warnings\n", config_name());
        hamgr_config_errors_print(&errors, config_name(), stderr);
        hamgr_config_errors_clear(&errors);
        if (!ok)
                return EXIT_FAILURE;
        printf("%s: OK (%zu VRRP instance%s, %zu group%s)\n", config_name(), config->n_vrrp,
               config->n_vrrp == 1 ? "" : "s", config->n_groups, config->n_groups == 1 ? "" : "s");
        return EXIT_SUCCESS;
}

static int cmd_run(char **args, unsigned n) {
        struct hamgr_daemon *d = NULL;
        int r;

        log_setup(LOG_TARGET_AUTO, arg_debug ? LOG_DEBUG : LOG_INFO);
        /* The worker threads (device reads, takeover batches) would each
         * get a heap of their own, where what a read of 50,000 peers
         * allocated stays resident after the loop frees it; with one heap,
         * malloc_trim() gives it back. They allocate little else. */
        (void) mallopt(M_ARENA_MAX, 1);
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

/* -s, else node.control_socket when the config is readable, else the default. */
static const char *socket_path(struct hamgr_config **config) {
        struct hamgr_config_errors errors = {};
        const char *path = arg_socket;

        if (!path && hamgr_config_load(arg_config, config, &errors) >= 0)
                path = (*config)->control_socket;
        hamgr_config_errors_clear(&errors);
        return path ? path : HAMGR_DEFAULT_CONTROL_SOCKET;
}

/* With --json a failure is also an object on stdout, {"error", "socket",
 * "reason"}, so that a probe piping to jq still reads JSON. */
static void json_failure(const char *error, const char *path, const char *reason) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_(freep) char *text = NULL;
        bool ok = true;

        if (!arg_json)
                return;
        o = json_object_new_object();
        json_add_string(o, "error", error, &ok);
        json_add_string(o, "socket", path, &ok);
        json_add_string(o, "reason", reason, &ok);
        text = ok ? json_render(o) : NULL;
        if (text)
                fputs(text, stdout);
}

/* The daemon did not answer at PATH. */
static int unreachable(const char *what, const char *path, int error) {
        fprintf(stderr, "hamgr %s: cannot reach the daemon at %s: %s\n", what, path, strerror(error));
        json_failure("daemon unreachable", path, strerror(error));
        return EXIT_UNREACHABLE;
}

/* The daemon answered REPLY, "ERROR reason\n", or not a reply at all. */
static int refused(const char *what, const char *path, const char *reply) {
        _cleanup_(freep) char *reason = NULL;

        if (strncmp(reply, "ERROR", 5) == 0)
                reply += reply[5] == ' ' ? 6 : 5;
        reason = strndup(reply, strcspn(reply, "\n"));
        fprintf(stderr, "hamgr %s: %s\n", what, reason ?: reply);
        json_failure("daemon error", path, reason ?: "");
        return EXIT_FAILURE;
}

/* Names of the instances in FAULT in a STATUS JSON reply, comma separated
 * into BUF (cut to fit). Returns 1 when there are any, 0 when none,
 * -EBADMSG when the reply is not the status object. */
static int faulted_instances(const char *reply, char *buf, size_t len) {
        _cleanup_(json_object_putp) json_object *root = json_tokener_parse(reply);
        json_object *instances;
        bool any = false;
        size_t used = 0;

        buf[0] = '\0';
        if (!root || !json_object_object_get_ex(root, "instances", &instances) ||
            !json_object_is_type(instances, json_type_array))
                return -EBADMSG;
        for (size_t i = 0; i < json_object_array_length(instances); i++) {
                json_object *inst = json_object_array_get_idx(instances, i), *state, *name;

                if (!json_object_object_get_ex(inst, "state", &state) ||
                    !streq(json_object_get_string(state) ?: "", "FAULT"))
                        continue;
                if (!json_object_object_get_ex(inst, "name", &name))
                        continue;
                if (used < len)
                        used += (size_t) snprintf(buf + used, len - used, "%s%s", any ? ", " : "",
                                                  json_object_get_string(name));
                any = true;
        }
        return any;
}

static int cmd_status(char **args, unsigned n) {
        _cleanup_(hamgr_config_freep) struct hamgr_config *config = NULL;
        _cleanup_(freep) char *reply = NULL, *text = NULL;
        const char *path = socket_path(&config);
        char faulted[256];
        int r, fault;

        /* The JSON view decides the exit status, whichever view is shown. */
        r = control_request(path, "STATUS JSON", &reply);
        if (r < 0)
                return unreachable("status", path, -r);
        if (strncmp(reply, "ERROR", 5) == 0)
                return refused("status", path, reply);
        fault = faulted_instances(reply, faulted, sizeof(faulted));
        if (fault < 0)
                return refused("status", path, "the daemon's reply is not a status object");
        if (arg_json)
                fputs(reply, stdout);
        else {
                r = control_request(path, "STATUS", &text);
                if (r < 0)
                        return unreachable("status", path, -r);
                fputs(text, stdout);
        }
        if (fault > 0) {
                fprintf(stderr, "hamgr status: in FAULT: %s\n", faulted);
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}

static int request(const char *what, const char *line, bool print_reply) {
        _cleanup_(hamgr_config_freep) struct hamgr_config *config = NULL;
        const char *path = socket_path(&config);
        char *reply = NULL;
        int r;

        r = control_request(path, line, &reply);
        if (r < 0)
                return unreachable(what, path, -r);
        if (strncmp(reply, "ERROR", 5) == 0)
                r = refused(what, path, reply);
        else {
                if (print_reply)
                        fputs(reply, stdout);
                r = EXIT_SUCCESS;
        }
        free(reply);
        return r;
}

static int cmd_peer(char **args, unsigned n) {
        _cleanup_(freep) char *line = NULL;
        char psk[WG_KEY_B64_LEN + 8] = "";
        int r;

        if (!streq(args[0], "add") && !streq(args[0], "remove")) {
                fprintf(stderr, "hamgr peer: expected 'add IFACE PUBKEY' or 'remove IFACE PUBKEY', not '%s'\n",
                        args[0]);
                short_usage(find_verb("peer"));
                return EXIT_USAGE;
        }
        if (streq(args[0], "remove")) {
                if (arg_allowed_ips || arg_psk_file || arg_keepalive) {
                        fprintf(stderr, "hamgr peer remove: takes no options besides -c and -s\n");
                        short_usage(find_verb("peer"));
                        return EXIT_USAGE;
                }
                if (asprintf(&line, "PEER REMOVE %s %s", args[1], args[2]) < 0)
                        return EXIT_FAILURE;
                return request("peer remove", line, false);
        }
        if (!arg_allowed_ips) {
                fprintf(stderr, "hamgr peer add: --allowed-ips is required\n");
                short_usage(find_verb("peer"));
                return EXIT_USAGE;
        }
        if (arg_psk_file) {
                FILE *f = fopen(arg_psk_file, "re");
                size_t len;

                if (!f) {
                        fprintf(stderr, "hamgr peer add: %s: %s\n", arg_psk_file, strerror(errno));
                        return EXIT_FAILURE;
                }
                len = fread(psk, 1, sizeof(psk) - 1, f);
                fclose(f);
                psk[len] = '\0';
                psk[strcspn(psk, "\r\n")] = '\0';
        }
        r = asprintf(&line, "PEER ADD %s %s allowed=%s%s%s%s%s", args[1], args[2], arg_allowed_ips,
                     arg_keepalive ? " keepalive=" : "", arg_keepalive ?: "", psk[0] ? " psk=" : "", psk);
        sodium_memzero(psk, sizeof(psk));
        if (r < 0)
                return EXIT_FAILURE;
        r = request("peer add", line, false);
        sodium_memzero(line, strlen(line));
        return r;
}

static const char *json_string_member(json_object *o, const char *key) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return "";
        return json_object_get_string(v);
}

static bool json_bool_member(json_object *o, const char *key) {
        json_object *v;

        return json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

static int cmd_peers(char **args, unsigned n) {
        _cleanup_(hamgr_config_freep) struct hamgr_config *config = NULL;
        _cleanup_(json_object_putp) json_object *root = NULL;
        _cleanup_(freep) char *reply = NULL;
        const char *path = socket_path(&config);
        int r;

        if (arg_json)
                return request("peers", "PEERS JSON", true);
        r = control_request(path, "PEERS JSON", &reply);
        if (r < 0)
                return unreachable("peers", path, -r);
        if (strncmp(reply, "ERROR", 5) == 0)
                return refused("peers", path, reply);
        root = json_tokener_parse(reply);
        if (!root || !json_object_is_type(root, json_type_array))
                return refused("peers", path, "the daemon's reply is not a peer list");
        printf("%-10s %-44s %-8s %-14s %s\n", "INTERFACE", "PUBLIC KEY", "STATE", "ORIGIN", "ON EVERY NODE");
        for (size_t i = 0; i < json_object_array_length(root); i++) {
                json_object *p = json_object_array_get_idx(root, i);

                printf("%-10s %-44s %-8s %-14s %s\n", json_string_member(p, "interface"),
                       json_string_member(p, "public_key"), json_bool_member(p, "removed") ? "removed" : "live",
                       json_string_member(p, "origin"), json_bool_member(p, "on_every_node") ? "yes" : "no");
        }
        return EXIT_SUCCESS;
}

static int cmd_genkey(char **args, unsigned n) {
        uint8_t key[WG_KEY_LEN];
        char b64[WG_KEY_B64_LEN];
        struct stat st;

        if (isatty(STDOUT_FILENO))
                fprintf(stderr, "hamgr genkey: warning: writing a private key to a terminal\n");
        /* The key loader refuses such a file; better to hear it now. */
        else if (fstat(STDOUT_FILENO, &st) >= 0 && S_ISREG(st.st_mode) && (st.st_mode & 077))
                fprintf(stderr,
                        "hamgr genkey: warning: the output file is accessible by group or others (mode %04o), "
                        "and hamgr run refuses such a key file: chmod 600 it, or create it under umask 077\n",
                        (unsigned) (st.st_mode & 07777));
        if (wg_key_generate_private(key) < 0) {
                fprintf(stderr, "hamgr genkey: cannot generate a key\n");
                return EXIT_FAILURE;
        }
        wg_key_to_base64(b64, key);
        puts(b64);
        sodium_memzero(key, sizeof(key));
        sodium_memzero(b64, sizeof(b64));
        return EXIT_SUCCESS;
}

static int cmd_pubkey(char **args, unsigned n) {
        uint8_t key[WG_KEY_LEN], pub[WG_KEY_LEN];
        char text[256], b64[WG_KEY_B64_LEN];
        const char *reason = NULL;
        size_t len;
        int r;

        len = fread(text, 1, sizeof(text) - 1, stdin);
        text[len] = '\0';
        /* A key saved on Windows or pasted from one: CRLF ends the line too. */
        if (len >= 2 && text[len - 2] == '\r' && text[len - 1] == '\n') {
                text[len - 2] = '\n';
                len--;
        }
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

static int cmd_version(char **args, unsigned n) {
        printf("hamgr %s\n", HAMGR_VERSION);
        return EXIT_SUCCESS;
}

static int cmd_help(char **args, unsigned n);

/* To add a command: a row here (kept in the order of `hamgr help`), and
 * its options, if new, in `options` and in the switch of main(). */
static int cmd_import(char **args, unsigned n) {
        char *argv[] = { (char *) "import-keepalived", args[0], NULL };

        return cmd_import_keepalived(2, argv);
}

static const struct verb verbs[] = {
        { "run", "[-c FILE] [-d]", "run the daemon in the foreground (systemd Type=notify)",
          "Loads the configuration, refusing to start on any error `hamgr check` reports,\n"
          "and runs until SIGTERM. SIGHUP reloads the configuration.\n",
          "cd", 0, 0, cmd_run },
        { "check", "[-c FILE]", "validate the configuration (as ExecStartPre=)",
          "Prints every problem as FILE:LINE: message on stderr, warnings as\n"
          "FILE:LINE: warning: message. Also checks the sync key file (present, one key,\n"
          "mode 0600, owned by root). -c - reads the configuration from standard input.\n"
          "Exit status 0 when `hamgr run` would accept the configuration (warnings\n"
          "included), 1 otherwise.\n",
          "c", 0, 0, cmd_check },
        { "status", "[-c FILE] [-s PATH] [--json]", "show the running daemon's instances",
          "Exit status: 0 every instance is fine, 1 an instance is in FAULT (named on\n"
          "stderr) or the daemon answered with an error, 3 the daemon is unreachable\n"
          "(with --json, an object {\"error\", \"socket\", \"reason\"} on stdout).\n",
          "csj", 0, 0, cmd_status },
        { "peer", "add|remove IFACE PUBKEY [--allowed-ips LIST] [--preshared-key-file F] [--keepalive S]",
          "change a replicated WireGuard peer on every node",
          "add needs --allowed-ips (comma separated); remove takes no peer options.\n"
          "Exit status 1 when the daemon refuses the change, 3 when it is unreachable.\n",
          "csapk", 3, 3, cmd_peer },
        { "peers", "[-c FILE] [-s PATH] [--json]", "list the replicated peers",
          "Exit status 3 when the daemon is unreachable (with --json, an error object\n"
          "on stdout, as for status).\n",
          "csj", 0, 0, cmd_peers },
        { "genkey", "", "print a new sync private key (base64, like wg genkey)",
          "Warns on stderr when standard output is a terminal or a file that group or\n"
          "others can read (hamgr run refuses such a key file).\n",
          "", 0, 0, cmd_genkey },
        { "import-keepalived", "FILE|-", "convert keepalived.conf's VRRP parts to a hamgr configuration (stdout)",
          "Each construct that has no hamgr equivalent becomes a comment saying why; the\n"
          "output is loaded as `hamgr check` would before it is printed. - reads standard\n"
          "input. Exit status 1 when the file cannot be read or converted.\n",
          "", 1, 1, cmd_import },
        { "pubkey", "", "read a sync private key on stdin, print its public key", NULL, "", 0, 0, cmd_pubkey },
        { "version", "", "print the version (also --version)", NULL, "", 0, 0, cmd_version },
        { "help", "[COMMAND]", "show this help, or a command's", NULL, "", 0, 1, cmd_help },
};

static const struct verb *find_verb(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(verbs[i].name, name))
                        return &verbs[i];
        return NULL;
}

static void usage(FILE *out) {
        fprintf(out,
                "Usage: hamgr [OPTIONS] COMMAND [ARGS]\n"
                "\n"
                "High-availability failover manager for WireGuard gateways (VRRP v2/v3).\n"
                "\n"
                "Commands:\n");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                fprintf(out, "  %-9s %s\n", verbs[i].name, verbs[i].summary);
        fprintf(out,
                "\n"
                "Options (before or after the command):\n"
                "  -c, --config FILE   configuration file (default %s; - for stdin with check)\n"
                "  -s, --socket PATH   control socket (default: node.control_socket, else %s)\n"
                "      --json          JSON output (status, peers)\n"
                "  -d, --debug         log debug messages (run)\n"
                "  -h, --help          show this help (hamgr help COMMAND: a command's)\n"
                "  -V, --version       print the version\n"
                "\n"
                "See hamgr(8) and hamgr.conf(5).\n",
                HAMGR_DEFAULT_CONFIG, HAMGR_DEFAULT_CONTROL_SOCKET);
}

static int cmd_help(char **args, unsigned n) {
        const struct verb *v;

        if (n == 0) {
                usage(stdout);
                return EXIT_SUCCESS;
        }
        v = find_verb(args[0]);
        if (!v) {
                fprintf(stderr, "hamgr help: unknown command '%s'\n", args[0]);
                short_usage(NULL);
                return EXIT_USAGE;
        }
        printf("Usage: hamgr %s%s%s\n\n%s.\n", v->name, v->synopsis[0] ? " " : "", v->synopsis, v->summary);
        if (v->help)
                printf("\n%s", v->help);
        printf("\nSee hamgr(8).\n");
        return EXIT_SUCCESS;
}

/* A failed write to stdout (a full disk, a closed pipe) is a failed
 * command: a key that was not written must not look generated. */
static int close_stdout(int ret) {
        if (fflush(stdout) != 0 || ferror(stdout)) {
                fprintf(stderr, "hamgr: cannot write to standard output: %s\n", strerror(errno ?: EIO));
                return ret == EXIT_SUCCESS ? EXIT_FAILURE : ret;
        }
        return ret;
}

/* The command of a command line getopt stopped in: the first word naming
 * one (an option's argument rarely does), for its usage line. */
static const struct verb *guess_verb(int argc, char **argv) {
        for (int i = 1; i < argc; i++) {
                const struct verb *v = find_verb(argv[i]);

                if (v)
                        return v;
        }
        return NULL;
}

static int dispatch(int argc, char **argv) {
        const struct verb *v;
        bool help = false, version = false;
        char used[16] = "";
        int c;

        /* Options anywhere: getopt_long permutes the operands to the end. */
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":c:s:dhVa:p:k:", options, NULL)) >= 0) {
                switch (c) {
                case 'c': arg_config = optarg; break;
                case 's': arg_socket = optarg; break;
                case 'j': arg_json = true; break;
                case 'd': arg_debug = true; break;
                case 'h': help = true; break;
                case 'V': version = true; break;
                case 'a': arg_allowed_ips = optarg; break;
                case 'p': arg_psk_file = optarg; break;
                case 'k': arg_keepalive = optarg; break;
                case ':':
                        fprintf(stderr, "hamgr: option '%s' needs an argument\n", argv[optind - 1]);
                        short_usage(guess_verb(argc, argv));
                        return EXIT_USAGE;
                default:
                        fprintf(stderr, "hamgr: unknown option '%s'\n", argv[optind - 1]);
                        short_usage(guess_verb(argc, argv));
                        return EXIT_USAGE;
                }
                if (c != 'h' && c != 'V' && !strchr(used, c) && strlen(used) < sizeof(used) - 1)
                        used[strlen(used)] = (char) c;
        }
        if (optind >= argc) {
                if (help) {
                        usage(stdout);
                        return EXIT_SUCCESS;
                }
                if (version)
                        return cmd_version(NULL, 0);
                fprintf(stderr, "hamgr: no command given\n");
                short_usage(NULL);
                return EXIT_USAGE;
        }
        v = find_verb(argv[optind]);
        if (!v) {
                fprintf(stderr, "hamgr: unknown command '%s'\n", argv[optind]);
                short_usage(NULL);
                return EXIT_USAGE;
        }
        if (help)
                return cmd_help(&argv[optind], 1);
        if (version)
                return cmd_version(NULL, 0);
        for (const char *u = used; *u; u++)
                if (!strchr(v->letters, *u)) {
                        const struct option *o = options;

                        while (o->name && o->val != *u)
                                o++;
                        fprintf(stderr, "hamgr %s: option '--%s' does not apply here\n", v->name, o->name);
                        short_usage(v);
                        return EXIT_USAGE;
                }
        optind++;
        if ((unsigned) (argc - optind) < v->min_args || (unsigned) (argc - optind) > v->max_args) {
                if (argc - optind > 0 && v->max_args == 0)
                        fprintf(stderr, "hamgr %s: unexpected argument '%s'\n", v->name, argv[optind]);
                else
                        fprintf(stderr, "hamgr %s: wrong number of arguments\n", v->name);
                short_usage(v);
                return EXIT_USAGE;
        }
        /* Standard input is read once: a daemon could not reload it. */
        if (streq(arg_config, "-") && v->run != cmd_check) {
                fprintf(stderr, "hamgr %s: -c - (standard input) is for hamgr check only\n", v->name);
                short_usage(v);
                return EXIT_USAGE;
        }
        return v->run(&argv[optind], (unsigned) (argc - optind));
}

int main(int argc, char **argv) {
        return close_stdout(dispatch(argc, argv));
}
