/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_ACTIVATE_H
#define RAIDTOOL_ACTIVATE_H

/*
 * Running an array: the driver's activate (scan, assemble, mark dirty,
 * start the engine, export the block device, serve the control socket,
 * wait, tear down and mark clean) and its undoing, deactivate.
 */
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <raidtool/format.h>

struct rt_activate_opts {
	const char *id;			/* NAME or HASHCODE */
	bool foreground;
	/*
	 * Called once the block device is ready: in this process with
	 * --foreground, else in the parent once the background engine
	 * reported. @link is /dev/raidtool/NAME, @dev the loop device.
	 */
	void (*ready)(const char *name, const char *link, const char *dev, void *arg);
	void *arg;
	/*
	 * Start a raid5 that is both degraded and dirty (not stopped cleanly):
	 * parity of the stripes written last may not match (the write hole),
	 * so the missing role's blocks there may be reconstructed wrong.
	 */
	bool force;
	/*
	 * Read-only (recovery, forensics): no superblock is written, no
	 * resync, rebuild or check runs, the block device is read-only and
	 * every write to the array fails with EROFS.
	 */
	bool readonly;
};

/*
 * Foreground: runs the array until SIGTERM/SIGINT/SIGHUP or a control
 * `stop`, and returns 0 after a clean shutdown.
 *
 * Background: forks before anything else; the child (setsid, stdio on
 * /dev/null, messages in <rundir>/<NAME>/log once running) runs the array
 * and _exit()s when it stops; the parent returns 0 once the child reported
 * the device ready, or the child's error. The child's messages before that
 * are relayed through rt_log in the parent.
 *
 * A raid1/raid5 missing roles its level can spare starts degraded (a
 * warning names them); a degraded, dirty raid5 is refused with -EUCLEAN
 * unless @force.
 *
 * Errors: -EALREADY already active, -ENODEV roles missing, -ENOENT no such
 * array, -ENOTUNIQ ambiguous name, -EBUSY a unit held elsewhere, ...
 */
int activate_array(const struct rt_activate_opts *o);

enum rt_deactivate_how {
	RT_DEACTIVATE_STOPPED = 1,	/* the engine shut down cleanly */
	RT_DEACTIVATE_RECOVERED = 2,	/* the engine had died: its leftovers were removed */
};

struct rt_deactivate_result {
	int how;			/* enum rt_deactivate_how */
	char name[RT_NAME_MAX + 1];
	pid_t pid;			/* the engine's */
	char did[1024];			/* what recovery cleaned up */
	/* RECOVERED: assemble_verdict of the array afterwards (-ENOENT: not found). */
	int verdict;
	char why[512];
	uint8_t uuid[RT_UUID_SIZE];	/* the array's */
	/* STOPPED: why the superblocks were left dirty, or empty (marked clean). */
	char note[512];
};

/*
 * Stop a running array (@id: NAME or HASHCODE). -EBUSY with the reason
 * logged while the device is mounted or open; -ENXIO when not active.
 * After an engine died, removes what it left (loop device, FUSE mount,
 * symlink, socket, pid file) so that it can be activated again; its
 * superblocks stay dirty.
 */
int deactivate_array(const char *id, struct rt_deactivate_result *res);

#endif
