/* SPDX-License-Identifier: GPL-2.0-only */
/* Shadow of <linux/hrtimer.h>: everything comes from the shim. */
#include <shim.h>
