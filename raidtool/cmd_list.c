/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <raidtool/control.h>
#include <raidtool/overview.h>
#include <raidtool/scan.h>
#include "cli.h"
#include "commands.h"
#include "describe.h"
#include "json-out.h"

/* Regions of the initial sync: still to do, of all (0, 0 when not known). */
struct sync_progress {
	uint64_t left, total;
};

/*
 * A running array whose initial sync has not finished: "resyncing N/M"
 * (regions synced, of all) while the walk runs, else "unsynced".
 */
static const char *active_unsynced_state(const struct rt_scan_array *a, char *buf, size_t len,
					 struct sync_progress *sp)
{
	struct rt_control_status *st = control_status_new();
	const struct rt_sb *sb = scan_array_sb(a);
	const char *state = "unsynced";
	struct rt_control_walk w;

	if (!st || control_status(sb->array.uuid, sb->array.name, st) < 0 ||
	    !control_status_unsynced(st)) {
		/* Finished since the scan, or the engine does not answer (yet). */
		if (st)
			state = "active";
		control_status_free(st);
		return state;
	}
	sp->left = control_status_unsynced_left(st);
	sp->total = control_status_unsynced_total(st);
	w = control_status_walk(st);
	if (w.running && w.kind == RT_WALK_RESYNC)
		snprintf(buf, len, "resyncing %" PRIu64 "/%" PRIu64, sp->total - sp->left,
			 sp->total);
	else
		snprintf(buf, len, "unsynced");
	control_status_free(st);
	return buf;
}

/*
 * active (resyncing/unsynced while the initial sync is not done) when an
 * engine runs it; else clean/dirty/unsynced from the superblock, or what
 * keeps the array from starting.
 */
static const char *array_state(const struct rt_scan_array *a, struct rt_control_probe *run,
			       char *buf, size_t len, struct sync_progress *sp)
{
	const struct rt_sb *sb = scan_array_sb(a);

	sp->left = sp->total = 0;
	if (control_probe(sb->array.uuid, run) < 0)
		run->state = RT_CONTROL_INACTIVE;
	if (run->state == RT_CONTROL_ACTIVE)
		return sb_unsynced(sb) ?
		       active_unsynced_state(a, buf, len, sp) : "active";
	if (scan_array_roles_present(a) < sb->array.n_devices)
		return "incomplete";
	if (run->state == RT_CONTROL_STALE)
		return "dirty, engine died";
	if (sb_unsynced(sb))
		return sb->state == RT_ARRAY_DIRTY ? "dirty, unsynced" : "unsynced";
	return sb_array_state_name(sb->state);
}

/* The columns of the array listing (-o), as lsblk and losetup take them. */
enum list_column {
	COL_NAME, COL_HASHCODE, COL_LEVEL, COL_UNITS, COL_SIZE, COL_STATE, COL_HEALTH,
	COL_DEVICE, COL_UUID, N_COLUMNS
};

static const struct {
	const char *name;
	int width;
} list_columns[N_COLUMNS] = {
	[COL_NAME] = { "NAME", 20 },		[COL_HASHCODE] = { "HASHCODE", 8 },
	[COL_LEVEL] = { "LEVEL", 7 },		[COL_UNITS] = { "UNITS", 7 },
	[COL_SIZE] = { "SIZE", 10 },		[COL_STATE] = { "STATE", 10 },
	[COL_HEALTH] = { "HEALTH", 8 },		[COL_DEVICE] = { "DEVICE", 0 },
	[COL_UUID] = { "UUID", 36 },
};

#define LIST_DEFAULT_COLUMNS "NAME,HASHCODE,LEVEL,UNITS,SIZE,STATE,HEALTH,DEVICE"

struct list_format {
	int cols[N_COLUMNS * 4];	/* a column may be asked for twice */
	int n_cols;
	bool header;
	bool raw;			/* one space between fields, blanks escaped as \x20 */
};

/* -o COLUMNS: comma-separated names, any case. 0, or -errno (-EINVAL: a usage error). */
static int parse_columns(const char *spec, struct list_format *f)
{
	char *copy = strdup(spec), *save = NULL, *tok;
	int r = 0;

	if (!copy)
		return cli_report(-ENOMEM, "list");
	f->n_cols = 0;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int c;

		for (c = 0; c < N_COLUMNS && strcasecmp(tok, list_columns[c].name); c++)
			;
		if (c == N_COLUMNS) {
			cli_usage_error("list", "-o: unknown column '%s' (columns: NAME, HASHCODE, "
					"LEVEL, UNITS, SIZE, STATE, HEALTH, DEVICE, UUID)", tok);
			r = -EINVAL;
			break;
		}
		if (f->n_cols == (int)(sizeof(f->cols) / sizeof(f->cols[0]))) {
			cli_usage_error("list", "-o: too many columns");
			r = -EINVAL;
			break;
		}
		f->cols[f->n_cols++] = c;
	}
	if (r == 0 && f->n_cols == 0) {
		cli_usage_error("list", "-o: no column named");
		r = -EINVAL;
	}
	free(copy);
	return r;
}

static void print_field(const struct list_format *f, int i, const char *v)
{
	bool last = i == f->n_cols - 1;

	if (f->raw) {
		if (i)
			putchar(' ');
		for (; *v; v++)
			if (*v == ' ' || *v == '\\')
				printf("\\x%02x", (unsigned char)*v);
			else
				putchar(*v);
	} else {
		if (i)
			putchar(' ');
		if (last)
			fputs(v, stdout);
		else
			printf("%-*s", list_columns[f->cols[i]].width, v);
	}
}

static void list_arrays_text(const struct rt_scan *s, const struct list_format *f)
{
	char size[32];

	if (f->header) {
		for (int i = 0; i < f->n_cols; i++)
			print_field(f, i, list_columns[f->cols[i]].name);
		putchar('\n');
	}
	for (size_t i = 0; i < scan_array_count(s); i++) {
		const struct rt_scan_array *a = scan_array_at(s, i);
		const struct rt_sb *sb = scan_array_sb(a);
		struct rt_control_probe run;
		struct sync_progress sp;
		char buf[40], units[16], hash[16], uuid[37];
		const char *v[N_COLUMNS];

		v[COL_STATE] = array_state(a, &run, buf, sizeof(buf), &sp);
		cli_format_size(describe_array_bytes(sb), size, sizeof(size));
		snprintf(units, sizeof(units), "%u/%u", scan_array_roles_present(a),
			 sb->array.n_devices);
		snprintf(hash, sizeof(hash), "%08x", sb->array.hashcode);
		cli_format_uuid(sb->array.uuid, uuid);
		v[COL_NAME] = sb->array.name;
		v[COL_HASHCODE] = hash;
		v[COL_LEVEL] = sb_level_name(sb->array.level);
		v[COL_UNITS] = units;
		v[COL_SIZE] = size;
		v[COL_HEALTH] = overview_health_name(overview_scan_health(a, &run));
		v[COL_DEVICE] = run.state == RT_CONTROL_ACTIVE && run.link[0] ? run.link : "-";
		v[COL_UUID] = uuid;
		for (int c = 0; c < f->n_cols; c++)
			print_field(f, c, v[f->cols[c]]);
		if (scan_array_name_shared(a) && !f->raw)
			printf("  (name shared: use the hashcode)");
		putchar('\n');
	}
}

static void list_arrays_json(const struct rt_scan *s)
{
	struct json j;

	/* An object, as status without a name prints: members can be added beside "arrays". */
	json_init(&j, stdout);
	json_object_begin(&j, NULL);
	json_array_begin(&j, "arrays");
	for (size_t i = 0; i < scan_array_count(s); i++) {
		const struct rt_scan_array *a = scan_array_at(s, i);
		struct rt_control_probe run;
		struct sync_progress sp;
		char buf[40];
		const char *state = array_state(a, &run, buf, sizeof(buf), &sp);
		bool active = run.state == RT_CONTROL_ACTIVE;

		json_object_begin(&j, NULL);
		describe_array_json(&j, scan_array_sb(a));
		json_u64(&j, "units_present", scan_array_roles_present(a));
		json_u64(&j, "units_found", scan_array_unit_count(a));
		json_u64(&j, "units_stale", scan_array_stale_count(a));
		json_str(&j, "status", state);
		json_str(&j, "health", overview_health_name(overview_scan_health(a, &run)));
		json_u64(&j, "sync_regions_left", sp.left);
		json_u64(&j, "sync_regions_total", sp.total);
		json_bool(&j, "active", active);
		json_str(&j, "device", active && run.link[0] ? run.link : NULL);
		json_str(&j, "loop_device", active && run.device[0] ? run.device : NULL);
		if (active)
			json_u64(&j, "pid", (uint64_t)run.pid);
		json_bool(&j, "name_shared", scan_array_name_shared(a));
		json_object_end(&j);
	}
	json_array_end(&j);
	json_object_end(&j);
	json_finish(&j);
}

static void list_units_text(const struct rt_scan_array *a)
{
	char role[16];

	printf("%-20s %-5s %-8s %-10s %-8s %s\n", "UNIT", "ROLE", "HASHCODE", "STATE", "EVENTS",
	       "BACKING FILE");
	for (size_t i = 0; i < scan_array_unit_count(a); i++) {
		const struct rt_scan_unit *u = scan_array_unit_at(a, i);
		const struct rt_sb *usb = scan_unit_sb(u);
		const char *backing = scan_unit_backing(u), *why = scan_unit_why(u);

		printf("%-20s %-5s %08x %-10s %-8" PRIu64 " %s\n", scan_unit_device(u),
		       describe_role(scan_array_sb(a), usb->unit.slot, role, sizeof(role)),
		       usb->unit.hashcode, control_unit_state_name(scan_unit_state(a, u)),
		       usb->events, backing[0] ? backing : "-");
		if (why[0])
			printf("%-20s   %s\n", "", why);
	}
}

static void list_units_json(const struct rt_scan_array *a)
{
	struct json j;
	char role[16];

	json_init(&j, stdout);
	json_array_begin(&j, NULL);
	for (size_t i = 0; i < scan_array_unit_count(a); i++) {
		const struct rt_scan_unit *u = scan_array_unit_at(a, i);
		const struct rt_sb *usb = scan_unit_sb(u);
		const char *backing = scan_unit_backing(u), *why = scan_unit_why(u);

		json_object_begin(&j, NULL);
		json_str(&j, "device", scan_unit_device(u));
		json_str(&j, "backing_file", backing[0] ? backing : NULL);
		json_str(&j, "role", describe_role(scan_array_sb(a), usb->unit.slot, role,
						   sizeof(role)));
		json_u64(&j, "slot", usb->unit.slot);
		json_hash(&j, "hashcode", usb->unit.hashcode);
		json_uuid(&j, "uuid", usb->unit.uuid);
		json_str(&j, "state", control_unit_state_name(scan_unit_state(a, u)));
		json_u64(&j, "events", usb->events);
		json_str(&j, "class", scan_unit_class_name(scan_unit_class(u)));
		json_str(&j, "reason", why[0] ? why : NULL);
		json_object_end(&j);
	}
	json_array_end(&j);
	json_finish(&j);
}

static const char *units_of = NULL, *columns = NULL;
static int as_json = 0, noheadings = 0, raw = 0;

static const struct poptOption list_opts[] = {
	{ "units", 'u', POPT_ARG_STRING, &units_of, 0,
	  "list the units of one array, with role and state", "NAME|HASHCODE" },
	{ "json", 0, POPT_ARG_NONE, &as_json, 0, "print JSON", NULL },
	{ "output", 'o', POPT_ARG_STRING, &columns, 0,
	  "the columns to print, comma-separated: NAME, HASHCODE, LEVEL, UNITS, SIZE, "
	  "STATE, HEALTH, DEVICE, UUID", "COLUMNS" },
	{ "noheadings", 'n', POPT_ARG_NONE, &noheadings, 0, "no header line", NULL },
	{ "raw", 0, POPT_ARG_NONE, &raw, 0,
	  "one space between fields, blanks in them escaped as \\x20 (for scripts)", NULL },
	POPT_TABLEEND
};

static int run_list(int n, const char **args)
{
	const struct rt_scan_array *a;
	struct list_format fmt = { .header = true };
	struct rt_scan *s = NULL;
	int r;

	if ((columns || noheadings || raw) && (units_of || as_json)) {
		r = cli_usage_error("list", "-o, -n and --raw shape the text list of arrays: not "
				    "with --units or --json");
		goto out;
	}
	r = cli_exit_code(parse_columns(columns ? columns : LIST_DEFAULT_COLUMNS, &fmt));
	if (r != EXIT_OK)
		goto out;
	fmt.header = !noheadings;
	fmt.raw = raw;
	r = scan_devices(&s);
	if (r < 0) {
		r = cli_fail(r, "cannot scan block devices");
		goto out;
	}
	if (units_of) {
		r = cli_exit_code(cli_lookup_array(s, units_of, &a));
		if (r != EXIT_OK)
			goto out;
		if (as_json)
			list_units_json(a);
		else
			list_units_text(a);
	} else if (as_json) {
		list_arrays_json(s);
	} else {
		list_arrays_text(s, &fmt);
	}
	r = EXIT_OK;
out:
	scan_free(s);
	return r;
}

const struct cli_command cmd_list = {
	.name = "list", .run = run_list, .opts = list_opts,
	.args = "", .min_args = 0, .max_args = 0,
	.summary = "list the arrays found on this machine, or one array's units",
};
