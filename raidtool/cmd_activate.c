/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <raidtool/activate.h>
#include "cli.h"
#include "commands.h"

static void print_ready(const char *name, const char *link, const char *dev, void *arg)
{
	(void)name;
	(void)arg;
	if (cli_verbose)
		fprintf(stderr, "raidtool: '%s': active on %s (%s)\n", name, link, dev);
	printf("%s\n", link);
	fflush(stdout);
}

/* The driver's activate: assemble, start the engine, show the block device. */
int cmd_activate(int argc, const char **argv)
{
	int foreground = 0, force = 0;
	struct poptOption opts[] = {
		{ "foreground", 'f', POPT_ARG_NONE, &foreground, 0,
		  "stay attached; stop cleanly on SIGTERM or SIGINT", NULL },
		{ "force", 0, POPT_ARG_NONE, &force, 0,
		  "start a raid5 that is degraded and was not stopped cleanly", NULL },
		POPT_AUTOHELP
		POPT_TABLEEND
	};
	struct rt_activate_opts o = { 0 };
	const char **args;
	poptContext pc;
	int n, r;

	r = cli_parse("activate", "NAME|HASHCODE", argc, argv, opts, 1, 1, &pc, &args, &n);
	if (r >= 0)
		return r;
	o.id = args[0];
	o.foreground = foreground;
	o.force = force;
	o.ready = print_ready;
	r = activate_array(&o);
	if (r == -EUCLEAN)
		r = cli_fail(r, "'%s': cannot activate", args[0]) ? EXIT_REFUSED : EXIT_REFUSED;
	else if (r < 0)
		r = cli_fail(r, "'%s': cannot activate", args[0]);
	else
		r = EXIT_OK;
	poptFreeContext(pc);
	return r;
}
