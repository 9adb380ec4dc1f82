/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Drives vrrp/socket.c, vrrp/address.c and vrrp/announce.c from the command
 * line so that tests/integration/test_vrrp_io.sh can check them with real
 * traffic between network namespaces. Output is one line of key=value pairs
 * (or "error: ..."), meant for grep.
 *
 * Exit status: 0 success, 1 error, 2 usage, 3 nothing received in time.
 */
#include <errno.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>

#include "common/ipaddr.h"
#include "common/macro.h"
#include "vrrp/address.h"
#include "vrrp/announce.h"
#include "vrrp/packet.h"
#include "vrrp/socket.h"

#define SELFTEST_VRID     42
#define SELFTEST_PRIORITY 100

static int fail(const char *what, int r) {
        printf("error: %s: %s [%s]\n", what, strerror(-r), strerrorname_np(-r) ?: "?");
        return 1;
}

static int usage(void) {
        fprintf(stderr,
                "usage: io_selftest send IFACE 4|6 SRC DST\n"
                "       io_selftest recv IFACE 4|6 [TIMEOUT_MS [BUFSIZE]]\n"
                "       io_selftest addr-add|addr-del IFACE PREFIX\n"
                "       io_selftest addr-present IFACE ADDR\n"
                "       io_selftest primary IFACE 4|6 [EXCLUDE_PREFIX...]\n"
                "       io_selftest garp|na IFACE ADDR\n");
        return 2;
}

static int parse_family(const char *s) {
        if (streq(s, "4") || streq(s, "inet") || streq(s, "ipv4"))
                return AF_INET;
        if (streq(s, "6") || streq(s, "inet6") || streq(s, "ipv6"))
                return AF_INET6;
        return -EAFNOSUPPORT;
}

static int parse_ifindex(const char *ifname) {
        unsigned idx = if_nametoindex(ifname);

        return idx > 0 ? (int) idx : -errno;
}

static int64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int cmd_send(int ifindex, const char *ifname, int family, const char *s_src, const char *s_dst) {
        _cleanup_(closep) int fd = -1;
        struct vrrp_ip_meta meta = { .family = family, .ttl = VRRP_TTL };
        struct vrrp_advert adv = {
                .version = 3,
                .vrid = SELFTEST_VRID,
                .priority = SELFTEST_PRIORITY,
                .max_adver_int_cs = 100,
                .family = family,
                .n_addrs = 1,
        };
        uint8_t msg[VRRP_MAX_MESSAGE_LEN];
        int r, len;

        if (ip_address_parse(s_src, &meta.src) < 0 || ip_address_parse(s_dst, &meta.dst) < 0 ||
            meta.src.family != family || meta.dst.family != family)
                return usage();
        adv.addrs[0] = meta.src.addr;

        len = vrrp_advert_build(&adv, &meta, VRRP_CHECKSUM_RFC5798, msg, sizeof(msg));
        if (len < 0)
                return fail("vrrp_advert_build", len);
        fd = vrrp_socket_open(family, ifindex, ifname, false);
        if (fd < 0)
                return fail("vrrp_socket_open", fd);
        r = vrrp_socket_send(fd, ifindex, &meta.src, &meta.dst, msg, (size_t) len);
        if (r < 0)
                return fail("vrrp_socket_send", r);
        printf("sent len=%d\n", len);
        return 0;
}

static int cmd_recv(int ifindex, const char *ifname, int family, int timeout_ms, size_t bufsize) {
        _cleanup_(closep) int fd = -1;
        _cleanup_(freep) uint8_t *buf = NULL;
        int64_t deadline = now_ms() + timeout_ms;

        buf = malloc(bufsize);
        if (!buf)
                return fail("malloc", -ENOMEM);
        fd = vrrp_socket_open(family, ifindex, ifname, true);
        if (fd < 0)
                return fail("vrrp_socket_open", fd);
        /* The test script starts the sender once it sees this line. */
        printf("ready\n");
        fflush(stdout);

        for (;;) {
                struct pollfd pfd = { .fd = fd, .events = POLLIN };
                char s_src[INET6_ADDRSTRLEN], s_dst[INET6_ADDRSTRLEN];
                const char *reason = NULL;
                struct vrrp_ip_meta meta;
                struct vrrp_advert adv;
                const uint8_t *payload;
                size_t len;
                int64_t left = deadline - now_ms();
                int r;

                if (left <= 0) {
                        printf("timeout\n");
                        return 3;
                }
                r = poll(&pfd, 1, (int) left);
                if (r < 0)
                        return fail("poll", -errno);
                if (r == 0)
                        continue;

                r = vrrp_socket_recv(fd, family, buf, bufsize, &meta, &payload, &len, &reason);
                if (r == -EAGAIN)
                        continue;
                if (r == -EBADMSG) {
                        printf("error: vrrp_socket_recv: bad message: %s\n", reason ?: "?");
                        return 1;
                }
                if (r < 0)
                        return fail("vrrp_socket_recv", r);

                printf("src=%s dst=%s ttl=%d len=%zu",
                       ip_address_to_string(&meta.src, s_src, sizeof(s_src)),
                       ip_address_to_string(&meta.dst, s_dst, sizeof(s_dst)), meta.ttl, len);
                r = vrrp_advert_parse(payload, len, &meta, &adv, &reason);
                if (r < 0)
                        printf(" parse=fail reason=\"%s\"\n", reason ?: "?");
                else
                        printf(" parse=ok version=%u vrid=%u priority=%u\n", adv.version, adv.vrid,
                               adv.priority);
                return 0;
        }
}

static void nl_sockp(struct nl_sock **sk) {
        vrrp_address_socket_close(*sk);
}

static int cmd_addr(const char *cmd, int ifindex, int argc, char **argv) {
        _cleanup_(nl_sockp) struct nl_sock *sk = NULL;
        char s[INET6_ADDRSTRLEN];
        int r;

        r = vrrp_address_socket_open(&sk);
        if (r < 0)
                return fail("vrrp_address_socket_open", r);

        if (streq(cmd, "addr-add") || streq(cmd, "addr-del")) {
                struct ip_prefix p;

                if (argc != 1 || ip_prefix_parse(argv[0], &p) < 0)
                        return usage();
                if (streq(cmd, "addr-add"))
                        r = vrrp_address_add(sk, ifindex, &p);
                else
                        r = vrrp_address_remove(sk, ifindex, &p);
                if (r < 0)
                        return fail(cmd, r);
                printf("ok\n");
                return 0;
        }

        if (streq(cmd, "addr-present")) {
                struct ip_address a;

                if (argc != 1 || ip_address_parse(argv[0], &a) < 0)
                        return usage();
                r = vrrp_address_present(sk, ifindex, &a);
                if (r < 0)
                        return fail(cmd, r);
                printf("%s\n", r > 0 ? "present" : "absent");
                return 0;
        }

        if (streq(cmd, "primary")) {
                struct ip_prefix exclude[16];
                struct ip_address a;
                int family;

                if (argc < 1 || (size_t) argc - 1 > ELEMENTSOF(exclude))
                        return usage();
                family = parse_family(argv[0]);
                if (family < 0)
                        return usage();
                for (int i = 1; i < argc; i++)
                        if (ip_prefix_parse(argv[i], &exclude[i - 1]) < 0)
                                return usage();
                r = vrrp_address_primary(sk, ifindex, family, exclude, (size_t) argc - 1, &a);
                if (r < 0)
                        return fail(cmd, r);
                printf("primary=%s\n", ip_address_to_string(&a, s, sizeof(s)));
                return 0;
        }

        return usage();
}

static int interface_mac(const char *ifname, uint8_t mac[static 6]) {
        _cleanup_(closep) int fd = -1;
        struct ifreq ifr = {};

        fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
        if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0)
                return -errno;
        memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
        return 0;
}

static int cmd_announce(const char *cmd, int ifindex, const char *ifname, const char *s_addr) {
        struct ip_address a;
        uint8_t mac[6];
        int r;

        if (ip_address_parse(s_addr, &a) < 0)
                return usage();
        r = interface_mac(ifname, mac);
        if (r < 0)
                return fail("SIOCGIFHWADDR", r);

        if (streq(cmd, "garp")) {
                if (a.family != AF_INET)
                        return usage();
                r = vrrp_announce_garp(ifindex, mac, &a.addr.in);
        } else {
                _cleanup_(nl_sockp) struct nl_sock *sk = NULL;
                struct ip_address src;

                if (a.family != AF_INET6)
                        return usage();
                r = vrrp_address_socket_open(&sk);
                if (r < 0)
                        return fail("vrrp_address_socket_open", r);
                r = vrrp_address_primary(sk, ifindex, AF_INET6, NULL, 0, &src);
                if (r < 0)
                        return fail("link-local source", r);
                r = vrrp_announce_na(ifindex, mac, &src.addr.in6, &a.addr.in6);
        }
        if (r < 0)
                return fail(cmd, r);
        printf("sent mac=%02x:%02x:%02x:%02x:%02x:%02x\n", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
        return 0;
}

int main(int argc, char **argv) {
        const char *cmd, *ifname;
        int ifindex, family;

        if (argc < 3)
                return usage();
        cmd = argv[1];
        ifname = argv[2];
        ifindex = parse_ifindex(ifname);
        if (ifindex < 0)
                return fail(ifname, ifindex);

        if (streq(cmd, "send")) {
                if (argc != 6 || (family = parse_family(argv[3])) < 0)
                        return usage();
                return cmd_send(ifindex, ifname, family, argv[4], argv[5]);
        }
        if (streq(cmd, "recv")) {
                int timeout_ms = 5000;
                size_t bufsize = 4096;

                if (argc < 4 || argc > 6 || (family = parse_family(argv[3])) < 0)
                        return usage();
                if (argc >= 5)
                        timeout_ms = atoi(argv[4]);
                if (argc >= 6)
                        bufsize = (size_t) strtoul(argv[5], NULL, 10);
                if (timeout_ms <= 0 || bufsize == 0)
                        return usage();
                return cmd_recv(ifindex, ifname, family, timeout_ms, bufsize);
        }
        if (streq(cmd, "garp") || streq(cmd, "na")) {
                if (argc != 4)
                        return usage();
                return cmd_announce(cmd, ifindex, ifname, argv[3]);
        }
        return cmd_addr(cmd, ifindex, argc - 3, argv + 3);
}
