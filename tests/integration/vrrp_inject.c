/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vrrp_inject: send crafted VRRP advertisements out of one interface, valid
 * or deliberately broken, for the integration tests.
 *
 * IPv4 goes through a raw IP_HDRINCL socket so that any TTL and any source
 * address can be sent. IPv6 uses a raw IPPROTO_VRRP socket; the kernel builds
 * the header, the hop limit comes from IPV6_{UNICAST,MULTICAST}_HOPS.
 *
 * Valid messages come from vrrp_advert_build(); broken ones start from a
 * valid message and change one thing, re-computing the checksum (except in
 * badsum / truncated / random) so that exactly one check should trip.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/ipaddr.h"
#include "common/macro.h"
#include "vrrp/packet.h"

/* Linux >= 4.15; older libc headers lack it. */
#ifndef IPV6_FREEBIND
#define IPV6_FREEBIND 78
#endif

enum inject_mode {
        MODE_VALID,
        MODE_TRUNCATED,
        MODE_BADSUM,
        MODE_BADVER,
        MODE_BADTYPE,
        MODE_COUNTMISMATCH,
        MODE_ZEROVRID,
        MODE_ZEROINTERVAL,
        MODE_RANDOM,
        MODE_AH,                        /* v2: authentication type 2 (IP AH) */
        _MODE_MAX,
};

static const char *const mode_table[_MODE_MAX] = {
        [MODE_VALID] = "valid",
        [MODE_TRUNCATED] = "truncated",
        [MODE_BADSUM] = "badsum",
        [MODE_BADVER] = "badver",
        [MODE_BADTYPE] = "badtype",
        [MODE_COUNTMISMATCH] = "countmismatch",
        [MODE_ZEROVRID] = "zerovrid",
        [MODE_ZEROINTERVAL] = "zerointerval",
        [MODE_RANDOM] = "random",
        [MODE_AH] = "ah",
};

struct options {
        const char *ifname;
        unsigned ifindex;
        struct ip_address src;
        struct ip_address dst;
        int version;
        int vrid;
        int priority;
        int ttl;
        int interval_cs;
        union in_addr_union vips[VRRP_MAX_ADDRS];
        unsigned n_vips;
        int vip_family;
        const char *auth_pass;          /* v2: simple password (type 1); NULL = none */
        unsigned long count;
        unsigned gap_ms;
        enum inject_mode mode;
        enum vrrp_checksum_mode checksum;
        uint64_t seed;
        bool verify;
        bool quiet;
};

/* xorshift64*: reproducible from --seed, no global libc state. */
static uint64_t rng_next(uint64_t *s) {
        uint64_t x = *s;

        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *s = x;
        return x * UINT64_C(2685821657736338717);
}

static unsigned rng_below(uint64_t *s, unsigned n) {
        return n == 0 ? 0 : (unsigned) (rng_next(s) % n);
}

/* An RFC 1071 sum written independently of vrrp/packet.c, so that "valid"
 * messages double as a check of the codec's checksum. */
static uint32_t sum16(uint32_t sum, const uint8_t *p, size_t len) {
        size_t i;

        for (i = 0; i + 1 < len; i += 2)
                sum += (uint32_t) p[i] << 8 | p[i + 1];
        if (len & 1)
                sum += (uint32_t) p[len - 1] << 8;
        return sum;
}

static uint16_t fold16(uint32_t sum) {
        while (sum >> 16)
                sum = (sum & 0xffff) + (sum >> 16);
        return (uint16_t) ~sum;
}

/* The checksum VERSION's message would carry with OPTS' addresses and mode. */
static uint16_t vrrp_checksum(const struct options *o, int version, const uint8_t *msg, size_t len) {
        uint32_t sum = 0;
        size_t alen = ip_family_addr_len(o->src.family);
        bool pseudo = version == 3 && (o->src.family == AF_INET6 || o->checksum == VRRP_CHECKSUM_RFC5798);

        if (pseudo) {
                uint8_t tail[8] = {};

                sum = sum16(sum, o->src.addr.bytes, alen);
                sum = sum16(sum, o->dst.addr.bytes, alen);
                if (o->src.family == AF_INET) {
                        /* zero, protocol, 16-bit length */
                        tail[1] = VRRP_IPPROTO;
                        tail[2] = (uint8_t) (len >> 8);
                        tail[3] = (uint8_t) len;
                        sum = sum16(sum, tail, 4);
                } else {
                        /* 32-bit length, three zero bytes, next header */
                        tail[2] = (uint8_t) (len >> 8);
                        tail[3] = (uint8_t) len;
                        tail[7] = VRRP_IPPROTO;
                        sum = sum16(sum, tail, 8);
                }
        }
        return fold16(sum16(sum, msg, len));
}

static void set_checksum(const struct options *o, int version, uint8_t *msg, size_t len) {
        uint16_t c;

        if (len < VRRP_HEADER_LEN)
                return;
        msg[6] = msg[7] = 0;
        c = vrrp_checksum(o, version, msg, len);
        msg[6] = (uint8_t) (c >> 8);
        msg[7] = (uint8_t) c;
}

/* Build one message for O's mode into BUF. Returns its length or -errno. */
static int make_message(const struct options *o, uint64_t *rng, uint8_t *buf, size_t bufsize) {
        struct vrrp_advert adv = {
                .version = (uint8_t) o->version,
                .vrid = (uint8_t) o->vrid,
                .priority = (uint8_t) o->priority,
                .max_adver_int_cs = (uint16_t) o->interval_cs,
                .family = o->src.family,
                .n_addrs = (uint8_t) o->n_vips,
        };
        struct vrrp_ip_meta meta = {
                .family = o->src.family,
                .src = o->src,
                .dst = o->dst,
                .ttl = o->ttl,
        };
        unsigned v;
        int len;

        if (o->mode == MODE_RANDOM) {
                len = 1 + (int) rng_below(rng, 64);
                for (int i = 0; i < len; i++)
                        buf[i] = (uint8_t) rng_next(rng);
                return len;
        }

        memcpy(adv.addrs, o->vips, sizeof(adv.addrs));
        if (o->auth_pass) {
                adv.auth_type = VRRP_AUTH_SIMPLE;
                memcpy(adv.auth_data, o->auth_pass, strnlen(o->auth_pass, VRRP_V2_AUTH_LEN));
        }
        len = vrrp_advert_build(&adv, &meta, o->checksum, buf, bufsize);
        if (len < 0)
                return len;
        if (len < VRRP_HEADER_LEN)
                return -EPROTO;

        switch (o->mode) {
        case MODE_VALID:
                break;
        case MODE_TRUNCATED:
                /* Anywhere from a lone byte to one byte short. */
                len = 1 + (int) rng_below(rng, (unsigned) len - 1);
                break;
        case MODE_BADSUM:
                buf[6] ^= (uint8_t) (1 + rng_below(rng, 255));
                break;
        case MODE_BADVER:
                do
                        v = rng_below(rng, 16);
                while (v == 2 || v == 3);
                buf[0] = (uint8_t) (v << 4 | (buf[0] & 0x0f));
                set_checksum(o, o->version, buf, (size_t) len);
                break;
        case MODE_BADTYPE:
                do
                        v = rng_below(rng, 16);
                while (v == VRRP_TYPE_ADVERTISEMENT);
                buf[0] = (uint8_t) ((buf[0] & 0xf0) | v);
                set_checksum(o, o->version, buf, (size_t) len);
                break;
        case MODE_COUNTMISMATCH:
                /* Claims 1..3 more addresses than the message holds. */
                buf[3] = (uint8_t) (buf[3] + 1 + rng_below(rng, 3));
                set_checksum(o, o->version, buf, (size_t) len);
                break;
        case MODE_ZEROVRID:
                buf[1] = 0;
                set_checksum(o, o->version, buf, (size_t) len);
                break;
        case MODE_ZEROINTERVAL:
                if (o->version == 3)
                        buf[4] &= 0xf0;
                buf[5] = 0;
                set_checksum(o, o->version, buf, (size_t) len);
                break;
        case MODE_AH:
                if (o->version != 2)
                        return -EINVAL;
                buf[4] = VRRP_AUTH_AH;
                set_checksum(o, o->version, buf, (size_t) len);
                break;
        default:
                return -EINVAL;
        }
        return len;
}

static int open_socket(const struct options *o) {
        _cleanup_(closep) int fd = -1;
        int one = 1, zero = 0;

        if (o->src.family == AF_INET) {
                struct ip_mreqn mreq = { .imr_ifindex = (int) o->ifindex };

                /* IPPROTO_RAW implies IP_HDRINCL: we write the whole header. */
                fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
                if (fd < 0)
                        return -errno;
                if (setsockopt(fd, IPPROTO_IP, IP_HDRINCL, &one, sizeof(one)) < 0)
                        return -errno;
                if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mreq, sizeof(mreq)) < 0)
                        return -errno;
                if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &zero, sizeof(zero)) < 0)
                        return -errno;
        } else {
                struct sockaddr_in6 sa = {
                        .sin6_family = AF_INET6,
                        .sin6_addr = o->src.addr.in6,
                };
                int hops = o->ttl, ifindex = (int) o->ifindex;

                fd = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, VRRP_IPPROTO);
                if (fd < 0)
                        return -errno;
                if (setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &hops, sizeof(hops)) < 0 ||
                    setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof(hops)) < 0 ||
                    setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof(ifindex)) < 0 ||
                    setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &zero, sizeof(zero)) < 0)
                        return -errno;
                /* Lets a test claim a source the node does not own. */
                (void) setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof(one));
                if (IN6_IS_ADDR_LINKLOCAL(&sa.sin6_addr))
                        sa.sin6_scope_id = o->ifindex;
                if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                        return -errno;
        }
        if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, o->ifname, (socklen_t) strlen(o->ifname) + 1) < 0)
                return -errno;
        return TAKE_FD(fd);
}

static int send_one(int fd, const struct options *o, const uint8_t *msg, size_t len) {
        ssize_t n;

        if (o->src.family == AF_INET) {
                uint8_t pkt[sizeof(struct iphdr) + VRRP_MAX_MESSAGE_LEN + 64];
                struct iphdr *ip = (struct iphdr *) pkt;
                struct sockaddr_in sa = {
                        .sin_family = AF_INET,
                        .sin_addr = o->dst.addr.in,
                };

                if (len > sizeof(pkt) - sizeof(*ip))
                        return -EMSGSIZE;
                *ip = (struct iphdr) {
                        .version = 4,
                        .ihl = 5,
                        .tos = 0xc0, /* network control, as VRRP speakers send */
                        .tot_len = htons((uint16_t) (sizeof(*ip) + len)),
                        .ttl = (uint8_t) o->ttl,
                        .protocol = VRRP_IPPROTO,
                        .saddr = o->src.addr.in.s_addr,
                        .daddr = o->dst.addr.in.s_addr,
                };
                memcpy(pkt + sizeof(*ip), msg, len);
                n = sendto(fd, pkt, sizeof(*ip) + len, 0, (struct sockaddr *) &sa, sizeof(sa));
                if (n < 0)
                        return -errno;
        } else {
                struct sockaddr_in6 sa = {
                        .sin6_family = AF_INET6,
                        .sin6_addr = o->dst.addr.in6,
                };

                if (IN6_IS_ADDR_LINKLOCAL(&sa.sin6_addr) || IN6_IS_ADDR_MC_LINKLOCAL(&sa.sin6_addr))
                        sa.sin6_scope_id = o->ifindex;
                n = sendto(fd, msg, len, 0, (struct sockaddr *) &sa, sizeof(sa));
                if (n < 0)
                        return -errno;
        }
        return 0;
}

static int parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *ret) {
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(s, &end, 0);
        if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

static void usage(FILE *f) {
        fputs("usage: vrrp_inject -i IFACE -s SRC -d DST --vip ADDR... [-v 2|3] [-r VRID] [-p PRIO]\n"
              "                   [-t TTL] [--interval-cs N] [--count N] [--gap-ms N]\n"
              "                   [--mode valid|truncated|badsum|badver|badtype|countmismatch|\n"
              "                           zerovrid|zerointerval|random|ah]\n"
              "                   [--checksum rfc5798|rfc9568] [--auth-pass PASS] [--seed N] [--no-verify] [-q]\n"
              "Defaults: -v 3 -r 51 -p 100 -t 255 --interval-cs 100 --count 1 --gap-ms 1 --mode valid.\n",
              f);
}

static int parse_args(int argc, char **argv, struct options *o) {
        enum {
                OPT_INTERVAL = 0x100,
                OPT_VIP,
                OPT_COUNT,
                OPT_GAP,
                OPT_MODE,
                OPT_CHECKSUM,
                OPT_SEED,
                OPT_NO_VERIFY,
                OPT_AUTH_PASS,
        };
        static const struct option longopts[] = {
                { "interface", required_argument, NULL, 'i' },
                { "source", required_argument, NULL, 's' },
                { "destination", required_argument, NULL, 'd' },
                { "version", required_argument, NULL, 'v' },
                { "vrid", required_argument, NULL, 'r' },
                { "priority", required_argument, NULL, 'p' },
                { "ttl", required_argument, NULL, 't' },
                { "interval-cs", required_argument, NULL, OPT_INTERVAL },
                { "vip", required_argument, NULL, OPT_VIP },
                { "count", required_argument, NULL, OPT_COUNT },
                { "gap-ms", required_argument, NULL, OPT_GAP },
                { "mode", required_argument, NULL, OPT_MODE },
                { "checksum", required_argument, NULL, OPT_CHECKSUM },
                { "seed", required_argument, NULL, OPT_SEED },
                { "no-verify", no_argument, NULL, OPT_NO_VERIFY },
                { "auth-pass", required_argument, NULL, OPT_AUTH_PASS },
                { "quiet", no_argument, NULL, 'q' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *src = NULL, *dst = NULL;
        unsigned long v;
        struct ip_address a;
        int c, r;

        while ((c = getopt_long(argc, argv, "i:s:d:v:r:p:t:qh", longopts, NULL)) >= 0) {
                r = 0;
                switch (c) {
                case 'i':
                        o->ifname = optarg;
                        break;
                case 's':
                        src = optarg;
                        break;
                case 'd':
                        dst = optarg;
                        break;
                case 'v':
                        r = parse_uint(optarg, 2, 3, &v);
                        o->version = (int) v;
                        break;
                case 'r':
                        r = parse_uint(optarg, 1, 255, &v);
                        o->vrid = (int) v;
                        break;
                case 'p':
                        r = parse_uint(optarg, 0, 255, &v);
                        o->priority = (int) v;
                        break;
                case 't':
                        r = parse_uint(optarg, 1, 255, &v);
                        o->ttl = (int) v;
                        break;
                case OPT_INTERVAL:
                        r = parse_uint(optarg, 0, 65535, &v);
                        o->interval_cs = (int) v;
                        break;
                case OPT_VIP:
                        if (o->n_vips >= VRRP_MAX_ADDRS || ip_address_parse(optarg, &a) < 0) {
                                r = -EINVAL;
                                break;
                        }
                        if (o->n_vips > 0 && a.family != o->vip_family) {
                                r = -EINVAL;
                                break;
                        }
                        o->vip_family = a.family;
                        o->vips[o->n_vips++] = a.addr;
                        break;
                case OPT_COUNT:
                        r = parse_uint(optarg, 1, 100000000, &o->count);
                        break;
                case OPT_GAP:
                        r = parse_uint(optarg, 0, 3600000, &v);
                        o->gap_ms = (unsigned) v;
                        break;
                case OPT_MODE:
                        r = -EINVAL;
                        for (unsigned m = 0; m < _MODE_MAX; m++)
                                if (streq(optarg, mode_table[m])) {
                                        o->mode = m;
                                        r = 0;
                                }
                        break;
                case OPT_CHECKSUM:
                        r = vrrp_checksum_mode_from_string(optarg);
                        if (r >= 0) {
                                o->checksum = r;
                                r = 0;
                        }
                        break;
                case OPT_SEED:
                        r = parse_uint(optarg, 0, ULONG_MAX, &v);
                        o->seed = v;
                        break;
                case OPT_NO_VERIFY:
                        o->verify = false;
                        break;
                case OPT_AUTH_PASS:
                        if (strlen(optarg) < 1 || strlen(optarg) > VRRP_V2_AUTH_LEN)
                                r = -EINVAL;
                        o->auth_pass = optarg;
                        break;
                case 'q':
                        o->quiet = true;
                        break;
                case 'h':
                        usage(stdout);
                        exit(EXIT_SUCCESS);
                default:
                        return -EINVAL;
                }
                if (r < 0) {
                        fprintf(stderr, "vrrp_inject: invalid value for option: %s\n", optarg);
                        return -EINVAL;
                }
        }
        if (optind != argc || !o->ifname || !src || !dst) {
                fprintf(stderr, "vrrp_inject: -i, -s and -d are required\n");
                return -EINVAL;
        }
        if (ip_address_parse(src, &o->src) < 0 || ip_address_parse(dst, &o->dst) < 0 ||
            o->src.family != o->dst.family) {
                fprintf(stderr, "vrrp_inject: bad or mixed-family addresses: %s %s\n", src, dst);
                return -EINVAL;
        }
        if (o->n_vips == 0) {
                fprintf(stderr, "vrrp_inject: at least one --vip is needed\n");
                return -EINVAL;
        }
        if (o->vip_family != o->src.family) {
                fprintf(stderr, "vrrp_inject: --vip family differs from the source's\n");
                return -EINVAL;
        }
        o->ifindex = if_nametoindex(o->ifname);
        if (o->ifindex == 0) {
                fprintf(stderr, "vrrp_inject: no interface %s\n", o->ifname);
                return -ENODEV;
        }
        return 0;
}

int main(int argc, char **argv) {
        struct options o = {
                .version = 3,
                .vrid = 51,
                .priority = 100,
                .ttl = VRRP_TTL,
                .interval_cs = 100,
                .count = 1,
                .gap_ms = 1,
                .mode = MODE_VALID,
                .checksum = VRRP_CHECKSUM_RFC5798,
                .verify = true,
        };
        _cleanup_(closep) int fd = -1;
        uint8_t buf[VRRP_MAX_MESSAGE_LEN];
        unsigned long i, sent = 0;
        uint64_t rng;
        int r;

        o.seed = (uint64_t) time(NULL) ^ ((uint64_t) getpid() << 32);
        if (parse_args(argc, argv, &o) < 0) {
                usage(stderr);
                return EXIT_FAILURE;
        }
        /* v2 carries whole seconds: keep the default interval representable. */
        if (o.version == 2 && o.interval_cs % 100 != 0)
                o.interval_cs = 100;
        rng = o.seed | 1;

        fd = open_socket(&o);
        if (fd < 0) {
                fprintf(stderr, "vrrp_inject: socket on %s: %s\n", o.ifname, strerror(-fd));
                return EXIT_FAILURE;
        }

        for (i = 0; i < o.count; i++) {
                r = make_message(&o, &rng, buf, sizeof(buf));
                if (r < 0) {
                        fprintf(stderr, "vrrp_inject: building message: %s\n", strerror(-r));
                        return EXIT_FAILURE;
                }
                if (o.verify && o.mode == MODE_VALID && vrrp_checksum(&o, o.version, buf, (size_t) r) != 0) {
                        fprintf(stderr, "vrrp_inject: vrrp_advert_build produced a %s checksum that does not verify\n",
                                vrrp_checksum_mode_to_string(o.checksum));
                        return EXIT_FAILURE;
                }
                r = send_one(fd, &o, buf, (size_t) r);
                if (r < 0) {
                        fprintf(stderr, "vrrp_inject: send: %s\n", strerror(-r));
                        return EXIT_FAILURE;
                }
                sent++;
                if (o.gap_ms > 0 && i + 1 < o.count) {
                        struct timespec ts = {
                                .tv_sec = o.gap_ms / 1000,
                                .tv_nsec = (long) (o.gap_ms % 1000) * 1000000L,
                        };
                        nanosleep(&ts, NULL);
                }
        }
        if (!o.quiet)
                fprintf(stderr, "vrrp_inject: sent %lu %s VRRPv%d packet(s) on %s, seed %" PRIu64 "\n", sent,
                        mode_table[o.mode], o.version, o.ifname, o.seed);
        return EXIT_SUCCESS;
}
