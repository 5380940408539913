/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * raidtool vol create|snapshot|delete|resize|list: thin volumes of an
 * array's pool; a running array's engine makes the changes, a stopped
 * array's pool is opened here (an engine in this process; pool_common.c).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <raidtool/control.h>
#include <raidtool/thin.h>
#include "cli.h"
#include "commands.h"
#include "json-out.h"
#include "pool_common.h"

static const char *create_size;
static const char *resize_size;
static int resize_force;
static uint64_t size_bytes;	/* --size, parsed */

/* What a change does to a stopped array's pool, opened in this process. */
typedef int (*vol_offline_fn)(struct thin_pool *p, const char **args);

/*
 * A change of the volumes: sent to a running array's engine ("vol @arg"
 * on the control socket; it exports or removes the devices), else made on
 * the stopped array's pool and committed. @done is printed on success.
 */
static int vol_change(const char **args, const char *arg, const char *what,
		      vol_offline_fn offline, const char *done)
{
	struct pool_cli c;
	bool sent;
	int r = pool_cli_send(args[0], RT_VERB_VOL, what, arg, &sent);

	if (!sent) {
		r = cli_exit_code(pool_cli_open(args[0], true, &c));
		if (r != EXIT_OK)
			return r;
		r = offline(c.p, args);
		r = pool_cli_close(&c, r == 0, r < 0 ? cli_fail(r, "'%s': %s '%s'",
								thin_array_name(c.a), what, args[1])
						     : EXIT_OK);
	}
	if (r == EXIT_OK)
		printf("%s\n", done);
	return r;
}

/* --size of @cmd into size_bytes, and its text into @text. */
static int parse_size(const char *cmd, const char *size, char *text, size_t len)
{
	int r;

	if (!size)
		return cli_usage_error(cmd, "--size is required");
	r = cli_exit_code(cli_parse_size(cmd, "--size", size, &size_bytes));
	if (r == EXIT_OK)
		cli_format_size(size_bytes, text, len);
	return r;
}

static const struct poptOption create_opts[] = {
	{ "size", 's', POPT_ARG_STRING, &create_size, 0,
	  "virtual size, a multiple of the pool's block size (may exceed the pool)", "SIZE" },
	POPT_TABLEEND
};

static int create_offline(struct thin_pool *p, const char **args)
{
	return thin_vol_create(p, args[1], size_bytes, NULL);
}

static int vol_create(int n, const char **args)
{
	char text[32], arg[256], done[256];
	int r = parse_size("vol create", create_size, text, sizeof(text));

	if (r != EXIT_OK)
		return r;
	snprintf(arg, sizeof(arg), "create %s %llu", args[1], (unsigned long long)size_bytes);
	snprintf(done, sizeof(done), "created volume '%s' of %s", args[1], text);
	return vol_change(args, arg, "cannot create volume", create_offline, done);
}

static int snapshot_offline(struct thin_pool *p, const char **args)
{
	return thin_vol_snapshot(p, args[1], args[2], NULL);
}

static int vol_snapshot(int n, const char **args)
{
	char arg[256], done[256];

	snprintf(arg, sizeof(arg), "snapshot %s %s", args[1], args[2]);
	snprintf(done, sizeof(done), "created snapshot '%s' of '%s'", args[2], args[1]);
	return vol_change(args, arg, "cannot snapshot", snapshot_offline, done);
}

static int delete_offline(struct thin_pool *p, const char **args)
{
	return thin_vol_delete(p, args[1]);
}

static int vol_delete(int n, const char **args)
{
	char arg[256], done[256];

	snprintf(arg, sizeof(arg), "delete %s", args[1]);
	snprintf(done, sizeof(done), "deleted volume '%s'", args[1]);
	return vol_change(args, arg, "cannot delete", delete_offline, done);
}

static const struct poptOption resize_opts[] = {
	{ "size", 's', POPT_ARG_STRING, &resize_size, 0,
	  "the new virtual size, a multiple of the pool's block size", "SIZE" },
	{ "force", 'f', POPT_ARG_NONE, &resize_force, 0,
	  "shrink: unmap (lose) what lies beyond the new size", NULL },
	POPT_TABLEEND
};

static int resize_offline(struct thin_pool *p, const char **args)
{
	return thin_vol_resize(p, args[1], size_bytes, resize_force);
}

static int vol_resize(int n, const char **args)
{
	char text[32], arg[256], done[256];
	int r = parse_size("vol resize", resize_size, text, sizeof(text));

	if (r != EXIT_OK)
		return r;
	snprintf(arg, sizeof(arg), "resize %s %llu%s", args[1], (unsigned long long)size_bytes,
		 resize_force ? " force" : "");
	snprintf(done, sizeof(done), "resized volume '%s' to %s", args[1], text);
	return vol_change(args, arg, "cannot resize", resize_offline, done);
}

static int list_json;

static const struct poptOption list_opts[] = {
	{ "json", 0, POPT_ARG_NONE, &list_json, 0, "print JSON", NULL },
	POPT_TABLEEND
};

static int vol_list(int n, const char **args)
{
	struct thin_pool_info info;
	struct thin_vol_info v, o;
	struct pool_cli c;
	struct json j;
	int r;

	/* A running pool: a consistent copy (its counts are recounted from its trees). */
	r = cli_exit_code(pool_cli_open_view(args[0], &c));
	if (r != EXIT_OK)
		return r;
	thin_pool_get_info(c.p, &info);
	if (list_json) {
		json_init(&j, stdout);
		json_array_begin(&j, NULL);
	} else {
		printf("%-20s %5s %12s %12s %12s  %s\n", "NAME", "ID", "SIZE", "MAPPED", "SHARED",
		       "ORIGIN");
	}
	r = 0;
	for (uint32_t k = 0; r == 0 && thin_vol_at(c.p, k, &v) == 0; k++) {
		const char *origin = NULL;
		uint64_t shared;
		char size[32], mapped[32], sh[32];

		r = thin_vol_shared(c.p, v.id, &shared);
		if (r < 0)
			break;
		if (v.origin && thin_vol_get(c.p, v.origin, &o) == 0)
			origin = o.name;
		if (list_json) {
			json_object_begin(&j, NULL);
			json_str(&j, "name", v.name);
			json_u64(&j, "id", v.id);
			json_u64(&j, "size", v.size);
			json_u64(&j, "mapped_blocks", v.mapped);
			json_u64(&j, "mapped", v.mapped * info.block_size);
			json_u64(&j, "shared_blocks", shared);
			json_u64(&j, "shared", shared * info.block_size);
			json_str(&j, "origin", origin);
			json_object_end(&j);
		} else {
			cli_format_size(v.size, size, sizeof(size));
			cli_format_size(v.mapped * info.block_size, mapped, sizeof(mapped));
			cli_format_size(shared * info.block_size, sh, sizeof(sh));
			printf("%-20s %5u %12s %12s %12s  %s\n", v.name, v.id, size, mapped, sh,
			       origin ? origin : v.origin ? "(deleted)" : "-");
		}
	}
	if (list_json) {
		json_array_end(&j);
		json_finish(&j);
	}
	r = r < 0 ? cli_fail(r, "'%s': cannot read the pool's maps", thin_array_name(c.a))
		  : EXIT_OK;
	r = pool_cli_close(&c, false, r);
	return r;
}

static const struct cli_command vol_subs[] = {
	{ .name = "create", .run = vol_create, .opts = create_opts, .args = "ARRAY VOL",
	  .min_args = 2, .max_args = 2, .summary = "create a thin volume (--size SIZE)" },
	{ .name = "snapshot", .run = vol_snapshot, .args = "ARRAY VOL SNAP",
	  .min_args = 3, .max_args = 3,
	  .summary = "snapshot a volume (or a snapshot) in constant time" },
	{ .name = "delete", .run = vol_delete, .args = "ARRAY VOL", .min_args = 2, .max_args = 2,
	  .summary = "delete a volume; blocks no snapshot shares return to the pool" },
	{ .name = "resize", .run = vol_resize, .opts = resize_opts, .args = "ARRAY VOL",
	  .min_args = 2, .max_args = 2,
	  .summary = "change a volume's size (--size SIZE; a shrink needs --force)" },
	{ .name = "list", .run = vol_list, .opts = list_opts, .args = "ARRAY",
	  .min_args = 1, .max_args = 1, .summary = "list the volumes: size, mapped, shared, origin" },
	{ .name = NULL },
};

const struct cli_command cmd_vol = {
	.name = "vol", .subs = vol_subs,
	.summary = "thin volumes of an array's pool: create, snapshot, delete, resize, list",
};
