/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_JSON_H
#define RAIDTOOL_JSON_H

/*
 * A streaming JSON writer: keys and values are written as they come, commas
 * and escaping handled here. One writer for the CLI's --json output
 * (indented) and the control protocol's replies (one compact line).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct json {
	FILE *f;
	int depth;
	bool need_comma[32];
	bool pretty;
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
/* Ends the document with a newline. */
void json_finish(struct json *j);

#endif
