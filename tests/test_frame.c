/* test_frame.c: the pure frame decoders and the error table. */
#include "testhelp.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int decode(ac_decode_fn fn, const char *s, size_t len, size_t max,
		  ac_frame_t *f)
{
	memset(f, 0, sizeof(*f));
	return fn(s, len, max, f);
}

START_TEST(line_strips_lf_and_crlf)
{
	ac_frame_t f;

	ck_assert_int_eq(decode(ac_decode_line, "ab\nrest", 7, 100, &f), 1);
	ck_assert_uint_eq(f.off, 0);
	ck_assert_uint_eq(f.len, 2);
	ck_assert_uint_eq(f.consumed, 3);
	ck_assert_int_eq(decode(ac_decode_line, "ab\r\n", 4, 100, &f), 1);
	ck_assert_uint_eq(f.len, 2);
	ck_assert_uint_eq(f.consumed, 4);
	ck_assert_int_eq(decode(ac_decode_line, "\n", 1, 100, &f), 1);
	ck_assert_uint_eq(f.len, 0);
	ck_assert_uint_eq(f.consumed, 1);
}
END_TEST

START_TEST(line_incomplete_needs_more)
{
	ac_frame_t f;

	ck_assert_int_eq(decode(ac_decode_line, "abc", 3, 100, &f), 0);
	ck_assert_int_eq(decode(ac_decode_line, "", 0, 100, &f), 0);
}
END_TEST

START_TEST(line_at_limit_is_accepted_one_over_is_eframe)
{
	ac_frame_t f;

	/* max 4: "abcd\r\n" is fine, "abcde\n" is not, and 6 bytes without
	 * a newline can never become a valid line. */
	ck_assert_int_eq(decode(ac_decode_line, "abcd\r\n", 6, 4, &f), 1);
	ck_assert_uint_eq(f.len, 4);
	ck_assert_int_eq(decode(ac_decode_line, "abcde\n", 6, 4, &f),
			 AC_EFRAME);
	ck_assert_int_eq(decode(ac_decode_line, "abcd\r", 5, 4, &f), 0);
	ck_assert_int_eq(decode(ac_decode_line, "abcdef", 6, 4, &f),
			 AC_EFRAME);
}
END_TEST

START_TEST(len32_decodes_header_and_payload)
{
	ac_frame_t f;
	const char in[] = {0, 0, 0, 3, 'a', 'b', 'c', 'x'};

	ck_assert_int_eq(decode(ac_decode_len32, in, sizeof(in), 100, &f), 1);
	ck_assert_uint_eq(f.off, 4);
	ck_assert_uint_eq(f.len, 3);
	ck_assert_uint_eq(f.consumed, 7);
	ck_assert_int_eq(decode(ac_decode_len32, in, 2, 100, &f), 0);
	ck_assert_uint_eq(f.need, 4);
	ck_assert_int_eq(decode(ac_decode_len32, in, 5, 100, &f), 0);
	ck_assert_uint_eq(f.need, 7);
}
END_TEST

START_TEST(len32_empty_frame_is_valid)
{
	ac_frame_t f;
	const char in[] = {0, 0, 0, 0};

	ck_assert_int_eq(decode(ac_decode_len32, in, 4, 100, &f), 1);
	ck_assert_uint_eq(f.len, 0);
	ck_assert_uint_eq(f.consumed, 4);
}
END_TEST

START_TEST(len32_oversized_header_is_eframe_before_payload)
{
	ac_frame_t f;
	const char at[] = {0, 0, 0, 100};
	const char over[] = {0, 0, 0, 101};
	const char huge[] = {(char)0xff, (char)0xff, (char)0xff, (char)0xff};

	ck_assert_int_eq(decode(ac_decode_len32, at, 4, 100, &f), 0);
	ck_assert_int_eq(decode(ac_decode_len32, over, 4, 100, &f), AC_EFRAME);
	ck_assert_int_eq(decode(ac_decode_len32, huge, 4, 100, &f), AC_EFRAME);
}
END_TEST

START_TEST(raw_caps_frames_at_max)
{
	ac_frame_t f;

	ck_assert_int_eq(decode(ac_decode_raw, "abcdef", 6, 4, &f), 1);
	ck_assert_uint_eq(f.len, 4);
	ck_assert_uint_eq(f.consumed, 4);
	ck_assert_int_eq(decode(ac_decode_raw, "", 0, 4, &f), 0);
}
END_TEST

START_TEST(every_error_has_a_name_and_message)
{
	static const int codes[] = {
#define CODE(name, val, cr, msg) AC_##name,
		AC_ERRNO_MAP(CODE)
#undef CODE
	};
	char want[32];

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		ck_assert_int_lt(codes[i], 0);
		ck_assert_str_ne(ac_err_name(codes[i]), "AC_E???");
		ck_assert_str_ne(ac_strerror(codes[i]), "unknown error");
		for (size_t j = 0; j < i; j++)
			ck_assert_int_ne(codes[i], codes[j]);
	}
	snprintf(want, sizeof(want), "AC_%s", "ESTALE");
	ck_assert_str_eq(ac_err_name(AC_ESTALE), want);
	ck_assert_str_eq(ac_err_name(0), "AC_OK");
	ck_assert_str_eq(ac_strerror(0), "success");
	ck_assert_str_eq(ac_err_name(-999999), "AC_E???");
	ck_assert_str_eq(ac_strerror(-999999), "unknown error");
	ck_assert_str_eq(ac_strerror(1), "unknown error");
}
END_TEST

/* libuv's convention: a POSIX code is its negative errno, a failed system
 * call's errno comes back as itself, and the library's own codes sit in a
 * range no errno reaches. */
START_TEST(posix_codes_are_negative_errno_and_library_codes_are_apart)
{
	ck_assert_int_eq(AC_EINVAL, -EINVAL);
	ck_assert_int_eq(AC_ENOMEM, -ENOMEM);
	ck_assert_int_eq(AC_EAGAIN, -EAGAIN);
	ck_assert_int_eq(AC_ESTALE, -ESTALE);
	ck_assert_int_eq(AC_ETIMEDOUT, -ETIMEDOUT);
	ck_assert_int_eq(AC_ECONNRESET, -ECONNRESET);
	ck_assert_int_eq(AC_ENOENT, -ENOENT);
	ck_assert_int_eq(AC_EEXIST, -EEXIST);
	ck_assert_int_eq(AC_EALREADY, -EALREADY);
	ck_assert_int_eq(AC_ESHUTDOWN, -ESHUTDOWN);
	ck_assert_int_lt(AC_ETHREAD, -4095);
	ck_assert_int_lt(AC_EEOF, -4095);
	ck_assert_int_lt(AC_EFRAME, -4095);
	ck_assert_int_lt(AC_ESLOW, -4095);
	ck_assert_int_lt(AC_ESTATE, -4095);
	/* Any other errno is named and described by the system's tables. */
	ck_assert_str_eq(ac_err_name(-EADDRINUSE), "EADDRINUSE");
	ck_assert_str_eq(ac_strerror(-EADDRINUSE), strerror(EADDRINUSE));
	ck_assert_str_eq(ac_err_name(-ECONNREFUSED), "ECONNREFUSED");
	ck_assert_str_eq(ac_strerror(AC_ETHREAD),
			 "called from a thread that may not make this call");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("frame");
	TCase *tc = tcase_create("decoders");

	tcase_add_test(tc, line_strips_lf_and_crlf);
	tcase_add_test(tc, line_incomplete_needs_more);
	tcase_add_test(tc, line_at_limit_is_accepted_one_over_is_eframe);
	tcase_add_test(tc, len32_decodes_header_and_payload);
	tcase_add_test(tc, len32_empty_frame_is_valid);
	tcase_add_test(tc, len32_oversized_header_is_eframe_before_payload);
	tcase_add_test(tc, raw_caps_frames_at_max);
	tcase_add_test(tc, every_error_has_a_name_and_message);
	tcase_add_test(tc, posix_codes_are_negative_errno_and_library_codes_are_apart);
	suite_add_tcase(s, tc);
	return th_run(s);
}
