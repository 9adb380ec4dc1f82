#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Interoperability with keepalived (Debian 2.2.7), VRRPv2 over IPv4 multicast:
# the multicast scenarios of test_interop_v3.sh (hamgr master with keepalived
# backup and the reverse; kill -9 and SIGTERM hand-overs both ways with
# their timing; preemption both ways; preempt = false / nopreempt), with
# vrrp_version 2 on both sides. Runs about 50 s.
INTEROP_VERSION=2
source "$(dirname "${BASH_SOURCE[0]}")/test_interop_v3.sh"
