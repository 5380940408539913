/* SPDX-License-Identifier: GPL-2.0-or-later */
/* json-c calls its boolean type json_bool, the name of our function: rename its. */
#define json_bool json_c_bool
#include <json-c/json.h>
#undef json_bool
#include <uuid/uuid.h>
#include "json-out.h"

void json_init(struct json *j, FILE *f)
{
	*j = (struct json){ .f = f };
}

void json_init_compact(struct json *j, FILE *f)
{
	*j = (struct json){ .f = f, .compact = true };
}

/* Put @val into the innermost open container (under @key in an object). */
static void json_add(struct json *j, const char *key, struct json_object *val)
{
	struct json_object *in = j->depth ? j->open[j->depth - 1] : NULL;

	if (!in) {
		json_object_put(j->root);
		j->root = val;
	} else if (json_object_is_type(in, json_type_array)) {
		json_object_array_add(in, val);
	} else {
		json_object_object_add(in, key ? key : "", val);
	}
}

static void json_open(struct json *j, const char *key, struct json_object *c)
{
	json_add(j, key, c);
	/* Deeper than any output of ours: its members go to the level above. */
	if (c && j->depth < JSON_OUT_DEPTH)
		j->open[j->depth++] = c;
}

void json_object_begin(struct json *j, const char *key)
{
	json_open(j, key, json_object_new_object());
}

void json_array_begin(struct json *j, const char *key)
{
	json_open(j, key, json_object_new_array());
}

void json_object_end(struct json *j)
{
	if (j->depth > 0)
		j->depth--;
}

void json_array_end(struct json *j)
{
	json_object_end(j);
}

void json_str(struct json *j, const char *key, const char *val)
{
	json_add(j, key, val ? json_object_new_string(val) : NULL);
}

void json_u64(struct json *j, const char *key, uint64_t val)
{
	json_add(j, key, json_object_new_uint64(val));
}

void json_i64(struct json *j, const char *key, int64_t val)
{
	json_add(j, key, json_object_new_int64(val));
}

void json_bool(struct json *j, const char *key, bool val)
{
	json_add(j, key, json_object_new_boolean(val));
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
	int flags = JSON_C_TO_STRING_NOSLASHESCAPE |
		    (j->compact ? JSON_C_TO_STRING_PLAIN :
				  JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED);

	fprintf(j->f, "%s\n", json_object_to_json_string_ext(j->root, flags));
	fflush(j->f);
	json_object_put(j->root);
	*j = (struct json){ .f = j->f, .compact = j->compact };
}
