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
	if (slot < control_status_n_devices(st))
		snprintf(buf, len, "%u", slot);
	else
		snprintf(buf, len, "spare");
	return buf;
}

static double percent(const struct rt_control_walk *w)
{
	return w->total ? 100.0 * (double)w->done / (double)w->total : 0.0;
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
	const struct rt_control_walk w = control_status_walk(st);
	const struct rt_control_fuse fuse = control_status_fuse(st);
	const struct rt_control_stats *stats = control_status_stats(st);
	const char *name = control_status_name(st), *device = control_status_device(st);
	const char *link_path = control_status_link(st);
	uint64_t nospace = control_status_nospace_mask(st);
	enum rt_health health = control_status_health(st);
	char size[32], chunk[32], uuid[37], when[64], role[16], rb[32], wb[32], db[32];

	cli_format_size(control_status_size(st), size, sizeof(size));
	cli_format_size(control_status_chunk_size(st), chunk, sizeof(chunk));
	cli_format_uuid(control_status_uuid(st), uuid);
	printf("%s:\n", link_path[0] ? link_path : name);
	printf("          name : %s\n", name);
	printf("      hashcode : %08x\n", control_status_hashcode(st));
	printf("          uuid : %s\n", uuid);
	printf("         level : %s\n", sb_level_name(control_status_level(st)));
	printf("          size : %s (%" PRIu64 " bytes, %" PRIu64 " blocks of %u)\n", size,
	       control_status_size(st), control_status_nblocks(st),
	       control_status_blocksize(st));
	if (control_status_level(st) != RT_LEVEL_1)
		printf("    chunk size : %s\n", chunk);
	printf("     n.devices : %u\n", control_status_n_devices(st));
	printf("         state : %s%s%s%s, superblock %s\n", control_status_state(st),
	       health != RT_HEALTH_NONE ? ", " : "", control_health_name(health),
	       nospace ? ", no space" : "",
	       sb_array_state_name(control_status_array_state(st)));
	if (nospace) {
		char roles[256];

		printf("      no space : role%s %s out of space: writes that need %s fail with "
		       "ENOSPC until there is room (%s in the array)\n",
		       nospace & (nospace - 1) ? "s" : "",
		       role_list(nospace, roles, sizeof(roles)),
		       nospace & (nospace - 1) ? "them" : "it",
		       nospace & (nospace - 1) ? "they stay" : "it stays");
	}
	if (control_status_unsynced(st) && control_status_unsynced_total(st))
		printf("          sync : not yet synced: %" PRIu64 " of %" PRIu64 " regions still "
		       "to sync\n", control_status_unsynced_left(st),
		       control_status_unsynced_total(st));
	else if (control_status_unsynced(st))
		printf("          sync : not yet synced: the initial sync runs when the array is "
		       "activated\n");
	if (w.kind != RT_WALK_NONE && w.running) {
		char speed[32];

		cli_format_size(w.speed, speed, sizeof(speed));
		printf("%14s : %.1f%%", control_walk_name(w.kind), percent(&w));
		if (describe_walk_has_role(w.kind))
			printf(" of role %u", w.role);
		printf(" (%" PRIu64 " of %" PRIu64 " bytes), %s/s", w.done, w.total,
		       speed);
		if (w.speed)
			printf(", %" PRIu64 " s left",
			       (w.total - w.done) / w.speed);
		/* A resync, or a rebuild of a re-added unit from the dirty-region log. */
		if (w.regions_total)
			printf(", %" PRIu64 " of %" PRIu64 " regions", w.regions,
			       w.regions_total);
		if (w.kind == RT_WALK_CHECK || w.kind == RT_WALK_REPAIR)
			printf(", %" PRIu64 " mismatches", w.mismatches);
		if (w.speed_max) {
			cli_format_size(w.speed_max, speed, sizeof(speed));
			printf(", limit %s/s", speed);
		}
		putchar('\n');
	} else if (w.kind != RT_WALK_NONE) {
		printf("     last walk : %s %s", control_walk_name(w.kind),
		       w.result == 0 ? "finished" : w.result == -ECANCELED ?
		       "cancelled" : "failed");
		if (w.kind == RT_WALK_CHECK || w.kind == RT_WALK_REPAIR)
			printf(", %" PRIu64 " mismatches, %" PRIu64 " repaired", w.mismatches,
			       w.repaired);
		if (w.kind == RT_WALK_REPAIR)
			describe_repair_text(stdout, st);
		putchar('\n');
	}
	if (p->state == RT_CONTROL_STALE)
		printf("                 (its engine, pid %d, died: run 'raidtool deactivate %s')\n",
		       (int)p->pid, name);
	printf("        events : %" PRIu64 "\n", control_status_events(st));
	if (device[0]) {
		cli_format_time(control_status_started(st), when, sizeof(when));
		printf("  block device : %s -> %s\n", link_path, device);
		printf("    engine pid : %d\n", (int)control_status_pid(st));
		printf("     transport : %s", fuse.transport);
		if (fuse.queues && fuse.poll_us)
			printf(" (%u queues of %u entries, poll %u us: %" PRIu64 " waits without "
			       "sleep)", fuse.queues, fuse.queue_depth, fuse.poll_us, fuse.polled);
		else if (fuse.queues)
			printf(" (%u queues of %u entries, no poll)", fuse.queues, fuse.queue_depth);
		printf(", %" PRIu64 " requests on the ring (%" PRIu64 " to workers), %" PRIu64
		       " on /dev/fuse\n", fuse.ring_requests, fuse.worker_requests, fuse.dev_requests);
		printf("       started : %s\n", when);
		cli_format_size(stats->read_bytes, rb, sizeof(rb));
		cli_format_size(stats->write_bytes, wb, sizeof(wb));
		cli_format_size(stats->discard_bytes, db, sizeof(db));
		printf("           I/O : %" PRIu64 " reads (%s), %" PRIu64 " writes (%s), %"
		       PRIu64 " discards (%s), %" PRIu64 " flushes, %" PRIu64 " errors\n",
		       stats->reads, rb, stats->writes, wb, stats->discards, db,
		       stats->flushes, stats->errors);
		if (control_status_level(st) == RT_LEVEL_5)
			printf("       stripes : %" PRIu64 " written whole (%" PRIu64 " merged from "
			       "several writes), %" PRIu64 " read-modify-write, %" PRIu64
			       " reconstruct-write\n", stats->stripe_full, stats->stripe_merged,
			       stats->stripe_rmw, stats->stripe_rcw);
		if (stats->walk_loop_pieces || stats->walk_own_pieces)
			printf("   walk pieces : %" PRIu64 " on the FUSE queues' loops, %" PRIu64
			       " on the walk's own rings\n", stats->walk_loop_pieces,
			       stats->walk_own_pieces);
		if (w.speed_max) {
			char lim[32];

			cli_format_size(w.speed_max, lim, sizeof(lim));
			printf("   speed limit : %s/s per unit for background walks\n", lim);
		}
		printf(" error retries : up to %u within %u ms before a unit is failed\n",
		       control_status_retry_count(st), control_status_retry_window_ms(st));
	}
	printf("\n   %-5s %-10s %-20s %-8s", "ROLE", "STATE", "DEVICE", "HASHCODE");
	if (device[0])
		printf(" %10s %10s %6s %7s", "READS", "WRITES", "ERRORS", "RETRIES");
	putchar('\n');
	for (unsigned i = 0; i < control_status_unit_count(st); i++) {
		const struct rt_control_unit *u = control_status_unit_at(st, i);
		const struct rt_control_unit_io io = control_unit_io(u);
		const char *dev = control_unit_device(u);

		printf("   %-5s %-10s %-20s %08x",
		       role_of(st, control_unit_slot(u), role, sizeof(role)),
		       control_unit_state_name(control_unit_state(u)), dev[0] ? dev : "-",
		       control_unit_hashcode(u));
		if (device[0])
			printf(" %10" PRIu64 " %10" PRIu64 " %6" PRIu64 " %7" PRIu64 "%s", io.reads,
			       io.writes, io.errors, io.retries, io.no_space ? "  no space" : "");
		putchar('\n');
	}
}

static void print_json(const struct rt_control_status *st, const struct rt_control_probe *p)
{
	const struct rt_control_walk w = control_status_walk(st);
	const struct rt_control_fuse fuse = control_status_fuse(st);
	const struct rt_control_stats *stats = control_status_stats(st);
	enum rt_health health = control_status_health(st);
	bool active = control_status_device(st)[0] != '\0';
	struct json j;
	char role[16];

	json_init(&j, stdout);
	json_object_begin(&j, NULL);
	json_str(&j, "name", control_status_name(st));
	json_str(&j, "state", control_status_state(st));
	json_bool(&j, "engine_died", p->state == RT_CONTROL_STALE);
	json_hash(&j, "hashcode", control_status_hashcode(st));
	json_uuid(&j, "uuid", control_status_uuid(st));
	json_str(&j, "level", sb_level_name(control_status_level(st)));
	json_u64(&j, "size", control_status_size(st));
	json_u64(&j, "nblocks", control_status_nblocks(st));
	json_u64(&j, "blocksize", control_status_blocksize(st));
	json_u64(&j, "chunk_size", control_status_chunk_size(st));
	json_u64(&j, "n_devices", control_status_n_devices(st));
	json_str(&j, "superblock_state", sb_array_state_name(control_status_array_state(st)));
	json_str(&j, "health", health != RT_HEALTH_NONE ? control_health_name(health) :
		 NULL);
	json_bool(&j, "synced", !control_status_unsynced(st));
	json_u64(&j, "sync_regions_left", control_status_unsynced_left(st));
	json_u64(&j, "sync_regions_total", control_status_unsynced_total(st));
	json_bool(&j, "no_space", control_status_nospace_mask(st) != 0);
	if (w.kind != RT_WALK_NONE) {
		json_object_begin(&j, "walk");
		json_str(&j, "kind", control_walk_name(w.kind));
		json_bool(&j, "running", w.running);
		json_i64(&j, "result", w.result);
		json_u64(&j, "role", w.role);
		json_u64(&j, "done", w.done);
		json_u64(&j, "total", w.total);
		json_u64(&j, "percent", (uint64_t)percent(&w));
		json_u64(&j, "bytes_per_sec", w.speed);
		json_u64(&j, "seconds_left", w.speed ?
			 (w.total - w.done) / w.speed : 0);
		json_u64(&j, "mismatches", w.mismatches);
		json_u64(&j, "repaired", w.repaired);
		if (w.kind == RT_WALK_REPAIR)
			describe_repair_json(&j, st);
		json_u64(&j, "regions", w.regions);
		json_u64(&j, "regions_total", w.regions_total);
		json_object_end(&j);
	} else {
		json_str(&j, "walk", NULL);
	}
	json_u64(&j, "events", control_status_events(st));
	json_str(&j, "device", active ? control_status_link(st) : NULL);
	json_str(&j, "loop_device", active ? control_status_device(st) : NULL);
	if (active) {
		json_i64(&j, "pid", control_status_pid(st));
		json_u64(&j, "started", control_status_started(st));
		json_u64(&j, "walk_speed_limit", w.speed_max);
		json_object_begin(&j, "fuse");
		json_str(&j, "transport", fuse.transport);
		json_u64(&j, "queues", fuse.queues);
		json_u64(&j, "queue_depth", fuse.queue_depth);
		json_u64(&j, "ring_requests", fuse.ring_requests);
		json_u64(&j, "worker_requests", fuse.worker_requests);
		json_u64(&j, "poll_us", fuse.poll_us);
		json_u64(&j, "polled", fuse.polled);
		json_u64(&j, "dev_requests", fuse.dev_requests);
		json_object_end(&j);
		json_object_begin(&j, "io_retries");
		json_u64(&j, "count", control_status_retry_count(st));
		json_u64(&j, "window_ms", control_status_retry_window_ms(st));
		json_object_end(&j);
	} else {
		json_str(&j, "pid", NULL);
		json_str(&j, "started", NULL);
	}
	json_array_begin(&j, "units");
	for (unsigned i = 0; i < control_status_unit_count(st); i++) {
		const struct rt_control_unit *u = control_status_unit_at(st, i);
		const struct rt_control_unit_io io = control_unit_io(u);
		const char *dev = control_unit_device(u);

		json_object_begin(&j, NULL);
		json_str(&j, "role", role_of(st, control_unit_slot(u), role, sizeof(role)));
		json_u64(&j, "slot", control_unit_slot(u));
		json_str(&j, "state", control_unit_state_name(control_unit_state(u)));
		json_str(&j, "device", dev[0] ? dev : NULL);
		json_hash(&j, "hashcode", control_unit_hashcode(u));
		json_uuid(&j, "uuid", control_unit_uuid(u));
		if (active) {
			json_object_begin(&j, "stats");
			json_u64(&j, "reads", io.reads);
			json_u64(&j, "writes", io.writes);
			json_u64(&j, "read_bytes", io.read_bytes);
			json_u64(&j, "write_bytes", io.write_bytes);
			json_u64(&j, "errors", io.errors);
			json_u64(&j, "retries", io.retries);
			json_object_end(&j);
			json_bool(&j, "no_space", io.no_space);
		}
		json_object_end(&j);
	}
	json_array_end(&j);
	if (active) {
		json_object_begin(&j, "stats");
		json_u64(&j, "reads", stats->reads);
		json_u64(&j, "writes", stats->writes);
		json_u64(&j, "flushes", stats->flushes);
		json_u64(&j, "read_bytes", stats->read_bytes);
		json_u64(&j, "write_bytes", stats->write_bytes);
		json_u64(&j, "errors", stats->errors);
		json_u64(&j, "discards", stats->discards);
		json_u64(&j, "discard_bytes", stats->discard_bytes);
		json_object_begin(&j, "walk_pieces");
		json_u64(&j, "loops", stats->walk_loop_pieces);
		json_u64(&j, "own", stats->walk_own_pieces);
		json_object_end(&j);
		if (control_status_level(st) == RT_LEVEL_5) {
			json_object_begin(&j, "stripes");
			json_u64(&j, "full", stats->stripe_full);
			json_u64(&j, "merged", stats->stripe_merged);
			json_u64(&j, "read_modify_write", stats->stripe_rmw);
			json_u64(&j, "reconstruct_write", stats->stripe_rcw);
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
	return h == RT_HEALTH_OK ? 0 : h == RT_HEALTH_DEGRADED ? 1 : STATUS_TEST_FAILED;
}

static int as_json = 0, test = 0;

static const struct poptOption status_opts[] = {
	{ "json", 0, POPT_ARG_NONE, &as_json, 0, "print JSON", NULL },
	{ "test", 't', POPT_ARG_NONE, &test, 0,
	  "exit status from the health: 0 clean, 1 degraded, 2 failed, dead or not answering, "
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
	st = control_status_new();
	if (!st) {
		r = cli_fail(-ENOMEM, "status");
		goto failed;
	}
	/* A scan, so that a name two arrays share is refused, naming both. */
	r = cli_scan_lookup(args[0], &s, &a);
	if (r < 0) {
		r = cli_exit_code(r);
		if (r == EXIT_NOTFOUND && test)
			r = STATUS_TEST_MISSING;
		goto failed;
	}
	name = scan_array_sb(a)->array.name;
	if (control_probe(scan_array_sb(a)->array.uuid, &p) == 0 && p.state == RT_CONTROL_ACTIVE)
		goto running;
	overview_status_from_scan(a, st);
	goto print;
running:
	r = control_status_wait(scan_array_sb(a)->array.uuid, name, st, &p);
	if (r < 0) {
		r = cli_fail_engine(r, name, scan_array_sb(a)->array.uuid);
		goto failed;
	}
print:
	if (as_json)
		print_json(st, &p);
	else
		print_text(st, &p);
	r = test ? health_exit(overview_health(a, st, &p)) : EXIT_OK;
	goto out;
failed:
	/*
	 * --test answers with a health: 1 would say "degraded", and 3 (its
	 * engine stopped while asked) is not "no such array" (4, above).
	 */
	if (test && (r == EXIT_FAIL || r == EXIT_NOTFOUND))
		r = STATUS_TEST_FAILED;
out:
	control_status_free(st);
	scan_free(s);
	return r;
}

const struct cli_command cmd_status = {
	.name = "status", .run = run_status, .opts = status_opts,
	.args = "[NAME|HASHCODE]", .min_args = 0, .max_args = 1,
	.summary = "show an array's state, units, block device and I/O counters",
};
