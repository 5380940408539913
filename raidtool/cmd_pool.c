/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * raidtool pool create|status|check|dump|abort|set-transaction-id|set|
 * reserve-metadata-snap|release-metadata-snap: the thin pool of an array,
 * through its engine when it runs, else an engine in this process (see
 * pool_common.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <raidtool/lock.h>
#include <raidtool/thin.h>
#include "cli.h"
#include "commands.h"
#include "json-out.h"
#include "pool_common.h"

static const char *when_full_name(uint32_t w)
{
	return w == THIN_WHEN_FULL_QUEUE ? "queue" : "error";
}

static const char *create_bsize, *create_when_full;
static int create_force, create_low_water = CLI_UNSET;

static const struct poptOption create_opts[] = {
	{ "block-size", 'b', POPT_ARG_STRING, &create_bsize, 0,
	  "data block size: a power of two from 64K to 1M (default 64K)", "SIZE" },
	{ "when-full", 0, POPT_ARG_STRING, &create_when_full, 0,
	  "a write needing a block of a full pool: error (ENOSPC, default) or queue",
	  "error|queue" },
	{ "low-water", 0, POPT_ARG_INT, &create_low_water, 0,
	  "warn when fewer than PERCENT of the data blocks are free", "PERCENT" },
	{ "force", 'f', POPT_ARG_NONE, &create_force, 0,
	  "create over a filesystem, other signature or an existing pool", NULL },
	POPT_TABLEEND
};

/* The options as thin_format takes them: 0, or -EINVAL after a usage error. */
static int create_params(struct thin_format_params *fp)
{
	uint64_t v;
	int r;

	if (create_bsize) {
		r = cli_parse_size("pool create", "--block-size", create_bsize, &v);
		if (r < 0)
			return r;
		if (v < THIN_BLOCK_MIN || v > THIN_BLOCK_MAX || (v & (v - 1)))
			return cli_usage_error("pool create", "--block-size '%s': must be a power "
					       "of two from 64K to 1M", create_bsize), -EINVAL;
		fp->block_size = (uint32_t)v;
	}
	if (create_when_full && !strcmp(create_when_full, "queue"))
		fp->when_full = THIN_WHEN_FULL_QUEUE;
	else if (create_when_full && strcmp(create_when_full, "error"))
		return cli_usage_error("pool create", "--when-full '%s': use error or queue",
				       create_when_full), -EINVAL;
	if (create_low_water != CLI_UNSET && (create_low_water < 0 || create_low_water > 100))
		return cli_usage_error("pool create", "--low-water '%d': a percentage (0 to 100)",
				       create_low_water), -EINVAL;
	fp->low_water = create_low_water == CLI_UNSET ? 0 : (uint32_t)create_low_water;
	return 0;
}

static int pool_create(int n, const char **args)
{
	struct thin_format_params fp = { 0 };
	struct thin_array *a = NULL;
	struct thin_pool_info info;
	struct thin_pool *p = NULL;
	char type[128], size[32], bs[32];
	int r, q, lock_fd = -1;

	r = cli_exit_code(create_params(&fp));
	if (r != EXIT_OK)
		return r;
	r = cli_exit_code(cli_lock_array(args[0], &lock_fd));
	if (r != EXIT_OK)
		return r;
	r = thin_array_open(args[0], true, &a);
	if (r < 0) {
		r = cli_fail(r, "'%s': cannot open the array", args[0]);
		goto out_unlock;
	}
	/* Refusals first: nothing is written before they pass. */
	r = thin_array_signature(a, type, sizeof(type));
	if (r < 0) {
		r = cli_fail(r, "'%s': cannot probe its contents", thin_array_name(a));
		goto out_close;
	}
	if (r == 1 && !create_force) {
		cli_error("'%s': holds %s; 'pool create --force' overwrites it",
			  thin_array_name(a), type);
		r = EXIT_REFUSED;
		goto out_close;
	}
	r = thin_probe(thin_array_io(a));
	if (r != 0 && !create_force) {
		cli_error("'%s': holds a thin pool%s; 'pool create --force' replaces it (its "
			  "volumes are lost)", thin_array_name(a), r < 0 ? " (damaged)" : "");
		r = EXIT_REFUSED;
		goto out_close;
	}
	fp.pool_bytes = thin_array_bytes(a);
	r = thin_format(thin_array_io(a), &fp);
	if (r == 0)
		r = thin_open(thin_array_io(a), true, &p);
	if (r < 0) {
		r = cli_fail(r, "'%s': cannot create a thin pool", thin_array_name(a));
		goto out_close;
	}
	thin_pool_get_info(p, &info);
	cli_format_size(info.data_blocks * info.block_size, size, sizeof(size));
	cli_format_size(info.block_size, bs, sizeof(bs));
	printf("created a thin pool on '%s': %s in %llu blocks of %s, %llu metadata blocks\n",
	       thin_array_name(a), size, (unsigned long long)info.data_blocks, bs,
	       (unsigned long long)info.metadata_blocks);
	thin_close(p);
	r = EXIT_OK;
out_close:
	q = thin_array_close(a);
	if (q < 0 && r == EXIT_OK)
		r = cli_fail(q, "cannot stop the engine");
out_unlock:
	lock_release(lock_fd);
	return r;
}

/* The metadata snapshot a view was opened on is ours, not one someone holds. */
static void view_info(const struct pool_cli *c, struct thin_pool_info *i)
{
	thin_pool_get_info(c->p, i);
	if (c->snap)
		i->metadata_snap = 0;
}

static void info_json(struct json *j, const char *name, const struct thin_pool_info *i)
{
	json_str(j, "array", name);
	json_u64(j, "block_size", i->block_size);
	json_u64(j, "data_blocks", i->data_blocks);
	json_u64(j, "free_data_blocks", i->free_data_blocks);
	json_u64(j, "metadata_blocks", i->metadata_blocks);
	json_u64(j, "free_metadata_blocks", i->free_metadata_blocks);
	json_u64(j, "transaction_id", i->transaction_id);
	json_u64(j, "commit", i->commit_seq);
	json_bool(j, "needs_check", i->needs_check);
	json_bool(j, "read_only", i->read_only);
	if (i->metadata_snap)
		json_u64(j, "metadata_snap", i->metadata_snap);
	else
		json_str(j, "metadata_snap", NULL);
	json_str(j, "when_full", when_full_name(i->when_full));
	json_u64(j, "low_water", i->low_water);
	json_bool(j, "below_low_water", i->below_low_water);
	json_u64(j, "volumes", i->n_volumes);
}

static int status_json;

static const struct poptOption status_opts[] = {
	{ "json", 0, POPT_ARG_NONE, &status_json, 0, "print JSON", NULL },
	POPT_TABLEEND
};

static int pool_status(int n, const char **args)
{
	struct thin_pool_info i;
	struct pool_cli c;
	char a[32], b[32];
	int r;

	r = cli_exit_code(pool_cli_open_view(args[0], &c));
	if (r != EXIT_OK)
		return r;
	view_info(&c, &i);
	if (status_json) {
		struct json j;

		json_init(&j, stdout);
		json_object_begin(&j, NULL);
		info_json(&j, thin_array_name(c.a), &i);
		json_object_end(&j);
		json_finish(&j);
	} else {
		cli_format_size(i.block_size, a, sizeof(a));
		printf("pool on '%s': blocks of %s, %u volume%s\n", thin_array_name(c.a), a,
		       i.n_volumes, i.n_volumes == 1 ? "" : "s");
		cli_format_size(i.free_data_blocks * i.block_size, a, sizeof(a));
		cli_format_size(i.data_blocks * i.block_size, b, sizeof(b));
		printf("  data:           %llu of %llu blocks free (%s of %s)%s\n",
		       (unsigned long long)i.free_data_blocks, (unsigned long long)i.data_blocks,
		       a, b, i.below_low_water ? ", below the low-water mark" : "");
		printf("  metadata:       %llu of %llu blocks free\n",
		       (unsigned long long)i.free_metadata_blocks,
		       (unsigned long long)i.metadata_blocks);
		printf("  transaction id: %llu (commit %llu)\n",
		       (unsigned long long)i.transaction_id, (unsigned long long)i.commit_seq);
		printf("  when full:      %s; low water %u%%\n", when_full_name(i.when_full),
		       i.low_water);
		printf("  needs check:    %s\n", i.needs_check ? "yes" : "no");
		printf("  mode:           %s\n", i.needs_check ? "read-only (needs check)"
					       : i.read_only ? "read-only" : "read-write");
		if (i.metadata_snap)
			printf("  metadata snap:  held (block %llu)\n",
			       (unsigned long long)i.metadata_snap);
	}
	r = pool_cli_close(&c, false, EXIT_OK);
	return r;
}

static int pool_check(int n, const char **args)
{
	struct thin_check_report rep;
	struct pool_cli c;
	int r;

	r = cli_exit_code(pool_cli_open(args[0], true, &c));
	if (r != EXIT_OK)
		return r;
	r = thin_check_and_clear(c.p, &rep);
	if (r == 0) {
		printf("pool on '%s': clean\n", thin_array_name(c.a));
		r = EXIT_OK;
	} else if (r == -EUCLEAN) {
		printf("pool on '%s': damaged: %llu bad nodes, %llu metadata and %llu data "
		       "counts too high (leaks), %llu metadata and %llu data counts too low, "
		       "%llu wrong mapped counts\n  first: %s\n", thin_array_name(c.a),
		       (unsigned long long)rep.bad_nodes, (unsigned long long)rep.meta_leaks,
		       (unsigned long long)rep.data_leaks, (unsigned long long)rep.meta_missing,
		       (unsigned long long)rep.data_missing, (unsigned long long)rep.bad_counts,
		       rep.first);
		r = EXIT_FAIL;
	} else {
		r = cli_fail(r, "'%s': cannot check the pool", thin_array_name(c.a));
	}
	/* thin_check_and_clear committed what it changed. */
	r = pool_cli_close(&c, false, r);
	return r;
}

struct dump_ctx {
	struct json *j;
};

static int dump_range(uint64_t vbegin, uint64_t pbegin, uint64_t len, void *arg)
{
	struct dump_ctx *d = arg;

	json_object_begin(d->j, NULL);
	json_u64(d->j, "virtual", vbegin);
	json_u64(d->j, "pool", pbegin);
	json_u64(d->j, "length", len);
	json_object_end(d->j);
	return 0;
}

static int pool_dump(int n, const char **args)
{
	struct thin_pool_info i;
	struct thin_vol_info v;
	struct pool_cli c;
	struct dump_ctx d;
	struct json j;
	int r;

	r = cli_exit_code(pool_cli_open_view(args[0], &c));
	if (r != EXIT_OK)
		return r;
	view_info(&c, &i);
	json_init(&j, stdout);
	json_object_begin(&j, NULL);
	info_json(&j, thin_array_name(c.a), &i);
	json_u64(&j, "data_offset", i.data_offset);
	json_array_begin(&j, "volume_table");
	d.j = &j;
	r = 0;
	for (uint32_t k = 0; r == 0 && thin_vol_at(c.p, k, &v) == 0; k++) {
		json_object_begin(&j, NULL);
		json_u64(&j, "id", v.id);
		json_str(&j, "name", v.name);
		json_u64(&j, "size", v.size);
		json_u64(&j, "mapped", v.mapped);
		json_u64(&j, "origin", v.origin);
		json_u64(&j, "created_commit", v.created_txn);
		json_u64(&j, "root", v.root);
		json_array_begin(&j, "mappings");
		r = thin_vol_walk(c.p, v.id, dump_range, &d);
		json_array_end(&j);
		json_object_end(&j);
	}
	json_array_end(&j);
	json_object_end(&j);
	json_finish(&j);
	r = r < 0 ? cli_fail(r, "'%s': cannot read the pool's maps", thin_array_name(c.a))
		  : EXIT_OK;
	r = pool_cli_close(&c, false, r);
	return r;
}

static int pool_abort(int n, const char **args)
{
	bool sent;
	int r = pool_cli_send(args[0], RT_VERB_POOL, "cannot abort", "abort", &sent);

	if (sent)
		return r;
	/* Every command on a stopped array commits before it ends. */
	printf("'%s': not running: nothing uncommitted to abort\n", args[0]);
	return EXIT_OK;
}

/* A transaction id argument: 0 and *@v, else -EINVAL after a usage error. */
static int parse_txn(const char *what, const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 10);
	if (errno || !*s || *end || *s == '-' || *s == '+')
		return cli_usage_error("pool set-transaction-id", "%s '%s': not a transaction id "
				       "(a number from 0 to 2^64-1)", what, s), -EINVAL;
	return 0;
}

static int pool_set_txn(int n, const char **args)
{
	struct pool_cli c;
	bool sent;
	uint64_t old, id;
	char arg[96];
	int r;

	r = parse_txn("OLD", args[1], &old);
	if (r == 0)
		r = parse_txn("NEW", args[2], &id);
	if (r < 0)
		return cli_exit_code(r);
	snprintf(arg, sizeof(arg), "set-transaction-id %llu %llu", (unsigned long long)old,
		 (unsigned long long)id);
	r = pool_cli_send(args[0], RT_VERB_POOL, "cannot set the transaction id", arg, &sent);
	if (!sent) {
		r = cli_exit_code(pool_cli_open(args[0], true, &c));
		if (r != EXIT_OK)
			return r;
		r = thin_set_transaction_id(c.p, old, id);
		r = pool_cli_close(&c, r == 0, r < 0 ? cli_fail(r, "'%s': cannot set the "
								"transaction id", args[0])
						     : EXIT_OK);
	}
	if (r == EXIT_OK)
		printf("'%s': transaction id %llu (was %llu)\n", args[0], (unsigned long long)id,
		       (unsigned long long)old);
	return r;
}

static int set_read_only, set_read_write;

static const struct poptOption set_opts[] = {
	{ "read-only", 0, POPT_ARG_NONE, &set_read_only, 0,
	  "refuse every change: volumes' writes fail (EROFS), nothing commits", NULL },
	{ "read-write", 0, POPT_ARG_NONE, &set_read_write, 0,
	  "writable again (refused while the pool needs a check)", NULL },
	POPT_TABLEEND
};

static int pool_set(int n, const char **args)
{
	const char *mode = set_read_only ? "read-only" : "read-write";
	struct pool_cli c;
	bool sent;
	int r;

	if (set_read_only == set_read_write)
		return cli_usage_error("pool set", "give one of --read-only and --read-write");
	r = pool_cli_send(args[0], RT_VERB_POOL, "cannot set the pool's mode", mode, &sent);
	if (!sent) {
		r = cli_exit_code(pool_cli_open(args[0], true, &c));
		if (r != EXIT_OK)
			return r;
		r = thin_set_mode(c.p, set_read_only);
		r = pool_cli_close(&c, false, r < 0 ? cli_fail(r, "'%s': cannot make the pool %s",
							       args[0], mode) : EXIT_OK);
	}
	if (r == EXIT_OK)
		printf("'%s': the pool is %s\n", args[0], mode);
	return r;
}

/* dm's reserve_metadata_snap / release_metadata_snap messages. */
static int metadata_snap(const char *id, bool reserve)
{
	const char *word = reserve ? "reserve-metadata-snap" : "release-metadata-snap";
	const char *what = reserve ? "cannot reserve a metadata snapshot"
				   : "cannot release the metadata snapshot";
	struct pool_cli c;
	bool sent;
	int r = pool_cli_send(id, RT_VERB_POOL, what, word, &sent);

	if (!sent) {
		r = cli_exit_code(pool_cli_open(id, true, &c));
		if (r != EXIT_OK)
			return r;
		r = reserve ? thin_reserve_metadata_snap(c.p) : thin_release_metadata_snap(c.p);
		r = pool_cli_close(&c, false, r < 0 ? cli_fail(r, "'%s': %s", id, what) : EXIT_OK);
	}
	if (r == EXIT_OK)
		printf("'%s': metadata snapshot %s\n", id, reserve ? "reserved" : "released");
	return r;
}

static int pool_reserve_snap(int n, const char **args)
{
	return metadata_snap(args[0], true);
}

static int pool_release_snap(int n, const char **args)
{
	return metadata_snap(args[0], false);
}

static const struct cli_command pool_subs[] = {
	{ .name = "create", .run = pool_create, .opts = create_opts, .args = "ARRAY",
	  .min_args = 1, .max_args = 1,
	  .summary = "make a stopped array's data area a thin pool" },
	{ .name = "status", .run = pool_status, .opts = status_opts, .args = "ARRAY",
	  .min_args = 1, .max_args = 1,
	  .summary = "show the pool's free blocks, transaction id and flags" },
	{ .name = "check", .run = pool_check, .args = "ARRAY", .min_args = 1, .max_args = 1,
	  .summary = "verify every reference count against the maps" },
	{ .name = "dump", .run = pool_dump, .args = "ARRAY", .min_args = 1, .max_args = 1,
	  .summary = "print the pool's metadata as JSON (a running pool's from a metadata "
		     "snapshot)" },
	{ .name = "abort", .run = pool_abort, .args = "ARRAY", .min_args = 1, .max_args = 1,
	  .summary = "drop a running pool's uncommitted changes: back at its last commit" },
	{ .name = "set-transaction-id", .run = pool_set_txn, .args = "ARRAY OLD NEW",
	  .min_args = 3, .max_args = 3,
	  .summary = "set the transaction id to NEW if it is OLD (committed)" },
	{ .name = "set", .run = pool_set, .opts = set_opts, .args = "ARRAY", .min_args = 1,
	  .max_args = 1, .summary = "make the pool read-only or read-write (kept)" },
	{ .name = "reserve-metadata-snap", .run = pool_reserve_snap, .args = "ARRAY",
	  .min_args = 1, .max_args = 1,
	  .summary = "hold a copy of the metadata that commits leave alone" },
	{ .name = "release-metadata-snap", .run = pool_release_snap, .args = "ARRAY",
	  .min_args = 1, .max_args = 1, .summary = "release the held metadata snapshot" },
	{ .name = NULL },
};

const struct cli_command cmd_pool = {
	.name = "pool", .subs = pool_subs,
	.summary = "thin pool of an array: create, status, check, dump, abort, set, ...",
};
