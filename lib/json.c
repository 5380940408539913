/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <uuid/uuid.h>
#include <raidtool/json.h>

void json_init(struct json *j, FILE *f)
{
	*j = (struct json){ .f = f, .pretty = true };
}

void json_init_compact(struct json *j, FILE *f)
{
	*j = (struct json){ .f = f, .pretty = false };
}

static void json_indent(struct json *j)
{
	if (!j->pretty)
		return;
	fputc('\n', j->f);
	for (int i = 0; i < j->depth; i++)
		fputs("  ", j->f);
}

static void json_escaped(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\n': fputs("\\n", f); break;
		case '\t': fputs("\\t", f); break;
		case '\r': fputs("\\r", f); break;
		default:
			if (*p < 0x20)
				fprintf(f, "\\u%04x", *p);
			else
				fputc(*p, f);
		}
	}
	fputc('"', f);
}

/* Comma, newline, indentation and "key": before every value. */
static void json_key(struct json *j, const char *key)
{
	if (j->depth > 0) {
		if (j->need_comma[j->depth])
			fputc(',', j->f);
		json_indent(j);
	}
	j->need_comma[j->depth] = true;
	if (key) {
		json_escaped(j->f, key);
		fputs(j->pretty ? ": " : ":", j->f);
	}
}

static void json_open(struct json *j, const char *key, char c)
{
	json_key(j, key);
	fputc(c, j->f);
	if (j->depth < 31)
		j->depth++;
	j->need_comma[j->depth] = false;
}

static void json_close(struct json *j, char c)
{
	bool had_items = j->need_comma[j->depth];

	if (j->depth > 0)
		j->depth--;
	if (had_items)
		json_indent(j);
	fputc(c, j->f);
}

void json_object_begin(struct json *j, const char *key) { json_open(j, key, '{'); }
void json_object_end(struct json *j) { json_close(j, '}'); }
void json_array_begin(struct json *j, const char *key) { json_open(j, key, '['); }
void json_array_end(struct json *j) { json_close(j, ']'); }

void json_str(struct json *j, const char *key, const char *val)
{
	json_key(j, key);
	if (val)
		json_escaped(j->f, val);
	else
		fputs("null", j->f);
}

void json_u64(struct json *j, const char *key, uint64_t val)
{
	json_key(j, key);
	fprintf(j->f, "%" PRIu64, val);
}

void json_i64(struct json *j, const char *key, int64_t val)
{
	json_key(j, key);
	fprintf(j->f, "%" PRId64, val);
}

void json_bool(struct json *j, const char *key, bool val)
{
	json_key(j, key);
	fputs(val ? "true" : "false", j->f);
}

void json_hash(struct json *j, const char *key, uint32_t hash)
{
	char buf[9];

	snprintf(buf, sizeof(buf), "%08x", hash);
	json_str(j, key, buf);
}

void json_uuid(struct json *j, const char *key, const uint8_t uuid[16])
{
	char buf[37];

	uuid_unparse_lower(uuid, buf);
	json_str(j, key, buf);
}

void json_finish(struct json *j)
{
	fputc('\n', j->f);
	fflush(j->f);
}
