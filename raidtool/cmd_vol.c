/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * raidtool vol create|snapshot|delete|list: thin volumes of a stopped
 * array's pool (an engine in this process; see pool_common.c).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <raidtool/json.h>
#include <raidtool/thin.h>
#include "cli.h"
#include "commands.h"
#include "pool_common.h"

/*
 * A running array: the request goes to its engine ("vol ARG" on the
 * control socket), which exports or removes the device. -1 when the array
 * is not running (do it offline), else the exit code.
 */
static int vol_send(const char *id, const char *what, const char *arg)
{
	char name[RT_NAME_MAX + 1];
	bool running;
	int r = cli_find_running(id, name, sizeof(name), &running);

	if (r >= 0 || !running)
		return r;
	return cli_control_command(id, what, "vol", arg);
}

static int vol_create(int argc, const char **argv)
{
	const char *size = NULL;
	struct poptOption opts[] = {
		{ "size", 's', POPT_ARG_STRING, &size, 0,
		  "virtual size, a multiple of the pool's block size (may exceed the pool)",
		  "SIZE" },
		POPT_AUTOHELP
		POPT_TABLEEND
	};
	struct pool_cli c;
	const char **args;
	poptContext pc;
	uint64_t bytes;
	char text[32];
	int n, r;

	r = cli_parse("vol create", "ARRAY VOL", argc, argv, opts, 2, 2, &pc, &args, &n);
	if (r >= 0)
		return r;
	if (!size) {
		r = cli_usage_error("vol create", "--size is required");
		goto out;
	}
	r = cli_parse_size("vol create", "--size", size, &bytes);
	if (r >= 0)
		goto out;
	cli_format_size(bytes, text, sizeof(text));
	{
		char arg[256];

		snprintf(arg, sizeof(arg), "create %s %llu", args[1], (unsigned long long)bytes);
		r = vol_send(args[0], "cannot create the volume", arg);
		if (r >= 0) {
			if (r == EXIT_OK)
				printf("created volume '%s' of %s\n", args[1], text);
			goto out;
		}
	}
	r = pool_cli_open(args[0], true, &c);
	if (r >= 0)
		goto out;
	r = thin_vol_create(c.p, args[1], bytes, NULL);
	if (r < 0) {
		r = pool_cli_close(&c, false, cli_fail(r, "'%s': cannot create volume '%s'",
						       thin_array_name(c.a), args[1]));
		goto out;
	}
	r = pool_cli_close(&c, true, EXIT_OK);
	if (r == EXIT_OK)
		printf("created volume '%s' of %s\n", args[1], text);
out:
	poptFreeContext(pc);
	return r;
}

static int vol_snapshot(int argc, const char **argv)
{
	struct poptOption opts[] = {
		POPT_AUTOHELP
		POPT_TABLEEND
	};
	struct pool_cli c;
	const char **args;
	poptContext pc;
	int n, r;

	r = cli_parse("vol snapshot", "ARRAY VOL SNAP", argc, argv, opts, 3, 3, &pc, &args, &n);
	if (r >= 0)
		return r;
	{
		char arg[256];

		snprintf(arg, sizeof(arg), "snapshot %s %s", args[1], args[2]);
		r = vol_send(args[0], "cannot snapshot", arg);
		if (r >= 0) {
			if (r == EXIT_OK)
				printf("created snapshot '%s' of '%s'\n", args[2], args[1]);
			goto out;
		}
	}
	r = pool_cli_open(args[0], true, &c);
	if (r >= 0)
		goto out;
	r = thin_vol_snapshot(c.p, args[1], args[2], NULL);
	if (r < 0) {
		r = pool_cli_close(&c, false, cli_fail(r, "'%s': cannot snapshot '%s'",
						       thin_array_name(c.a), args[1]));
		goto out;
	}
	r = pool_cli_close(&c, true, EXIT_OK);
	if (r == EXIT_OK)
		printf("created snapshot '%s' of '%s'\n", args[2], args[1]);
out:
	poptFreeContext(pc);
	return r;
}

static int vol_delete(int argc, const char **argv)
{
	struct poptOption opts[] = {
		POPT_AUTOHELP
		POPT_TABLEEND
	};
	struct pool_cli c;
	const char **args;
	poptContext pc;
	int n, r;

	r = cli_parse("vol delete", "ARRAY VOL", argc, argv, opts, 2, 2, &pc, &args, &n);
	if (r >= 0)
		return r;
	{
		char arg[256];

		snprintf(arg, sizeof(arg), "delete %s", args[1]);
		r = vol_send(args[0], "cannot delete the volume", arg);
		if (r >= 0) {
			if (r == EXIT_OK)
				printf("deleted volume '%s'\n", args[1]);
			goto out;
		}
	}
	r = pool_cli_open(args[0], true, &c);
	if (r >= 0)
		goto out;
	r = thin_vol_delete(c.p, args[1]);
	if (r < 0) {
		r = pool_cli_close(&c, false, cli_fail(r, "'%s': cannot delete '%s'",
						       thin_array_name(c.a), args[1]));
		goto out;
	}
	r = pool_cli_close(&c, true, EXIT_OK);
	if (r == EXIT_OK)
		printf("deleted volume '%s'\n", args[1]);
out:
	poptFreeContext(pc);
	return r;
}

static int vol_list(int argc, const char **argv)
{
	int as_json = 0;
	struct poptOption opts[] = {
		{ "json", 0, POPT_ARG_NONE, &as_json, 0, "print JSON", NULL },
		POPT_AUTOHELP
		POPT_TABLEEND
	};
	struct thin_pool_info info;
	struct thin_vol_info v, o;
	struct pool_cli c;
	const char **args;
	poptContext pc;
	struct json j;
	int n, r;

	r = cli_parse("vol list", "ARRAY", argc, argv, opts, 1, 1, &pc, &args, &n);
	if (r >= 0)
		return r;
	r = pool_cli_open(args[0], false, &c);
	if (r >= 0)
		goto out;
	thin_pool_get_info(c.p, &info);
	if (as_json) {
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
		if (as_json) {
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
	if (as_json) {
		json_array_end(&j);
		json_finish(&j);
	}
	r = r < 0 ? cli_fail(r, "'%s': cannot read the pool's maps", thin_array_name(c.a))
		  : EXIT_OK;
	r = pool_cli_close(&c, false, r);
out:
	poptFreeContext(pc);
	return r;
}

static const struct pool_subcommand vol_subs[] = {
	{ "create", vol_create, "create a thin volume (--size SIZE)" },
	{ "snapshot", vol_snapshot, "snapshot a volume (or a snapshot) in constant time" },
	{ "delete", vol_delete, "delete a volume; blocks no snapshot shares return to the pool" },
	{ "list", vol_list, "list the volumes: size, mapped, shared, origin" },
	{ NULL, NULL, NULL },
};

int cmd_vol(int argc, const char **argv)
{
	return pool_cli_dispatch("vol", vol_subs, argc, argv);
}
