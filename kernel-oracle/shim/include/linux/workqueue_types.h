/* SPDX-License-Identifier: GPL-2.0-only */
/* Shadow of <linux/workqueue_types.h>: everything comes from the shim. */
#include <shim.h>
