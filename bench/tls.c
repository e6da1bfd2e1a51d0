/*
 * tls.c: actorconn-bench's TLS client (OpenSSL 3), for --tls CAFILE. See
 * netload.h.
 *
 * The load generators keep their sockets and epoll sets; over TLS a
 * connection also has an SSL on its socket, and net_send and net_recv
 * hand their bytes to SSL_write and SSL_read. What changes with TLS:
 *
 *   - The handshakes of a thread's connections run together, before the
 *     first request, in net_tls_handshake_all: each SSL says whether it
 *     waits to read or to write, and epoll says when it can.
 *   - A write that OpenSSL could not finish (SSL_ERROR_WANT_WRITE) has
 *     already taken some of its bytes into a record: it must be repeated
 *     with the same bytes first, which may have moved
 *     (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER: the fanout output buffer
 *     is compacted), and more may follow them. SSL_MODE_ENABLE_PARTIAL_
 *     WRITE makes each record written count, as write(2) would.
 *   - Reads go through a read-ahead buffer (one read(2) takes every
 *     record there is, as a plaintext read would take every byte), so
 *     records can wait inside OpenSSL where epoll does not see them:
 *     net_tls_recv reads until OpenSSL has nothing left or the caller's
 *     buffer is full, and says in tls_more that net_poll must call again.
 *
 * The client keeps no session cache: the handshake subcommand keeps the
 * one session it resumes itself. Built without OpenSSL, --tls is not an
 * option and the functions below are stubs that are never called.
 */
#include "config.h"
#include "netload.h"

#ifdef AC_HAVE_OPENSSL

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define TLS_HANDSHAKE_S 10 /* bound on a thread's handshakes (setup) */

/* ---- errors ------------------------------------------------------------------- */

/*
 * Why an SSL call on ssl that returned ret failed, into err: OpenSSL's
 * first queued error, the peer's close, or errno. Empties the thread's
 * error queue, which the next SSL_get_error needs empty.
 */
static void tls_why(SSL *ssl, int ret, const char *what, char *err,
		    size_t errlen)
{
	int e = SSL_get_error(ssl, ret), saved = errno;
	unsigned long code = ERR_get_error();
	char buf[256];

	if (code) {
		ERR_error_string_n(code, buf, sizeof(buf));
	} else if (e == SSL_ERROR_ZERO_RETURN ||
		   (e == SSL_ERROR_SYSCALL && saved == 0)) {
		snprintf(buf, sizeof(buf), "the server closed the connection");
	} else if (e == SSL_ERROR_SYSCALL) {
		snprintf(buf, sizeof(buf), "%s", strerror(saved));
	} else if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		snprintf(buf, sizeof(buf), "%s",
			 saved == EAGAIN ? "timed out" : "would block");
	} else {
		snprintf(buf, sizeof(buf), "SSL error %d", e);
	}
	if (code == 0 || SSL_get_verify_result(ssl) == X509_V_OK)
		snprintf(err, errlen, "%s: %s", what, buf);
	else
		snprintf(err, errlen, "%s: %s (%s)", what, buf,
			 X509_verify_cert_error_string(
				 SSL_get_verify_result(ssl)));
	ERR_clear_error();
}

/* ---- the context and the SSLs ------------------------------------------------ */

struct ssl_ctx_st *net_tls_ctx_new(const struct opts *o)
{
	SSL_CTX *ctx;
	unsigned long code;
	char buf[256];

	if (!o->tls)
		return NULL;
	if (!(ctx = SSL_CTX_new(TLS_client_method())))
		goto fail;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* See the top of this file. No RELEASE_BUFFERS: the client is not
	 * what is measured, and every connection is busy. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
				      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (SSL_CTX_load_verify_locations(ctx, o->tls, NULL) != 1)
		goto fail;
	return ctx;
fail:
	code = ERR_get_error();
	ERR_error_string_n(code, buf, sizeof(buf));
	die("TLS client context (--tls %s): %s", o->tls,
	    code ? buf : "out of memory");
}

void net_tls_ctx_free(struct ssl_ctx_st *ctx)
{
	SSL_CTX_free(ctx);
}

struct ssl_st *net_tls_new(struct ssl_ctx_st *ctx, int fd,
			   const struct net_addr *a, char *err, size_t errlen)
{
	unsigned char ip[16];
	int is_ip = inet_pton(AF_INET, a->host, ip) == 1 ||
		    inet_pton(AF_INET6, a->host, ip) == 1;
	SSL *ssl = SSL_new(ctx);

	if (!ssl || !SSL_set_fd(ssl, fd))
		goto fail;
	/* The certificate must name the server as --server does: an
	 * address in its IP names, a host name in its DNS names (and sent
	 * as SNI, which an address may not be). */
	if (is_ip) {
		if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
						   a->host))
			goto fail;
	} else if (!SSL_set_tlsext_host_name(ssl, a->host) ||
		   !SSL_set1_host(ssl, a->host)) {
		goto fail;
	}
	SSL_set_connect_state(ssl);
	return ssl;
fail:
	ERR_error_string_n(ERR_get_error(), err, errlen);
	ERR_clear_error();
	SSL_free(ssl);
	return NULL;
}

void net_tls_free(struct ssl_st *ssl)
{
	SSL_free(ssl);
}

void net_tls_describe(struct ssl_st *ssl, char *buf, size_t n)
{
	snprintf(buf, n, "%s %s", SSL_get_version(ssl),
		 SSL_get_cipher_name(ssl));
}

/* ---- blocking sockets ----------------------------------------------------------- */

int net_tls_connect_blocking(struct ssl_st *ssl, char *err, size_t errlen)
{
	int ret = SSL_connect(ssl);

	if (ret == 1)
		return 0;
	tls_why(ssl, ret, "TLS handshake", err, errlen);
	return -1;
}

int net_tls_write_all(struct ssl_st *ssl, const void *p, size_t n, char *err,
		      size_t errlen)
{
	size_t done = 0;

	while (done < n) {
		int ret = SSL_write(ssl, (const char *)p + done,
				    (int)(n - done));

		if (ret <= 0) {
			tls_why(ssl, ret, "SSL_write", err, errlen);
			return -1;
		}
		done += (size_t)ret;
	}
	return 0;
}

ssize_t net_tls_read_some(struct ssl_st *ssl, void *p, size_t n, char *err,
			  size_t errlen)
{
	int ret = SSL_read(ssl, p, (int)n);

	if (ret > 0)
		return ret;
	tls_why(ssl, ret, "SSL_read", err, errlen);
	return -1;
}

/* ---- a client thread's non-blocking connections -------------------------------- */

int net_tls_open(struct net_thread *t, struct net_conn *c)
{
	char err[256];

	if (!(c->ssl = net_tls_new(t->run->tls, c->fd, net_conn_addr(t, c),
				   err, sizeof(err)))) {
		net_fail(t, "SSL_new: %s", err);
		return -1;
	}
	return 0;
}

int net_tls_step(struct net_thread *t, struct net_conn *c)
{
	int ret = SSL_do_handshake(c->ssl);
	char err[300];

	if (ret == 1) {
		if (t == t->run->threads[0] && !t->run->tls_desc[0])
			net_tls_describe(c->ssl, t->run->tls_desc,
					 sizeof(t->run->tls_desc));
		return net_arm(t, c, 0) ? -1 : 1;
	}
	switch (SSL_get_error(c->ssl, ret)) {
	case SSL_ERROR_WANT_READ:
		return net_arm(t, c, 0);
	case SSL_ERROR_WANT_WRITE:
		return net_arm(t, c, 1);
	default:
		tls_why(c->ssl, ret, "TLS handshake", err, sizeof(err));
		net_fail(t, "%s", err);
		return -1;
	}
}

int net_tls_handshake_all(struct net_thread *t)
{
	struct epoll_event evs[256];
	uint64_t deadline = now_ns() + TLS_HANDSHAKE_S * 1000000000ull;
	char *done;
	int left = 0, rc = -1;

	if (!t->run->tls || t->nconn == 0)
		return 0;
	if (!(done = calloc((size_t)t->nconn, 1))) {
		net_fail(t, "out of memory");
		return -1;
	}
	/* Each sends its ClientHello; then each goes on when epoll says its
	 * socket is ready for what it waits for. */
	for (int i = 0; i < t->nconn; i++) {
		int s = net_tls_step(t, net_conn_at(t, i));

		if (s < 0)
			goto out;
		done[i] = (char)s;
		left += !s;
	}
	while (left > 0) {
		int n = epoll_wait(t->ep, evs, 256, 100);

		if (n < 0 && errno != EINTR) {
			net_fail(t, "epoll_wait: %s", strerror(errno));
			goto out;
		}
		for (int k = 0; k < n; k++) {
			struct net_conn *c = evs[k].data.ptr;
			/* conns is an array: the index from the address. */
			int i, s;

			if (!c) /* the eventfd (fanout): nothing to do yet */
				continue;
			i = (int)(((char *)c - (char *)t->conns) /
				  (ptrdiff_t)t->conn_size);
			if (done[i])
				continue;
			if ((s = net_tls_step(t, c)) < 0)
				goto out;
			done[i] = (char)s;
			left -= s;
		}
		if (left > 0 && now_ns() > deadline) {
			net_fail(t, "%d of %d TLS handshakes not done after "
				 "%d s", left, t->nconn, TLS_HANDSHAKE_S);
			goto out;
		}
	}
	rc = 0;
out:
	free(done);
	return rc;
}

ssize_t net_tls_send(struct net_thread *t, struct net_conn *c, const char *p,
		     size_t n)
{
	size_t done = 0;
	char err[300];

	while (done < n) {
		/* SSL_write takes an int; a record is at most 16 KiB. */
		size_t k = n - done < (1u << 30) ? n - done : 1u << 30;
		int ret = SSL_write(c->ssl, p + done, (int)k);

		if (ret > 0) {
			done += (size_t)ret;
			continue;
		}
		switch (SSL_get_error(c->ssl, ret)) {
		case SSL_ERROR_WANT_WRITE:
		/* TLS 1.3 needs no read to write (no renegotiation); a
		 * retry when writable is right for either. */
		case SSL_ERROR_WANT_READ:
			return net_arm(t, c, 1) ? -1 : (ssize_t)done;
		default:
			tls_why(c->ssl, ret, "SSL_write", err, sizeof(err));
			net_fail(t, "%s", err);
			return -1;
		}
	}
	return net_arm(t, c, 0) ? -1 : (ssize_t)done;
}

ssize_t net_tls_recv(struct net_thread *t, struct net_conn *c, char *buf,
		     size_t n, const char *what)
{
	size_t got = 0;
	char err[300];
	int e;

	while (got < n) {
		size_t k = n - got < (1u << 30) ? n - got : 1u << 30;
		int ret = SSL_read(c->ssl, buf + got, (int)k);

		if (ret > 0) {
			got += (size_t)ret;
			/* Nothing buffered: the rest, if any, is in the
			 * socket, and epoll will say so. Stopping here saves
			 * the read(2) that would find it empty. */
			if (!SSL_has_pending(c->ssl))
				return (ssize_t)got;
			continue;
		}
		e = SSL_get_error(c->ssl, ret);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			return (ssize_t)got;
		/* Said as net_recv says it of a plaintext connection. */
		if (e == SSL_ERROR_ZERO_RETURN ||
		    (e == SSL_ERROR_SYSCALL && errno == 0 && !ERR_peek_error())) {
			net_fail(t, "the server closed a %s", what);
			return -1;
		}
		tls_why(c->ssl, ret, "SSL_read", err, sizeof(err));
		net_fail(t, "%s", err);
		return -1;
	}
	/* The buffer is full and OpenSSL may hold more records. */
	c->tls_more = SSL_has_pending(c->ssl);
	return (ssize_t)got;
}

#else /* !AC_HAVE_OPENSSL: --tls is no option; never called */

struct ssl_ctx_st *net_tls_ctx_new(const struct opts *o)
{
	if (o->tls)
		die("built without OpenSSL: no TLS");
	return NULL;
}

void net_tls_ctx_free(struct ssl_ctx_st *ctx)
{
	(void)ctx;
}

struct ssl_st *net_tls_new(struct ssl_ctx_st *ctx, int fd,
			   const struct net_addr *a, char *err, size_t errlen)
{
	snprintf(err, errlen, "built without OpenSSL");
	return NULL;
}

void net_tls_free(struct ssl_st *ssl)
{
	(void)ssl;
}

void net_tls_describe(struct ssl_st *ssl, char *buf, size_t n)
{
	snprintf(buf, n, "-");
}

int net_tls_connect_blocking(struct ssl_st *ssl, char *err, size_t errlen)
{
	snprintf(err, errlen, "built without OpenSSL");
	return -1;
}

int net_tls_write_all(struct ssl_st *ssl, const void *p, size_t n, char *err,
		      size_t errlen)
{
	snprintf(err, errlen, "built without OpenSSL");
	return -1;
}

ssize_t net_tls_read_some(struct ssl_st *ssl, void *p, size_t n, char *err,
			  size_t errlen)
{
	snprintf(err, errlen, "built without OpenSSL");
	return -1;
}

int net_tls_open(struct net_thread *t, struct net_conn *c)
{
	net_fail(t, "built without OpenSSL");
	return -1;
}

int net_tls_step(struct net_thread *t, struct net_conn *c)
{
	net_fail(t, "built without OpenSSL");
	return -1;
}

int net_tls_handshake_all(struct net_thread *t)
{
	return 0;
}

ssize_t net_tls_send(struct net_thread *t, struct net_conn *c, const char *p,
		     size_t n)
{
	net_fail(t, "built without OpenSSL");
	return -1;
}

ssize_t net_tls_recv(struct net_thread *t, struct net_conn *c, char *buf,
		     size_t n, const char *what)
{
	net_fail(t, "built without OpenSSL");
	return -1;
}

#endif /* AC_HAVE_OPENSSL */
