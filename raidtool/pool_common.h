/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef RAIDTOOL_POOL_COMMON_H
#define RAIDTOOL_POOL_COMMON_H

/* What cmd_pool.c and cmd_vol.c share: a stopped array's pool, locked and open. */
#include <stdbool.h>
#include <raidtool/control.h>
#include <raidtool/thin.h>

struct pool_cli {
	int lock_fd;
	struct thin_array *a;
	struct thin_pool *p;
	/* Opened on a metadata snapshot the running engine holds for us (released at close). */
	bool snap;
	char id[RT_NAME_MAX + 1];
};

/*
 * Take array @id's lock, start an engine on its units and open its pool
 * (@write: changes may be committed). 0 when open, else -errno (printed).
 */
int pool_cli_open(const char *id, bool write, struct pool_cli *pc);

/*
 * Open @id's pool to read a consistent copy. Stopped: as pool_cli_open.
 * Running: the engine reserves a metadata snapshot, read through the
 * array's read-only device (a pool that commits nothing, being read-only,
 * is read at its last commit); pool_cli_close releases it. 0 when open,
 * else -errno (printed).
 */
int pool_cli_open_view(const char *id, struct pool_cli *pc);

/*
 * Commit (when @commit) and close everything. Returns @rc, or the exit
 * code of a failed commit or close.
 */
int pool_cli_close(struct pool_cli *pc, bool commit, int rc);

/*
 * A running array: send @verb with @arg to its engine, print its message
 * (when any) and return the exit code; *@sent false when the array is not
 * running (do it offline: the exit code is then EXIT_OK).
 */
int pool_cli_send(const char *id, enum rt_control_verb verb, const char *what, const char *arg,
		  bool *sent);

#endif
