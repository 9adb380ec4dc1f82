/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * wg_tool: drives the wg/ library from integration tests.
 *
 *   wg_tool [-b auto|kernel|uapi|boringtun] [-e] COMMAND ...
 *     get IFACE            the device as `wg show IFACE` shows it
 *     dump IFACE           tab-separated as `wg show IFACE dump`, peers sorted
 *     set IFACE TOKEN...   apply the changes TOKENs describe
 *     sync IFACE FILE      make IFACE match FILE (TOKENs, whitespace-separated,
 *                          '#' starts a comment) through wg_device_diff();
 *                          prints "diff: N peers, flags 0xF"; -e compares
 *                          endpoints too
 *     genkeys N            N fresh public keys, one a line
 *
 * TOKENs: private_key_file=PATH listen_port=N fwmark=N replace_peers
 *         peer=BASE64 (starts a peer) remove update_only
 *         preshared_key_file=PATH endpoint=IP:PORT persistent_keepalive=N
 *         allowed_ips=A[,B...] replace_allowed_ips
 *
 * Keys come from files, as with wg(8), so they stay out of argv. Private
 * and preshared keys are never printed: "(hidden)".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/macro.h"
#include "wg/kernel.h"
#include "wg/wg.h"

static enum wg_backend backend = WG_BACKEND_AUTO;
static bool compare_endpoints;

static void usage(void) {
        fprintf(stderr, "Usage: wg_tool [-b auto|kernel|uapi|boringtun] [-e] get|dump IFACE | set IFACE TOKEN... | "
                        "sync IFACE FILE | genkeys N\n");
        exit(2);
}

static int read_key_file(const char *path, uint8_t key[static WG_KEY_LEN]) {
        char buf[WG_KEY_B64_LEN + 8] = {};
        size_t n;
        FILE *f;
        int r;

        f = fopen(path, "re");
        if (!f)
                return -errno;
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
                buf[--n] = '\0';
        r = wg_key_from_base64(key, buf);
        sodium_memzero(buf, sizeof(buf));
        return r;
}

static int parse_u32(const char *s, uint32_t max, uint32_t *ret) {
        unsigned long long v;
        char *end;

        errno = 0;
        v = strtoull(s, &end, 0);
        if (errno != 0 || end == s || *end != '\0' || v > max || s[0] == '-')
                return -EINVAL;
        *ret = (uint32_t) v;
        return 0;
}

static int parse_allowedips(struct wg_peer *p, const char *list) {
        _cleanup_(freep) char *copy = strdup(list);
        char *save = NULL;

        if (!copy)
                return -ENOMEM;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                struct ip_prefix pfx;
                struct wg_allowedip a = {};
                int r;

                if (ip_prefix_parse(t, &pfx) < 0) {
                        fprintf(stderr, "wg_tool: bad allowed IP '%s'\n", t);
                        return -EINVAL;
                }
                a.family = pfx.address.family;
                a.ip = pfx.address.addr;
                a.cidr = pfx.prefixlen;
                r = wg_peer_add_allowedip(p, &a);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Peers are addressed by index: adding one may move the array. */
static int apply_token(struct wg_device *d, const char *tok) {
        const char *eq = strchr(tok, '=');
        const char *v = eq ? eq + 1 : "";
        size_t klen = eq ? (size_t) (eq - tok) : strlen(tok);
        struct wg_peer *p = d->n_peers > 0 ? &d->peers[d->n_peers - 1] : NULL;
        uint32_t u;
        int r;

#define KEY(name) (klen == strlen(name) && strncmp(tok, name, klen) == 0)
        if (KEY("private_key_file")) {
                r = read_key_file(v, d->private_key);
                if (r < 0)
                        return r;
                d->flags |= WG_DEVICE_HAS_PRIVATE_KEY;
        } else if (KEY("listen_port")) {
                if (parse_u32(v, UINT16_MAX, &u) < 0)
                        return -EINVAL;
                d->listen_port = (uint16_t) u;
                d->flags |= WG_DEVICE_HAS_LISTEN_PORT;
        } else if (KEY("fwmark")) {
                if (parse_u32(v, UINT32_MAX, &d->fwmark) < 0)
                        return -EINVAL;
                d->flags |= WG_DEVICE_HAS_FWMARK;
        } else if (KEY("replace_peers")) {
                d->flags |= WG_DEVICE_REPLACE_PEERS;
        } else if (KEY("peer")) {
                p = wg_device_add_peer(d);
                if (!p)
                        return -ENOMEM;
                if (wg_key_from_base64(p->public_key, v) < 0)
                        return -EINVAL;
                p->flags = WG_PEER_HAS_PUBLIC_KEY;
        } else if (!p) {
                fprintf(stderr, "wg_tool: '%.*s' before any peer=\n", (int) klen, tok);
                return -EINVAL;
        } else if (KEY("remove")) {
                p->flags |= WG_PEER_REMOVE_ME;
        } else if (KEY("update_only")) {
                p->flags |= WG_PEER_UPDATE_ONLY;
        } else if (KEY("replace_allowed_ips")) {
                p->flags |= WG_PEER_REPLACE_ALLOWEDIPS;
        } else if (KEY("preshared_key_file")) {
                r = read_key_file(v, p->preshared_key);
                if (r < 0)
                        return r;
                p->flags |= WG_PEER_HAS_PRESHARED_KEY;
        } else if (KEY("endpoint")) {
                if (wg_endpoint_parse(v, &p->endpoint) < 0)
                        return -EINVAL;
                p->flags |= WG_PEER_HAS_ENDPOINT;
        } else if (KEY("persistent_keepalive")) {
                if (parse_u32(v, UINT16_MAX, &u) < 0)
                        return -EINVAL;
                p->persistent_keepalive_interval = (uint16_t) u;
                p->flags |= WG_PEER_HAS_PERSISTENT_KEEPALIVE_INTERVAL;
        } else if (KEY("allowed_ips")) {
                return parse_allowedips(p, v);
        } else {
                fprintf(stderr, "wg_tool: unknown token '%s'\n", tok);
                return -EINVAL;
        }
#undef KEY
        return 0;
}

static struct wg_device *device_new(const char *ifname) {
        struct wg_device *d = calloc(1, sizeof(*d));

        if (!d)
                return NULL;
        if (strlen(ifname) >= sizeof(d->name)) {
                free(d);
                return NULL;
        }
        strcpy(d->name, ifname);
        return d;
}

static const char *key_b64(const uint8_t key[static WG_KEY_LEN], char buf[static WG_KEY_B64_LEN]) {
        wg_key_to_base64(buf, key);
        return buf;
}

static void print_allowedips(const struct wg_peer *p, const char *sep) {
        if (p->n_allowedips == 0) {
                fputs("(none)", stdout);
                return;
        }
        for (size_t i = 0; i < p->n_allowedips; i++) {
                char a[INET6_ADDRSTRLEN];

                printf("%s%s/%u", i ? sep : "",
                       inet_ntop(p->allowedips[i].family, &p->allowedips[i].ip, a, sizeof(a)) ? a : "?",
                       p->allowedips[i].cidr);
        }
}

static const char *endpoint_str(const struct wg_peer *p, char *buf, size_t len) {
        if (!(p->flags & WG_PEER_HAS_ENDPOINT))
                return "(none)";
        return wg_endpoint_to_string(&p->endpoint, buf, len);
}

static void print_show(const struct wg_device *d) {
        char k[WG_KEY_B64_LEN], e[96];

        printf("interface: %s\n", d->name);
        if (d->flags & WG_DEVICE_HAS_PUBLIC_KEY)
                printf("  public key: %s\n", key_b64(d->public_key, k));
        if (d->flags & WG_DEVICE_HAS_PRIVATE_KEY)
                printf("  private key: (hidden)\n");
        if (d->listen_port)
                printf("  listening port: %u\n", d->listen_port);
        if (d->fwmark)
                printf("  fwmark: 0x%x\n", d->fwmark);
        for (size_t i = 0; i < d->n_peers; i++) {
                const struct wg_peer *p = &d->peers[i];

                printf("\npeer: %s\n", key_b64(p->public_key, k));
                if (p->flags & WG_PEER_HAS_PRESHARED_KEY)
                        printf("  preshared key: (hidden)\n");
                if (p->flags & WG_PEER_HAS_ENDPOINT)
                        printf("  endpoint: %s\n", endpoint_str(p, e, sizeof(e)));
                fputs("  allowed ips: ", stdout);
                print_allowedips(p, ", ");
                putchar('\n');
                if (p->last_handshake_time_sec)
                        printf("  latest handshake: %" PRId64 "\n", p->last_handshake_time_sec);
                if (p->rx_bytes || p->tx_bytes)
                        printf("  transfer: %" PRIu64 " B received, %" PRIu64 " B sent\n", p->rx_bytes, p->tx_bytes);
                if (p->persistent_keepalive_interval)
                        printf("  persistent keepalive: every %u seconds\n", p->persistent_keepalive_interval);
        }
}

static void print_dump(const struct wg_device *d) {
        char k[WG_KEY_B64_LEN], e[96];

        printf("%s\t%s\t%u\t", (d->flags & WG_DEVICE_HAS_PRIVATE_KEY) ? "(hidden)" : "(none)",
               (d->flags & WG_DEVICE_HAS_PUBLIC_KEY) ? key_b64(d->public_key, k) : "(none)", d->listen_port);
        if (d->fwmark)
                printf("0x%x\n", d->fwmark);
        else
                printf("off\n");
        for (size_t i = 0; i < d->n_peers; i++) {
                const struct wg_peer *p = &d->peers[i];

                printf("%s\t%s\t%s\t", key_b64(p->public_key, k),
                       (p->flags & WG_PEER_HAS_PRESHARED_KEY) ? "(hidden)" : "(none)", endpoint_str(p, e, sizeof(e)));
                print_allowedips(p, ",");
                printf("\t%" PRId64 "\t%" PRIu64 "\t%" PRIu64 "\t", p->last_handshake_time_sec, p->rx_bytes,
                       p->tx_bytes);
                if (p->persistent_keepalive_interval)
                        printf("%u\n", p->persistent_keepalive_interval);
                else
                        printf("off\n");
        }
}

/* The kernel's words on the failure just seen, as ": TEXT", or "". */
static const char *why(const char *ifname) {
        static char buf[300];

        if (wg_backend_resolve(backend, ifname) != WG_BACKEND_KERNEL || !wg_kernel_last_error()[0])
                return "";
        snprintf(buf, sizeof(buf), " (%s)", wg_kernel_last_error());
        return buf;
}

static int cmd_get(const char *ifname, bool dump) {
        _cleanup_(wg_device_freep) struct wg_device *d = NULL;
        int r;

        r = wg_get_device(backend, ifname, &d);
        if (r < 0) {
                fprintf(stderr, "wg_tool: get %s: %s%s\n", ifname, strerror(-r), why(ifname));
                return 1;
        }
        wg_device_sort(d);
        if (dump)
                print_dump(d);
        else
                print_show(d);
        return 0;
}

static int cmd_set(const char *ifname, int n, char **tokens) {
        _cleanup_(wg_device_freep) struct wg_device *d = device_new(ifname);
        int r;

        if (!d)
                return 1;
        for (int i = 0; i < n; i++) {
                r = apply_token(d, tokens[i]);
                if (r < 0) {
                        fprintf(stderr, "wg_tool: token '%s': %s\n", tokens[i], strerror(-r));
                        return 1;
                }
        }
        r = wg_set_device(backend, d);
        if (r < 0) {
                fprintf(stderr, "wg_tool: set %s: %s%s\n", ifname, strerror(-r), why(ifname));
                return 1;
        }
        return 0;
}

static int cmd_sync(const char *ifname, const char *path) {
        _cleanup_(wg_device_freep) struct wg_device *want = device_new(ifname), *cur = NULL, *d = NULL;
        char tok[512];
        FILE *f;
        int r;

        if (!want)
                return 1;
        f = fopen(path, "re");
        if (!f) {
                fprintf(stderr, "wg_tool: %s: %m\n", path);
                return 1;
        }
        while (fscanf(f, "%511s", tok) == 1) {
                if (tok[0] == '#') {
                        int c;

                        while ((c = fgetc(f)) != EOF && c != '\n')
                                ;
                        continue;
                }
                r = apply_token(want, tok);
                if (r < 0) {
                        fprintf(stderr, "wg_tool: %s: token '%s': %s\n", path, tok, strerror(-r));
                        fclose(f);
                        return 1;
                }
        }
        fclose(f);

        r = wg_get_device(backend, ifname, &cur);
        if (r < 0) {
                fprintf(stderr, "wg_tool: get %s: %s%s\n", ifname, strerror(-r), why(ifname));
                return 1;
        }
        r = wg_device_diff(cur, want, compare_endpoints, &d);
        if (r < 0) {
                fprintf(stderr, "wg_tool: diff: %s\n", strerror(-r));
                return 1;
        }
        printf("diff: %zu peers, flags 0x%x\n", d->n_peers, d->flags);
        if (d->n_peers == 0 && d->flags == 0)
                return 0;
        r = wg_set_device(backend, d);
        if (r < 0) {
                fprintf(stderr, "wg_tool: set %s: %s%s\n", ifname, strerror(-r), why(ifname));
                return 1;
        }
        return 0;
}

static int cmd_genkeys(const char *count) {
        uint32_t n;

        if (parse_u32(count, 1000000, &n) < 0)
                usage();
        for (uint32_t i = 0; i < n; i++) {
                uint8_t priv[WG_KEY_LEN], pub[WG_KEY_LEN];
                char b64[WG_KEY_B64_LEN];

                if (wg_key_generate_private(priv) < 0 || wg_key_public_from_private(pub, priv) < 0)
                        return 1;
                sodium_memzero(priv, sizeof(priv));
                puts(key_b64(pub, b64));
        }
        return 0;
}

int main(int argc, char **argv) {
        int c, r;

        while ((c = getopt(argc, argv, "+b:e")) != -1) {
                switch (c) {
                case 'b':
                        r = wg_backend_from_string(optarg);
                        if (r < 0)
                                usage();
                        backend = (enum wg_backend) r;
                        break;
                case 'e':
                        compare_endpoints = true;
                        break;
                default:
                        usage();
                }
        }
        argc -= optind;
        argv += optind;
        if (argc < 2)
                usage();
        if (streq(argv[0], "get") && argc == 2)
                return cmd_get(argv[1], false);
        if (streq(argv[0], "dump") && argc == 2)
                return cmd_get(argv[1], true);
        if (streq(argv[0], "set") && argc >= 3)
                return cmd_set(argv[1], argc - 2, argv + 2);
        if (streq(argv[0], "sync") && argc == 3)
                return cmd_sync(argv[1], argv[2]);
        if (streq(argv[0], "genkeys") && argc == 2)
                return cmd_genkeys(argv[1]);
        usage();
        return 2;
}
