/*
 * config.c: CONFIG GET, SET, HELP and REWRITE, over a table of the
 * parameters the broker has; and the output limits of Redis's client
 * classes (client-output-buffer-limit), applied to each connection as it
 * enters or leaves the pubsub class.
 *
 * Replies and error texts are those of Redis 7.0 (config.c there): a
 * client that reads or sets a parameter sees what it would see from
 * Redis, and a parameter the broker cannot change is refused as Redis
 * refuses an immutable one.
 */
#include "broker.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int is(const char *arg, size_t len, const char *word)
{
	return strlen(word) == len && strncasecmp(arg, word, len) == 0;
}

/* ---- values as Redis reads them ---------------------------------------------- */

int parse_memory(const char *s, unsigned long long *out)
{
	static const struct {
		const char *unit;
		unsigned long long mul;
	} units[] = {{"", 1},	      {"b", 1},
		     {"k", 1000},     {"kb", 1024},
		     {"m", 1000000},  {"mb", 1 << 20},
		     {"g", 1000000000}, {"gb", 1 << 30}};
	const char *u = s;
	char digits[128], *end;
	unsigned long long v;

	/* Redis's memtoull: digits, then a unit; no sign. No digits at all
	 * is 0, as there. */
	while (*u >= '0' && *u <= '9')
		u++;
	if ((size_t)(u - s) >= sizeof(digits))
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(u, units[i].unit))
			continue;
		memcpy(digits, s, (size_t)(u - s));
		digits[u - s] = 0;
		errno = 0;
		v = strtoull(digits, &end, 10);
		if (*end)
			return -1;
		*out = v * units[i].mul; /* wraps on overflow, as in Redis */
		return 0;
	}
	return -1;
}

/* An argument as a C string, as Redis has its sds (its C functions stop
 * at a NUL); -1 if it is too long for any value the broker reads. */
static int cstr(char *buf, size_t cap, const char *p, size_t n)
{
	if (n >= cap)
		return -1;
	memcpy(buf, p, n);
	buf[n] = 0;
	return 0;
}

static const char *const class_names[NCLASSES] = {"normal", "slave",
						  "pubsub"};

/* The next word of v[*at, n) at a single space, as Redis's sdssplitlen
 * cuts ("a  b" has an empty word between). */
static size_t next_word(const char *v, size_t n, size_t *at, const char **w)
{
	const char *sp = memchr(v + *at, ' ', n - *at);
	size_t len = sp ? (size_t)(sp - (v + *at)) : n - *at;

	*w = v + *at;
	*at += len + 1;
	return len;
}

const char *obuf_parse(const char *v, size_t n, struct obuf_class *cls,
		       int *has)
{
	static const char *const bad_number =
		"Error in hard, soft or soft_seconds setting in buffer limit "
		"configuration.";
	size_t words = 1, at = 0;

	for (int k = 0; k < NCLASSES; k++)
		has[k] = 0;
	if (n == 0)
		return NULL; /* no words: nothing changes */
	for (size_t i = 0; i < n; i++)
		words += v[i] == ' ';
	if (words % 4)
		return "Wrong number of arguments in buffer limit "
		       "configuration.";
	for (size_t g = 0; g < words / 4; g++) {
		const char *w[4];
		size_t wl[4];
		char word[128], *end;
		unsigned long long hard, soft;
		long long secs;
		int k;

		for (int j = 0; j < 4; j++)
			wl[j] = next_word(v, n, &at, &w[j]);
		for (k = 0; k < NCLASSES; k++)
			if (is(w[0], wl[0], class_names[k]))
				break;
		if (k == NCLASSES && is(w[0], wl[0], "replica"))
			k = CLASS_REPLICA;
		if (k == NCLASSES) /* "master" too, as in Redis */
			return "Invalid client class specified in buffer limit "
			       "configuration.";
		if (cstr(word, sizeof(word), w[1], wl[1]) ||
		    parse_memory(word, &hard) ||
		    cstr(word, sizeof(word), w[2], wl[2]) ||
		    parse_memory(word, &soft) ||
		    cstr(word, sizeof(word), w[3], wl[3]))
			return bad_number;
		secs = (int)strtoll(word, &end, 10); /* an int, as in Redis */
		if (*end || secs < 0)
			return bad_number;
		cls[k].hard = hard;
		cls[k].soft = soft;
		cls[k].seconds = secs;
		has[k] = 1;
	}
	return NULL;
}

/* ---- output limits per client class ---------------------------------------- */

void obuf_limits(int cls, size_t *hard, size_t *soft, unsigned *soft_ms)
{
	const struct obuf_class *o = &B.obuf[cls];
	unsigned long long h = __atomic_load_n(&o->hard, __ATOMIC_RELAXED);
	unsigned long long s = __atomic_load_n(&o->soft, __ATOMIC_RELAXED);
	long long secs = __atomic_load_n(&o->seconds, __ATOMIC_RELAXED);

	/* Redis's 0 is "no limit"; a hard limit is at least OUT_HIGH (the
	 * library's watermark must fit under it); a soft limit at or over
	 * the hard one could never be reached, which the library says with
	 * soft equal to hard. */
	*hard = h == 0 || h > SIZE_MAX ? SIZE_MAX : (size_t)h;
	if (*hard < OUT_HIGH)
		*hard = OUT_HIGH;
	*soft = s == 0 || s >= *hard ? *hard : (size_t)s;
	*soft_ms = secs > UINT_MAX / 1000 ? UINT_MAX : (unsigned)secs * 1000;
}

void obuf_apply(ac_conn_t *c, int cls)
{
	size_t hard, soft;
	unsigned ms;

	obuf_limits(cls, &hard, &soft, &ms);
	ac_conn_set_out_limits(c, hard, soft, ms);
}

void obuf_check(ac_conn_t *c, struct client *cl)
{
	int cls = nsubs(cl) ? CLASS_PUBSUB : CLASS_NORMAL;

	if (cls != cl->obuf_class) {
		cl->obuf_class = cls;
		obuf_apply(c, cls);
	}
}

/* CONFIG SET client-output-buffer-limit: every open client gets its
 * class's new limits, loop by loop; the asker reads nothing more until
 * that is done, so that its next command sees them in force. */
static void limits_visit(ac_conn_t *c, void *arg)
{
	struct client *cl = client_of(c);
	ac_conn_info_t i;

	(void)arg;
	if (ac_conn_info(c, &i) || i.ud != &B)
		return; /* not a client: the pool's or the metrics' */
	if (cl)
		cl->obuf_class = nsubs(cl) ? CLASS_PUBSUB : CLASS_NORMAL;
	obuf_apply(c, cl ? cl->obuf_class : CLASS_NORMAL);
}

/* Who asked, for limits_done: the asker may have gone meanwhile. */
struct asker {
	ac_handle_t from;
	int skip; /* its CLIENT REPLY SKIP was for this command */
};

/* Back on the asker's loop, every loop visited: the +OK, then the
 * commands after it, as clients.c's answer() does for CLIENT LIST,
 * the rest of an EXEC included. */
static void limits_done(int err, void *arg)
{
	struct asker *a = arg;
	struct client *cl;
	ac_conn_t *c;

	/* err: AC_ESHUTDOWN, on a thread where no connection may be
	 * touched. */
	if (!err && (c = ac_handle_conn(B.rt, a->from))) {
		if ((cl = client_of(c)) && a->skip)
			cl->skip = 1;
		outs(c, "+OK\r\n");
		if (cl && a->skip)
			cl->skip = 0;
		ac_conn_read_start(c);
		exec_resume(c);
	}
	free(a);
}

static void apply_everywhere(ac_conn_t *c, struct client *cl)
{
	struct asker *a = malloc(sizeof(*a));
	int err = AC_ENOMEM;

	if (a) {
		a->from = ac_conn_handle(c);
		a->skip = cl && cl->skip;
		err = ac_runtime_conns(B.rt, AC_LOOP_ALL, limits_visit,
				       limits_done, a);
	}
	if (err) {
		free(a);
		outf(c, "-ERR %s\r\n", ac_strerror(err));
		return;
	}
	ac_conn_read_stop(c);
}

/* ---- the parameters ---------------------------------------------------------- */

/* What a SET of one parameter will store, checked before any is stored. */
struct pending {
	unsigned long long n;
	struct obuf_class cls[NCLASSES];
	int has[NCLASSES];
};

struct param {
	const char *name;
	/* its value, as CONFIG GET shows it (NULL: fixed) */
	void (*get)(char *buf, size_t cap);
	/* NULL: immutable, refused before any value is looked at. Else
	 * NULL if v may be set, or Redis's reason */
	const char *(*check)(const struct param *p, const char *v, size_t n,
			     struct pending *to);
	void (*apply)(const struct pending *to); /* NULL: nothing to do */
	const char *fixed; /* the value of a parameter the broker has as
			      a constant */
};

static void get_obuf(char *buf, size_t cap)
{
	size_t at = 0;

	for (int k = 0; k < NCLASSES; k++) {
		const struct obuf_class *o = &B.obuf[k];

		at += (size_t)snprintf(
			buf + at, cap - at, "%s%s %llu %llu %lld",
			k ? " " : "", class_names[k],
			__atomic_load_n(&o->hard, __ATOMIC_RELAXED),
			__atomic_load_n(&o->soft, __ATOMIC_RELAXED),
			__atomic_load_n(&o->seconds, __ATOMIC_RELAXED));
		if (at >= cap)
			break;
	}
}

static void get_qbuf(char *buf, size_t cap)
{
	snprintf(buf, cap, "%zu", __atomic_load_n(&B.qbuf_limit,
						  __ATOMIC_RELAXED));
}

static void get_bulk(char *buf, size_t cap)
{
	snprintf(buf, cap, "%zu", __atomic_load_n(&B.lim.max_bulk,
						  __ATOMIC_RELAXED));
}

static void get_maxclients(char *buf, size_t cap)
{
	snprintf(buf, cap, "%u", B.max_clients);
}

static void get_port(char *buf, size_t cap)
{
	snprintf(buf, cap, "%d", B.port);
}

static void get_timeout(char *buf, size_t cap)
{
	/* seconds, as Redis's timeout; rounded up */
	snprintf(buf, cap, "%u", (B.idle_timeout_ms + 999) / 1000);
}

/* A memory value within Redis's bounds for the two buffer limits. */
static const char *check_size(const struct param *p, const char *v,
			      size_t n, struct pending *to)
{
	char word[128];

	(void)p;
	if (cstr(word, sizeof(word), v, n) || parse_memory(word, &to->n))
		return "argument must be a memory value";
	if (to->n < (1u << 20) || to->n > (unsigned long long)LONG_MAX)
		return "argument must be between 1048576 and "
		       "9223372036854775807 inclusive";
	if (to->n > SIZE_MAX)
		to->n = SIZE_MAX;
	return NULL;
}

static void apply_qbuf(const struct pending *to)
{
	__atomic_store_n(&B.qbuf_limit, (size_t)to->n, __ATOMIC_RELAXED);
}

static void apply_bulk(const struct pending *to)
{
	__atomic_store_n(&B.lim.max_bulk, (size_t)to->n, __ATOMIC_RELAXED);
}

static const char *check_obuf(const struct param *p, const char *v,
			      size_t n, struct pending *to)
{
	(void)p;
	return obuf_parse(v, n, to->cls, to->has);
}

static void apply_obuf(const struct pending *to)
{
	for (int k = 0; k < NCLASSES; k++) {
		struct obuf_class *o = &B.obuf[k];

		if (!to->has[k])
			continue;
		__atomic_store_n(&o->hard, to->cls[k].hard, __ATOMIC_RELAXED);
		__atomic_store_n(&o->soft, to->cls[k].soft, __ATOMIC_RELAXED);
		__atomic_store_n(&o->seconds, to->cls[k].seconds,
				 __ATOMIC_RELAXED);
		if (k == CLASS_NORMAL)
			__atomic_store_n(&B.normal_changed, 1,
					 __ATOMIC_RELAXED);
	}
}

static void value_of(const struct param *p, char *buf, size_t cap)
{
	if (p->fixed)
		snprintf(buf, cap, "%s", p->fixed);
	else
		p->get(buf, cap);
}

/* A parameter the broker cannot change, which Redis can: setting it to
 * the value it has is accepted (Redis answers +OK to a SET that changes
 * nothing, and tools send CONFIG SET save "" or appendonly no), any
 * other value refused as an immutable one. */
static const char *check_same(const struct param *p, const char *v,
			      size_t n, struct pending *to)
{
	char now[64], word[128];
	unsigned long long a, b;

	(void)to;
	value_of(p, now, sizeof(now));
	if (cstr(word, sizeof(word), v, n))
		return "can't set immutable config";
	if (!strcasecmp(word, now) ||
	    (*now && !parse_memory(word, &a) && !parse_memory(now, &b) &&
	     a == b))
		return NULL;
	return "can't set immutable config";
}

/* In Redis's order of names; CONFIG GET answers in this order. */
static const struct param params[] = {
	{"appendonly", NULL, check_same, NULL, "no"},
	{"client-output-buffer-limit", get_obuf, check_obuf, apply_obuf, NULL},
	{"client-query-buffer-limit", get_qbuf, check_size, apply_qbuf, NULL},
	{"databases", NULL, NULL, NULL, "16"},
	{"maxclients", get_maxclients, check_same, NULL, NULL},
	{"maxmemory", NULL, check_same, NULL, "0"},
	{"maxmemory-policy", NULL, check_same, NULL, "noeviction"},
	{"notify-keyspace-events", NULL, check_same, NULL, ""},
	{"port", get_port, check_same, NULL, NULL},
	{"proto-max-bulk-len", get_bulk, check_size, apply_bulk, NULL},
	{"save", NULL, check_same, NULL, ""},
	{"timeout", get_timeout, check_same, NULL, NULL},
};
#define NPARAMS (sizeof(params) / sizeof(params[0]))

static const struct param *lookup(const char *name, size_t len)
{
	for (size_t i = 0; i < NPARAMS; i++)
		if (is(name, len, params[i].name))
			return &params[i];
	return NULL;
}

/* ---- the command --------------------------------------------------------------- */

/*
 * Each parameter once, in the table's order: named as the client wrote
 * it when it asked by name, as the table has it when a pattern found it
 * first. (Redis keeps each spelling asked for: "CONFIG GET maxclients
 * MAXCLIENTS" answers twice there, once here.)
 */
static void config_get(ac_conn_t *c, size_t argc, const char **argv,
		       const size_t *argl)
{
	const char *name[NPARAMS] = {0};
	size_t len[NPARAMS], n = 0;
	char value[256];

	for (size_t a = 2; a < argc; a++) {
		/* Redis reads the pattern as a C string: up to a NUL. */
		size_t plen = strnlen(argv[a], argl[a]);
		char *lower;

		if (!memchr(argv[a], '*', plen) && !memchr(argv[a], '?', plen) &&
		    !memchr(argv[a], '[', plen)) {
			const struct param *p = lookup(argv[a], argl[a]);

			if (p && !name[p - params]) {
				name[p - params] = argv[a];
				len[p - params] = argl[a];
				n++;
			}
			continue;
		}
		/* Redis matches without case: the names are lower case, so
		 * the pattern is lowered. */
		lower = xmalloc(plen + 1);
		for (size_t i = 0; i < plen; i++)
			lower[i] = argv[a][i] >= 'A' && argv[a][i] <= 'Z'
					   ? (char)(argv[a][i] - 'A' + 'a')
					   : argv[a][i];
		for (size_t i = 0; i < NPARAMS; i++) {
			size_t nl = strlen(params[i].name);

			if (!name[i] && resp_glob(lower, plen, params[i].name, nl)) {
				name[i] = params[i].name;
				len[i] = nl;
				n++;
			}
		}
		free(lower);
	}
	reply_map(c, n); /* a map in RESP3, as Redis 7 answers */
	for (size_t i = 0; i < NPARAMS; i++) {
		if (!name[i])
			continue;
		bulk(c, name[i], len[i]);
		value_of(&params[i], value, sizeof(value));
		bulk_str(c, value);
	}
}

static void set_failed(ac_conn_t *c, const char *name, size_t len,
		       const char *why)
{
	outf(c, "-ERR CONFIG SET failed (possibly related to argument "
		"'%.*s') - %s\r\n",
	     (int)(len > 128 ? 128 : len), name, why);
}

/*
 * All or nothing, as in Redis: every name is looked up first (an unknown
 * one, then an immutable one, then one given twice, is the error), then
 * every value checked; only then is anything stored.
 */
static void config_set(ac_conn_t *c, struct client *cl, size_t argc,
		       const char **argv, const size_t *argl)
{
	size_t n = (argc - 2) / 2;
	const struct param **p = xmalloc(n * sizeof(*p) + 1);
	struct pending *to = xmalloc(n * sizeof(*to) + 1);
	const char *bad = NULL, *why = NULL;
	size_t badlen = 0;
	int obuf = 0;

	if (argc % 2) {
		outs(c, "-ERR syntax error\r\n");
		goto out;
	}
	/* As in Redis, the first name that is wrong decides: unknown,
	 * immutable or given twice. */
	for (size_t i = 0; i < n; i++) {
		const char *name = argv[2 + 2 * i];
		size_t len = argl[2 + 2 * i];

		if (!(p[i] = lookup(name, len))) {
			if (!bad) {
				bad = name;
				badlen = len;
			}
			continue;
		}
		if (bad)
			continue;
		if (!p[i]->check)
			why = "can't set immutable config";
		for (size_t j = 0; j < i && !why; j++)
			if (p[j] == p[i])
				why = "duplicate parameter";
		if (why) {
			bad = name;
			badlen = len;
		}
	}
	if (bad && !why) {
		outf(c, "-ERR Unknown option or number of arguments for CONFIG "
			"SET - '%.*s'\r\n",
		     (int)(badlen > 128 ? 128 : badlen), bad);
		goto out;
	}
	if (bad) {
		set_failed(c, bad, badlen, why);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		why = p[i]->check(p[i], argv[3 + 2 * i], argl[3 + 2 * i],
				  &to[i]);
		if (why) {
			/* named as the parameter is, not as written */
			set_failed(c, p[i]->name, strlen(p[i]->name), why);
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (p[i]->apply)
			p[i]->apply(&to[i]);
		obuf |= p[i]->apply == apply_obuf;
	}
	if (obuf)
		apply_everywhere(c, cl); /* replies when done */
	else
		outs(c, "+OK\r\n");
out:
	free(p);
	free(to);
}

static void config_help(ac_conn_t *c)
{
	static const char *const lines[] = {
		"CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
		"GET <pattern>",
		"    Return parameters matching the glob-like <pattern> and their values.",
		"SET <directive> <value>",
		"    Set the configuration <directive> to <value>.",
		"RESETSTAT",
		"    Reset statistics reported by the INFO command.",
		"REWRITE",
		"    Rewrite the configuration file.",
		"HELP",
		"    Prints this help.",
	};

	outf(c, "*%zu\r\n", sizeof(lines) / sizeof(lines[0]));
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		outf(c, "+%s\r\n", lines[i]);
}

void cmd_config(ac_conn_t *c, struct client *cl, size_t argc,
		const char **argv, const size_t *argl)
{
	const char *sub = NULL;

	if (is(argv[1], argl[1], "GET")) {
		if (argc >= 3) {
			config_get(c, argc, argv, argl);
			return;
		}
		sub = "get";
	} else if (is(argv[1], argl[1], "SET")) {
		if (argc >= 4) {
			config_set(c, cl, argc, argv, argl);
			return;
		}
		sub = "set";
	} else if (is(argv[1], argl[1], "HELP")) {
		if (argc == 2) {
			config_help(c);
			return;
		}
		sub = "help";
	} else if (is(argv[1], argl[1], "RESETSTAT")) {
		if (argc == 2) {
			stats_reset();
			outs(c, "+OK\r\n");
			return;
		}
		sub = "resetstat";
	} else if (is(argv[1], argl[1], "REWRITE")) {
		if (argc == 2) {
			/* true: the broker reads no configuration file */
			outs(c, "-ERR The server is running without a config "
				"file\r\n");
			return;
		}
		sub = "rewrite";
	} else {
		outf(c, "-ERR unknown subcommand '%.*s'. Try CONFIG HELP.\r\n",
		     (int)(argl[1] > 128 ? 128 : argl[1]), argv[1]);
		return;
	}
	outf(c, "-ERR wrong number of arguments for 'config|%s' command\r\n",
	     sub);
}
