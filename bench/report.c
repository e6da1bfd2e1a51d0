/*
 * report.c: actorconn-bench's output: aligned tables on standard output
 * and, with --json FILE, the same figures as JSON. See bench.h.
 */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <string.h>

/* ---- table output -------------------------------------------------------- */

void table_row(const struct col *cols, int ncols, const char *const *cells)
{
	for (int i = 0; i < ncols; i++) {
		if (cols[i].width)
			printf("%-*s", cols[i].width, cells[i]);
		else
			printf("%s", cells[i]);
	}
	putchar('\n');
}

void table_header(const struct col *cols, int ncols)
{
	const char *titles[16];

	for (int i = 0; i < ncols && i < 16; i++)
		titles[i] = cols[i].title;
	table_row(cols, ncols < 16 ? ncols : 16, titles);
}

void fmt_rate(char *buf, size_t n, double v)
{
	if (v >= 1e6)
		snprintf(buf, n, "%.2fM", v / 1e6);
	else
		snprintf(buf, n, "%.1fk", v / 1e3);
}

/* ---- JSON output ------------------------------------------------------------ */

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

int json_open(struct json *j, const char *path, const char *name)
{
	memset(j, 0, sizeof(*j));
	j->path = path;
	if (!(j->f = fopen(path, "w"))) {
		fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
		return -1;
	}
	fputc('{', j->f);
	json_string(j->f, name);
	fputs(": [", j->f);
	return 0;
}

void json_obj_begin(struct json *j)
{
	fputs(j->nobj++ ? ",\n  {" : "\n  {", j->f);
	j->nfield = 0;
}

static void json_key(struct json *j, const char *k)
{
	if (j->nfield++)
		fputs(", ", j->f);
	json_string(j->f, k);
	fputs(": ", j->f);
}

void json_str(struct json *j, const char *k, const char *v)
{
	json_key(j, k);
	json_string(j->f, v);
}

void json_int(struct json *j, const char *k, long long v)
{
	json_key(j, k);
	fprintf(j->f, "%lld", v);
}

/* JSON has no NaN or infinity: those become null. */
void json_num(struct json *j, const char *k, double v, int decimals)
{
	json_key(j, k);
	if (isfinite(v))
		fprintf(j->f, "%.*f", decimals, v);
	else
		fputs("null", j->f);
}

void json_obj_end(struct json *j)
{
	fputc('}', j->f);
}

int json_close(struct json *j)
{
	int bad;

	fputs("\n]}\n", j->f);
	bad = ferror(j->f);
	if (fclose(j->f) || bad) {
		fprintf(stderr, PROG ": writing %s failed\n", j->path);
		return -1;
	}
	return 0;
}

