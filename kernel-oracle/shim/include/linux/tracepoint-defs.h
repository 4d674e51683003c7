/* SPDX-License-Identifier: GPL-2.0-only */
/* Shadow of <linux/tracepoint-defs.h>: everything comes from the shim. */
#include <shim.h>
