/*
 * tls.c: TLS contexts (ac_tls_*) and the TLS side of a connection, on
 * OpenSSL 3. See tls.h for how it sits between a connection and its
 * socket. Built --without-openssl, only the stubs at the end remain.
 */
#include "tls.h"
#include "alloc.h"
#include "conn.h"
#include "connect.h"
#include "loop.h"
#include "buf.h"
#include "outq.h"

#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>

#ifdef AC_HAVE_OPENSSL

#include <arpa/inet.h>
#include <pthread.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define AC__TLS_HANDSHAKE_MS 5000u /* default handshake_timeout_ms */
#define AC__TLS_BATCH (64u << 10)  /* plaintext encrypted per batch */

struct ac__sni {
	char *name;  /* "host" or "*.domain" */
	ac_tls_t *t;
};

struct ac_tls_s {
	int refs;              /* atomic: the user's, listeners', protocols',
				  connections', SNI parents' */
	pthread_mutex_t lock;  /* ctx (swapped by reload) and snis */
	SSL_CTX *ctx;
	int role;
	int verify;
	unsigned handshake_ms;
	/* The options, owned, to build the context again on reload. */
	char *cert_file, *key_file, *ca_file, *ciphers, *ciphersuites;
	int min_version;
	unsigned char *alpn;   /* wire format: length-prefixed names */
	unsigned alpn_len;
	struct ac__sni *snis;
	unsigned nsnis;
	bool sni_entry;        /* some context's SNI entry (one level only) */
};

/* A connection's TLS state (in its aux). */
struct ac__tls_conn {
	SSL *ssl;
	BIO *bio;              /* ours: reads the socket, writes into cq */
	ac_tls_t *t;           /* the context it started from (a reference) */
	struct ac__outq cq;    /* ciphertext not yet sent */
	size_t batch;          /* plaintext behind the ciphertext in cq */
	struct event *hs_ev;   /* the handshake timeout */
	uint8_t done;          /* handshake finished */
	uint8_t shut;          /* close_notify written */
	int verify_result;     /* of a refused certificate */
};

static struct ac__tls_conn *tc_of(const ac_conn_t *c)
{
	return c->aux ? c->aux->tls : NULL;
}

/* ---- errors --------------------------------------------------------------------- */

/* OpenSSL's queued errors as one line into why, and cleared. */
static void why_openssl(char *why, size_t len, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256] = "";

	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	if (why && len)
		snprintf(why, len, "%s%s%s", what, e ? ": " : "", buf);
	ERR_clear_error();
}

static void why_set(char *why, size_t len, const char *fmt, const char *arg)
{
	if (why && len)
		snprintf(why, len, fmt, arg);
}

/* ---- OpenSSL's memory ------------------------------------------------------ */

/* OpenSSL's allocations go through ours: counted (ac_debug_counts), from
 * the library's allocator, and failing under fault injection like ours.
 * Only possible before OpenSSL's first allocation in the process. */
static bool hooked;
static pthread_once_t hook_once = PTHREAD_ONCE_INIT;

static void *ossl_malloc(size_t n, const char *file, int line)
{
	return ac__malloc(AC__K_OPENSSL, n);
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line)
{
	if (p && n == 0) {
		ac__free(AC__K_OPENSSL, p);
		return NULL;
	}
	return ac__realloc(AC__K_OPENSSL, p, n);
}

static void ossl_free(void *p, const char *file, int line)
{
	ac__free(AC__K_OPENSSL, p);
}

static void hook_memory(void)
{
	hooked = CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc,
					  ossl_free) == 1;
}

bool ac__tls_hooked(void)
{
	return __atomic_load_n(&hooked, __ATOMIC_ACQUIRE);
}

/* ---- contexts ------------------------------------------------------------------- */

static char *tls_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = ac__malloc(AC__K_TLS, n);

	if (d)
		memcpy(d, s, n);
	return d;
}

static char *dup_or_null(const char *s, bool *ok)
{
	char *d;

	if (!s)
		return NULL;
	if (!(d = tls_strdup(s)))
		*ok = false;
	return d;
}

/* "h2,http/1.1" in ALPN's wire format (length-prefixed names). */
static int alpn_wire(const char *list, unsigned char **out, unsigned *len)
{
	size_t n = strlen(list), w = 0;
	unsigned char *buf = ac__malloc(AC__K_TLS, n + 1);

	if (!buf)
		return AC_ENOMEM;
	for (const char *p = list; *p;) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);

		if (l == 0 || l > 255) {
			ac__free(AC__K_TLS, buf);
			return AC_EINVAL;
		}
		buf[w++] = (unsigned char)l;
		memcpy(buf + w, p, l);
		w += l;
		p += l + (e ? 1 : 0);
	}
	*out = buf;
	*len = (unsigned)w;
	return 0;
}

static int alpn_select(SSL *ssl, const unsigned char **out,
		       unsigned char *outlen, const unsigned char *in,
		       unsigned inlen, void *arg)
{
	ac_tls_t *t = arg;

	/* Ours first: the server's preference. */
	if (SSL_select_next_proto((unsigned char **)out, outlen, t->alpn,
				  t->alpn_len, in, inlen) == OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_OK;
	return SSL_TLSEXT_ERR_NOACK; /* no protocol in common: none */
}

/* Whether host matches pattern: equal, or "*.rest" matching one label
 * then rest. Case-insensitive. */
static bool name_matches(const char *pattern, const char *host)
{
	const char *dot;

	if (strncmp(pattern, "*.", 2) != 0)
		return strcasecmp(pattern, host) == 0;
	dot = strchr(host, '.');
	return dot && dot != host && strcasecmp(pattern + 1, dot) == 0;
}

/* Our reference to t's current SSL_CTX, taken under its lock. */
static SSL_CTX *ctx_get(ac_tls_t *t)
{
	SSL_CTX *ctx;

	pthread_mutex_lock(&t->lock);
	ctx = t->ctx;
	SSL_CTX_up_ref(ctx);
	pthread_mutex_unlock(&t->lock);
	return ctx;
}

/* A server's ClientHello named a server: switch to that name's context. */
static int servername_cb(SSL *ssl, int *alert, void *arg)
{
	ac_tls_t *t = arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	ac_tls_t *pick = NULL;

	if (!name)
		return SSL_TLSEXT_ERR_OK;
	pthread_mutex_lock(&t->lock);
	for (unsigned i = 0; i < t->nsnis && !pick; i++)
		if (name_matches(t->snis[i].name, name))
			pick = t->snis[i].t;
	if (pick)
		ac__tls_ref(pick);
	pthread_mutex_unlock(&t->lock);
	if (pick) {
		SSL_CTX *ours = SSL_get_SSL_CTX(ssl), *ctx = ctx_get(pick);
		STACK_OF(X509_NAME) *cas =
			SSL_dup_CA_list(SSL_CTX_get_client_CA_list(ours));

		/* The entry's certificate, key and ALPN; the listener's
		 * verification: its mode stays with the SSL, and its CAs
		 * (to check, and to name to the client) are set on it
		 * after the switch, which replaces the SSL's certificate
		 * settings. ours is alive: the SSL holds it until then. */
		SSL_set_SSL_CTX(ssl, ctx); /* takes its own reference */
		SSL_set1_verify_cert_store(ssl, SSL_CTX_get_cert_store(ours));
		if (cas)
			SSL_set_client_CA_list(ssl, cas);
		SSL_CTX_free(ctx);
		ac__tls_unref(pick);
	}
	return SSL_TLSEXT_ERR_OK;
}

static int no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	return 0;
}

/* A new SSL_CTX from t's options, reading the files now. */
static SSL_CTX *ctx_build(ac_tls_t *t, char *why, size_t len)
{
	SSL_CTX *ctx;
	bool server = t->role == AC_TLS_SERVER;

	ERR_clear_error();
	if (!(ctx = SSL_CTX_new(server ? TLS_server_method()
				       : TLS_client_method()))) {
		why_openssl(why, len, "SSL_CTX_new");
		return NULL;
	}
	/* Idle connections give back OpenSSL's 16 KiB record buffers;
	 * a clean EOF without close_notify ends the stream as plain TCP
	 * would (the application's framing says whether it was whole). */
	/* An encrypted key fails to load rather than prompt on a
	 * terminal. */
	SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS |
				      SSL_MODE_ENABLE_PARTIAL_WRITE);
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF |
					 SSL_OP_NO_RENEGOTIATION);
	if (!SSL_CTX_set_min_proto_version(
		    ctx, t->min_version == AC_TLS_1_3 ? TLS1_3_VERSION
						      : TLS1_2_VERSION)) {
		why_openssl(why, len, "minimum protocol version");
		goto fail;
	}
	if (t->ciphers && !SSL_CTX_set_cipher_list(ctx, t->ciphers)) {
		why_openssl(why, len, "cipher list");
		goto fail;
	}
	if (t->ciphersuites && !SSL_CTX_set_ciphersuites(ctx, t->ciphersuites)) {
		why_openssl(why, len, "TLS 1.3 cipher suites");
		goto fail;
	}
	if (t->cert_file) {
		if (SSL_CTX_use_certificate_chain_file(ctx, t->cert_file) != 1) {
			why_openssl(why, len, t->cert_file);
			goto fail;
		}
		if (!t->key_file ||
		    SSL_CTX_use_PrivateKey_file(ctx, t->key_file,
						SSL_FILETYPE_PEM) != 1) {
			bool mismatch = ERR_GET_REASON(ERR_peek_last_error()) ==
					X509_R_KEY_VALUES_MISMATCH;

			why_openssl(why, len,
				    !t->key_file ? "no key_file"
				    : mismatch   ? "the key does not match the "
						   "certificate"
						 : t->key_file);
			goto fail;
		}
		if (SSL_CTX_check_private_key(ctx) != 1) {
			why_openssl(why, len,
				    "the key does not match the certificate");
			goto fail;
		}
	} else if (server || t->key_file) {
		why_set(why, len, "%s",
			server ? "a server needs cert_file and key_file"
			       : "key_file without cert_file");
		goto fail;
	}
	if (t->ca_file) {
		if (SSL_CTX_load_verify_locations(ctx, t->ca_file, NULL) != 1) {
			why_openssl(why, len, t->ca_file);
			goto fail;
		}
	} else if (!server && t->verify != AC_TLS_VERIFY_NONE &&
		   SSL_CTX_set_default_verify_paths(ctx) != 1) {
		why_openssl(why, len, "the system's CA certificates");
		goto fail;
	}
	if (server) {
		if (t->verify == AC_TLS_VERIFY_CLIENT) {
			STACK_OF(X509_NAME) *names =
				SSL_load_client_CA_file(t->ca_file);

			if (names)
				SSL_CTX_set_client_CA_list(ctx, names);
			SSL_CTX_set_verify(ctx,
					   SSL_VERIFY_PEER |
						   SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
					   NULL);
		}
		/* Resumption by ticket only: stateless, so no session cache
		 * (and no lock) is shared by the loops, and closed
		 * connections leave nothing behind. */
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
		SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"ac",
					       2);
		SSL_CTX_set_tlsext_servername_callback(ctx, servername_cb);
		SSL_CTX_set_tlsext_servername_arg(ctx, t);
		if (t->alpn)
			SSL_CTX_set_alpn_select_cb(ctx, alpn_select, t);
	} else {
		SSL_CTX_set_verify(ctx,
				   t->verify == AC_TLS_VERIFY_NONE
					   ? SSL_VERIFY_NONE
					   : SSL_VERIFY_PEER,
				   NULL);
		if (t->alpn && SSL_CTX_set_alpn_protos(ctx, t->alpn,
						       t->alpn_len) != 0) {
			why_openssl(why, len, "ALPN list");
			goto fail;
		}
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

static void tls_destroy(ac_tls_t *t)
{
	for (unsigned i = 0; i < t->nsnis; i++) {
		ac__free(AC__K_TLS, t->snis[i].name);
		ac__tls_unref(t->snis[i].t);
	}
	ac__free(AC__K_TLS, t->snis);
	SSL_CTX_free(t->ctx);
	ac__free(AC__K_TLS, t->cert_file);
	ac__free(AC__K_TLS, t->key_file);
	ac__free(AC__K_TLS, t->ca_file);
	ac__free(AC__K_TLS, t->ciphers);
	ac__free(AC__K_TLS, t->ciphersuites);
	ac__free(AC__K_TLS, t->alpn);
	pthread_mutex_destroy(&t->lock);
	ac__free(AC__K_TLS, t);
}

void ac__tls_ref(ac_tls_t *t)
{
	__atomic_fetch_add(&t->refs, 1, __ATOMIC_RELAXED);
}

void ac__tls_unref(ac_tls_t *t)
{
	/* Acq-rel: every holder's last use happens before the free. */
	if (t && __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) == 0)
		tls_destroy(t);
}

bool ac__tls_is_server(const ac_tls_t *t)
{
	return t->role == AC_TLS_SERVER;
}

AC_EXPORT ac_tls_t *ac_tls_new(const ac_tls_opts_t *o, char *why,
			       size_t whylen)
{
	ac_tls_t *t;
	bool ok = true;
	int err = 0;

	pthread_once(&hook_once, hook_memory);
	if (why && whylen)
		why[0] = 0;
	if (!o || (o->role != AC_TLS_SERVER && o->role != AC_TLS_CLIENT) ||
	    (o->min_version && o->min_version != AC_TLS_1_2 &&
	     o->min_version != AC_TLS_1_3) ||
	    o->verify < AC_TLS_VERIFY_DEFAULT ||
	    o->verify > AC_TLS_VERIFY_CLIENT ||
	    (o->verify == AC_TLS_VERIFY_NONE && o->role != AC_TLS_CLIENT) ||
	    (o->verify == AC_TLS_VERIFY_CLIENT &&
	     (o->role != AC_TLS_SERVER || !o->ca_file)) ||
	    !ac__reserved_zero(o->reserved, sizeof(o->reserved))) {
		why_set(why, whylen, "%s",
			"bad options (role, min_version, a verify mode that "
			"does not fit the role: mutual TLS needs a server and "
			"ca_file; or reserved fields that are not zero)");
		errno = EINVAL;
		return NULL;
	}
	if (!(t = ac__calloc(AC__K_TLS, 1, sizeof(*t)))) {
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&t->lock, NULL);
	t->refs = 1;
	t->role = o->role;
	t->verify = o->verify;
	t->min_version = o->min_version ? o->min_version : AC_TLS_1_2;
	t->handshake_ms = o->handshake_timeout_ms ? o->handshake_timeout_ms
						  : AC__TLS_HANDSHAKE_MS;
	t->cert_file = dup_or_null(o->cert_file, &ok);
	t->key_file = dup_or_null(o->key_file, &ok);
	t->ca_file = dup_or_null(o->ca_file, &ok);
	t->ciphers = dup_or_null(o->ciphers, &ok);
	t->ciphersuites = dup_or_null(o->ciphersuites, &ok);
	if (ok && o->alpn &&
	    (err = alpn_wire(o->alpn, &t->alpn, &t->alpn_len)))
		ok = false;
	if (!ok) {
		int e = err == AC_EINVAL ? EINVAL : ENOMEM;

		why_set(why, whylen, "%s",
			e == EINVAL ? "bad alpn list" : "out of memory");
		tls_destroy(t);
		errno = e;
		return NULL;
	}
	if (!(t->ctx = ctx_build(t, why, whylen))) {
		tls_destroy(t);
		errno = EINVAL;
		return NULL;
	}
	return t;
}

AC_EXPORT int ac_tls_reload(ac_tls_t *t, char *why, size_t whylen)
{
	SSL_CTX *ctx, *old;

	if (why && whylen)
		why[0] = 0;
	if (!t)
		return AC_EINVAL;
	if (!(ctx = ctx_build(t, why, whylen)))
		return AC_ETLS; /* the old context stays */
	pthread_mutex_lock(&t->lock);
	old = t->ctx;
	t->ctx = ctx;
	pthread_mutex_unlock(&t->lock);
	/* Connections that started from it hold their own references. */
	SSL_CTX_free(old);
	return 0;
}

AC_EXPORT int ac_tls_sni(ac_tls_t *server, const char *name, ac_tls_t *ctx)
{
	struct ac__sni *v;
	char *n;
	int err;

	if (!server || !ctx || !name || !*name || server == ctx ||
	    server->role != AC_TLS_SERVER || ctx->role != AC_TLS_SERVER ||
	    (strchr(name, '*') && (strncmp(name, "*.", 2) != 0 ||
				   strchr(name + 1, '*'))))
		return AC_EINVAL;
	if (!(n = tls_strdup(name)))
		return AC_ENOMEM;
	/* One level: an entry has no entries, and a context with entries
	 * is nobody's entry (so no two contexts hold each other). The two
	 * locks, in address order. */
	pthread_mutex_lock(server < ctx ? &server->lock : &ctx->lock);
	pthread_mutex_lock(server < ctx ? &ctx->lock : &server->lock);
	if (server->sni_entry || ctx->nsnis) {
		v = NULL;
		err = AC_EINVAL;
	} else if (!(v = ac__realloc(AC__K_TLS, server->snis,
				     (server->nsnis + 1) * sizeof(*v)))) {
		err = AC_ENOMEM;
	} else {
		ac__tls_ref(ctx);
		ctx->sni_entry = true;
		v[server->nsnis++] = (struct ac__sni){n, ctx};
		server->snis = v;
		err = 0;
	}
	pthread_mutex_unlock(&ctx->lock);
	pthread_mutex_unlock(&server->lock);
	if (err)
		ac__free(AC__K_TLS, n);
	return err;
}

AC_EXPORT void ac_tls_free(ac_tls_t *t)
{
	ac__tls_unref(t);
}

/* ---- the socket BIO: reads with recv, writes into the ciphertext queue --------- */

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int bio_write(BIO *b, const char *data, int len)
{
	ac_conn_t *c = BIO_get_data(b);
	struct ac__tls_conn *tc = tc_of(c);

	BIO_clear_retry_flags(b);
	if (len <= 0)
		return 0;
	if (ac__outq_write(&tc->cq, data, (size_t)len)) {
		errno = ENOMEM; /* the TLS call fails with AC_ENOMEM */
		return -1;
	}
	return len;
}

static int bio_read(BIO *b, char *buf, int len)
{
	ac_conn_t *c = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	do
		n = recv(c->fd, buf, (size_t)len, 0);
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		int e = errno;

		ac__conn_got_bytes(c, (size_t)n); /* bytes on the wire */
		errno = e;
	} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		BIO_set_retry_read(b);
	}
	return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static void bio_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
				     "actorconn socket");

	if (m && BIO_meth_set_write(m, bio_write) &&
	    BIO_meth_set_read(m, bio_read) && BIO_meth_set_ctrl(m, bio_ctrl) &&
	    BIO_meth_set_create(m, bio_create))
		bio_method = m;
	else
		BIO_meth_free(m);
}

/* ---- a connection's handshake ---------------------------------------------------- */

static void hs_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	ac_conn_t *c = arg;
	ac__loop_t *loop = c->loop;

	ac__loop_enter(loop);
	ac__conn_fail(c, AC_EHANDSHAKE);
	ac__loop_leave(loop);
}

int ac__tls_start(ac_conn_t *c, ac_tls_t *t, const char *name)
{
	struct ac__tls_conn *tc;
	struct timeval tv = {t->handshake_ms / 1000,
			     (t->handshake_ms % 1000) * 1000};
	SSL_CTX *ctx;

	pthread_once(&bio_once, bio_init);
	if (!bio_method || !c->aux)
		return AC_ENOMEM;
	if (!(tc = ac__calloc(AC__K_TLS, 1, sizeof(*tc))))
		return AC_ENOMEM;
	ac__outq_init(&tc->cq);
	ctx = ctx_get(t);
	tc->ssl = SSL_new(ctx);
	SSL_CTX_free(ctx); /* the SSL holds its own */
	if (!tc->ssl || !(tc->bio = BIO_new(bio_method)) ||
	    !(tc->hs_ev = evtimer_new(c->loop->base, hs_timeout_cb, c)) ||
	    evtimer_add(tc->hs_ev, &tv))
		goto nomem;
	BIO_set_data(tc->bio, c);
	SSL_set_bio(tc->ssl, tc->bio, tc->bio); /* one BIO: one reference */
	/* One recv takes as many records as have come (ac__tls_recv). */
	SSL_set_read_ahead(tc->ssl, 1);
	tc->t = t;
	ac__tls_ref(t);
	c->aux->tls = tc;
	if (t->role == AC_TLS_SERVER) {
		SSL_set_accept_state(tc->ssl);
		return 0;
	}
	SSL_set_connect_state(tc->ssl);
	if (c->ob && c->ob->tls_session)
		SSL_set_session(tc->ssl, c->ob->tls_session); /* resume */
	if (name && *name) {
		struct in6_addr a6;
		struct in_addr a4;
		bool ip = inet_pton(AF_INET, name, &a4) == 1 ||
			  inet_pton(AF_INET6, name, &a6) == 1;

		/* SNI carries names, never addresses; the check covers
		 * both. */
		if ((!ip && !SSL_set_tlsext_host_name(tc->ssl, name)) ||
		    (t->verify != AC_TLS_VERIFY_NONE &&
		     (ip ? !X509_VERIFY_PARAM_set1_ip_asc(
				   SSL_get0_param(tc->ssl), name)
			 : !SSL_set1_host(tc->ssl, name)))) {
			ERR_clear_error();
			ac__tls_end(c);
			return AC_ETLS;
		}
	}
	return 0;
nomem:
	ERR_clear_error();
	if (tc->hs_ev)
		event_free(tc->hs_ev);
	if (tc->bio && !SSL_get_rbio(tc->ssl))
		BIO_free(tc->bio);
	SSL_free(tc->ssl);
	ac__free(AC__K_TLS, tc);
	return AC_ENOMEM;
}

/* The close reason of a failed TLS call. */
static int failure(struct ac__tls_conn *tc, int ret)
{
	int e = SSL_get_error(tc->ssl, ret);
	unsigned long err = ERR_peek_error();
	int reason = AC_ETLS;

	if (e == SSL_ERROR_SYSCALL)
		/* errno from our BIO (recv, or ENOMEM from the queue);
		 * never "try again", which is not a way to fail. */
		reason = errno == ECONNRESET || errno == EPIPE ? AC_ECONNRESET
			 : errno == EAGAIN || errno == EWOULDBLOCK ? AC_ETLS
			 : errno ? -errno
				 : AC_EEOF;
	else if (e == SSL_ERROR_ZERO_RETURN)
		reason = AC_EEOF;
	else if (ERR_GET_LIB(err) == ERR_LIB_SSL &&
		 (ERR_GET_REASON(err) == SSL_R_CERTIFICATE_VERIFY_FAILED ||
		  ERR_GET_REASON(err) ==
			  SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE))
		reason = AC_ECERT;
	tc->verify_result = (int)SSL_get_verify_result(tc->ssl);
	if (reason == AC_ECERT && tc->verify_result == X509_V_OK)
		tc->verify_result = X509_V_ERR_APPLICATION_VERIFICATION;
	ERR_clear_error();
	return reason;
}

int ac__tls_step(ac_conn_t *c)
{
	struct ac__tls_conn *tc = tc_of(c);
	int r;

	ERR_clear_error();
	errno = 0; /* what failure() reads is this call's */
	if ((r = SSL_do_handshake(tc->ssl)) == 1) {
		tc->done = 1;
		ac__event_free(&tc->hs_ev); /* an open connection keeps none */
		return 1;
	}
	switch (SSL_get_error(tc->ssl, r)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return 0; /* what it wrote waits in cq for the flush */
	default:
		return failure(tc, r);
	}
}

/* ---- the stream ------------------------------------------------------------------ */

/*
 * Plaintext of as many records as have come, up to len. SSL_read_ex
 * gives one record at a time; with read-ahead the first call takes what
 * the socket holds into OpenSSL's buffer, and the records already there
 * follow without a system call. A client that pipelines, or a publisher
 * whose PUBLISHes came in separate records, is read in one go as over
 * plain TCP, not a record per turn of the loop: `actorconn-bench fanout
 * --tls`, 1,000 subscribers, went from 1.15 publishes per write to each
 * subscriber to 37, and from 145k to 3.9M deliveries/s. Errors after the
 * first record wait for the next call, which meets them again.
 */
ssize_t ac__tls_recv(ac_conn_t *c, void *buf, size_t len, bool *more)
{
	struct ac__tls_conn *tc = tc_of(c);
	size_t got = 0, n;
	int e;

	*more = false;
	ERR_clear_error();
	errno = 0; /* what failure() reads is this call's */
	if (SSL_read_ex(tc->ssl, buf, len, &got)) {
		bool ended = false;

		while (got < len && SSL_has_pending(tc->ssl)) {
			if (!SSL_read_ex(tc->ssl, (char *)buf + got, len - got,
					 &n)) {
				/* A close_notify or an error behind the data,
				 * taken off the socket already: the next call,
				 * at once, meets it again. */
				e = SSL_get_error(tc->ssl, 0);
				ended = e != SSL_ERROR_WANT_READ &&
					e != SSL_ERROR_WANT_WRITE;
				break;
			}
			got += n;
		}
		ERR_clear_error();
		/* That, plaintext decrypted and not taken, or records left
		 * over when buf is full: epoll will not tell us about them.
		 * (A partial record left over waits for the socket.) */
		*more = ended || SSL_pending(tc->ssl) > 0 ||
			(got == len && SSL_has_pending(tc->ssl));
		return (ssize_t)got;
	}
	e = SSL_get_error(tc->ssl, 0);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return AC_EAGAIN;
	if (e == SSL_ERROR_ZERO_RETURN) {
		ERR_clear_error();
		return 0; /* close_notify */
	}
	e = failure(tc, 0);
	return e == AC_EEOF ? 0 : e;
}

bool ac__tls_has_output(const ac_conn_t *c)
{
	return tc_of(c)->cq.bytes > 0;
}

bool ac__tls_notify_due(const ac_conn_t *c)
{
	const struct ac__tls_conn *tc = tc_of(c);

	return tc && tc->done && !tc->shut;
}

size_t ac__tls_unsent(const ac_conn_t *c)
{
	const struct ac__tls_conn *tc = tc_of(c);

	return tc && tc->cq.bytes ? tc->batch : 0;
}

/* Sends what cq holds. 0 when all went, AC_EAGAIN, or a close reason. */
static int send_cipher(ac_conn_t *c, struct ac__tls_conn *tc, size_t *sent)
{
	while (tc->cq.bytes) {
		bool full;
		ssize_t w = ac__outq_send(&tc->cq, c->fd, &full);

		if (w < 0)
			return (int)w;
		*sent += (size_t)w;
		if (full)
			return AC_EAGAIN;
	}
	tc->batch = 0;
	return 0;
}

int ac__tls_flush(ac_conn_t *c, bool closing, size_t *sent)
{
	struct ac__tls_conn *tc = tc_of(c);
	int err;

	*sent = 0;
	for (;;) {
		struct ac__chunk *ch;

		if ((err = send_cipher(c, tc, sent)))
			return err;
		if (!tc->done)
			return 0; /* the handshake's own records only */
		if (!c->out.bytes) {
			if (!closing || tc->shut)
				return 0;
			/* Everything is out: close_notify, once. */
			tc->shut = 1;
			ERR_clear_error();
			SSL_shutdown(tc->ssl);
			ERR_clear_error();
			continue;
		}
		/* Encrypt the next batch of plaintext: whole chunks, or the
		 * rest of one, up to AC__TLS_BATCH. */
		while (tc->batch < AC__TLS_BATCH &&
		       (ch = TAILQ_FIRST(&c->out.q))) {
			const unsigned char *p =
				(ch->buf ? ch->buf->data : ch->bytes) + ch->off;
			size_t n = ch->len - ch->off, w = 0;

			if (n > AC__TLS_BATCH - tc->batch)
				n = AC__TLS_BATCH - tc->batch;
			ERR_clear_error();
			errno = 0;
			if (n && !SSL_write_ex(tc->ssl, p, n, &w))
				return failure(tc, 0);
			ac__outq_consume(&c->out, w);
			tc->batch += w;
			if (!n)
				break;
		}
	}
}

void ac__tls_detach(ac_conn_t *c)
{
	struct ac__tls_conn *tc = tc_of(c);

	if (!tc)
		return;
	/* A handshake that failed left its alert in cq: one try to tell
	 * the peer why. */
	if (!tc->done && tc->cq.bytes && c->fd >= 0) {
		size_t sent = 0;

		send_cipher(c, tc, &sent);
	}
	if (tc->hs_ev)
		event_free(tc->hs_ev);
	tc->hs_ev = NULL;
}

void ac__tls_end(ac_conn_t *c)
{
	struct ac__tls_conn *tc = tc_of(c);

	if (!tc)
		return;
	ac__tls_detach(c);
	/* Keep the latest session that can resume: a reconnect offers it
	 * (one from before a server's reload may no longer be accepted;
	 * the full handshake that follows then brings a new one). */
	if (c->ob && tc->done) {
		SSL_SESSION *s = SSL_get1_session(tc->ssl);

		if (s && SSL_SESSION_is_resumable(s)) {
			ac__tls_forget_session(c);
			c->ob->tls_session = s;
		} else {
			SSL_SESSION_free(s);
		}
		/* Freeing an SSL that sent no close_notify marks its session
		 * unusable, to be safe after a truncation. A reset, a
		 * timeout or an abort of ours is no reason to give up a
		 * session (the next attempt is a new connection); a TLS
		 * failure is, and then OpenSSL's rule stands. */
		if (ac_close_reason_index(c->reason) != AC_CR_TLS)
			SSL_set_shutdown(tc->ssl, SSL_SENT_SHUTDOWN |
							  SSL_get_shutdown(tc->ssl));
	}
	SSL_free(tc->ssl); /* and the BIO, both references */
	ac__outq_clear(&tc->cq);
	ac__tls_unref(tc->t);
	ac__free(AC__K_TLS, tc);
	c->aux->tls = NULL;
}

void ac__tls_forget_session(ac_conn_t *c)
{
	if (c->ob && c->ob->tls_session) {
		SSL_SESSION_free(c->ob->tls_session);
		c->ob->tls_session = NULL;
	}
}

AC_EXPORT int ac_conn_tls_info(const ac_conn_t *c, ac_tls_info_t *out)
{
	const struct ac__tls_conn *tc;
	const char *s;
	const unsigned char *alpn;
	unsigned alpn_len;
	X509 *peer;
	int err;

	if ((err = ac__owner_check(c)))
		return err;
	if (!out || !(tc = tc_of(c)))
		return AC_EINVAL;
	memset(out, 0, sizeof(*out));
	if (tc->done) {
		snprintf(out->version, sizeof(out->version), "%s",
			 SSL_get_version(tc->ssl));
		snprintf(out->cipher, sizeof(out->cipher), "%s",
			 SSL_get_cipher_name(tc->ssl));
	}
	SSL_get0_alpn_selected(tc->ssl, &alpn, &alpn_len);
	if (alpn_len && alpn_len < sizeof(out->alpn)) {
		memcpy(out->alpn, alpn, alpn_len);
		out->alpn[alpn_len] = 0;
	}
	if ((s = SSL_get_servername(tc->ssl, TLSEXT_NAMETYPE_host_name)))
		snprintf(out->server_name, sizeof(out->server_name), "%s", s);
	if ((peer = SSL_get1_peer_certificate(tc->ssl))) {
		X509_NAME_oneline(X509_get_subject_name(peer),
				  out->peer_subject,
				  (int)sizeof(out->peer_subject));
		X509_free(peer);
	}
	out->resumed = SSL_session_reused(tc->ssl);
	out->verify_result =
		tc->verify_result ? tc->verify_result
				  : (int)SSL_get_verify_result(tc->ssl);
	if (out->verify_result != X509_V_OK)
		snprintf(out->verify_error, sizeof(out->verify_error), "%s",
			 X509_verify_cert_error_string(out->verify_result));
	return 0;
}

#else /* !AC_HAVE_OPENSSL: the documented stubs */

void ac__tls_ref(ac_tls_t *t) {}
void ac__tls_unref(ac_tls_t *t) {}
bool ac__tls_is_server(const ac_tls_t *t) { return false; }
int ac__tls_start(ac_conn_t *c, ac_tls_t *t, const char *name) { return AC_ENOTSUP; }
int ac__tls_step(ac_conn_t *c) { return AC_ENOTSUP; }
ssize_t ac__tls_recv(ac_conn_t *c, void *buf, size_t len, bool *more)
{
	return AC_ENOTSUP;
}
bool ac__tls_has_output(const ac_conn_t *c) { return false; }
bool ac__tls_notify_due(const ac_conn_t *c) { return false; }
int ac__tls_flush(ac_conn_t *c, bool closing, size_t *sent) { return AC_ENOTSUP; }
size_t ac__tls_unsent(const ac_conn_t *c) { return 0; }
void ac__tls_detach(ac_conn_t *c) {}
void ac__tls_end(ac_conn_t *c) {}
void ac__tls_forget_session(ac_conn_t *c) {}
bool ac__tls_hooked(void) { return false; }

AC_EXPORT ac_tls_t *ac_tls_new(const ac_tls_opts_t *o, char *why,
			       size_t whylen)
{
	if (why && whylen)
		snprintf(why, whylen, "built without OpenSSL");
	errno = ENOTSUP;
	return NULL;
}

AC_EXPORT int ac_tls_reload(ac_tls_t *t, char *why, size_t whylen)
{
	return AC_ENOTSUP;
}

AC_EXPORT int ac_tls_sni(ac_tls_t *server, const char *name, ac_tls_t *ctx)
{
	return AC_ENOTSUP;
}

AC_EXPORT void ac_tls_free(ac_tls_t *t) {}

AC_EXPORT int ac_conn_tls_info(const ac_conn_t *c, ac_tls_info_t *out)
{
	return AC_ENOTSUP;
}

#endif /* AC_HAVE_OPENSSL */
