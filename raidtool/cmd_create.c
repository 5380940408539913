/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <inttypes.h>
#include <raidtool/array.h>
#include <raidtool/lock.h>
#include "cli.h"
#include "commands.h"
#include "describe.h"
#include "json-out.h"

static const char *level = NULL, *chunk = NULL, *blocksize = NULL, *desc = NULL;
static int force = 0, as_json = 0, assume_clean = 0;

static const struct poptOption create_opts[] = {
	{ "level", 'l', POPT_ARG_STRING, &level, 0,
	  "RAID level: linear (or none), 0, 1, 5", "LEVEL" },
	{ "chunk", 'c', POPT_ARG_STRING, &chunk, 0,
	  "chunk size, a power of two from 4K to 64M (default 512K)", "SIZE" },
	{ "blocksize", 'b', POPT_ARG_STRING, &blocksize, 0,
	  "logical block size of the array: 512 or 4096 (default)", "BYTES" },
	{ "desc", 'd', POPT_ARG_STRING, &desc, 0, "description, up to 127 bytes", "TEXT" },
	{ "force", 'f', POPT_ARG_NONE, &force, 0,
	  "overwrite units that hold a filesystem, other signature or raidtool superblock", NULL },
	{ "assume-clean", 0, POPT_ARG_NONE, &assume_clean, 0,
	  "raid1/raid5: skip the initial sync; only for units known to hold zeros", NULL },
	{ "json", 0, POPT_ARG_NONE, &as_json, 0, "print the new array's descriptor as JSON", NULL },
	CLI_BATCH_MODE_OPT,
	POPT_TABLEEND
};

static int run_create(int n, const char **args)
{
	struct rt_create_params p = { 0 };
	struct rt_sb sb;
	uint64_t v;
	int r, lock_fd = -1;

	p.name = args[0];
	p.desc = desc;
	p.force = force;
	p.assume_clean = assume_clean;
	if (!level) {
		r = cli_usage_error("create", "--level is required (linear, 0, 1 or 5)");
		goto out;
	}
	if (sb_level_parse(level, &p.level) < 0) {
		r = cli_usage_error("create", "'%s': unknown level (use linear, 0, 1 or 5)", level);
		goto out;
	}
	if (chunk) {
		r = cli_exit_code(cli_parse_size("create", "--chunk", chunk, &v));
		if (r != EXIT_OK)
			goto out;
		if (v > UINT32_MAX) {
			r = cli_usage_error("create", "--chunk '%s': must be a power of two from %u "
					    "to %u bytes", chunk, RT_MIN_CHUNK, RT_MAX_CHUNK);
			goto out;
		}
		p.chunk_size = (uint32_t)v;
	}
	if (blocksize) {
		r = cli_exit_code(cli_parse_size("create", "--blocksize", blocksize, &v));
		if (r != EXIT_OK)
			goto out;
		if (v != 512 && v != 4096) {
			r = cli_usage_error("create", "--blocksize '%s': must be 512 or 4096", blocksize);
			goto out;
		}
		p.blocksize = (uint32_t)v;
	}
	/* --force over what the units hold: asked on a terminal, before any lock is taken. */
	if (force) {
		r = cli_confirm_units(args + 1, (size_t)(n - 1), true,
				      "overwritten by the new array");
		if (r != 0)
			goto out;
	}
	/* Another create (or rename) between our name check and our writes would pass it too. */
	r = lock_take(RT_LOCK_NAMES, &lock_fd);
	if (r == 0)
		r = array_create(&p, args + 1, (size_t)(n - 1), &sb);
	lock_release(lock_fd);
	if (r < 0) {
		r = cli_fail(r, "'%s': cannot create array", p.name);
		goto out;
	}
	if (as_json) {
		struct json j;

		json_init(&j, stdout);
		json_object_begin(&j, NULL);
		describe_array_json(&j, &sb);
		json_object_end(&j);
		json_finish(&j);
	} else {
		char size[32];

		cli_format_size(describe_array_bytes(&sb), size, sizeof(size));
		printf("created array '%s': %s, %u units, %s, hashcode %08x\n", sb.array.name,
		       sb_level_name(sb.array.level), sb.array.n_devices, size, sb.array.hashcode);
		if (sb_unsynced(&sb))
			printf("not yet synced: the initial sync runs in the background when the "
			       "array is first activated\n");
	}
	r = EXIT_OK;
out:
	return r;
}

const struct cli_command cmd_create = {
	.name = "create", .run = run_create, .opts = create_opts,
	.args = "NAME UNIT...", .min_args = 2, .max_args = -1,
	.summary = "write superblocks to units, making a new array",
};
