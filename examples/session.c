/*
 * session.c: what a connection is, beyond its subscriptions: who it is
 * (AUTH, HELLO AUTH, and the -NOAUTH and -NOPERM checks before each
 * command), which protocol it speaks (HELLO 2 or 3), whether it is
 * answered (CLIENT REPLY), its database number (SELECT), and RESET back
 * to a new connection's state. Replies and error texts are Redis 7's.
 */
#include "broker.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static int is(const char *arg, size_t len, const char *word)
{
	return strlen(word) == len && strncasecmp(arg, word, len) == 0;
}

/* A signed 64-bit decimal as Redis' string2ll reads one: no sign but
 * '-', no leading zeros, no spaces. */
static int parse_ll(const char *p, size_t n, long long *v)
{
	unsigned long long u = 0;
	size_t i = 0;
	int neg = 0;

	if (n == 1 && p[0] == '0') {
		*v = 0;
		return 0;
	}
	if (n && p[0] == '-') {
		neg = 1;
		i = 1;
	}
	if (i >= n || p[i] < '1' || p[i] > '9' || n - i > 19)
		return -1;
	for (; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		u = u * 10 + (unsigned long long)(p[i] - '0');
	}
	if (u > (neg ? (unsigned long long)INT64_MAX + 1 : (unsigned long long)INT64_MAX))
		return -1;
	*v = neg ? (long long)(0 - u) : (long long)u;
	return 0;
}

/* ---- the checks before each command ----------------------------------------- */

/* The channel arguments of cmd: PUBLISH's and SPUBLISH's first,
 * SUBSCRIBE's, SSUBSCRIBE's and PSUBSCRIBE's all (UNSUBSCRIBE and
 * SUNSUBSCRIBE are never refused, as in Redis). Returns how many there
 * are from argv[1]. */
static size_t channel_args(const char *name, size_t argc, int *pattern)
{
	*pattern = !strcmp(name, "psubscribe");
	if (!strcmp(name, "publish") || !strcmp(name, "spublish"))
		return 1;
	if (*pattern || !strcmp(name, "subscribe") ||
	    !strcmp(name, "ssubscribe"))
		return argc - 1;
	return 0;
}

enum { PERMITTED, DENIED_CMD, DENIED_KEY, DENIED_CHANNEL };

/* Whether cl's user may run the command, on its keys and its channels,
 * in that order, as Redis' ACLCheckAllPerm decides; a denial is counted
 * for INFO. WATCH is the only command with keys. */
static int permitted(const struct client *cl, const char *name,
		     const char *sub, size_t argc, const char **argv,
		     const size_t *argl)
{
	size_t nch;
	int pattern;

	if (acl_all_allowed(cl))
		return PERMITTED; /* the default user's case: nothing more */
	/* AUTH, HELLO, QUIT and RESET are every user's, as in Redis. */
	if (!command_noauth(name) && !acl_command_allowed(cl, name, sub)) {
		__atomic_fetch_add(&B.denied_cmd, 1, __ATOMIC_RELAXED);
		return DENIED_CMD;
	}
	for (size_t i = 1; !strcmp(name, "watch") && i < argc; i++)
		if (!acl_key_allowed(cl, argv[i], argl[i])) {
			__atomic_fetch_add(&B.denied_key, 1, __ATOMIC_RELAXED);
			return DENIED_KEY;
		}
	nch = channel_args(name, argc, &pattern);
	for (size_t i = 1; i <= nch; i++)
		if (!acl_channel_allowed(cl, argv[i], argl[i], pattern)) {
			__atomic_fetch_add(&B.denied_channel, 1,
					   __ATOMIC_RELAXED);
			return DENIED_CHANNEL;
		}
	return PERMITTED;
}

int session_check(const struct client *cl, const char *name,
		  const char *sub, size_t argc, const char **argv,
		  const size_t *argl, char *err, size_t errlen)
{
	if (acl_auth_required(cl) && !command_noauth(name)) {
		snprintf(err, errlen, "NOAUTH Authentication required.");
		return -1;
	}
	switch (permitted(cl, name, sub, argc, argv, argl)) {
	case DENIED_CMD:
		snprintf(err, errlen, "NOPERM this user has no permissions to "
			 "run the '%s%s%s' command", name, sub ? "|" : "",
			 sub ? sub : "");
		return -1;
	case DENIED_KEY:
		snprintf(err, errlen, "NOPERM this user has no permissions to "
			 "access one of the keys used as arguments");
		return -1;
	case DENIED_CHANNEL:
		snprintf(err, errlen, "NOPERM this user has no permissions to "
			 "access one of the channels used as arguments");
		return -1;
	}
	return 0;
}

int session_exec_check(ac_conn_t *c, const struct client *cl,
		       const char *name, const char *sub, size_t argc,
		       const char **argv, const size_t *argl)
{
	const char *why;

	switch (permitted(cl, name, sub, argc, argv, argl)) {
	case DENIED_CMD:
		why = "no permission to execute the command or subcommand";
		break;
	case DENIED_KEY:
		why = "no permission to touch the specified keys";
		break;
	case DENIED_CHANNEL:
		why = "no permission to access one of the channels used as "
		      "arguments";
		break;
	default:
		return 0;
	}
	outf(c, "-NOPERM ACLs rules changed between the moment the "
		"transaction was accumulated and the EXEC call. This command "
		"is no longer allowed for the following reason: %s\r\n", why);
	return -1;
}

/* CLIENT REPLY SKIP silences the command after it; execute() calls this
 * once each command is done. */
void session_after(struct client *cl)
{
	if (!cl)
		return;
	cl->skip = cl->skip_next;
	cl->skip_next = 0;
}

/* ---- AUTH, HELLO ------------------------------------------------------------- */

static const char wrongpass[] =
	"-WRONGPASS invalid username-password pair or user is disabled.\r\n";

/* Logs cl in as name; -1 after replying -WRONGPASS. */
static int login(ac_conn_t *c, struct client *cl, const char *name,
		 size_t nlen, const char *pass, size_t plen)
{
	const struct user *u = acl_check(name, nlen, pass, plen);

	if (!u) {
		outs(c, wrongpass);
		return -1;
	}
	cl->user = u;
	cl->authed = 1;
	set_auth_bounds(c, cl);
	return 0;
}

void cmd_auth(ac_conn_t *c, struct client *cl, size_t argc,
	      const char **argv, const size_t *argl)
{
	if (argc > 3) {
		outs(c, "-ERR syntax error\r\n");
		return;
	}
	if (argc == 2 && acl_default_nopass()) {
		outs(c, "-ERR AUTH <password> called without any password "
			"configured for the default user. Are you sure your "
			"configuration is correct?\r\n");
		return;
	}
	if (argc == 2 ? login(c, cl, "default", 7, argv[1], argl[1]) == 0
		      : login(c, cl, argv[1], argl[1], argv[2], argl[2]) == 0)
		outs(c, "+OK\r\n");
}

void cmd_hello(ac_conn_t *c, struct client *cl, size_t argc,
	       const char **argv, const size_t *argl)
{
	long long ver = 0;
	size_t i = 1;

	if (argc > 1) {
		if (parse_ll(argv[1], argl[1], &ver)) {
			outs(c, "-ERR Protocol version is not an integer or "
				"out of range\r\n");
			return;
		}
		if (ver < 2 || ver > 3) {
			outs(c, "-NOPROTO unsupported protocol version\r\n");
			return;
		}
		i = 2;
	}
	/* In order, as Redis: a SETNAME before a failing AUTH stays. */
	for (; i < argc; i++) {
		size_t more = argc - 1 - i;

		if (is(argv[i], argl[i], "AUTH") && more >= 2) {
			if (login(c, cl, argv[i + 1], argl[i + 1], argv[i + 2],
				  argl[i + 2]))
				return;
			i += 2;
		} else if (is(argv[i], argl[i], "SETNAME") && more) {
			if (set_name(c, argv[i + 1], argl[i + 1]))
				return;
			i++;
		} else {
			outf(c, "-ERR Syntax error in HELLO option '%.*s'\r\n",
			     (int)(argl[i] > 128 ? 128 : argl[i]), argv[i]);
			return;
		}
	}
	if (acl_auth_required(cl)) {
		outs(c, "-NOAUTH HELLO must be called with the client already "
			"authenticated, otherwise the HELLO AUTH <user> <pass> "
			"option can be used to authenticate the client and "
			"select the RESP protocol version at the same time\r\n");
		return;
	}
	if (ver)
		pubsub_set_resp(c, cl, (int)ver);
	/* In the protocol just chosen. */
	reply_map(c, 7);
	bulk_str(c, "server");
	bulk_str(c, "redis");
	bulk_str(c, "version");
	bulk_str(c, VERSION);
	bulk_str(c, "proto");
	outf(c, ":%d\r\n", client_resp(cl));
	bulk_str(c, "id");
	outf(c, ":%llu\r\n", (unsigned long long)client_id(ac_conn_handle(c)));
	bulk_str(c, "mode");
	bulk_str(c, "standalone");
	bulk_str(c, "role");
	bulk_str(c, "master");
	bulk_str(c, "modules");
	out(c, "*0\r\n", 4);
}

/* ---- SELECT, RESET, CLIENT REPLY ------------------------------------------- */

/* Accepted for 0 to 15, Redis' default number of databases, and shown
 * in CLIENT LIST; channels are not per database in Redis either. */
void cmd_select(ac_conn_t *c, struct client *cl, size_t argc,
		const char **argv, const size_t *argl)
{
	long long db;

	(void)argc;
	if (parse_ll(argv[1], argl[1], &db)) {
		outs(c, "-ERR value is not an integer or out of range\r\n");
		return;
	}
	if (db < INT32_MIN || db > INT32_MAX) {
		outs(c, "-ERR value is out of range, value must between "
			"-2147483648 and 2147483647\r\n");
		return;
	}
	if (db < 0 || db > 15) {
		outs(c, "-ERR DB index is out of range\r\n");
		return;
	}
	cl->db = (int)db;
	outs(c, "+OK\r\n");
}

/* Back to a new connection's state: no transaction, no subscriptions of
 * any kind, RESP2, the default user (so unauthenticated again where a
 * password is needed), no name, database 0, replies on. */
void cmd_reset(ac_conn_t *c, struct client *cl, size_t argc,
	       const char **argv, const size_t *argl)
{
	(void)argc, (void)argv, (void)argl;
	multi_discard(cl);
	unsubscribe_all(c, cl, CHANNEL, 1);
	unsubscribe_all(c, cl, PATTERN, 1);
	unsubscribe_all(c, cl, SHARD, 1);
	pubsub_set_resp(c, cl, 2);
	cl->user = NULL;
	cl->authed = 0;
	set_auth_bounds(c, cl);
	cl->db = 0;
	cl->reply_off = 0;
	cl->skip_next = 0;
	ac_conn_set_label(c, NULL);
	outs(c, "+RESET\r\n");
}

void client_reply(ac_conn_t *c, struct client *cl, size_t argc,
		  const char **argv, const size_t *argl)
{
	(void)argc;
	if (is(argv[2], argl[2], "ON")) {
		cl->reply_off = 0;
		cl->skip = 0;
		outs(c, "+OK\r\n");
	} else if (is(argv[2], argl[2], "OFF")) {
		cl->reply_off = 1; /* from this very reply on */
	} else if (is(argv[2], argl[2], "SKIP")) {
		if (!cl->reply_off)
			cl->skip_next = 1;
	} else {
		outs(c, "-ERR syntax error\r\n");
	}
}
