/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef RAIDTOOL_JSON_OUT_H
#define RAIDTOOL_JSON_OUT_H

/*
 * The CLI's --json output: members and values are added as they come, in
 * the order of the code that prints them; json-c holds the document and
 * writes it (escaping, indentation) at json_finish.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_OUT_DEPTH 32

struct json_object;

struct json {
	FILE *f;
	struct json_object *root;
	struct json_object *open[JSON_OUT_DEPTH];	/* the containers begun, innermost last */
	int depth;
	bool compact;			/* one line (a stream of documents), not indented */
};

void json_init(struct json *j, FILE *f);		/* indented */
void json_init_compact(struct json *j, FILE *f);	/* one line */
void json_object_begin(struct json *j, const char *key);	/* key NULL in arrays/top */
void json_object_end(struct json *j);
void json_array_begin(struct json *j, const char *key);
void json_array_end(struct json *j);
void json_str(struct json *j, const char *key, const char *val);	/* val NULL: null */
void json_u64(struct json *j, const char *key, uint64_t val);
void json_i64(struct json *j, const char *key, int64_t val);
void json_bool(struct json *j, const char *key, bool val);
void json_hash(struct json *j, const char *key, uint32_t hash);	/* "0123abcd" */
void json_uuid(struct json *j, const char *key, const uint8_t uuid[16]);
/* Write the document and a newline, and free it. */
void json_finish(struct json *j);

#endif
