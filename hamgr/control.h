/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The control socket: a Unix stream socket, one request line per
 * connection ("STATUS" or "STATUS JSON"), one reply, then close.
 */

#include <stdbool.h>

struct hamgr_daemon;
struct control_server;

/* Listen on PATH (its directory is created 0755, the socket is 0600 and
 * replaces a stale one). Returns 0 or -errno. */
int control_server_new(struct hamgr_daemon *d, const char *path, struct control_server **ret);

/* Stops listening and unlinks the socket. Accepts NULL. */
struct control_server *control_server_free(struct control_server *s);

/* Client side: send REQUEST to the daemon at PATH and return its whole
 * reply in *ret_reply (malloc'd). Returns 0 or -errno. */
int control_request(const char *path, const char *request, char **ret_reply);

/* The status report, as text or JSON (malloc'd; NULL on ENOMEM). */
char *status_render(struct hamgr_daemon *d, bool json);
