/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_FUZZ_CHECK_H
#define RAIDTOOL_FUZZ_CHECK_H

/* The fuzz targets' assertion: a property that fails aborts, which libFuzzer reports. */
#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)							\
	do {								\
		if (!(cond)) {						\
			fprintf(stderr, "%s:%d: check failed: %s\\n",	\
				__FILE__, __LINE__, #cond);		\
			abort();					\
		}							\
	} while (0)

#endif
