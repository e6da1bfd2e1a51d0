/*
 * clients.c: CLIENT LIST, CLIENT KILL and CLIENT INFO, formatted and
 * answered as Redis 7 does.
 *
 * A client's connection lives on one loop and the others are elsewhere,
 * so LIST and KILL ask every loop in turn (ac_runtime_conns): a visit
 * formats or kills that loop's clients on the loop that owns them, and
 * the answer is written from done, back on the asking loop, to the
 * asking connection found again by its handle (it may have gone
 * meanwhile). The asking loop is never blocked. The asking connection
 * stops reading meanwhile (ac_conn_read_stop): the commands it sent
 * after this one wait, in the library and then in the kernel, so that
 * their replies come after this one's, and a client that keeps sending
 * is slowed by TCP rather than buffered.
 */
#include "broker.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

enum { ANY = -1, NORMAL, PUBSUB, NONE }; /* client types */

/* One LIST or KILL on its way round the loops. */
struct ask {
	ac_handle_t from; /* the asking connection */
	int kill;         /* 0: LIST; 1: KILL ip:port; 2: KILL with filters */
	int type;         /* ANY, NORMAL, PUBSUB or NONE (master, replica) */
	uint64_t *ids;    /* LIST ID ..., KILL ID: only these */
	size_t nids;
	char *addr, *laddr; /* KILL ADDR, LADDR (and the old form's) */
	const struct user *user; /* KILL USER (the users never change) */
	int skipme;
	/* gathered */
	char *text;
	size_t len, cap;
	long killed;
	int self; /* the asker matched a KILL: closed after the reply */
	int skip; /* under CLIENT REPLY SKIP: the reply is not sent */
};

static int is(const char *arg, size_t len, const char *word)
{
	return strlen(word) == len && strncasecmp(arg, word, len) == 0;
}

static char *dup_arg(const char *p, size_t n)
{
	char *s = xmalloc(n + 1);

	memcpy(s, p, n);
	s[n] = 0;
	return s;
}

static void ask_free(struct ask *a)
{
	free(a->ids);
	free(a->addr);
	free(a->laddr);
	free(a->text);
	free(a);
}

static void append(struct ask *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void append(struct ask *a, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		size_t room = a->cap - a->len;

		va_start(ap, fmt);
		n = vsnprintf(a->text ? a->text + a->len : NULL, room, fmt, ap);
		va_end(ap);
		if ((size_t)n < room)
			break;
		a->cap = a->cap ? a->cap * 2 : 4096;
		while (a->cap - a->len <= (size_t)n)
			a->cap *= 2;
		if (!(a->text = realloc(a->text, a->cap))) {
			fprintf(stderr, "actorconn-broker: out of memory\n");
			abort();
		}
	}
	a->len += (size_t)n;
}

/* "ip:port" as Redis writes it ("[::1]:port" for IPv6); a unix socket
 * is its path with port 0, the listener's path for both ends. */
static void redis_addr(const ac_conn_info_t *i, int local, char *buf,
		       size_t n)
{
	const struct sockaddr_un *un = (const void *)&i->local;

	if (i->family == AF_UNIX)
		snprintf(buf, n, "%s:0", i->local_len > sizeof(sa_family_t) ?
						 un->sun_path : "");
	else
		snprintf(buf, n, "%s", local ? i->local_str : i->peer_str);
}

static int type_of(const char *p, size_t n)
{
	if (is(p, n, "normal"))
		return NORMAL;
	if (is(p, n, "pubsub"))
		return PUBSUB;
	if (is(p, n, "master") || is(p, n, "replica") || is(p, n, "slave"))
		return NONE;
	return -2;
}

/* An id as Redis reads one: a positive signed 64-bit number. */
static int parse_id(const char *p, size_t n, uint64_t *id)
{
	char buf[32], *end;
	long long v;

	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, p, n);
	buf[n] = 0;
	errno = 0;
	v = strtoll(buf, &end, 10);
	if (errno || *end || v <= 0)
		return -1;
	*id = (uint64_t)v;
	return 0;
}

/* c, a client of this broker, as one CLIENT LIST line. */
static void format_line(struct ask *a, ac_conn_t *c, const ac_conn_info_t *i)
{
	struct client *cl = client_of(c);
	char addr[128], laddr[128], flags[8], *f = flags;
	long multi = -1; /* queued commands, as Redis shows them */

	redis_addr(i, 0, addr, sizeof(addr));
	redis_addr(i, 1, laddr, sizeof(laddr));
	if (cl && nsubs(cl))
		*f++ = 'P';
	if (in_multi(cl) || in_exec(cl))
		*f++ = 'x';
	if (i->family == AF_UNIX)
		*f++ = 'U';
	if (f == flags)
		*f++ = 'N';
	*f = 0;
	if (in_multi(cl) || in_exec(cl))
		multi = (long)multi_count(cl);
	/* Redis 7.0's fields, in its order; what the broker has no such
	 * thing for gets Redis' value for "none". */
	append(a,
	       "id=%llu addr=%s laddr=%s fd=%d name=%s age=%llu idle=%llu "
	       "flags=%s db=%d sub=%zu psub=%zu ssub=%zu multi=%ld qbuf=0 "
	       "qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 "
	       "omem=%llu tot-mem=%llu events=%s cmd=%s user=%s "
	       "redir=-1 resp=%d\n",
	       (unsigned long long)client_id(i->handle), addr, laddr, i->fd,
	       i->label, (unsigned long long)(i->age_ms / 1000),
	       (unsigned long long)(i->idle_ms / 1000), flags, cl ? cl->db : 0,
	       cl ? cl->nchans : 0, cl ? cl->npats : 0, cl ? cl->nschans : 0,
	       multi,
	       (unsigned long long)i->out_queued,
	       (unsigned long long)i->out_queued,
	       i->out_queued ? "rw" : "r", cl && cl->cmd[0] ? cl->cmd : "NULL",
	       acl_user_name(cl ? cl->user : NULL), client_resp(cl));
}

static int matches(const struct ask *a, ac_conn_t *c, const ac_conn_info_t *i)
{
	struct client *cl = client_of(c);
	char buf[128];
	int found = a->nids == 0;

	for (size_t k = 0; k < a->nids && !found; k++)
		found = a->ids[k] == client_id(i->handle);
	if (!found)
		return 0;
	if (a->type == NONE ||
	    (a->type == PUBSUB && !(cl && nsubs(cl))) ||
	    (a->type == NORMAL && cl && nsubs(cl)))
		return 0;
	if (a->user && a->user != (cl && cl->user ? cl->user
						     : acl_user("default", 7)))
		return 0;
	if (a->addr) {
		redis_addr(i, 0, buf, sizeof(buf));
		if (strcmp(buf, a->addr))
			return 0;
	}
	if (a->laddr) {
		redis_addr(i, 1, buf, sizeof(buf));
		if (strcmp(buf, a->laddr))
			return 0;
	}
	return !(a->skipme && i->handle == a->from);
}

/* On each loop in turn, for each of its connections. */
static void visit(ac_conn_t *c, void *arg)
{
	struct ask *a = arg;
	ac_conn_info_t i;

	/* The broker's clients only: not the links of its --cluster
	 * bridge, nor the metrics endpoint's connections. */
	if (ac_conn_info(c, &i) || i.ud != &B || !matches(a, c, &i))
		return;
	if (!a->kill) {
		format_line(a, c, &i);
		return;
	}
	a->killed++;
	if (i.handle == a->from)
		a->self = 1; /* after its reply, as Redis does */
	else
		ac_conn_close(c, AC_CLOSE_ABORT);
}

/* Back on the asking loop, every loop visited. */
static void answer(int err, void *arg)
{
	struct ask *a = arg;
	struct client *cl;
	ac_conn_t *c;

	/* AC_ESHUTDOWN: the broker is stopping, on a thread where no
	 * connection may be touched. Or the asker has gone. */
	if (err || !(c = ac_handle_conn(B.rt, a->from))) {
		ask_free(a);
		return;
	}
	/* The asker's SKIP was for this command, long done: apply it. */
	if ((cl = client_of(c)) && a->skip)
		cl->skip = 1;
	if (!a->kill)
		reply_verbatim(c, a->text ? a->text : "", a->len);
	else if (a->kill == 2)
		outf(c, ":%ld\r\n", a->killed);
	else if (a->killed)
		outs(c, "+OK\r\n");
	else
		outs(c, "-ERR No such client\r\n");
	if (cl && a->skip)
		cl->skip = 0;
	if (a->self)
		ac_conn_close(c, AC_CLOSE_FLUSH); /* and reads no more */
	else {
		ac_conn_read_start(c); /* the next commands, from the loop */
		exec_resume(c); /* the rest of an EXEC that waited for this */
	}
	ask_free(a);
}

/* Sends a round the loops; c's next commands wait for the answer. */
static void gather(ac_conn_t *c, struct ask *a)
{
	int err;

	a->from = ac_conn_handle(c);
	a->skip = client_of(c) && client_of(c)->skip;
	if ((err = ac_runtime_conns(B.rt, AC_LOOP_ALL, visit, answer, a))) {
		outf(c, "-ERR %s\r\n", ac_strerror(err));
		ask_free(a);
		return;
	}
	ac_conn_read_stop(c);
}

void client_list(ac_conn_t *c, size_t argc, const char **argv,
		 const size_t *argl)
{
	struct ask *a = calloc(1, sizeof(*a));
	size_t k = 2;

	if (!a) {
		outs(c, "-ERR out of memory\r\n");
		return;
	}
	a->type = ANY;
	if (argc == 4 && is(argv[2], argl[2], "TYPE")) {
		if ((a->type = type_of(argv[3], argl[3])) == -2) {
			outf(c, "-ERR Unknown client type '%.*s'\r\n",
			     (int)(argl[3] > 64 ? 64 : argl[3]), argv[3]);
			ask_free(a);
			return;
		}
	} else if (argc > 3 && is(argv[2], argl[2], "ID")) {
		a->ids = xmalloc((argc - 3) * sizeof(*a->ids));
		for (k = 3; k < argc; k++)
			if (parse_id(argv[k], argl[k], &a->ids[a->nids++])) {
				outs(c, "-ERR Invalid client ID\r\n");
				ask_free(a);
				return;
			}
	} else if (argc != 2) {
		outs(c, "-ERR syntax error\r\n");
		ask_free(a);
		return;
	}
	gather(c, a);
}

/* CLIENT KILL's filters, in pairs; 0, or -1 after replying an error. */
static int kill_filters(ac_conn_t *c, struct ask *a, size_t argc,
			const char **argv, const size_t *argl)
{
	if ((argc - 2) % 2) {
		outs(c, "-ERR syntax error\r\n");
		return -1;
	}
	for (size_t k = 2; k < argc; k += 2) {
		const char *v = argv[k + 1];
		size_t vl = argl[k + 1];

		if (is(argv[k], argl[k], "ID")) {
			if (!a->ids)
				a->ids = xmalloc(sizeof(*a->ids));
			a->nids = 1; /* the last one given counts */
			if (parse_id(v, vl, &a->ids[0])) {
				outs(c, "-ERR client-id should be greater "
					"than 0\r\n");
				return -1;
			}
		} else if (is(argv[k], argl[k], "TYPE")) {
			if ((a->type = type_of(v, vl)) == -2) {
				outf(c, "-ERR Unknown client type '%.*s'\r\n",
				     (int)(vl > 64 ? 64 : vl), v);
				return -1;
			}
		} else if (is(argv[k], argl[k], "USER")) {
			if (!(a->user = acl_user(v, vl))) {
				outf(c, "-ERR No such user '%.*s'\r\n",
				     (int)(vl > 64 ? 64 : vl), v);
				return -1;
			}
		} else if (is(argv[k], argl[k], "ADDR")) {
			free(a->addr);
			a->addr = dup_arg(v, vl);
		} else if (is(argv[k], argl[k], "LADDR")) {
			free(a->laddr);
			a->laddr = dup_arg(v, vl);
		} else if (is(argv[k], argl[k], "SKIPME") &&
			   (is(v, vl, "yes") || is(v, vl, "no"))) {
			a->skipme = is(v, vl, "yes");
		} else {
			outs(c, "-ERR syntax error\r\n");
			return -1;
		}
	}
	return 0;
}

void client_kill(ac_conn_t *c, size_t argc, const char **argv,
		 const size_t *argl)
{
	struct ask *a;

	if (argc < 3) {
		outs(c, "-ERR wrong number of arguments for 'client|kill' "
			"command\r\n");
		return;
	}
	if (!(a = calloc(1, sizeof(*a)))) {
		outs(c, "-ERR out of memory\r\n");
		return;
	}
	a->type = ANY;
	if (argc == 3) { /* CLIENT KILL ip:port: may kill the asker too */
		a->kill = 1;
		a->addr = dup_arg(argv[2], argl[2]);
	} else {
		a->kill = 2;
		a->skipme = 1;
		if (kill_filters(c, a, argc, argv, argl)) {
			ask_free(a);
			return;
		}
	}
	gather(c, a);
}

void client_info(ac_conn_t *c)
{
	struct ask a = {.type = ANY};
	ac_conn_info_t i;

	if (ac_conn_info(c, &i)) {
		outs(c, "-ERR no such connection\r\n");
		return;
	}
	format_line(&a, c, &i);
	reply_verbatim(c, a.text, a.len);
	free(a.text);
}
