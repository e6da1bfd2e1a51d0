/*
 * sock.h: socket options, and sockets made elsewhere (sock.c): the
 * ac_conn_opts_t socket fields checked and applied, descriptors checked
 * before they are adopted or listened on, ac_conn_adopt and systemd's
 * LISTEN_FDS.
 */
#ifndef AC_SOCK_H
#define AC_SOCK_H

#include "common.h"

/* The listen(2) backlog when opts->backlog is 0. */
#define AC__BACKLOG 4096

/* ac__proto_new: refuses socket options out of range (AC_EINVAL, with a
 * log line through rt saying why). */
int ac__sockopts_check(ac_runtime_t *rt, const ac_conn_opts_t *o);
/* Owner loop, a connected socket of family: sets o's options on fd (the
 * TCP ones only for AF_INET and AF_INET6). 0, or the -errno of the first
 * option that could not be set; the default TCP_NODELAY is best effort,
 * as it always was. */
int ac__sockopts_apply(int fd, int family, const ac_conn_opts_t *o);
/* Before connect(2) or listen(2), where the kernel wants them for the
 * window it offers: o's buffer sizes. 0 or -errno. */
int ac__sock_buffers(int fd, const ac_conn_opts_t *o);
/* Checks that fd is an open stream socket, TCP or Unix, listening or
 * connected as `listening` says, without changing it. 0 and its family
 * in *family; -EBADF, -ENOTSOCK, AC_EINVAL (not a stream socket, the
 * wrong side of listening, another family) or -ENOTCONN. */
int ac__sock_kind(int fd, bool listening, int *family);
/* Makes fd non-blocking and close-on-exec; the old flags go to *fl and
 * *fdfl, for ac__sock_restore. 0 or -errno (nothing changed). */
int ac__sock_own(int fd, int *fl, int *fdfl);
void ac__sock_restore(int fd, int fl, int fdfl);

#endif /* AC_SOCK_H */
