/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <raidtool/control.h>
#include <raidtool/overview.h>
#include <raidtool/scan.h>
#include "cli.h"
#include "commands.h"
#include "describe.h"
#include "status_all.h"
#include "json-out.h"

static const char *role_of(const struct rt_control_status *st, uint32_t slot, char *buf,
			   size_t len)
{
	if (slot < st->n_devices)
		snprintf(buf, len, "%u", slot);
	else
		snprintf(buf, len, "spare");
	return buf;
}

static double percent(const struct rt_control_status *st)
{
	return st->walk_total ? 100.0 * (double)st->walk_done / (double)st->walk_total : 0.0;
}

/* "0, 2": the roles set in @mask. */
static const char *role_list(uint64_t mask, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (unsigned r = 0; r < 64 && n < len; r++)
		if (mask & (1ull << r))
			n += (size_t)snprintf(buf + n, len - n, "%s%u", n ? ", " : "", r);
	return buf;
}

static void print_text(const struct rt_control_status *st, const struct rt_control_probe *p)
{
	char size[32], chunk[32], uuid[37], when[64], role[16], rb[32], wb[32], db[32];

	cli_format_size(st->size, size, sizeof(size));
	cli_format_size(st->chunk_size, chunk, sizeof(chunk));
	cli_format_uuid(st->uuid, uuid);
	printf("%s:\n", st->link[0] ? st->link : st->name);
	printf("          name : %s\n", st->name);
	printf("      hashcode : %08x\n", st->hashcode);
	printf("          uuid : %s\n", uuid);
	printf("         level : %s\n", sb_level_name(st->level));
	printf("          size : %s (%" PRIu64 " bytes, %" PRIu64 " blocks of %u)\n", size,
	       st->size, st->nblocks, st->blocksize);
	if (st->level != RT_LEVEL_1)
		printf("    chunk size : %s\n", chunk);
	printf("     n.devices : %u\n", st->n_devices);
	printf("         state : %s%s%s%s, superblock %s\n", st->state,
	       st->health != RT_HEALTH_NONE ? ", " : "", control_health_name(st->health),
	       st->nospace_mask ? ", no space" : "",
	       sb_array_state_name(st->array_state));
	if (st->nospace_mask) {
		char roles[256];

		printf("      no space : role%s %s out of space: writes that need %s fail with "
		       "ENOSPC until there is room (%s in the array)\n",
		       st->nospace_mask & (st->nospace_mask - 1) ? "s" : "",
		       role_list(st->nospace_mask, roles, sizeof(roles)),
		       st->nospace_mask & (st->nospace_mask - 1) ? "them" : "it",
		       st->nospace_mask & (st->nospace_mask - 1) ? "they stay" : "it stays");
	}
	if (st->unsynced && st->unsynced_total)
		printf("          sync : not yet synced: %" PRIu64 " of %" PRIu64 " regions still "
		       "to sync\n", st->unsynced_left, st->unsynced_total);
	else if (st->unsynced)
		printf("          sync : not yet synced: the initial sync runs when the array is "
		       "activated\n");
	if (st->walk != RT_WALK_NONE && st->walk_running) {
		char speed[32];

		cli_format_size(st->walk_speed, speed, sizeof(speed));
		printf("%14s : %.1f%%", control_walk_name(st->walk), percent(st));
		if (describe_walk_has_role(st->walk))
			printf(" of role %u", st->walk_role);
		printf(" (%" PRIu64 " of %" PRIu64 " bytes), %s/s", st->walk_done, st->walk_total,
		       speed);
		if (st->walk_speed)
			printf(", %" PRIu64 " s left",
			       (st->walk_total - st->walk_done) / st->walk_speed);
		/* A resync, or a rebuild of a re-added unit from the dirty-region log. */
		if (st->regions_total)
			printf(", %" PRIu64 " of %" PRIu64 " regions", st->regions,
			       st->regions_total);
		if (st->walk == RT_WALK_CHECK || st->walk == RT_WALK_REPAIR)
			printf(", %" PRIu64 " mismatches", st->mismatches);
		if (st->walk_speed_max) {
			cli_format_size(st->walk_speed_max, speed, sizeof(speed));
			printf(", limit %s/s", speed);
		}
		putchar('\n');
	} else if (st->walk != RT_WALK_NONE) {
		printf("     last walk : %s %s", control_walk_name(st->walk),
		       st->walk_result == 0 ? "finished" : st->walk_result == -ECANCELED ?
		       "cancelled" : "failed");
		if (st->walk == RT_WALK_CHECK || st->walk == RT_WALK_REPAIR)
			printf(", %" PRIu64 " mismatches, %" PRIu64 " repaired", st->mismatches,
			       st->repaired);
		if (st->walk == RT_WALK_REPAIR)
			describe_repair_text(stdout, st);
		putchar('\n');
	}
	if (p->state == RT_CONTROL_STALE)
		printf("                 (its engine, pid %d, died: run 'raidtool deactivate %s')\n",
		       (int)p->pid, st->name);
	printf("        events : %" PRIu64 "\n", st->events);
	if (st->device[0]) {
		cli_format_time(st->started, when, sizeof(when));
		printf("  block device : %s -> %s\n", st->link, st->device);
		printf("    engine pid : %d\n", (int)st->pid);
		printf("     transport : %s", st->transport);
		if (st->fuse_queues)
			printf(" (%u queues of %u entries)", st->fuse_queues, st->fuse_queue_depth);
		printf(", %" PRIu64 " requests on the ring, %" PRIu64 " on /dev/fuse\n",
		       st->fuse_ring_requests, st->fuse_dev_requests);
		printf("       started : %s\n", when);
		cli_format_size(st->stats.read_bytes, rb, sizeof(rb));
		cli_format_size(st->stats.write_bytes, wb, sizeof(wb));
		cli_format_size(st->stats.discard_bytes, db, sizeof(db));
		printf("           I/O : %" PRIu64 " reads (%s), %" PRIu64 " writes (%s), %"
		       PRIu64 " discards (%s), %" PRIu64 " flushes, %" PRIu64 " errors\n",
		       st->stats.reads, rb, st->stats.writes, wb, st->stats.discards, db,
		       st->stats.flushes, st->stats.errors);
		if (st->level == RT_LEVEL_5)
			printf("       stripes : %" PRIu64 " written whole (%" PRIu64 " merged from "
			       "several writes), %" PRIu64 " read-modify-write, %" PRIu64
			       " reconstruct-write\n", st->stats.stripe_full, st->stats.stripe_merged,
			       st->stats.stripe_rmw, st->stats.stripe_rcw);
		if (st->walk_speed_max) {
			char lim[32];

			cli_format_size(st->walk_speed_max, lim, sizeof(lim));
			printf("   speed limit : %s/s per unit for background walks\n", lim);
		}
		printf(" error retries : up to %u within %u ms before a unit is failed\n",
		       st->retry_count, st->retry_window_ms);
	}
	printf("\n   %-5s %-10s %-20s %-8s", "ROLE", "STATE", "DEVICE", "HASHCODE");
	if (st->device[0])
		printf(" %10s %10s %6s %7s", "READS", "WRITES", "ERRORS", "RETRIES");
	putchar('\n');
	for (unsigned i = 0; i < st->n_units; i++) {
		const struct rt_control_unit *u = &st->units[i];

		printf("   %-5s %-10s %-20s %08x", role_of(st, u->slot, role, sizeof(role)),
		       u->state, u->device[0] ? u->device : "-", u->hashcode);
		if (st->device[0])
			printf(" %10" PRIu64 " %10" PRIu64 " %6" PRIu64 " %7" PRIu64 "%s", u->reads,
			       u->writes, u->errors, u->retries, u->no_space ? "  no space" : "");
		putchar('\n');
	}
}

static void print_json(const struct rt_control_status *st, const struct rt_control_probe *p)
{
	bool active = st->device[0] != '\0';
	struct json j;
	char role[16];

	json_init(&j, stdout);
	json_object_begin(&j, NULL);
	json_str(&j, "name", st->name);
	json_str(&j, "state", st->state);
	json_bool(&j, "engine_died", p->state == RT_CONTROL_STALE);
	json_hash(&j, "hashcode", st->hashcode);
	json_uuid(&j, "uuid", st->uuid);
	json_str(&j, "level", sb_level_name(st->level));
	json_u64(&j, "size", st->size);
	json_u64(&j, "nblocks", st->nblocks);
	json_u64(&j, "blocksize", st->blocksize);
	json_u64(&j, "chunk_size", st->chunk_size);
	json_u64(&j, "n_devices", st->n_devices);
	json_str(&j, "superblock_state", sb_array_state_name(st->array_state));
	json_str(&j, "health", st->health != RT_HEALTH_NONE ? control_health_name(st->health) :
		 NULL);
	json_bool(&j, "synced", !st->unsynced);
	json_u64(&j, "sync_regions_left", st->unsynced_left);
	json_u64(&j, "sync_regions_total", st->unsynced_total);
	json_bool(&j, "no_space", st->nospace_mask != 0);
	if (st->walk != RT_WALK_NONE) {
		json_object_begin(&j, "walk");
		json_str(&j, "kind", control_walk_name(st->walk));
		json_bool(&j, "running", st->walk_running);
		json_i64(&j, "result", st->walk_result);
		json_u64(&j, "role", st->walk_role);
		json_u64(&j, "done", st->walk_done);
		json_u64(&j, "total", st->walk_total);
		json_u64(&j, "percent", (uint64_t)percent(st));
		json_u64(&j, "bytes_per_sec", st->walk_speed);
		json_u64(&j, "seconds_left", st->walk_speed ?
			 (st->walk_total - st->walk_done) / st->walk_speed : 0);
		json_u64(&j, "mismatches", st->mismatches);
		json_u64(&j, "repaired", st->repaired);
		if (st->walk == RT_WALK_REPAIR)
			describe_repair_json(&j, st);
		json_u64(&j, "regions", st->regions);
		json_u64(&j, "regions_total", st->regions_total);
		json_object_end(&j);
	} else {
		json_str(&j, "walk", NULL);
	}
	json_u64(&j, "events", st->events);
	json_str(&j, "device", active ? st->link : NULL);
	json_str(&j, "loop_device", active ? st->device : NULL);
	if (active) {
		json_i64(&j, "pid", st->pid);
		json_u64(&j, "started", st->started);
		json_u64(&j, "walk_speed_limit", st->walk_speed_max);
		json_object_begin(&j, "fuse");
		json_str(&j, "transport", st->transport);
		json_u64(&j, "queues", st->fuse_queues);
		json_u64(&j, "queue_depth", st->fuse_queue_depth);
		json_u64(&j, "ring_requests", st->fuse_ring_requests);
		json_u64(&j, "dev_requests", st->fuse_dev_requests);
		json_object_end(&j);
		json_object_begin(&j, "io_retries");
		json_u64(&j, "count", st->retry_count);
		json_u64(&j, "window_ms", st->retry_window_ms);
		json_object_end(&j);
	} else {
		json_str(&j, "pid", NULL);
		json_str(&j, "started", NULL);
	}
	json_array_begin(&j, "units");
	for (unsigned i = 0; i < st->n_units; i++) {
		const struct rt_control_unit *u = &st->units[i];

		json_object_begin(&j, NULL);
		json_str(&j, "role", role_of(st, u->slot, role, sizeof(role)));
		json_u64(&j, "slot", u->slot);
		json_str(&j, "state", u->state);
		json_str(&j, "device", u->device[0] ? u->device : NULL);
		json_hash(&j, "hashcode", u->hashcode);
		json_uuid(&j, "uuid", u->uuid);
		if (active) {
			json_object_begin(&j, "stats");
			json_u64(&j, "reads", u->reads);
			json_u64(&j, "writes", u->writes);
			json_u64(&j, "read_bytes", u->read_bytes);
			json_u64(&j, "write_bytes", u->write_bytes);
			json_u64(&j, "errors", u->errors);
			json_u64(&j, "retries", u->retries);
			json_object_end(&j);
			json_bool(&j, "no_space", u->no_space);
		}
		json_object_end(&j);
	}
	json_array_end(&j);
	if (active) {
		json_object_begin(&j, "stats");
		json_u64(&j, "reads", st->stats.reads);
		json_u64(&j, "writes", st->stats.writes);
		json_u64(&j, "flushes", st->stats.flushes);
		json_u64(&j, "read_bytes", st->stats.read_bytes);
		json_u64(&j, "write_bytes", st->stats.write_bytes);
		json_u64(&j, "errors", st->stats.errors);
		json_u64(&j, "discards", st->stats.discards);
		json_u64(&j, "discard_bytes", st->stats.discard_bytes);
		if (st->level == RT_LEVEL_5) {
			json_object_begin(&j, "stripes");
			json_u64(&j, "full", st->stats.stripe_full);
			json_u64(&j, "merged", st->stats.stripe_merged);
			json_u64(&j, "read_modify_write", st->stats.stripe_rmw);
			json_u64(&j, "reconstruct_write", st->stats.stripe_rcw);
			json_object_end(&j);
		}
		json_object_end(&j);
	} else {
		json_str(&j, "stats", NULL);
	}
	json_object_end(&j);
	json_finish(&j);
}

/* status --test's exit status (raidtool(8)): 0 clean, 1 degraded, 2 failed or dead. */
static int health_exit(enum rt_health h)
{
	return h == RT_HEALTH_OK ? 0 : h == RT_HEALTH_DEGRADED ? 1 : 2;
}

static int as_json = 0, test = 0;

static const struct poptOption status_opts[] = {
	{ "json", 0, POPT_ARG_NONE, &as_json, 0, "print JSON", NULL },
	{ "test", 't', POPT_ARG_NONE, &test, 0,
	  "exit status from the health: 0 clean, 1 degraded, 2 failed or dead, "
	  "4 no such array", NULL },
	POPT_TABLEEND
};

/* One array's state: the running engine's report, or what the scan finds. */
static int run_status(int n, const char **args)
{
	struct rt_control_status *st = NULL;
	const struct rt_scan_array *a;
	struct rt_control_probe p = { 0 };
	struct rt_scan *s = NULL;
	const char *name;
	int r;

	if (n == 0) {
		/* Every array the machine knows: status_all.c. */
		r = test ? cli_usage_error("status", "--test: name the array to test") :
			   status_all(as_json);
		goto out;
	}
	st = calloc(1, sizeof(*st));
	if (!st) {
		r = cli_fail(-ENOMEM, "status");
		goto out;
	}
	/* A scan, so that a name two arrays share is refused, naming both. */
	r = cli_scan_lookup(args[0], &s, &a);
	if (r < 0) {
		r = cli_exit_code(r);
		if (r == EXIT_NOTFOUND && test)
			r = STATUS_TEST_MISSING;
		goto out;
	}
	name = a->sb.array.name;
	if (control_probe(a->sb.array.uuid, &p) == 0 && p.state == RT_CONTROL_ACTIVE)
		goto running;
	overview_status_from_scan(a, st);
	goto print;
running:
	r = control_status_wait(a->sb.array.uuid, name, st, &p);
	if (r < 0) {
		r = cli_fail_engine(r, name, a->sb.array.uuid);
		goto out;
	}
print:
	if (as_json)
		print_json(st, &p);
	else
		print_text(st, &p);
	r = test ? health_exit(overview_health(a, st, &p)) : EXIT_OK;
out:
	free(st);
	scan_free(s);
	return r;
}

const struct cli_command cmd_status = {
	.name = "status", .run = run_status, .opts = status_opts,
	.args = "[NAME|HASHCODE]", .min_args = 0, .max_args = 1,
	.summary = "show an array's state, units, block device and I/O counters",
};
