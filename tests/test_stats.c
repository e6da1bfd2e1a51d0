/* test_stats.c: counters and the Prometheus text format. */
#include "testhelp.h"

#include <regex.h>
#include <stdlib.h>
#include <unistd.h>

START_TEST(counters_follow_traffic_and_totals_sum_the_loops)
{
	ac_stats_t total, per[2], sum = {0};
	char buf[6];
	int fds[4];

	th_server_start(2, "127.0.0.1:0", &(ac_conn_opts_t){.framing = AC_FRAME_LINE});
	for (int i = 0; i < 4; i++) {
		fds[i] = th_connect_tcp("127.0.0.1", th_srv.port);
		th_write_all(fds[i], "hello\n", 6);
		ck_assert(th_read_full(fds[i], buf, 6));
	}
	for (int i = 0; i < 4; i++)
		close(fds[i]);
	ck_assert(th_wait(th_closed_ge, (void *)4, 5000));
	usleep(10000);
	ck_assert_int_eq(ac_stats(th_srv.rt, &total, per, 2), 2);
	ck_assert_uint_eq(total.accepted, 4);
	ck_assert_uint_eq(total.conns_open, 0);
	ck_assert_uint_eq(total.closed[AC_CR_EOF], 4);
	ck_assert_uint_eq(total.frames_in, 4);
	ck_assert_uint_eq(total.bytes_in, 24);
	ck_assert_uint_eq(total.bytes_out, 24);
	ck_assert_uint_eq(total.writes, 8); /* payload, then "\n" */
	ck_assert_uint_eq(total.handles_live, 0);
	for (int i = 0; i < 2; i++) {
		sum.accepted += per[i].accepted;
		sum.bytes_in += per[i].bytes_in;
	}
	ck_assert_uint_eq(sum.accepted, total.accepted);
	ck_assert_uint_eq(sum.bytes_in, total.bytes_in);
#ifdef AC_HAVE_TCMALLOC
	ck_assert_uint_gt(total.heap_bytes, 0);
#endif
	ac_runtime_free(th_srv.rt);
	th_assert_no_live_objects();
}
END_TEST

START_TEST(close_reason_names_cover_every_reason)
{
	ck_assert_int_eq(ac_close_reason_index(0), AC_CR_LOCAL);
	ck_assert_int_eq(ac_close_reason_index(AC_EEOF), AC_CR_EOF);
	ck_assert_int_eq(ac_close_reason_index(AC_EWTIMEDOUT), AC_CR_WTIMEOUT);
	ck_assert_int_eq(ac_close_reason_index(AC_ENOMEM), AC_CR_ERROR);
	ck_assert_str_eq(ac_close_reason_name(AC_CR_TIMEOUT), "timeout");
	ck_assert_str_eq(ac_close_reason_name(AC_CR_SLOW), "slow");
	ck_assert_str_eq(ac_close_reason_name(99), "?");
}
END_TEST

/*
 * The exposition format, checked line by line: every sample is
 * `name{labels} value` (or `name value`), every metric has HELP and TYPE
 * before its first sample, and TYPE is counter or gauge.
 */
START_TEST(prometheus_output_parses)
{
	regex_t sample, help, type;
	char *buf, *line, *save;
	char seen_help[64][64], seen_type[64][64];
	int nhelp = 0, ntype = 0, nsamples = 0, need, got;

	th_server_start(2, "127.0.0.1:0", NULL);
	int fd = th_connect_tcp("127.0.0.1", th_srv.port);
	th_handle(0);
	need = ac_stats_prometheus(th_srv.rt, NULL, 0);
	ck_assert_int_gt(need, 100);
	buf = malloc((size_t)need + 1);
	got = ac_stats_prometheus(th_srv.rt, buf, (size_t)need + 1);
	ck_assert_int_eq(got, need);
	ck_assert_int_eq(buf[got - 1], '\n');
	/* Too small a buffer: truncated, NUL-terminated, full length told. */
	char tiny[16];
	ck_assert_int_eq(ac_stats_prometheus(th_srv.rt, tiny, sizeof(tiny)), need);
	ck_assert_uint_eq(strlen(tiny), 15);

	ck_assert_int_eq(regcomp(&sample,
				 "^([a-zA-Z_:][a-zA-Z0-9_:]*)"
				 "(\\{[a-zA-Z_][a-zA-Z0-9_]*=\"[^\"]*\""
				 "(,[a-zA-Z_][a-zA-Z0-9_]*=\"[^\"]*\")*\\})? "
				 "[0-9]+$",
				 REG_EXTENDED),
			 0);
	ck_assert_int_eq(regcomp(&help, "^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$",
				 REG_EXTENDED),
			 0);
	ck_assert_int_eq(regcomp(&type,
				 "^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge)$",
				 REG_EXTENDED),
			 0);
	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		regmatch_t m[2];
		char name[64];

		if (regexec(&help, line, 2, m, 0) == 0) {
			snprintf(seen_help[nhelp++], 64, "%.*s",
				 (int)(m[1].rm_eo - m[1].rm_so), line + m[1].rm_so);
			continue;
		}
		if (regexec(&type, line, 2, m, 0) == 0) {
			snprintf(seen_type[ntype++], 64, "%.*s",
				 (int)(m[1].rm_eo - m[1].rm_so), line + m[1].rm_so);
			continue;
		}
		ck_assert_msg(regexec(&sample, line, 2, m, 0) == 0,
			      "not a sample line: '%s'", line);
		snprintf(name, sizeof(name), "%.*s",
			 (int)(m[1].rm_eo - m[1].rm_so), line + m[1].rm_so);
		bool h = false, t = false;
		for (int i = 0; i < nhelp; i++)
			h |= !strcmp(seen_help[i], name);
		for (int i = 0; i < ntype; i++)
			t |= !strcmp(seen_type[i], name);
		ck_assert_msg(h && t, "no HELP/TYPE before %s", name);
		nsamples++;
	}
	ck_assert_int_eq(nhelp, ntype);
	ck_assert_int_ge(nhelp, 18);
	ck_assert_int_gt(nsamples, 40);
	regfree(&sample);
	regfree(&help);
	regfree(&type);
	free(buf);
	close(fd);
	ac_runtime_free(th_srv.rt);
	th_assert_no_live_objects();
}
END_TEST

/* ---- the HTTP responder renders once ------------------------------------------
 *
 * Regression: the responder rendered the text once to size a buffer,
 * rendered again into it, and sent the second render's length. When a
 * counter gained a digit in between, the bytes past the allocation went to
 * the client (AddressSanitizer: heap-buffer-overflow; without it, garbage
 * after the text, and Content-Length covering it). Here every loop keeps
 * its timers_live gauge flipping between 9 and 10, so nearly every scrape
 * served by the other loop sees a digit come or go mid-render.
 */
static int stop_flip;

static void never(void *arg)
{
}

static void flip(void *arg)
{
	ac_timer_t *t;

	if (__atomic_load_n(&stop_flip, __ATOMIC_ACQUIRE))
		return;
	t = ac_timer_start(th_srv.rt, 60000, 0, never, NULL);
	ac_timer_cancel(t);
	/* Next turn, after this loop's I/O: 8 fixed + this one pending. */
	ac_timer_start(th_srv.rt, 0, 0, flip, NULL);
}

static void eight_timers(void *arg)
{
	for (int i = 0; i < 8; i++)
		ac_timer_start(th_srv.rt, 600000, 0, never, NULL);
}

static size_t scrape(int port, char *buf, size_t cap)
{
	int fd = th_connect_tcp("127.0.0.1", port);
	size_t n = 0;
	ssize_t r;

	th_write_all(fd, "GET /metrics HTTP/1.0\r\n\r\n", 25);
	while (n < cap - 1 && (r = read(fd, buf + n, cap - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = 0;
	close(fd);
	return n;
}

START_TEST(metrics_response_is_one_render_whatever_the_counters_do)
{
	static char resp[1 << 20];
	ac_listener_t *ml;
	int bad = 0;

	th_server_start(2, "127.0.0.1:0", NULL);
	ck_assert_int_eq(ac_metrics_listen(th_srv.rt, "127.0.0.1:0", &ml), 0);
	for (int l = 0; l < 2; l++) {
		ck_assert_int_eq(ac_loop_post(th_srv.rt, AC_LOOP(l), eight_timers, NULL), 0);
		ck_assert_int_eq(ac_loop_post(th_srv.rt, AC_LOOP(l), flip, NULL), 0);
	}
	usleep(50000);
	for (int i = 0; i < 300; i++) {
		size_t n = scrape(ac_listener_port(ml), resp, sizeof(resp));
		char *body = strstr(resp, "\r\n\r\n");
		char *cl = strstr(resp, "Content-Length: ");
		size_t blen, want;

		ck_assert_msg(body && cl, "scrape %d: %zu bytes", i, n);
		body += 4;
		blen = n - (size_t)(body - resp);
		want = strtoul(cl + 16, NULL, 10);
		/* The length sent is the body sent, and the body is text
		 * that ends where a render ends. */
		if (blen != want || memchr(body, 0, blen) ||
		    body[blen - 1] != '\n' ||
		    !strstr(body, "actorconn_heap_bytes "))
			bad++;
	}
	__atomic_store_n(&stop_flip, 1, __ATOMIC_RELEASE);
	ck_assert_msg(bad == 0, "%d of 300 responses were not one render", bad);
	ac_listener_close(ml);
	th_finish();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("stats");
	TCase *tc = tcase_create("stats");

	tcase_add_test(tc, counters_follow_traffic_and_totals_sum_the_loops);
	tcase_add_test(tc, close_reason_names_cover_every_reason);
	tcase_add_test(tc, prometheus_output_parses);
	tcase_add_test(tc, metrics_response_is_one_render_whatever_the_counters_do);
	suite_add_tcase(s, tc);
	return th_run(s);
}
