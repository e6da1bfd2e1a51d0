/*
 * tls.h: TLS contexts and the TLS side of a connection (tls.c).
 *
 * A connection's TLS state lives in its aux (conn.h). OpenSSL reads the
 * socket through a BIO of ours (recv, with the bytes counted) and writes
 * records into a second output queue of ciphertext, which the flush sends
 * with one sendmsg as it does plaintext; plaintext is encrypted a batch at
 * a time, only when the ciphertext before it has gone, so what waits is
 * plaintext and the output bounds measure plaintext. Everything runs on
 * the connection's owner loop; a context is shared read-only, and its
 * SSL_CTX is taken under the context's mutex only when a handshake starts
 * (a reload swaps it).
 */
#ifndef AC_TLS_H
#define AC_TLS_H

#include "common.h"

/* Takes and drops a reference on a context (listeners, protocols). */
void ac__tls_ref(ac_tls_t *t);
void ac__tls_unref(ac_tls_t *t);
bool ac__tls_is_server(const ac_tls_t *t);

/* Owner loop: starts c's handshake (c's fd is connected): as a server, or
 * as a client sending and checking name (NULL: none). 0, or AC_ENOMEM /
 * AC_ETLS; c stays plain then. */
int ac__tls_start(ac_conn_t *c, ac_tls_t *t, const char *name);
/* Owner loop, c handshaking: one step after readiness. 1 when the
 * handshake is done, 0 while it goes on, or a close reason. */
int ac__tls_step(ac_conn_t *c);
/* Owner loop: up to len bytes of plaintext. >0, 0 at the end of the
 * stream, or a close reason (AC_EAGAIN: nothing now). *more is set when
 * decrypted bytes wait inside TLS that no readiness event will report. */
ssize_t ac__tls_recv(ac_conn_t *c, void *buf, size_t len, bool *more);
/* Records wait to be sent (a handshake's, or an answer TLS wrote while
 * reading). */
bool ac__tls_has_output(const ac_conn_t *c);
/* Open and its close_notify not yet written: a flushing close sends one. */
bool ac__tls_notify_due(const ac_conn_t *c);
/* Owner loop: encrypts c's queued plaintext and sends it, with a
 * close_notify after it once closing. 0 when everything is sent, AC_EAGAIN
 * when the socket is full, or a close reason. *sent: bytes that left. */
int ac__tls_flush(ac_conn_t *c, bool closing, size_t *sent);
/* Bytes of plaintext taken from c's queue whose records are not all
 * sent yet. */
size_t ac__tls_unsent(const ac_conn_t *c);
/* Finalize, with the socket still open: a failed handshake's alert gets
 * one try, and the handshake timer goes. The rest stays for on_close
 * (ac_conn_tls_info). */
void ac__tls_detach(ac_conn_t *c);
/* After on_close: c's TLS state goes (the session is kept for a
 * reconnect). */
void ac__tls_end(ac_conn_t *c);
/* The final close of an outbound connection: the kept session goes. */
void ac__tls_forget_session(ac_conn_t *c);

/* OpenSSL's allocations are routed through the library's (alloc.h). */
bool ac__tls_hooked(void);

#endif /* AC_TLS_H */
