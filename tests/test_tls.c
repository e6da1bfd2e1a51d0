/* test_tls.c: TLS on listeners and outbound connections: the handshake
 * before on_open in every framing, verification (mutual TLS, wrong names,
 * untrusted CAs), handshakes that never finish, garbage, resets, large and
 * stuck output under the usual bounds, close_notify, reloads, SNI, ALPN,
 * session resumption, pools and groups. The certificates are made when
 * the suite starts, by tests/tls_certs.sh. The peer is a blocking OpenSSL
 * client, or the library itself. */
#include "testhelp.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

static char certdir[64];

/* The path of a file of the test certificates (rotating buffers). */
static const char *cf(const char *name)
{
	static char buf[8][128];
	static int i;
	char *p = buf[i++ % 8];

	snprintf(p, 128, "%s/%s", certdir, name);
	return p;
}

static ac_tls_t *server_tls(const char *cert, const char *key, int verify,
			    const char *alpn)
{
	ac_tls_opts_t o = {.role = AC_TLS_SERVER,
			   .cert_file = cf(cert),
			   .key_file = cf(key),
			   .ca_file = verify ? cf("ca.pem") : NULL,
			   .verify = verify,
			   .alpn = alpn};
	char why[256];
	ac_tls_t *t = ac_tls_new(&o, why, sizeof(why));

	ck_assert_msg(t, "ac_tls_new: %s", why);
	return t;
}

static ac_tls_t *client_tls(const char *ca, int verify)
{
	ac_tls_opts_t o = {.role = AC_TLS_CLIENT,
			   .ca_file = ca ? cf(ca) : NULL,
			   .verify = verify};
	char why[256];
	ac_tls_t *t = ac_tls_new(&o, why, sizeof(why));

	ck_assert_msg(t, "ac_tls_new: %s", why);
	return t;
}

/* Starts the recording server (echo) on 127.0.0.1 with TLS context t; the
 * listener holds its own reference, so the caller's is dropped here. */
static void tls_server(int loops, ac_conn_opts_t *o, ac_tls_t *t)
{
	o->tls = t;
	th_server_start(loops, "127.0.0.1:0", o);
	ac_tls_free(t);
}

static uint64_t stat_closed(int index)
{
	ac_stats_t s;

	ck_assert_int_gt(ac_stats(th_srv.rt, &s, NULL, 0), 0);
	return s.closed[index];
}

static bool tls_failures_ge(void *n)
{
	return stat_closed(AC_CR_TLS) >= (uint64_t)(intptr_t)n;
}

/* ---- a blocking OpenSSL client --------------------------------------------- */

struct cli {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
};

struct cli_opts {
	const char *sni;  /* NULL: none */
	const char *cert; /* client certificate (mutual TLS) */
	const char *alpn; /* wire format */
	unsigned alpn_len;
	SSL_SESSION *session;
};

/* Connects and handshakes; false if the handshake failed. The server's
 * certificate is checked against ca.pem. */
static bool cli_open(struct cli *k, int port, const struct cli_opts *o)
{
	struct cli_opts none = {0};

	if (!o)
		o = &none;
	k->fd = th_connect_tcp("127.0.0.1", port);
	k->ctx = SSL_CTX_new(TLS_client_method());
	ck_assert_ptr_nonnull(k->ctx);
	ck_assert_int_eq(SSL_CTX_load_verify_locations(k->ctx, cf("ca.pem"),
						       NULL),
			 1);
	SSL_CTX_set_verify(k->ctx, SSL_VERIFY_PEER, NULL);
	if (o->cert) {
		char key[128];

		snprintf(key, sizeof(key), "%s", cf(o->cert));
		strcpy(strrchr(key, '.'), ".key");
		ck_assert_int_eq(SSL_CTX_use_certificate_file(
					 k->ctx, cf(o->cert), SSL_FILETYPE_PEM),
				 1);
		ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(k->ctx, key,
							     SSL_FILETYPE_PEM),
				 1);
	}
	if (o->alpn)
		SSL_CTX_set_alpn_protos(k->ctx, (const unsigned char *)o->alpn,
					o->alpn_len);
	k->ssl = SSL_new(k->ctx);
	SSL_set_fd(k->ssl, k->fd);
	if (o->sni)
		SSL_set_tlsext_host_name(k->ssl, o->sni);
	if (o->session)
		SSL_set_session(k->ssl, o->session);
	if (SSL_connect(k->ssl) != 1) {
		ERR_clear_error();
		return false;
	}
	return true;
}

static void cli_close(struct cli *k)
{
	SSL_free(k->ssl);
	SSL_CTX_free(k->ctx);
	close(k->fd);
}

static void cli_write(struct cli *k, const void *buf, size_t len)
{
	size_t w;

	ck_assert_int_eq(SSL_write_ex(k->ssl, buf, len, &w), 1);
	ck_assert_uint_eq(w, len);
}

/* Reads exactly len bytes; false on EOF, error or the 10 s timeout. */
static bool cli_read(struct cli *k, void *buf, size_t len)
{
	size_t got = 0, n;

	while (got < len) {
		if (!SSL_read_ex(k->ssl, (char *)buf + got, len - got, &n)) {
			ERR_clear_error();
			return false;
		}
		got += n;
	}
	return true;
}

/* What ends the stream: SSL_ERROR_ZERO_RETURN for a close_notify. */
static int cli_read_end(struct cli *k)
{
	char b[64];
	size_t n;
	int e;

	while (SSL_read_ex(k->ssl, b, sizeof(b), &n))
		;
	e = SSL_get_error(k->ssl, 0);
	ERR_clear_error();
	return e;
}

/* The common name of the certificate the server presented. */
static void cli_peer_cn(struct cli *k, char *cn, size_t len)
{
	X509 *x = SSL_get1_peer_certificate(k->ssl);

	ck_assert_ptr_nonnull(x);
	X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
				  (int)len);
	X509_free(x);
}

/* A hard close: RST instead of FIN. */
static void reset_close(int fd)
{
	struct linger l = {1, 0};

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

/* ---- the handshake and echo in every framing ------------------------------- */

static int custom_decode(const void *buf, size_t len, size_t max,
			 ac_frame_t *f)
{
	return ac_decode_line(buf, len, max, f);
}

static struct {
	char version[16], alpn[32], sni[256], subject[256];
	int64_t infos;
} seen;

static void record_info(ac_conn_t *c)
{
	ac_tls_info_t in;

	ck_assert_int_eq(ac_conn_tls_info(c, &in), 0);
	snprintf(seen.version, sizeof(seen.version), "%s", in.version);
	snprintf(seen.alpn, sizeof(seen.alpn), "%s", in.alpn);
	snprintf(seen.sni, sizeof(seen.sni), "%s", in.server_name);
	snprintf(seen.subject, sizeof(seen.subject), "%s", in.peer_subject);
	__atomic_fetch_add(&seen.infos, 1, __ATOMIC_RELEASE);
}

START_TEST(echo_in_every_framing)
{
	static const int framings[] = {AC_FRAME_RAW, AC_FRAME_LINE,
				       AC_FRAME_LEN32, AC_FRAME_CUSTOM};
	ac_conn_opts_t o = {.framing = framings[_i]};
	unsigned char frame[64], back[64];
	size_t flen = 0, blen;
	struct cli k;

	if (o.framing == AC_FRAME_CUSTOM)
		o.decode = custom_decode;
	th_srv.on_open = record_info;
	tls_server(2, &o, server_tls("server.pem", "server.key", 0, NULL));
	for (int round = 0; round < 3; round++) {
		ck_assert(cli_open(&k, th_srv.port, NULL));
		if (o.framing == AC_FRAME_LEN32) {
			memcpy(frame, "\0\0\0\5hello", 9);
			flen = 9;
		} else {
			memcpy(frame, "hello\n", 6);
			flen = 6;
		}
		/* The custom framing's echo is the payload alone. */
		blen = o.framing == AC_FRAME_CUSTOM ? 5 : flen;
		for (int i = 0; i < 5; i++) {
			cli_write(&k, frame, flen);
			ck_assert(cli_read(&k, back, blen));
			ck_assert_mem_eq(back, frame, blen);
		}
		cli_close(&k);
	}
	ck_assert(th_wait(th_closed_ge, (void *)3, 5000));
	ck_assert_int_eq(th_srv.opened, 3);
	ck_assert_str_eq(seen.version, "TLSv1.3");
	ck_assert_str_eq(seen.subject, ""); /* no client certificate */
	th_finish();
}
END_TEST

/* ---- records that came together are read together ------------------------ */

static int loop_held, loop_released; /* atomic */
static size_t most_queued;           /* the largest ac_conn_out_bytes seen */

static void hold(void *arg)
{
	(void)arg;
	__atomic_store_n(&loop_held, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 5000 && !__atomic_load_n(&loop_released,
						     __ATOMIC_ACQUIRE); i++)
		usleep(1000);
}

/* Echoes, noting how much output of this turn is still queued: the
 * replies to frames read in the same turn wait for its end. */
static void echo_noting_queued(ac_conn_t *c, const void *data, size_t len)
{
	ssize_t q = ac_conn_out_bytes(c);

	ck_assert_int_ge(q, 0);
	if ((size_t)q > most_queued)
		most_queued = (size_t)q;
	th_echo(c, data, len);
}

START_TEST(records_that_came_together_are_read_in_one_go)
{
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE};
	char line[8], back[20 * 4];
	struct cli k;

	th_srv.on_frame = echo_noting_queued;
	tls_server(1, &o, server_tls("server.pem", "server.key", 0, NULL));
	ck_assert(cli_open(&k, th_srv.port, NULL));
	/* Twenty records, each a line, reach the socket while the loop is
	 * busy; once free, it reads them all before the turn ends. */
	ck_assert_int_eq(ac_loop_post(th_srv.rt, AC_LOOP(0), hold, NULL), 0);
	for (int i = 0; i < 5000 && !__atomic_load_n(&loop_held, __ATOMIC_ACQUIRE);
	     i++)
		usleep(1000);
	for (int i = 0; i < 20; i++) {
		snprintf(line, sizeof(line), "r%02d\n", i);
		cli_write(&k, line, 4);
	}
	usleep(20000); /* on the server's socket */
	__atomic_store_n(&loop_released, 1, __ATOMIC_RELEASE);
	ck_assert(cli_read(&k, back, sizeof(back)));
	for (int i = 0; i < 20; i++) {
		snprintf(line, sizeof(line), "r%02d\n", i);
		ck_assert(memcmp(back + 4 * i, line, 4) == 0);
	}
	/* A record per read would have flushed each reply before the next
	 * frame: nothing queued. Read in one go, the last frame finds the
	 * nineteen replies before it. */
	ck_assert_uint_eq(most_queued, 19 * 4);
	cli_close(&k);
	ck_assert(th_wait(th_closed_ge, (void *)1, 5000));
	th_finish();
}
END_TEST

START_TEST(a_close_notify_right_behind_data_is_seen_without_more_input)
{
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE};
	char back[3];
	struct cli k;

	tls_server(1, &o, server_tls("server.pem", "server.key", 0, NULL));
	ck_assert(cli_open(&k, th_srv.port, NULL));
	__atomic_store_n(&loop_held, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&loop_released, 0, __ATOMIC_RELAXED);
	ck_assert_int_eq(ac_loop_post(th_srv.rt, AC_LOOP(0), hold, NULL), 0);
	for (int i = 0; i < 5000 && !__atomic_load_n(&loop_held, __ATOMIC_ACQUIRE);
	     i++)
		usleep(1000);
	/* A line and the close_notify reach the socket together; the
	 * client then keeps its socket open and sends nothing more. */
	cli_write(&k, "x\n", 2);
	ck_assert_int_ge(SSL_shutdown(k.ssl), 0);
	usleep(20000);
	__atomic_store_n(&loop_released, 1, __ATOMIC_RELEASE);
	ck_assert(cli_read(&k, back, 2));
	ck_assert(memcmp(back, "x\n", 2) == 0);
	/* The server read both in one go: the close_notify must still
	 * close the connection, with no more bytes to wake it. */
	ck_assert(th_wait(th_closed_ge, (void *)1, 5000));
	ck_assert_int_eq(th_srv.reasons[0], AC_EEOF);
	cli_close(&k);
	th_finish();
}
END_TEST

START_TEST(info_names_the_version_the_server_name_and_alpn)
{
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE};
	struct cli_opts co = {.sni = "localhost",
			      .alpn = "\x08http/1.1\x02h2",
			      .alpn_len = 12};
	struct cli k;
	const unsigned char *p;
	unsigned n;

	th_srv.on_open = record_info;
	tls_server(1, &o, server_tls("server.pem", "server.key", 0,
				     "h2,http/1.1"));
	ck_assert(cli_open(&k, th_srv.port, &co));
	ck_assert(th_wait_ge(&seen.infos, 1, 5000));
	ck_assert_str_eq(seen.version, "TLSv1.3");
	ck_assert_str_eq(seen.sni, "localhost");
	ck_assert_str_eq(seen.alpn, "h2"); /* the server's preference */
	SSL_get0_alpn_selected(k.ssl, &p, &n);
	ck_assert_uint_eq(n, 2);
	cli_close(&k);
	th_finish();
}
END_TEST

START_TEST(sni_picks_the_certificate_by_name)
{
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE};
	ac_tls_t *t = server_tls("server.pem", "server.key", 0, NULL);
	ac_tls_t *other = server_tls("other.pem", "other.key", 0, NULL);
	const char *names[] = {"a.wild.test", "other.test", "localhost",
			       "unknown.test", NULL};
	const char *want[] = {"other.test", "other.test", "localhost",
			      "localhost", "localhost"};
	char cn[64];
	struct cli k;

	ck_assert_int_eq(ac_tls_sni(t, "*.wild.test", other), 0);
	ck_assert_int_eq(ac_tls_sni(t, "other.test", other), 0);
	ck_assert_int_eq(ac_tls_sni(t, "bad*.test", other), AC_EINVAL);
	ck_assert_int_eq(ac_tls_sni(t, "x.test", t), AC_EINVAL);
	ac_tls_free(other); /* t keeps its own reference */
	tls_server(1, &o, t);
	for (int i = 0; i < 5; i++) {
		struct cli_opts co = {.sni = names[i]};

		ck_assert(cli_open(&k, th_srv.port, &co));
		cli_peer_cn(&k, cn, sizeof(cn));
		ck_assert_str_eq(cn, want[i]);
		cli_close(&k);
	}
	th_finish();
}
END_TEST

START_TEST(an_sni_entry_keeps_the_listeners_client_verification)
{
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE};
	ac_tls_t *t = server_tls("server.pem", "server.key",
				 AC_TLS_VERIFY_CLIENT, NULL);
	ac_tls_t *other = server_tls("other.pem", "other.key", 0, NULL);
	ac_tls_t *third = server_tls("other.pem", "other.key", 0, NULL);
	struct cli_opts with = {.sni = "other.test", .cert = "client.pem"};
	struct cli_opts without = {.sni = "other.test"};
	char cn[64], back[6];
	struct cli k;

	ck_assert_int_eq(ac_tls_sni(t, "other.test", other), 0);
	/* One level only: no entry of an entry, no entries in an entry. */
	ck_assert_int_eq(ac_tls_sni(other, "x.test", third), AC_EINVAL);
	ck_assert_int_eq(ac_tls_sni(third, "x.test", t), AC_EINVAL);
	ac_tls_free(other);
	ac_tls_free(third);
	tls_server(1, &o, t);
	/* The entry has no CA of its own: the listener's checks. */
	ck_assert(cli_open(&k, th_srv.port, &with));
	cli_peer_cn(&k, cn, sizeof(cn));
	ck_assert_str_eq(cn, "other.test");
	cli_write(&k, "hello\n", 6);
	ck_assert(cli_read(&k, back, 6));
	cli_close(&k);
	/* And the listener's requirement holds under the entry too. */
	if (cli_open(&k, th_srv.port, &without)) {
		SSL_write(k.ssl, "hello\n", 6);
		ck_assert(!cli_read(&k, back, 6));
	}
	cli_close(&k);
	ck_assert(th_wait(tls_failures_ge, (void *)1, 5000));
	ck_assert_int_eq(th_srv.opened, 1);
	th_finish();
}
END_TEST

/* ---- verification ------------------------------------------------------------- */

START_TEST(mutual_tls_accepts_a_client_certificate_and_refuses_none)
{
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE};
	struct cli_opts with = {.cert = "client.pem"};
	char back[6];
	struct cli k;

	th_srv.on_open = record_info;
	tls_server(1, &o, server_tls("server.pem", "server.key",
				     AC_TLS_VERIFY_CLIENT, NULL));
	ck_assert(cli_open(&k, th_srv.port, &with));
	cli_write(&k, "hello\n", 6);
	ck_assert(cli_read(&k, back, 6));
	ck_assert(strstr(seen.subject, "CN=test client"));
	cli_close(&k);

	/* Without one: under TLS 1.3 the client finishes first and hears of
	 * the refusal as an alert on its first read. */
	if (cli_open(&k, th_srv.port, NULL)) {
		SSL_write(k.ssl, "hello\n", 6);
		ck_assert(!cli_read(&k, back, 6));
	}
	cli_close(&k);
	ck_assert(th_wait(tls_failures_ge, (void *)1, 5000));
	ck_assert_int_eq(th_srv.opened, 1); /* on_open only for the first */
	th_finish();
}
END_TEST

/* The library as the client: what on_open and on_close saw, and why.
 * Two loops may call back at once: each takes a slot first, and counts
 * itself once the slot is written. */
static struct {
	int64_t opens, closes, lines;         /* atomic: recorded events */
	int64_t open_slot, close_slot;        /* atomic: the next slots */
	int reason[8];
	int resumed[8];
	int verify_result[8];
	char verify_error[8][128];
} oc;

static void oc_open(ac_conn_t *c)
{
	int64_t i = __atomic_fetch_add(&oc.open_slot, 1, __ATOMIC_RELAXED);
	ac_tls_info_t in;

	ck_assert_int_lt(i, 8);
	ck_assert_int_eq(ac_conn_tls_info(c, &in), 0);
	oc.resumed[i] = in.resumed;
	ck_assert_int_eq(ac_conn_write(c, "hi\n", 3), 0);
	__atomic_fetch_add(&oc.opens, 1, __ATOMIC_RELEASE);
}

static void oc_frame(ac_conn_t *c, const void *data, size_t len)
{
	__atomic_fetch_add(&oc.lines, 1, __ATOMIC_RELEASE);
}

static void oc_close(ac_conn_t *c, int reason)
{
	int64_t i = __atomic_fetch_add(&oc.close_slot, 1, __ATOMIC_RELAXED);
	ac_tls_info_t in;

	ck_assert_int_lt(i, 8);
	if (ac_conn_tls_info(c, &in) == 0) {
		oc.verify_result[i] = in.verify_result;
		snprintf(oc.verify_error[i], sizeof(oc.verify_error[i]), "%s",
			 in.verify_error);
	}
	oc.reason[i] = reason;
	__atomic_fetch_add(&oc.closes, 1, __ATOMIC_RELEASE);
}

static const ac_conn_cbs_t oc_cbs = {
	.on_open = oc_open, .on_frame = oc_frame, .on_close = oc_close};

/* ac_connect to the recording server with t (the connection holds its
 * own reference; the caller's is dropped). */
static void oc_connect(ac_tls_t *t, const char *name, unsigned reconnect_ms)
{
	char addr[64];
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE,
			    .tls = t,
			    .tls_name = name,
			    .reconnect_min_ms = reconnect_ms,
			    .reconnect_max_ms = reconnect_ms};
	ac_handle_t h;

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", th_srv.port);
	ck_assert_int_eq(ac_connect(th_srv.rt, addr, &oc_cbs, &o, NULL, &h), 0);
	ac_tls_free(t);
}

START_TEST(outbound_verifies_the_server_by_default)
{
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE};

	tls_server(2, &o, server_tls("server.pem", "server.key", 0, NULL));
	/* The numeric address is checked against the certificate's IP
	 * names; then a name given explicitly. */
	oc_connect(client_tls("ca.pem", 0), NULL, 0);
	oc_connect(client_tls("ca.pem", 0), "localhost", 0);
	ck_assert(th_wait_ge(&oc.lines, 2, 5000));
	ck_assert_int_eq(oc.closes, 0);
	th_finish();
	/* Each closed once, by the stop, or by the server's side of the
	 * stop (its close_notify) when that came first. */
	ck_assert_int_eq(oc.closes, 2);
	for (int i = 0; i < 2; i++)
		ck_assert_msg(oc.reason[i] == AC_ESHUTDOWN ||
				      oc.reason[i] == AC_EEOF,
			      "close %d: %s", i, ac_err_name(oc.reason[i]));
}
END_TEST

START_TEST(outbound_refuses_a_wrong_host_name)
{
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE};

	tls_server(1, &o, server_tls("server.pem", "server.key", 0, NULL));
	oc_connect(client_tls("ca.pem", 0), "wrong.test", 0);
	ck_assert(th_wait_ge(&oc.closes, 1, 5000));
	ck_assert_int_eq(oc.reason[0], AC_ECERT);
	ck_assert_int_eq(oc.opens, 0);
	ck_assert_int_eq(oc.verify_result[0], X509_V_ERR_HOSTNAME_MISMATCH);
	ck_assert(strstr(oc.verify_error[0], "mismatch"));
	ck_assert_int_eq(ac_close_reason_index(oc.reason[0]), AC_CR_TLS);
	th_finish();
}
END_TEST

START_TEST(outbound_refuses_an_untrusted_ca_unless_told_not_to_verify)
{
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE};

	tls_server(1, &o, server_tls("rogue.pem", "rogue.key", 0, NULL));
	oc_connect(client_tls("ca.pem", 0), NULL, 0);
	ck_assert(th_wait_ge(&oc.closes, 1, 5000));
	ck_assert_int_eq(oc.reason[0], AC_ECERT);
	ck_assert_int_eq(oc.verify_result[0],
			 X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
	ck_assert_str_ne(oc.verify_error[0], "");
	/* The explicit opt-out, for tests. */
	oc_connect(client_tls(NULL, AC_TLS_VERIFY_NONE), NULL, 0);
	ck_assert(th_wait_ge(&oc.lines, 1, 5000));
	th_finish();
}
END_TEST

START_TEST(a_reconnect_resumes_the_session_and_after_a_reload_a_new_one)
{
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE};
	ac_tls_t *t = server_tls("server.pem", "server.key", 0, NULL);

	o.tls = t; /* the listener takes its own; ours is for the reload */
	th_server_start(1, "127.0.0.1:0", &o);
	oc_connect(client_tls("ca.pem", 0), NULL, 20);
	for (int i = 0; i < 4; i++) {
		ck_assert(th_wait_ge(&oc.lines, i + 1, 5000));
		/* A reload makes new ticket keys: the session from before
		 * no longer resumes. */
		if (i == 1)
			ck_assert_int_eq(ac_tls_reload(t, NULL, 0), 0);
		/* The server drops it; the client comes back on its own. */
		ck_assert_int_eq(
			ac_close(th_srv.rt, th_handle(i), AC_CLOSE_FLUSH), 0);
	}
	ck_assert(th_wait_ge(&oc.lines, 5, 5000));
	ck_assert_int_eq(oc.resumed[0], 0);
	ck_assert_int_eq(oc.resumed[1], 1);
	ck_assert_int_eq(oc.resumed[2], 0); /* after the reload: full */
	ck_assert_int_eq(oc.resumed[3], 1); /* and the new one resumes */
	ck_assert_int_eq(oc.resumed[4], 1);
	ck_assert_int_eq(oc.reason[0], AC_EEOF);
	ac_tls_free(t);
	th_finish();
}
END_TEST

/* An attempt that ends without close_notify keeps its session for the
 * next. Here the client aborts on a frame over its max_frame, which the
 * server sends after the first echo (so the session's ticket, which
 * comes before the echo, has arrived). */
static void echo_then_too_long(ac_conn_t *c, const void *data, size_t len)
{
	char line[128];

	th_echo(c, data, len);
	if ((intptr_t)ac_conn_data(c) == 0) {
		memset(line, 'x', sizeof(line) - 1);
		line[sizeof(line) - 1] = '\n';
		ck_assert_int_eq(ac_conn_write(c, line, sizeof(line)), 0);
	}
}

START_TEST(a_reconnect_after_an_abort_still_resumes)
{
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE};
	ac_conn_opts_t co = {.framing = AC_FRAME_LINE,
			     .max_frame = 64,
			     .tls = client_tls("ca.pem", 0),
			     .reconnect_min_ms = 20,
			     .reconnect_max_ms = 20};
	char addr[64];
	ac_handle_t h;

	th_srv.on_frame = echo_then_too_long;
	tls_server(1, &o, server_tls("server.pem", "server.key", 0, NULL));
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", th_srv.port);
	ck_assert_int_eq(ac_connect(th_srv.rt, addr, &oc_cbs, &co, NULL, &h),
			 0);
	ac_tls_free(co.tls);
	ck_assert(th_wait_ge(&oc.lines, 2, 10000));
	ck_assert_int_eq(oc.reason[0], AC_EFRAME);
	ck_assert_int_eq(oc.resumed[0], 0);
	ck_assert_int_eq(oc.resumed[1], 1);
	th_finish();
}
END_TEST

/* ---- handshakes that do not finish ------------------------------------------- */

START_TEST(a_silent_client_is_closed_at_the_handshake_timeout)
{
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE};
	ac_tls_opts_t to = {.role = AC_TLS_SERVER,
			    .cert_file = cf("server.pem"),
			    .key_file = cf("server.key"),
			    .handshake_timeout_ms = 200};
	uint64_t t0 = th_now_ms();
	int fd;

	tls_server(1, &o, ac_tls_new(&to, NULL, 0));
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	ck_assert(th_wait_eof(fd, 3000));
	ck_assert_uint_ge(th_now_ms() - t0, 150);
	close(fd);
	ck_assert(th_wait(tls_failures_ge, (void *)1, 2000));
	ck_assert_int_eq(th_srv.opened, 0);
	ck_assert_int_eq(th_srv.closed, 0); /* never opened: no on_close */
	th_finish();
}
END_TEST

START_TEST(garbage_and_plaintext_are_refused_and_counted)
{
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE};
	unsigned char junk[4096];
	char back[6];
	struct cli k;
	int fd;

	tls_server(1, &o, server_tls("server.pem", "server.key", 0, NULL));
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	th_write_all(fd, "PING\r\n", 6);
	ck_assert(th_wait_eof(fd, 3000));
	close(fd);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (unsigned char)(i * 131 + 7);
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	th_write_all(fd, junk, sizeof(junk));
	ck_assert(th_wait_eof(fd, 3000));
	close(fd);
	ck_assert(th_wait(tls_failures_ge, (void *)2, 2000));
	/* The port still serves. */
	ck_assert(cli_open(&k, th_srv.port, NULL));
	cli_write(&k, "hello\n", 6);
	ck_assert(cli_read(&k, back, 6));
	cli_close(&k);
	ck_assert_int_eq(th_srv.opened, 1);
	th_finish();
}
END_TEST

/* The first bytes a client would send (its ClientHello), made in memory. */
static size_t client_hello(unsigned char *buf, size_t cap)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = SSL_new(ctx);
	BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
	int n;

	SSL_set_bio(ssl, rb, wb);
	ck_assert_int_le(SSL_connect(ssl), 0); /* wants the server's answer */
	n = BIO_read(wb, buf, (int)cap);
	ck_assert_int_gt(n, 100);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return (size_t)n;
}

START_TEST(a_peer_that_resets_mid_handshake_or_mid_record)
{
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE};
	unsigned char hello[2048], rec[2048];
	size_t n;
	struct cli k;
	BIO *mem;
	int fd, r;

	tls_server(1, &o, server_tls("server.pem", "server.key", 0, NULL));
	/* Half a ClientHello, then a reset. */
	n = client_hello(hello, sizeof(hello));
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	th_write_all(fd, hello, n / 2);
	usleep(50 * 1000);
	reset_close(fd);
	ck_assert(th_wait(tls_failures_ge, (void *)1, 3000));
	ck_assert_int_eq(th_srv.opened, 0);

	/* An open connection; half a record, then a reset. */
	ck_assert(cli_open(&k, th_srv.port, NULL));
	ck_assert(th_wait(th_opened_ge, (void *)1, 3000));
	mem = BIO_new(BIO_s_mem());
	SSL_set0_wbio(k.ssl, mem); /* the next record goes to memory */
	cli_write(&k, "hello, this line is in one record\n", 34);
	r = BIO_read(mem, rec, sizeof(rec));
	ck_assert_int_gt(r, 34);
	th_write_all(k.fd, rec, (size_t)r / 2);
	usleep(50 * 1000);
	reset_close(k.fd);
	k.fd = -1;
	ck_assert(th_wait(th_closed_ge, (void *)1, 3000));
	ck_assert_int_eq(th_srv.reasons[0], AC_ECONNRESET);
	ck_assert_int_eq(th_srv.frames, 0);
	SSL_free(k.ssl);
	SSL_CTX_free(k.ctx);
	th_finish();
}
END_TEST

/* ---- output under TLS ------------------------------------------------------ */

#define BIG ((size_t)16 << 20)

static void write_big(ac_conn_t *c)
{
	unsigned char *p = malloc(BIG);

	for (size_t i = 0; i < BIG; i++)
		p[i] = (unsigned char)(i % 251);
	ck_assert_int_eq(ac_conn_write(c, p, BIG), 0);
	ck_assert_int_eq(ac_conn_out_bytes(c), (ssize_t)BIG);
	free(p);
	ck_assert_int_eq(ac_conn_close(c, AC_CLOSE_FLUSH), 0);
}

START_TEST(a_16_mib_write_arrives_whole_then_close_notify)
{
	ac_conn_opts_t o = {.framing = AC_FRAME_RAW,
			    .out_hard_limit = BIG * 2,
			    .out_soft_limit = BIG * 2};
	unsigned char *back = malloc(BIG);
	struct cli k;

	th_srv.on_open = write_big;
	tls_server(1, &o, server_tls("server.pem", "server.key", 0, NULL));
	ck_assert(cli_open(&k, th_srv.port, NULL));
	ck_assert(cli_read(&k, back, BIG));
	for (size_t i = 0; i < BIG; i++)
		if (back[i] != (unsigned char)(i % 251))
			ck_abort_msg("byte %zu differs", i);
	/* A flushing close ends with close_notify, not a bare FIN. */
	ck_assert_int_eq(cli_read_end(&k), SSL_ERROR_ZERO_RETURN);
	cli_close(&k);
	ck_assert(th_wait(th_closed_ge, (void *)1, 3000));
	ck_assert_int_eq(th_srv.reasons[0], 0);
	free(back);
	th_finish();
}
END_TEST

/* Writes 12 MiB at once to a client that reads nothing. */
static void flood(ac_conn_t *c, const void *data, size_t len)
{
	static unsigned char mib[1 << 20];

	for (int i = 0; i < 12; i++)
		ck_assert_int_eq(ac_conn_write(c, mib, sizeof(mib)), 0);
}

START_TEST(a_slow_consumer_over_tls_is_closed_at_its_limit)
{
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE,
			    .out_soft_limit = (size_t)1 << 20,
			    .out_soft_ms = 300,
			    .out_hard_limit = (size_t)16 << 20};
	struct cli k;
	int small = 4096;

	th_srv.on_frame = flood;
	tls_server(1, &o, server_tls("server.pem", "server.key", 0, NULL));
	ck_assert(cli_open(&k, th_srv.port, NULL));
	setsockopt(k.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	cli_write(&k, "go\n", 3);
	ck_assert(th_wait(th_closed_ge, (void *)1, 5000));
	ck_assert_int_eq(th_srv.reasons[0], AC_ESLOW);
	ck_assert_uint_eq(stat_closed(AC_CR_SLOW), 1);
	cli_close(&k);
	th_finish();
}
END_TEST

/* Output over out_high, then read: on_drain runs, as without TLS. */
static int64_t drained;

static void count_drain(ac_conn_t *c)
{
	__atomic_fetch_add(&drained, 1, __ATOMIC_RELEASE);
}

START_TEST(send_watermarks_write_timeout_and_abort_over_tls)
{
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE,
			    .out_low = 16 << 10,
			    .out_high = 64 << 10,
			    .write_timeout_ms = 300};
	static unsigned char big[1 << 20];
	unsigned char *back = malloc(sizeof(big));
	struct cli a, b;
	int small = 4096;

	th_srv.on_drain = count_drain;
	tls_server(2, &o, server_tls("server.pem", "server.key", 0, NULL));
	ck_assert(cli_open(&a, th_srv.port, NULL));
	ck_assert(th_wait(th_opened_ge, (void *)1, 3000));
	/* From this thread: ac_send reaches a TLS connection. */
	ck_assert_int_eq(ac_send(th_srv.rt, th_handle(0), "sent\n", 5), 0);
	ck_assert(cli_read(&a, back, 5));
	ck_assert_mem_eq(back, "sent\n", 5);
	/* 1 MiB is over out_high; reading it all brings on_drain. */
	memset(big, 'b', sizeof(big));
	ck_assert_int_eq(ac_send(th_srv.rt, th_handle(0), big, sizeof(big)),
			 0);
	ck_assert(cli_read(&a, back, sizeof(big)));
	ck_assert(th_wait_ge(&drained, 1, 3000));

	/* A client that stops reading: the write timeout closes it. */
	ck_assert(cli_open(&b, th_srv.port, NULL));
	setsockopt(b.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	ck_assert(th_wait(th_opened_ge, (void *)2, 3000));
	for (int i = 0; i < 8; i++)
		ck_assert_int_eq(ac_send(th_srv.rt, th_handle(1), big,
					 sizeof(big)),
				 0);
	ck_assert(th_wait(th_closed_ge, (void *)1, 5000));
	ck_assert_int_eq(th_srv.reasons[1], AC_EWTIMEDOUT);
	cli_close(&b);

	/* An abort: no close_notify, the stream just ends. */
	ck_assert_int_eq(ac_close(th_srv.rt, th_handle(0), AC_CLOSE_ABORT), 0);
	ck_assert_int_ne(cli_read_end(&a), SSL_ERROR_ZERO_RETURN);
	cli_close(&a);
	free(back);
	th_finish();
}
END_TEST

/* ---- reload ------------------------------------------------------------------- */

static void copy_file(const char *from, const char *to)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, to);
	ck_assert_int_eq(system(cmd), 0);
}

/* The server's public key as the client saw it, as DER. */
static int peer_key(struct cli *k, unsigned char *out, int cap)
{
	X509 *x = SSL_get1_peer_certificate(k->ssl);
	unsigned char *p = out;
	int n;

	ck_assert_ptr_nonnull(x);
	ck_assert_int_le(i2d_PUBKEY(X509_get0_pubkey(x), NULL), cap);
	n = i2d_PUBKEY(X509_get0_pubkey(x), &p);
	X509_free(x);
	return n;
}

START_TEST(a_reload_changes_new_handshakes_and_keeps_open_connections)
{
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE};
	ac_tls_opts_t to = {.role = AC_TLS_SERVER,
			    .cert_file = cf("live.pem"),
			    .key_file = cf("live.key")};
	unsigned char k1[512], k2[512], k3[512];
	int n1, n2, n3;
	char why[256], back[6];
	struct cli a, b, c;
	ac_tls_t *t;
	FILE *f;

	copy_file(cf("server.pem"), cf("live.pem"));
	copy_file(cf("server.key"), cf("live.key"));
	t = ac_tls_new(&to, why, sizeof(why));
	ck_assert_msg(t, "%s", why);
	o.tls = t;
	th_server_start(2, "127.0.0.1:0", &o);
	ck_assert(cli_open(&a, th_srv.port, NULL));
	n1 = peer_key(&a, k1, sizeof(k1));

	copy_file(cf("server2.pem"), cf("live.pem"));
	copy_file(cf("server2.key"), cf("live.key"));
	ck_assert_int_eq(ac_tls_reload(t, why, sizeof(why)), 0);
	ck_assert(cli_open(&b, th_srv.port, NULL));
	n2 = peer_key(&b, k2, sizeof(k2));
	ck_assert(n1 != n2 || memcmp(k1, k2, (size_t)n1) != 0);
	/* The connection from before goes on with its own. */
	cli_write(&a, "hello\n", 6);
	ck_assert(cli_read(&a, back, 6));

	/* A reload that cannot work says why and changes nothing. */
	f = fopen(cf("live.key"), "w");
	fputs("not a key\n", f);
	fclose(f);
	ck_assert_int_eq(ac_tls_reload(t, why, sizeof(why)), AC_ETLS);
	ck_assert_str_ne(why, "");
	ck_assert(cli_open(&c, th_srv.port, NULL));
	n3 = peer_key(&c, k3, sizeof(k3));
	ck_assert_int_eq(n3, n2);
	ck_assert_mem_eq(k3, k2, (size_t)n2);
	cli_close(&a);
	cli_close(&b);
	cli_close(&c);
	ac_tls_free(t);
	th_finish();
}
END_TEST

/* ---- everything else over TLS ------------------------------------------------ */

static ac_group_t *grp;

static void join_group(ac_conn_t *c)
{
	ck_assert_int_eq(ac_group_join(grp, c), 0);
}

START_TEST(groups_and_heartbeats_over_tls)
{
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE,
			    .heartbeat_ms = 50,
			    .ping = "PING\n",
			    .ping_len = 5};
	char msg[2049], back[2049];
	struct cli k[3];
	ac_buf_t *b;

	th_srv.on_open = join_group;
	grp = NULL;
	tls_server(2, &o, server_tls("server.pem", "server.key", 0, NULL));
	grp = ac_group_new(th_srv.rt);
	ck_assert_ptr_nonnull(grp);
	for (int i = 0; i < 3; i++)
		ck_assert(cli_open(&k[i], th_srv.port, NULL));
	ck_assert(th_wait(th_opened_ge, (void *)3, 3000));
	/* A heartbeat arrives over TLS. */
	ck_assert(cli_read(&k[0], back, 5));
	ck_assert_mem_eq(back, "PING\n", 5);
	/* A shared buffer (larger than the copy threshold) to every loop. */
	memset(msg, 'x', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\n';
	b = ac_buf_new(msg, sizeof(msg));
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(ac_group_publish(grp, b), 3);
	ac_buf_unref(b);
	for (int i = 0; i < 3; i++) {
		char *p = back;

		/* Heartbeats may come before it. */
		do
			ck_assert(cli_read(&k[i], back, 5));
		while (memcmp(back, "PING\n", 5) == 0);
		ck_assert(cli_read(&k[i], back + 5, sizeof(back) - 5));
		ck_assert_mem_eq(p, msg, sizeof(msg));
		cli_close(&k[i]);
	}
	ac_group_free(grp);
	th_finish();
}
END_TEST

static ac_pool_t *tpool;
static int64_t pool_lent;

static void pool_got(ac_conn_t *c, int err, void *arg)
{
	ck_assert_int_eq(err, 0);
	ck_assert_int_eq(ac_conn_write(c, "hi\n", 3), 0);
	ck_assert_int_eq(ac_pool_release(tpool, c, AC_POOL_REUSE), 0);
	__atomic_fetch_add(&pool_lent, 1, __ATOMIC_RELEASE);
}

static void pool_acquire(void *arg)
{
	ck_assert_int_eq(ac_pool_acquire(tpool, pool_got, NULL), 0);
}

START_TEST(a_pool_connects_over_tls)
{
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE};
	ac_pool_opts_t po = {.min_idle_per_loop = 1, .max_per_loop = 2};
	char addr[64];

	tls_server(1, &o, server_tls("server.pem", "server.key", 0, NULL));
	po.conn.framing = AC_FRAME_LINE;
	po.conn.tls = client_tls("ca.pem", 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", th_srv.port);
	tpool = ac_pool_new(th_srv.rt, addr, &po);
	ck_assert_ptr_nonnull(tpool);
	ac_tls_free(po.conn.tls);
	ck_assert(th_wait(th_opened_ge, (void *)1, 5000));
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(ac_loop_post(th_srv.rt, AC_LOOP(0), pool_acquire, NULL),
				 0);
	ck_assert(th_wait_ge(&pool_lent, 3, 5000));
	ck_assert(th_wait_ge(&th_srv.frames, 3, 5000));
	ac_pool_free(tpool);
	th_finish();
}
END_TEST

/* ---- memory ------------------------------------------------------------------ */

static int64_t openssl_blocks(void)
{
	ac_debug_counts_t d;

	ac_debug_counts(&d);
	return d.openssl;
}

START_TEST(connections_leave_nothing_behind_in_openssl)
{
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE};
	int64_t level = 0;
	char back[6];
	struct cli k;

	tls_server(1, &o, server_tls("server.pem", "server.key", 0, NULL));
	ck_assert_int_ge(openssl_blocks(), 0); /* the hook is in */
	/* The first connections make what OpenSSL keeps for the process
	 * (the client side's too: it shares the hook). */
	for (int round = 0; round < 23; round++) {
		ck_assert(cli_open(&k, th_srv.port, NULL));
		cli_write(&k, "hello\n", 6);
		ck_assert(cli_read(&k, back, 6));
		cli_close(&k);
		ck_assert(th_wait(th_closed_ge, (void *)(intptr_t)(round + 1),
				  3000));
		if (round == 2)
			level = openssl_blocks();
	}
	ck_assert_int_eq(openssl_blocks(), level);
	th_finish();
}
END_TEST

/* ---- options ------------------------------------------------------------------ */

START_TEST(contexts_that_cannot_work_are_refused_with_a_reason)
{
	ac_tls_opts_t o = {.role = AC_TLS_SERVER,
			   .cert_file = cf("server.pem"),
			   .key_file = cf("other.key")};
	ac_conn_opts_t co = {0};
	ac_conn_cbs_t cbs = {0};
	ac_config_t cfg = {.loops = 1};
	ac_runtime_t *rt;
	ac_listener_t *l;
	ac_handle_t h;
	ac_tls_t *srv, *cli;
	char why[256];

	errno = 0;
	ck_assert_ptr_null(ac_tls_new(&o, why, sizeof(why)));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_msg(strstr(why, "does not match"), "%s", why);

	o.cert_file = cf("missing.pem");
	ck_assert_ptr_null(ac_tls_new(&o, why, sizeof(why)));
	ck_assert_msg(strstr(why, "missing.pem"), "%s", why);

	o.cert_file = NULL;
	ck_assert_ptr_null(ac_tls_new(&o, why, sizeof(why)));
	ck_assert_msg(strstr(why, "cert_file"), "%s", why);

	/* Refused, never a prompt for the passphrase. */
	o.cert_file = cf("server.pem");
	o.key_file = cf("server-enc.key");
	ck_assert_ptr_null(ac_tls_new(&o, why, sizeof(why)));
	ck_assert_msg(strstr(why, "server-enc.key"), "%s", why);

	o.cert_file = cf("server.pem");
	o.key_file = cf("server.key");
	o.ciphers = "NO-SUCH-CIPHER";
	ck_assert_ptr_null(ac_tls_new(&o, why, sizeof(why)));
	ck_assert_msg(strstr(why, "cipher"), "%s", why);
	o.ciphers = NULL;

	o.alpn = "h2,,x";
	ck_assert_ptr_null(ac_tls_new(&o, why, sizeof(why)));
	ck_assert_int_eq(errno, EINVAL);
	o.alpn = NULL;

	o.verify = AC_TLS_VERIFY_CLIENT; /* without ca_file */
	ck_assert_ptr_null(ac_tls_new(&o, why, sizeof(why)));
	o.verify = AC_TLS_VERIFY_NONE; /* a client's */
	ck_assert_ptr_null(ac_tls_new(&o, why, sizeof(why)));
	o.verify = 0;
	o.min_version = 11;
	ck_assert_ptr_null(ac_tls_new(&o, NULL, 0));
	o.min_version = AC_TLS_1_3;

	srv = ac_tls_new(&o, why, sizeof(why));
	ck_assert_msg(srv, "%s", why);
	cli = client_tls("ca.pem", 0);
	ck_assert_int_eq(ac_tls_sni(cli, "x.test", srv), AC_EINVAL);

	/* A context for the other side is refused where it is used. */
	rt = ac_runtime_new(&cfg);
	ck_assert_int_eq(ac_runtime_start(rt), 0);
	co.tls = cli;
	ck_assert_int_eq(ac_listen(rt, "127.0.0.1:0", &cbs, &co, NULL, &l),
			 AC_EINVAL);
	co.tls = srv;
	ck_assert_int_eq(ac_connect(rt, "127.0.0.1:1", &cbs, &co, NULL, &h),
			 AC_EINVAL);
	ac_runtime_free(rt);
	ac_tls_free(srv);
	ac_tls_free(cli);
	th_assert_no_live_objects();
}
END_TEST

START_TEST(tls_info_of_a_plain_connection_is_einval)
{
	ac_tls_info_t in;

	th_srv.on_open = NULL;
	th_server_start(1, "127.0.0.1:0", NULL);
	ck_assert_int_eq(ac_conn_tls_info(NULL, &in), AC_EINVAL);
	th_finish();
}
END_TEST

static Suite *tls_suite(void)
{
	Suite *s = suite_create("tls");
	TCase *t = tcase_create("tls");

	tcase_set_timeout(t, 60);
	tcase_add_loop_test(t, echo_in_every_framing, 0, 4);
	tcase_add_test(t, info_names_the_version_the_server_name_and_alpn);
	tcase_add_test(t, sni_picks_the_certificate_by_name);
	tcase_add_test(t, an_sni_entry_keeps_the_listeners_client_verification);
	tcase_add_test(t, mutual_tls_accepts_a_client_certificate_and_refuses_none);
	tcase_add_test(t, outbound_verifies_the_server_by_default);
	tcase_add_test(t, outbound_refuses_a_wrong_host_name);
	tcase_add_test(t, outbound_refuses_an_untrusted_ca_unless_told_not_to_verify);
	tcase_add_test(t, a_reconnect_resumes_the_session_and_after_a_reload_a_new_one);
	tcase_add_test(t, a_reconnect_after_an_abort_still_resumes);
	tcase_add_test(t, a_silent_client_is_closed_at_the_handshake_timeout);
	tcase_add_test(t, garbage_and_plaintext_are_refused_and_counted);
	tcase_add_test(t, a_peer_that_resets_mid_handshake_or_mid_record);
	tcase_add_test(t, a_16_mib_write_arrives_whole_then_close_notify);
	tcase_add_test(t, a_slow_consumer_over_tls_is_closed_at_its_limit);
	tcase_add_test(t, send_watermarks_write_timeout_and_abort_over_tls);
	tcase_add_test(t, a_reload_changes_new_handshakes_and_keeps_open_connections);
	tcase_add_test(t, groups_and_heartbeats_over_tls);
	tcase_add_test(t, a_pool_connects_over_tls);
	tcase_add_test(t, connections_leave_nothing_behind_in_openssl);
	tcase_add_test(t, contexts_that_cannot_work_are_refused_with_a_reason);
	tcase_add_test(t, tls_info_of_a_plain_connection_is_einval);
	tcase_add_test(t, records_that_came_together_are_read_in_one_go);
	tcase_add_test(t, a_close_notify_right_behind_data_is_seen_without_more_input);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	int rc;

	if (!th_tls_certs(certdir, sizeof(certdir)))
		return 99;
	rc = th_run(tls_suite());
	th_tls_certs_remove(certdir);
	return rc;
}
