/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <stdio.h>
#include <string.h>
#include <raidtool/lock.h>
#include "cli.h"
#include "pool_common.h"

static int open_pool(const char *id, bool write, bool snap, struct pool_cli *pc)
{
	int r;

	memset(pc, 0, sizeof(*pc));
	snprintf(pc->id, sizeof(pc->id), "%s", id);
	r = cli_lock_array(id, &pc->lock_fd);
	if (r < 0)
		return r;
	if (!snap) {
		r = thin_array_open_pool(id, write, &pc->a, &pc->p);
	} else {
		r = thin_array_open(id, false, &pc->a);
		if (r == 0) {
			r = thin_open_metadata_snap(thin_array_io(pc->a), &pc->p);
			if (r < 0) {
				cli_error("'%s': cannot open the metadata snapshot its engine holds: %s",
					  thin_array_name(pc->a), strerror(-r));
				thin_array_close(pc->a);
			}
		}
	}
	if (r < 0) {
		lock_release(pc->lock_fd);
		return cli_report(r, "'%s': cannot open the array", id);
	}
	pc->snap = snap;
	return 0;
}

int pool_cli_open(const char *id, bool write, struct pool_cli *pc)
{
	return open_pool(id, write, false, pc);
}

int pool_cli_open_view(const char *id, struct pool_cli *pc)
{
	const struct rt_control_req rq = { .verb = RT_VERB_POOL, .arg = "reserve-metadata-snap" };
	char name[RT_NAME_MAX + 1], msg[256];
	bool running;
	int r = cli_find_running(id, name, sizeof(name), &running);

	if (r < 0)
		return r;
	if (!running)
		return open_pool(id, false, false, pc);
	r = cli_control_send(id, "cannot reserve a metadata snapshot", &rq, name, sizeof(name),
			     msg, sizeof(msg));
	if (r < 0)
		return r;
	r = open_pool(id, false, strcmp(msg, THIN_RUN_NOTHING_COMMITS) != 0, pc);
	/* The open failed (and let go of the lock): nothing will read the snapshot. */
	if (r < 0 && strcmp(msg, THIN_RUN_NOTHING_COMMITS)) {
		const struct rt_control_req rel = { .verb = RT_VERB_POOL,
						    .arg = "release-metadata-snap" };

		cli_control_send(id, "cannot release the metadata snapshot", &rel, name,
				 sizeof(name), msg, sizeof(msg));
	}
	return r;
}

int pool_cli_close(struct pool_cli *pc, bool commit, int rc)
{
	const struct rt_control_req rel = { .verb = RT_VERB_POOL, .arg = "release-metadata-snap" };
	const char *name = thin_array_name(pc->a);
	char aname[RT_NAME_MAX + 1], msg[256];
	int r = commit ? thin_commit(pc->p) : 0;

	if (r < 0)
		rc = cli_fail(r, "'%s': cannot commit the pool's metadata", name);
	thin_close(pc->p);
	r = thin_array_close(pc->a);
	if (r < 0 && rc == EXIT_OK)
		rc = cli_fail(r, "cannot stop the engine");
	lock_release(pc->lock_fd);
	/* After the lock: the request takes it. */
	if (pc->snap) {
		r = cli_control_send(pc->id, "cannot release the metadata snapshot", &rel, aname,
				     sizeof(aname), msg, sizeof(msg));
		if (r < 0 && rc == EXIT_OK)
			rc = cli_exit_code(r);
	}
	return rc;
}

int pool_cli_send(const char *id, enum rt_control_verb verb, const char *what, const char *arg,
		  bool *sent)
{
	char name[RT_NAME_MAX + 1];
	bool running = false;
	int r = cli_find_running(id, name, sizeof(name), &running);
	const struct rt_control_req rq = { .verb = verb, .arg = arg };

	*sent = r < 0 || running;
	if (r < 0 || !running)
		return cli_exit_code(r);
	return cli_control_command(id, what, &rq);
}
