/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_MONITOR_H
#define RAIDTOOL_MONITOR_H

/*
 * Watching running arrays (mdadm --monitor's model): successive states of
 * every running array, as its engine's status reports them and its run
 * directory shows them, are compared, and each change that an admin must
 * hear of becomes one event. The first look at an array reports what is
 * still true of it (degraded, a rebuild running), so that a monitor that
 * was restarted loses nothing that still holds. Events: raidtool(8), MONITOR.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <raidtool/control.h>
#include <raidtool/format.h>

enum rt_monitor_event {
	RT_MONITOR_FAIL,		/* an active unit became faulty */
	RT_MONITOR_FAIL_SPARE,		/* a spare, or the unit being rebuilt, became faulty */
	RT_MONITOR_DEGRADED_ARRAY,	/* the array runs without redundancy (or failed) */
	RT_MONITOR_SPARE_ACTIVE,	/* a rebuilt unit took its role */
	RT_MONITOR_REBUILD_STARTED,	/* a rebuild or resync started */
	RT_MONITOR_REBUILD_FINISHED,	/* ... ended: detail "finished", "cancelled", "failed" */
	RT_MONITOR_CHECK_FINISHED,	/* a check or repair ended: detail the mismatch count */
	RT_MONITOR_DEVICE_DISAPPEARED,	/* the engine died: its run files are left */
	RT_MONITOR_NEW_ARRAY,		/* an array was started after the monitor */
	RT_MONITOR_STOPPED,		/* an array was stopped cleanly */
};

/* "Fail", "FailSpare", "DegradedArray", ... (mdadm's names). */
const char *monitor_event_name(enum rt_monitor_event ev);

/* Is this event bad news (syslog's critical level, mdadm's alert)? */
bool monitor_event_critical(enum rt_monitor_event ev);

struct rt_monitor_event_info {
	enum rt_monitor_event event;
	char array[RT_NAME_MAX + 1];	/* the array's name */
	uint8_t uuid[RT_UUID_SIZE];
	uint32_t hashcode;
	char unit[256];			/* the unit's device, "" when the event has none */
	int32_t role;			/* the unit's role (slot), -1 when none */
	/*
	 * RebuildFinished: the outcome; CheckFinished: the mismatch count;
	 * DegradedArray: the health ("degraded", "failed"); else "".
	 */
	char detail[64];
	char walk[16];			/* Rebuild*, CheckFinished: the walk's kind */
};

typedef void (*rt_monitor_fn)(const struct rt_monitor_event_info *ev, void *arg);

/* What the monitor keeps of one array between two looks. */
struct rt_monitor_unit {
	uint8_t uuid[RT_UUID_SIZE];
	uint32_t slot;
	char device[256];
	enum rt_unit_state state;
};

struct rt_monitor_array {
	uint8_t uuid[RT_UUID_SIZE];
	char name[RT_NAME_MAX + 1];
	uint32_t hashcode;
	uint32_t n_devices;
	enum rt_health health;
	enum rt_walk_kind walk;
	bool walk_running;
	int32_t walk_result;
	uint32_t walk_role;
	uint64_t walk_done, walk_total, mismatches, repaired;
	uint64_t events;
	unsigned n_units;
	struct rt_monitor_unit units[RT_MAX_UNITS];
};

/* Keep what the monitor compares of @st. */
void monitor_array_from_status(const struct rt_control_status *st, struct rt_monitor_array *a);

/*
 * The events between two looks at one array, in the order they happened
 * as far as one look tells: pure, no I/O. @prev NULL: the first look (what
 * is still true: DegradedArray, a running RebuildStarted). Disappearance is
 * the caller's (monitor_poll).
 */
void monitor_compare(const struct rt_monitor_array *prev, const struct rt_monitor_array *cur,
		     rt_monitor_fn fn, void *arg);

struct rt_monitor;

/*
 * A monitor of the arrays named by @ids (NAME, HASHCODE or UUID; they need
 * not run yet), or of every array when @n_ids is 0. @ids must outlive it.
 */
int monitor_new(const char *const *ids, size_t n_ids, struct rt_monitor **out);

/*
 * One look at the run directory and every running array's engine: @fn gets
 * each event. The first call reports what is true now; later ones report
 * changes, arrays started (NewArray and their state) and gone (Stopped, or
 * DeviceDisappeared when their engine died). An engine that does not answer
 * at this look (starting, stopping) is looked at again next time.
 */
int monitor_poll(struct rt_monitor *m, rt_monitor_fn fn, void *arg);

void monitor_free(struct rt_monitor *m);

/*
 * The UUIDs of the arrays with an engine (running, or dead with its run
 * files left) under the run directory: up to @max into @uuids, the count
 * in *@n (more than @max when they did not fit).
 */
int monitor_list_running(uint8_t (*uuids)[RT_UUID_SIZE], size_t max, size_t *n);

#endif
