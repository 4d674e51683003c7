/* SPDX-License-Identifier: GPL-2.0-only */
/* Shadow of <linux/resume_user_mode.h>: the kernel's resume_user_mode_work(), extracted
 * from the source tree at build time, after the rseq hooks it calls. */
#include <shim.h>
#include <linux/rseq.h>
#include "extracted_resume.h"
