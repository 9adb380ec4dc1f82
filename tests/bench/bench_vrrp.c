/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Throughput of the pure VRRP core: codec parse/build and state machine
 * steps. Prints figures; asserts nothing (behaviour is the unit tests' job).
 *   build/tests/bench/bench_vrrp [iterations]
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vrrp/fsm.h"
#include "vrrp/packet.h"

static double now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec * 1e9 + (double) ts.tv_nsec;
}

static volatile unsigned sink;

static void bench_codec(const char *name, int family, unsigned n_addrs, long iterations) {
        struct vrrp_advert adv = {
                .version = 3, .vrid = 51, .priority = 150, .max_adver_int_cs = 10, .family = family,
                .n_addrs = (uint8_t) n_addrs,
        };
        struct vrrp_ip_meta meta = { .family = family, .ttl = 255 };
        static struct vrrp_advert out;
        uint8_t buf[VRRP_MAX_MESSAGE_LEN];
        double t0, t1;
        int len = 0;

        if (family == AF_INET) {
                ip_address_parse("10.77.0.1", &meta.src);
                ip_address_parse("224.0.0.18", &meta.dst);
        } else {
                ip_address_parse("fe80::1", &meta.src);
                ip_address_parse("ff02::12", &meta.dst);
        }
        for (unsigned i = 0; i < n_addrs; i++) {
                memset(&adv.addrs[i], 0, sizeof(adv.addrs[i]));
                adv.addrs[i].bytes[family == AF_INET ? 3 : 15] = (uint8_t) i;
                adv.addrs[i].bytes[0] = 10;
        }

        t0 = now_ns();
        for (long i = 0; i < iterations; i++) {
                len = vrrp_advert_build(&adv, &meta, VRRP_CHECKSUM_RFC5798, buf, sizeof(buf));
                sink += (unsigned) len;
        }
        t1 = now_ns();
        printf("  build  %-28s %4d bytes  %8.1f ns/op\n", name, len, (t1 - t0) / (double) iterations);

        t0 = now_ns();
        for (long i = 0; i < iterations; i++)
                sink += (unsigned) vrrp_advert_parse(buf, (size_t) len, &meta, &out, NULL);
        t1 = now_ns();
        printf("  parse  %-28s %4d bytes  %8.1f ns/op\n", name, len, (t1 - t0) / (double) iterations);
}

static void bench_fsm(long iterations) {
        struct vrrp_fsm_config cfg = { .version = 3, .priority = 100, .advert_interval_cs = 10, .preempt = true };
        struct vrrp_event adv = { .type = VRRP_EVENT_ADVERT, .priority = 150, .max_adver_int_cs = 10 };
        struct vrrp_event start = { .type = VRRP_EVENT_STARTUP };
        struct vrrp_actions a;
        struct vrrp_fsm fsm;
        uint64_t now = 1;
        double t0, t1;

        ip_address_parse("10.77.0.2", &cfg.primary);
        ip_address_parse("10.77.0.1", &adv.src);
        vrrp_fsm_init(&fsm, &cfg);
        vrrp_fsm_step(&fsm, &start, now, &a);
        t0 = now_ns();
        for (long i = 0; i < iterations; i++) {
                now += 100000;
                vrrp_fsm_step(&fsm, &adv, now, &a);
                sink += a.state_changed;
        }
        t1 = now_ns();
        printf("  fsm    backup receives an advert      %8.1f ns/op\n", (t1 - t0) / (double) iterations);
}

int main(int argc, char **argv) {
        long iterations = argc > 1 ? atol(argv[1]) : 2000000;

        if (iterations <= 0) {
                fprintf(stderr, "usage: bench_vrrp [iterations]\n");
                return 2;
        }
        printf("bench_vrrp: %ld iterations each\n", iterations);
        bench_codec("v3 IPv4, 1 address", AF_INET, 1, iterations);
        bench_codec("v3 IPv4, 20 addresses", AF_INET, 20, iterations);
        bench_codec("v3 IPv6, 255 addresses", AF_INET6, 255, iterations / 10);
        bench_fsm(iterations);
        return 0;
}
