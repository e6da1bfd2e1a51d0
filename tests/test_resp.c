/* test_resp.c: the broker's RESP2 parser, byte by byte. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../examples/resp.h"

static const struct resp_limits lim = {512u << 20, 64u << 10, 64};

struct parsed {
	int r;
	size_t consumed, argc;
	char args[8][64];
	const char *err;
};

static struct parsed parse(const char *buf, size_t len)
{
	const char *argv[64];
	size_t argl[64], need = 0;
	struct resp_cmd cmd = {0, argv, argl};
	struct parsed p;

	memset(&p, 0, sizeof(p));
	p.r = resp_parse(buf, len, &lim, &cmd, &p.consumed, &need, &p.err);
	if (p.r == RESP_OK) {
		p.argc = cmd.argc;
		for (size_t i = 0; i < cmd.argc && i < 8; i++)
			memcpy(p.args[i], argv[i], argl[i] < 63 ? argl[i] : 63);
	}
	return p;
}

static const char *const complete[] = {
	"*1\r\n$4\r\nPING\r\n",
	"*2\r\n$4\r\nECHO\r\n$0\r\n\r\n",
	"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$12\r\nhello\r\nworld\r\n",
	"PING\r\n",
	"SUBSCRIBE  a b\t c\r\n",
	"ECHO \"two words\" 'x y'\n",
	"*0\r\n",
	"\r\n",
};

/* Every complete command, fed in two pieces split at every byte: the
 * first piece is never a command (unless it is the whole), and the whole
 * always parses to the same arguments. */
START_TEST(every_command_split_at_every_byte_parses_the_same)
{
	for (size_t k = 0; k < sizeof(complete) / sizeof(complete[0]); k++) {
		const char *s = complete[k];
		size_t n = strlen(s);
		struct parsed whole = parse(s, n);

		ck_assert_int_eq(whole.r, RESP_OK);
		ck_assert_uint_eq(whole.consumed, n);
		for (size_t cut = 0; cut < n; cut++) {
			struct parsed part = parse(s, cut);
			ck_assert_msg(part.r == RESP_MORE, "'%s' cut at %zu: %d",
				      s, cut, part.r);
		}
		/* Followed by more input: same command, same length. */
		char *twice = malloc(2 * n);
		memcpy(twice, s, n);
		memcpy(twice + n, s, n);
		struct parsed first = parse(twice, 2 * n);
		ck_assert_int_eq(first.r, RESP_OK);
		ck_assert_uint_eq(first.consumed, n);
		ck_assert_uint_eq(first.argc, whole.argc);
		for (size_t i = 0; i < whole.argc; i++)
			ck_assert_str_eq(first.args[i], whole.args[i]);
		free(twice);
	}
}
END_TEST

START_TEST(arguments_are_what_was_sent)
{
	struct parsed p = parse(complete[2], strlen(complete[2]));

	ck_assert_uint_eq(p.argc, 3);
	ck_assert_str_eq(p.args[0], "PUBLISH");
	ck_assert_str_eq(p.args[2], "hello\r\nworld"); /* binary-safe */
	p = parse(complete[4], strlen(complete[4]));
	ck_assert_uint_eq(p.argc, 4);
	ck_assert_str_eq(p.args[3], "c");
	p = parse(complete[5], strlen(complete[5]));
	ck_assert_uint_eq(p.argc, 3);
	ck_assert_str_eq(p.args[1], "two words");
	ck_assert_str_eq(p.args[2], "x y");
	p = parse(complete[6], strlen(complete[6]));
	ck_assert_uint_eq(p.argc, 0);
	p = parse(complete[7], strlen(complete[7]));
	ck_assert_uint_eq(p.argc, 0);
}
END_TEST

static void expect_error(const char *in, size_t len, const char *msg)
{
	struct parsed p = parse(in, len);

	ck_assert_msg(p.r == RESP_ERR, "'%s' gave %d", in, p.r);
	ck_assert_str_eq(p.err, msg);
}

START_TEST(malformed_input_gives_redis_errors)
{
	expect_error("*x\r\n", 4, "Protocol error: invalid multibulk length");
	expect_error("*65\r\n", 5, "Protocol error: invalid multibulk length");
	expect_error("*1\r\n+PING\r\n", 11, "Protocol error: expected '$'");
	expect_error("*1\r\n$-1\r\n", 9, "Protocol error: invalid bulk length");
	expect_error("*1\r\n$999999999999\r\n", 20,
		     "Protocol error: invalid bulk length");
	expect_error("*1\r\n$2\r\nabc\r\n", 13,
		     "Protocol error: invalid bulk length");
	expect_error("ECHO \"open\r\n", 12,
		     "Protocol error: unbalanced quotes in request");
}
END_TEST

START_TEST(limits_bound_memory_before_the_data_arrives)
{
	size_t n = (64u << 10) + 1;
	char *big = malloc(n);

	/* An inline request that never ends is refused at 64 KiB... */
	memset(big, 'a', n);
	expect_error(big, n, "Protocol error: too big inline request");
	/* ...and so is a count line, and a bulk header over max_bulk. */
	big[0] = '*';
	expect_error(big, n, "Protocol error: too big mbulk count string");
	expect_error("*1\r\n$536870913\r\n", 17,
		     "Protocol error: invalid bulk length");
	/* A bulk at the limit is just incomplete: need says how much. */
	const char *at = "*1\r\n$536870912\r\n";
	const char *argv[1];
	size_t argl[1], consumed, need;
	const char *err;
	struct resp_cmd cmd = {0, argv, argl};
	ck_assert_int_eq(resp_parse(at, strlen(at), &lim, &cmd, &consumed,
				    &need, &err),
			 RESP_MORE);
	ck_assert_uint_eq(need, strlen(at) + 536870912 + 2);
	free(big);
}
END_TEST

START_TEST(glob_matches_like_redis)
{
#define G(p, s) resp_glob(p, strlen(p), s, strlen(s))
	ck_assert(G("*", ""));
	ck_assert(G("news.*", "news.tech"));
	ck_assert(!G("news.*", "new.tech"));
	ck_assert(G("h?llo", "hello"));
	ck_assert(!G("h?llo", "hllo"));
	ck_assert(G("h[ae]llo", "hallo"));
	ck_assert(!G("h[^e]llo", "hello"));
	ck_assert(G("h[a-c]llo", "hbllo"));
	ck_assert(G("a\\*b", "a*b"));
	ck_assert(!G("a\\*b", "axb"));
	ck_assert(G("*a*b*", "xxaxxbxx"));
	ck_assert(!G("[abc", "a"));
#undef G
}
END_TEST

/*
 * Regression (found by make fuzz, fuzz_resp): a bulk header line that
 * did not start with '$' gave "expected '$'" while its line was short
 * and "too big bulk count string" once more than max_inline bytes had
 * arrived without a newline, so the reply depended on how the client's
 * bytes were split into reads. The first byte now decides.
 */
START_TEST(bulk_header_error_does_not_depend_on_how_reads_split_it)
{
	size_t n = 4 + 1 + (64u << 10) + 10;
	char *in = malloc(n);

	memcpy(in, "*1\r\nX", 5);
	memset(in + 5, 'a', n - 5); /* no newline anywhere */
	for (size_t cut = 5; cut <= n; cut += cut < 64 ? 1 : 4099)
		expect_error(in, cut, "Protocol error: expected '$'");
	expect_error(in, n, "Protocol error: expected '$'");
	free(in);
}
END_TEST

/*
 * Regression (found by make fuzz, fuzz_glob, as a timeout): the matcher
 * tried every split of the string for every star, so a pattern with a
 * dozen stars against a channel name of sixty bytes ran for hours on the
 * broker's loop thread (PSUBSCRIBE, then PUBLISH). It now backtracks to
 * the last star only; without the fix this test runs into Check's
 * timeout.
 */
START_TEST(glob_many_stars_no_longer_take_exponential_time)
{
	char pat[64], s[256];
	size_t pl = 0;

	for (int i = 0; i < 12; i++) {
		pat[pl++] = '*';
		pat[pl++] = 'a';
	}
	pat[pl++] = '*';
	pat[pl++] = 'b';
	memset(s, 'a', sizeof(s));
	ck_assert(!resp_glob(pat, pl, s, 60));
	ck_assert(!resp_glob(pat, pl, s, sizeof(s)));
	s[sizeof(s) - 1] = 'b';
	ck_assert(resp_glob(pat, pl, s, sizeof(s)));
	ck_assert(!resp_glob(pat, pl, s + sizeof(s) - 12, 12)); /* 11 a's */
}
END_TEST

int main(void)
{
	Suite *s = suite_create("resp");
	TCase *tc = tcase_create("resp");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, every_command_split_at_every_byte_parses_the_same);
	tcase_add_test(tc, arguments_are_what_was_sent);
	tcase_add_test(tc, malformed_input_gives_redis_errors);
	tcase_add_test(tc, limits_bound_memory_before_the_data_arrives);
	tcase_add_test(tc, glob_matches_like_redis);
	tcase_add_test(tc, bulk_header_error_does_not_depend_on_how_reads_split_it);
	tcase_add_test(tc, glob_many_stars_no_longer_take_exponential_time);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
