/* test_broker.c: actorconn-broker as a process, driven by a small RESP
 * client: subscribers on several connections, publishes, errors. */
#include "testhelp.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t broker;
static int port;

/* Starts a broker on a free port; its first line tells the port. */
static pid_t spawn_broker(int *port_out)
{
	const char *bin = getenv("BROKER_BIN");
	int pfd[2];
	char line[256] = {0};
	FILE *f;
	pid_t pid;

	ck_assert_msg(bin != NULL, "BROKER_BIN not set");
	ck_assert_int_eq(pipe(pfd), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		execl(bin, bin, "--listen", "127.0.0.1:0", "--threads", "2",
		      (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	f = fdopen(pfd[0], "r");
	ck_assert(fgets(line, sizeof(line), f) != NULL);
	ck_assert_msg(sscanf(line, "actorconn-broker: listening on 127.0.0.1:%d",
			     port_out) == 1,
		      "%s", line);
	fclose(f);
	return pid;
}

static void start_broker(void)
{
	broker = spawn_broker(&port);
}

static void reap(pid_t pid)
{
	int status;

	kill(pid, SIGTERM);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
}

static void stop_broker(void)
{
	reap(broker);
}

/* ---- a tiny RESP client ---------------------------------------------------- */

static void send_cmd(int fd, int argc, ...)
{
	char buf[4096];
	int n = snprintf(buf, sizeof(buf), "*%d\r\n", argc);
	va_list ap;

	va_start(ap, argc);
	for (int i = 0; i < argc; i++) {
		const char *a = va_arg(ap, const char *);
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, "$%zu\r\n%s\r\n",
			      strlen(a), a);
	}
	va_end(ap);
	th_write_all(fd, buf, (size_t)n);
}

static void read_line(int fd, char *buf, size_t cap)
{
	size_t n = 0;

	for (;;) {
		ck_assert(th_read_full(fd, buf + n, 1));
		if (buf[n] == '\n') {
			ck_assert(n > 0 && buf[n - 1] == '\r');
			buf[n - 1] = 0;
			return;
		}
		ck_assert_uint_lt(++n, cap - 1);
	}
}

/* Reads one reply and flattens it: "+OK", ":3", "$x", "*3 $message $ch $m". */
static void read_reply(int fd, char *out, size_t cap)
{
	char line[1024];

	read_line(fd, line, sizeof(line));
	if (line[0] == '$') {
		long len = atol(line + 1);
		if (len < 0) {
			snprintf(out, cap, "$nil");
			return;
		}
		char *b = malloc((size_t)len + 2);
		ck_assert(th_read_full(fd, b, (size_t)len + 2));
		snprintf(out, cap, "$%.*s", (int)len, b);
		free(b);
	} else if (line[0] == '*') {
		long n = atol(line + 1);
		size_t used = (size_t)snprintf(out, cap, "*%ld", n);
		for (long i = 0; i < n; i++) {
			char item[1024];
			read_reply(fd, item, sizeof(item));
			used += (size_t)snprintf(out + used, cap - used, " %s", item);
		}
	} else {
		snprintf(out, cap, "%s", line);
	}
}

static void expect(int fd, const char *want)
{
	char got[4096];

	read_reply(fd, got, sizeof(got));
	ck_assert_str_eq(got, want);
}

/* ---- tests ---------------------------------------------------------------------- */

#define MESSAGES 200

START_TEST(subscribers_on_several_connections_get_every_message_once)
{
	int sub[4], pat, pub;
	char want[256], msg[32];

	start_broker();
	for (int i = 0; i < 4; i++) {
		sub[i] = th_connect_tcp("127.0.0.1", port);
		send_cmd(sub[i], 2, "SUBSCRIBE", "news");
		expect(sub[i], "*3 $subscribe $news :1");
	}
	pat = th_connect_tcp("127.0.0.1", port);
	send_cmd(pat, 2, "PSUBSCRIBE", "ne*");
	expect(pat, "*3 $psubscribe $ne* :1");
	pub = th_connect_tcp("127.0.0.1", port);
	send_cmd(pub, 2, "PUBSUB", "NUMPAT");
	expect(pub, ":1");
	send_cmd(pub, 3, "PUBSUB", "NUMSUB", "news");
	expect(pub, "*2 $news :4");

	for (int i = 0; i < MESSAGES; i++) {
		snprintf(msg, sizeof(msg), "m%d", i);
		send_cmd(pub, 3, "PUBLISH", "news", msg);
		expect(pub, ":5");
	}
	/* Every subscriber: each message once, in publish order, and then
	 * nothing more (a PING's pong comes next, not a duplicate). */
	for (int i = 0; i < 4; i++) {
		for (int k = 0; k < MESSAGES; k++) {
			snprintf(want, sizeof(want), "*3 $message $news $m%d", k);
			expect(sub[i], want);
		}
		send_cmd(sub[i], 1, "PING");
		expect(sub[i], "*2 $pong $");
	}
	for (int k = 0; k < MESSAGES; k++) {
		snprintf(want, sizeof(want), "*4 $pmessage $ne* $news $m%d", k);
		expect(pat, want);
	}
	/* Subscribers that leave are no longer counted. */
	close(sub[0]);
	send_cmd(sub[1], 1, "UNSUBSCRIBE");
	expect(sub[1], "*3 $unsubscribe $news :0");
	for (int tries = 0; tries < 100; tries++) {
		char got[256];
		send_cmd(pub, 3, "PUBSUB", "NUMSUB", "news");
		read_reply(pub, got, sizeof(got));
		if (!strcmp(got, "*2 $news :2"))
			break;
		ck_assert_int_lt(tries, 99);
		usleep(10000);
	}
	send_cmd(pub, 3, "PUBLISH", "news", "last");
	expect(pub, ":3");
	for (int i = 1; i < 4; i++)
		close(sub[i]);
	close(pat);
	close(pub);
	stop_broker();
}
END_TEST

START_TEST(errors_keep_or_close_the_connection_as_redis_does)
{
	int fd;

	start_broker();
	fd = th_connect_tcp("127.0.0.1", port);
	send_cmd(fd, 2, "NOSUCH", "arg");
	expect(fd, "-ERR unknown command 'NOSUCH', with args beginning with: 'arg' ");
	send_cmd(fd, 1, "PUBLISH");
	expect(fd, "-ERR wrong number of arguments for 'publish' command");
	send_cmd(fd, 2, "SUBSCRIBE", "x");
	expect(fd, "*3 $subscribe $x :1");
	send_cmd(fd, 2, "ECHO", "no");
	expect(fd, "-ERR Can't execute 'echo': only (P|S)SUBSCRIBE / "
		   "(P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in "
		   "this context");
	send_cmd(fd, 1, "RESET");
	expect(fd, "+RESET");
	th_write_all(fd, "PING\r\n", 6); /* inline */
	expect(fd, "+PONG");
	send_cmd(fd, 2, "HELLO", "4");
	expect(fd, "-NOPROTO unsupported protocol version");
	send_cmd(fd, 3, "CLIENT", "SETNAME", "tester");
	expect(fd, "+OK");
	send_cmd(fd, 2, "CLIENT", "GETNAME");
	expect(fd, "$tester");
	/* Malformed protocol: the error, then the close. */
	th_write_all(fd, "*1\r\n$x\r\n", 8);
	expect(fd, "-ERR Protocol error: invalid bulk length");
	ck_assert(th_wait_eof(fd, 2000));
	close(fd);
	stop_broker();
}
END_TEST

/* ---- CLIENT LIST and CLIENT KILL ------------------------------------------------- */

#define CLIENTS 8

/* "127.0.0.1:port" of fd's own end: the addr= the broker shows. */
static void local_addr(int fd, char *buf, size_t n)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);

	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	snprintf(buf, n, "127.0.0.1:%d", ntohs(a.sin_port));
}

/* CLIENT LIST's line for the client at addr (a copy in line), or false. */
static bool list_line(const char *list, const char *addr, char *line,
		      size_t n)
{
	char key[96];
	const char *p, *end;

	snprintf(key, sizeof(key), " addr=%s ", addr);
	if (!(p = strstr(list, key)))
		return false;
	while (p > list && p[-1] != '\n')
		p--;
	end = strchr(p, '\n');
	ck_assert_ptr_nonnull(end);
	snprintf(line, n, "%.*s", (int)(end - p), p);
	return true;
}

static int list_count(const char *list)
{
	int n = 0;

	for (const char *p = list; (p = strstr(p, "id=")); p++)
		n += p == list || p[-1] == '\n';
	return n;
}

/* A CLIENT LIST reply's text. */
static void read_list(int fd, char *out, size_t n)
{
	read_reply(fd, out, n);
	ck_assert_msg(out[0] == '$', "%s", out);
	memmove(out, out + 1, strlen(out)); /* its terminator too */
}

static void client_list(int fd, char *out, size_t n)
{
	send_cmd(fd, 2, "CLIENT", "LIST");
	read_list(fd, out, n);
}

START_TEST(client_list_and_kill_gather_every_loop_as_redis_does)
{
	static char list[65536];
	int fd[CLIENTS], me;
	char addr[CLIENTS][64], line[1024], want[256], id[32], got[256];

	start_broker(); /* two loops */
	me = th_connect_tcp("127.0.0.1", port);
	for (int i = 0; i < CLIENTS; i++) {
		char name[16];

		fd[i] = th_connect_tcp("127.0.0.1", port);
		local_addr(fd[i], addr[i], sizeof(addr[i]));
		snprintf(name, sizeof(name), "c%d", i);
		send_cmd(fd[i], 3, "CLIENT", "SETNAME", name);
		expect(fd[i], "+OK");
	}
	send_cmd(fd[0], 2, "SUBSCRIBE", "news");
	expect(fd[0], "*3 $subscribe $news :1");

	/* One line per client, from both loops, as Redis 7 writes it. */
	client_list(me, list, sizeof(list));
	ck_assert_int_eq(list_count(list), CLIENTS + 1);
	for (int i = 0; i < CLIENTS; i++) {
		ck_assert_msg(list_line(list, addr[i], line, sizeof(line)),
			      "%s not in %s", addr[i], list);
		snprintf(want, sizeof(want), " laddr=127.0.0.1:%d fd=", port);
		ck_assert_msg(strstr(line, want), "%s", line);
		snprintf(want, sizeof(want), " name=c%d age=", i);
		ck_assert_msg(strstr(line, want), "%s", line);
		ck_assert_msg(strstr(line, i ? " flags=N db=0 sub=0 psub=0 "
					     : " flags=P db=0 sub=1 psub=0 "),
			      "%s", line);
		ck_assert_msg(strstr(line, " multi=-1 qbuf=0 ") &&
				      strstr(line, " events=r cmd=") &&
				      strstr(line, " user=default redir=-1 resp=2"),
			      "%s", line);
		ck_assert_msg(strncmp(line, "id=", 3) == 0, "%s", line);
	}
	/* CLIENT ID is the id in the list; the asker's own line says what
	 * it ran. */
	send_cmd(fd[2], 2, "CLIENT", "ID");
	read_reply(fd[2], id, sizeof(id));
	ck_assert(list_line(list, addr[2], line, sizeof(line)));
	snprintf(want, sizeof(want), "id=%s ", id + 1);
	ck_assert_msg(strncmp(line, want, strlen(want)) == 0, "%s vs %s", want,
		      line);
	ck_assert_msg(strstr(list, "cmd=client|list"), "%s", list);
	/* Filters. */
	send_cmd(me, 4, "CLIENT", "LIST", "TYPE", "pubsub");
	read_list(me, list, sizeof(list));
	ck_assert_int_eq(list_count(list), 1);
	ck_assert(list_line(list, addr[0], line, sizeof(line)));
	send_cmd(me, 5, "CLIENT", "LIST", "ID", id + 1, "99999");
	read_list(me, list, sizeof(list));
	ck_assert_int_eq(list_count(list), 1);
	ck_assert(list_line(list, addr[2], line, sizeof(line)));

	/* The old form: +OK, and the client is gone. */
	send_cmd(me, 3, "CLIENT", "KILL", addr[1]);
	expect(me, "+OK");
	ck_assert(th_wait_eof(fd[1], 2000));
	send_cmd(me, 3, "CLIENT", "KILL", addr[1]);
	expect(me, "-ERR No such client");
	send_cmd(me, 4, "CLIENT", "KILL", "ADDR", addr[1]);
	expect(me, ":0");
	/* By id, by address. */
	send_cmd(me, 4, "CLIENT", "KILL", "ID", id + 1);
	expect(me, ":1");
	ck_assert(th_wait_eof(fd[2], 2000));
	send_cmd(me, 4, "CLIENT", "KILL", "ADDR", addr[3]);
	expect(me, ":1");
	ck_assert(th_wait_eof(fd[3], 2000));
	/* Pipelined behind a gathering command, replies keep their order. */
	th_write_all(me, "CLIENT LIST\r\nPING\r\nECHO after\r\n", 31);
	read_list(me, list, sizeof(list));
	ck_assert_int_eq(list_count(list), CLIENTS + 1 - 3);
	expect(me, "+PONG");
	expect(me, "$after");
	/* Everyone on the broker's port but the asker (SKIPME yes). */
	snprintf(want, sizeof(want), "127.0.0.1:%d", port);
	send_cmd(me, 4, "CLIENT", "KILL", "LADDR", want);
	snprintf(got, sizeof(got), ":%d", CLIENTS - 3);
	expect(me, got);
	for (int i = 4; i < CLIENTS; i++)
		ck_assert(th_wait_eof(fd[i], 2000));
	ck_assert(th_wait_eof(fd[0], 2000));
	client_list(me, list, sizeof(list));
	ck_assert_int_eq(list_count(list), 1);
	/* Redis' errors. */
	send_cmd(me, 2, "CLIENT", "KILL");
	expect(me, "-ERR wrong number of arguments for 'client|kill' command");
	send_cmd(me, 4, "CLIENT", "KILL", "ID", "0");
	expect(me, "-ERR client-id should be greater than 0");
	send_cmd(me, 5, "CLIENT", "KILL", "foo", "bar", "baz");
	expect(me, "-ERR syntax error");
	send_cmd(me, 4, "CLIENT", "KILL", "TYPE", "bogus");
	expect(me, "-ERR Unknown client type 'bogus'");
	send_cmd(me, 4, "CLIENT", "KILL", "USER", "nobody");
	expect(me, "-ERR No such user 'nobody'");
	send_cmd(me, 4, "CLIENT", "LIST", "ID", "abc");
	expect(me, "-ERR Invalid client ID");
	/* A name longer than the library's label. */
	memset(line, 'n', 65);
	line[65] = 0;
	send_cmd(me, 3, "CLIENT", "SETNAME", line);
	expect(me, "-ERR Client names are limited to 64 bytes in actorconn-broker");
	/* Killing oneself: the reply, then the close. */
	send_cmd(me, 2, "CLIENT", "ID");
	read_reply(me, id, sizeof(id));
	send_cmd(me, 6, "CLIENT", "KILL", "ID", id + 1, "SKIPME", "no");
	expect(me, ":1");
	ck_assert(th_wait_eof(me, 2000));
	close(me);
	for (int i = 0; i < CLIENTS; i++)
		close(fd[i]);
	stop_broker();
}
END_TEST

/* The value of a "name:value" line of INFO's text; -1 when it is absent. */
static long long info_field(const char *info, const char *name)
{
	char key[64];
	const char *p;

	snprintf(key, sizeof(key), "\n%s:", name);
	if (!(p = strstr(info, key)))
		return -1;
	return atoll(p + strlen(key));
}

/*
 * INFO stats reports the loops' mailboxes: the messages they handled
 * (here, at least one per PUBLISH: its delivery to the subscriber's loop)
 * and the times a loop was woken to drain its mailbox (CLIENT LIST asks
 * every loop, so at least the loop that did not take the command is
 * woken).
 */
START_TEST(info_stats_count_mailbox_messages_and_wakeups)
{
	static char info[16384];
	int sub, pub;

	start_broker(); /* two loops */
	sub = th_connect_tcp("127.0.0.1", port);
	pub = th_connect_tcp("127.0.0.1", port);
	send_cmd(sub, 2, "SUBSCRIBE", "ch");
	expect(sub, "*3 $subscribe $ch :1");
	for (int i = 0; i < 20; i++) {
		send_cmd(pub, 3, "PUBLISH", "ch", "m");
		expect(pub, ":1");
		expect(sub, "*3 $message $ch $m");
	}
	send_cmd(pub, 2, "CLIENT", "LIST");
	read_list(pub, info, sizeof(info));
	send_cmd(pub, 2, "INFO", "stats");
	read_list(pub, info, sizeof(info));
	ck_assert_int_ge(info_field(info, "mailbox_messages"), 20);
	ck_assert_int_ge(info_field(info, "mailbox_wakeups"), 1);
	close(sub);
	close(pub);
	stop_broker();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("broker");
	TCase *tc = tcase_create("broker");

	signal(SIGPIPE, SIG_IGN);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, subscribers_on_several_connections_get_every_message_once);
	tcase_add_test(tc, errors_keep_or_close_the_connection_as_redis_does);
	tcase_add_test(tc, client_list_and_kill_gather_every_loop_as_redis_does);
	tcase_add_test(tc, info_stats_count_mailbox_messages_and_wakeups);
	suite_add_tcase(s, tc);
	return th_run(s);
}
