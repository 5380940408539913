/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <raidtool/control.h>
#include <raidtool/scan.h>
#include "cli.h"
#include "commands.h"

int cli_running_name(const char *id, char *name, size_t len)
{
	const struct rt_scan_array *a;
	struct rt_control_probe p;
	struct rt_scan *s = NULL;
	int r;

	if (sb_name_check(id) == 0 && control_probe(id, &p) == 0 && p.state == RT_CONTROL_ACTIVE) {
		snprintf(name, len, "%s", id);
		return -1;
	}
	r = scan_devices(&s);
	if (r < 0)
		return cli_fail(r, "cannot scan block devices");
	r = cli_lookup_array(s, id, &a);
	if (r >= 0)
		goto out;
	snprintf(name, len, "%s", a->sb.array.name);
	if (control_probe(name, &p) == 0 && p.state == RT_CONTROL_ACTIVE) {
		r = -1;
		goto out;
	}
	cli_error("'%s': not active (these requests need a running array; see 'raidtool "
		  "activate')", id);
	r = EXIT_NOTFOUND;
out:
	scan_free(s);
	return r;
}

int cli_control_command(const char *id, const char *what, const char *verb, const char *arg)
{
	char name[RT_NAME_MAX + 1], req[RT_CONTROL_LINE_MAX], msg[1024];
	int r;

	r = cli_running_name(id, name, sizeof(name));
	if (r >= 0)
		return r;
	if (strchr(arg, '\n') || strlen(verb) + strlen(arg) + 2 >= sizeof(req))
		return cli_usage_error(verb, "'%s': not a valid argument", arg);
	if (snprintf(req, sizeof(req), "%s%s%s", verb, *arg ? " " : "", arg) >= (int)sizeof(req))
		return cli_usage_error(verb, "argument too long");
	r = control_command(name, req, msg, sizeof(msg));
	if (r < 0)
		return cli_fail(r, "'%s': %s", name, what);
	if (msg[0])
		printf("'%s': %s\n", name, msg);
	return EXIT_OK;
}

/* Mark a unit of a running array faulty, as if it had failed an I/O. */
int cmd_fail(int argc, const char **argv)
{
	struct poptOption opts[] = {
		POPT_AUTOHELP
		POPT_TABLEEND
	};
	const char **args;
	poptContext pc;
	int n, r;

	r = cli_parse("fail", "NAME|HASHCODE ROLE|UNIT-HASHCODE|DEVICE", argc, argv, opts, 2, 2,
		      &pc, &args, &n);
	if (r >= 0)
		return r;
	r = cli_control_command(args[0], "cannot fail the unit", "fail", args[1]);
	poptFreeContext(pc);
	return r;
}
