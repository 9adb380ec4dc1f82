/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "common/macro.h"
#include "hamgr/sync-file.h"

static void set_reason(const char **ret_reason, const char *reason) {
        if (ret_reason)
                *ret_reason = reason;
}

int sync_key_load(const char *path, uint8_t ret_private[static SYNC_KEY_LEN], const char **ret_reason) {
        _cleanup_(closep) int fd = -1;
        /* One byte more than the longest valid file, to detect longer ones. */
        char buf[WG_KEY_B64_LEN + 1];
        size_t len = 0;
        struct stat st;
        int r;

        /* O_NONBLOCK: a FIFO there must be refused, not waited on. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                set_reason(ret_reason, "cannot open key file");
                return -errno;
        }
        if (fstat(fd, &st) < 0) {
                set_reason(ret_reason, "cannot stat key file");
                return -errno;
        }
        if (!S_ISREG(st.st_mode)) {
                set_reason(ret_reason, "key file is not a regular file");
                return -EPERM;
        }
        if (st.st_mode & 077) {
                set_reason(ret_reason, "key file is accessible by group or others (chmod 600 it)");
                return -EPERM;
        }
        /* Its owner could replace the key that authenticates this node. */
        if (st.st_uid != 0 && st.st_uid != geteuid()) {
                set_reason(ret_reason, "key file is not owned by root (chown root: it)");
                return -EPERM;
        }

        while (len < sizeof(buf)) {
                ssize_t n = read(fd, buf + len, sizeof(buf) - len);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        set_reason(ret_reason, "cannot read key file");
                        goto finish;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
        }

        r = sync_key_parse(buf, len, ret_private, ret_reason);
finish:
        sodium_memzero(buf, sizeof(buf));
        return r;
}

static int write_all(int fd, const uint8_t *p, size_t len) {
        while (len > 0) {
                ssize_t n = write(fd, p, len);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

int replica_store_save(const char *dir, const uint8_t sync_private_key[static REPLICA_STORE_KEY_LEN],
                       const struct replica *r) {
        _cleanup_(freep) uint8_t *img = NULL;
        size_t len;
        int k;

        if (!dir || !sync_private_key || !r)
                return -EINVAL;
        k = replica_store_encode(sync_private_key, r, &img, &len);
        if (k < 0)
                return k;
        return replica_store_write(dir, img, len);
}

int replica_store_write(const char *dir, const uint8_t *img, size_t len) {
        _cleanup_(closep) int dfd = -1, fd = -1;
        int k;

        if (!dir || (!img && len > 0))
                return -EINVAL;
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        /* Only hamgr writes here: a temporary file that exists is a
         * leftover of a crash, never someone else's write in progress. */
        if (unlinkat(dfd, REPLICA_STORE_TMP, 0) < 0 && errno != ENOENT)
                return -errno;
        fd = openat(dfd, REPLICA_STORE_TMP, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        /* The umask may only have narrowed the mode, but say it exactly. */
        if (fchmod(fd, 0600) < 0)
                goto fail_errno;
        k = write_all(fd, img, len);
        if (k < 0)
                goto fail;
        if (fsync(fd) < 0)
                goto fail_errno;
        if (close(TAKE_FD(fd)) < 0)
                goto fail_errno;
        if (renameat(dfd, REPLICA_STORE_TMP, dfd, REPLICA_STORE_FILE) < 0)
                goto fail_errno;
        /* The rename is in the directory: without this a power loss may
         * bring back the old file, or none. */
        if (fsync(dfd) < 0)
                return -errno;
        return 0;
fail_errno:
        k = -errno;
fail:
        (void) unlinkat(dfd, REPLICA_STORE_TMP, 0);
        return k;
}

int replica_store_load(const char *dir, const uint8_t sync_private_key[static REPLICA_STORE_KEY_LEN], uint64_t node,
                       struct replica **ret, const char **ret_reason) {
        _cleanup_(closep) int dfd = -1, fd = -1;
        _cleanup_(freep) uint8_t *img = NULL;
        struct stat st;
        size_t len, got = 0;

        if (!dir || !sync_private_key || !ret)
                return -EINVAL;
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        fd = openat(dfd, REPLICA_STORE_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0) {
                if (errno == ELOOP && ret_reason)
                        *ret_reason = "state file is a symbolic link";
                return errno == ELOOP ? -EBADMSG : -errno;
        }
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode)) {
                if (ret_reason)
                        *ret_reason = "state file is not a regular file";
                return -EBADMSG;
        }
        if ((uint64_t) st.st_size > REPLICA_STORE_SIZE_MAX) {
                if (ret_reason)
                        *ret_reason = "state file too big";
                return -EBADMSG;
        }
        len = (size_t) st.st_size;
        img = malloc(len > 0 ? len : 1);
        if (!img)
                return -ENOMEM;
        /* Read what fstat() announced; a file that changes size under us
         * then fails the tag rather than being read half. */
        while (got < len) {
                ssize_t n = read(fd, img + got, len - got);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                got += (size_t) n;
        }
        return replica_store_decode(img, got, sync_private_key, node, ret, ret_reason);
}
