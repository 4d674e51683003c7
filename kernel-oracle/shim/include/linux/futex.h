/* SPDX-License-Identifier: GPL-2.0-only */
/* Shadow of <linux/futex.h>: everything comes from the shim. */
#include <shim.h>
