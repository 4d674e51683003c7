// SPDX-License-Identifier: GPL-2.0-only
/*
 * kernel/rseq.c, unmodified, built as the kernel builds it (with RSEQ_BUILD_SLOW_PATH,
 * so rseq_entry.h's out-of-line debug functions are defined here), plus entry points
 * for the harness: its static functions are reachable because this file includes it.
 */
#define RSEQ_BUILD_SLOW_PATH
#include <shim.h>
#include "kernel/rseq.c"

void oracle_init(void)
{
	rseq_slice_init();
}

void oracle_set_keys(bool slice_ext, bool debug)
{
	rseq_slice_extension_key.enabled = slice_ext;
	rseq_debug_enabled.enabled = debug;
}

void oracle_set_slice_ext_nsecs(unsigned int ns)
{
	rseq_slice_ext_nsecs = ns;
}

struct rseq_stats *oracle_stats(void)
{
	return &rseq_stats;
}

/* The slice timer of the harness CPU: armed, expiry, and whether its cookie is the
 * current task. */
void oracle_slice_timer_get(bool *armed, u64 *expires, bool *cookie_is_current)
{
	*armed = slice_timer.timer.armed;
	*expires = slice_timer.timer.expires;
	*cookie_is_current = slice_timer.cookie && slice_timer.cookie == current;
}

void oracle_slice_timer_set(bool armed, u64 expires, bool cookie_is_current)
{
	slice_timer.timer.armed = armed;
	slice_timer.timer.expires = expires;
	slice_timer.cookie = cookie_is_current ? (void *)current : (void *)&slice_timer;
}

/* The hrtimer interrupt: the expiry function kernel init installed. */
int oracle_slice_timer_fire(void)
{
	if (!slice_timer.timer.function)
		return -1;
	slice_timer.timer.armed = false;
	return slice_timer.timer.function(&slice_timer.timer);
}

long oracle_sys_rseq(unsigned long addr, u32 len, int flags, u32 sig)
{
	return sys_rseq((struct rseq __user *)addr, len, flags, sig);
}

long oracle_sys_rseq_slice_yield(void)
{
	return sys_rseq_slice_yield();
}

int oracle_prctl(unsigned long arg2, unsigned long arg3)
{
	return rseq_slice_extension_prctl(arg2, arg3);
}

void oracle_syscall_enter_work(long nr)
{
	rseq_syscall_enter_work(nr);
}

void oracle_handle_slowpath(struct pt_regs *regs)
{
	rseq_handle_slowpath(regs);
}

void oracle_signal_deliver(int sig, struct pt_regs *regs)
{
	struct ksignal ksig = { .sig = sig };

	rseq_signal_deliver(&ksig, regs);
}

void oracle_debug_syscall_return(struct pt_regs *regs)
{
	rseq_debug_syscall_return(regs);
}

void oracle_sched_switch_event(void)
{
	rseq_sched_switch_event(current);
}

long oracle_nr_rseq_slice_yield(void)
{
	return __NR_rseq_slice_yield;
}

/* ---- loading and reading the harness state ---------------------------------------- */

static struct task_struct oracle_the_task;
/* `current` when the harness CPU runs no task of interest (idle, or another task):
 * registered nowhere, never granted. */
static struct task_struct oracle_other_task;

extern unsigned long shim_umem_base;
extern unsigned char shim_umem[256];
extern unsigned long shim_umem_len;
extern int shim_umem_mapped;
extern int shim_ufaults;

void oracle_task_load(const struct oracle_task *o)
{
	struct task_struct *t = &oracle_the_task;

	memset(t, 0, sizeof(*t));
	t->rseq.usrptr = (struct rseq __user *)(unsigned long)o->usrptr;
	t->rseq.len = o->len;
	t->rseq.sig = o->sig;
	t->rseq.event.sched_switch = o->sched_switch;
	t->rseq.event.ids_changed = o->ids_changed;
	t->rseq.event.user_irq = o->user_irq;
	t->rseq.event.has_rseq = o->has_rseq;
	t->rseq.event.fatal = o->fatal;
	t->rseq.event.slowpath = o->slowpath;
	t->rseq.ids.cpu_id = o->ids_cpu_id;
	t->rseq.ids.mm_cid = o->ids_mm_cid;
	t->rseq.ids.node_id = o->ids_node_id;
	t->rseq.slice.state.enabled = o->enabled;
	t->rseq.slice.state.granted = o->granted;
	t->rseq.slice.expires = o->expires;
	t->rseq.slice.yielded = o->yielded;
	t->thread_info.flags = o->tif;
	t->thread_info.syscall_work = o->syscall_work;
	t->cpu = o->cpu;
	t->mm_cid = o->mm_cid;
	t->flags = o->flags;
}

void oracle_task_store(struct oracle_task *o)
{
	const struct task_struct *t = &oracle_the_task;

	memset(o, 0, sizeof(*o));
	o->usrptr = (unsigned long)t->rseq.usrptr;
	o->len = t->rseq.len;
	o->sig = t->rseq.sig;
	o->sched_switch = t->rseq.event.sched_switch;
	o->ids_changed = t->rseq.event.ids_changed;
	o->user_irq = t->rseq.event.user_irq;
	o->has_rseq = t->rseq.event.has_rseq;
	o->fatal = t->rseq.event.fatal;
	o->slowpath = t->rseq.event.slowpath;
	o->ids_cpu_id = t->rseq.ids.cpu_id;
	o->ids_mm_cid = t->rseq.ids.mm_cid;
	o->ids_node_id = t->rseq.ids.node_id;
	o->enabled = t->rseq.slice.state.enabled;
	o->granted = t->rseq.slice.state.granted;
	o->expires = t->rseq.slice.expires;
	o->yielded = t->rseq.slice.yielded;
	o->tif = t->thread_info.flags;
	o->syscall_work = t->thread_info.syscall_work;
	o->cpu = t->cpu;
	o->mm_cid = t->mm_cid;
	o->flags = t->flags;
}

/* `current`: the loaded task (1) or another one (0). */
void oracle_set_current(int the_task)
{
	memset(&oracle_other_task, 0, sizeof(oracle_other_task));
	shim_current = the_task ? &oracle_the_task : &oracle_other_task;
}

void oracle_umem_set(unsigned long base, const unsigned char *bytes, unsigned long len,
		     int mapped)
{
	if (len > sizeof(shim_umem))
		len = sizeof(shim_umem);
	shim_umem_base = base;
	shim_umem_len = len;
	shim_umem_mapped = mapped;
	memcpy(shim_umem, bytes, len);
}

void oracle_umem_get(unsigned char *bytes, unsigned long len)
{
	if (len > sizeof(shim_umem))
		len = sizeof(shim_umem);
	memcpy(bytes, shim_umem, len);
}

/* The counters in struct rseq_stats order. */
#define ORACLE_NR_STATS 13
void oracle_stats_get(unsigned long *v)
{
	memcpy(v, &rseq_stats, sizeof(rseq_stats));
}

void oracle_stats_set(const unsigned long *v)
{
	memcpy(&rseq_stats, v, sizeof(rseq_stats));
}

unsigned long oracle_nr_stats(void)
{
	return sizeof(rseq_stats) / sizeof(unsigned long);
}

void oracle_set_clock(u64 fast_ns)
{
	shim_fast_clock_ns = fast_ns;
}

void oracle_set_preempt_model(int model)
{
	shim.preempt_model = model;
}

void oracle_set_switch_on_schedule(int on)
{
	shim.switch_on_schedule = on;
}

/* What the kernel code asked for during the calls since the last reset. */
void oracle_effects(int *out)
{
	out[0] = shim.schedules;
	out[1] = shim.preempt_schedules;
	out[2] = shim.cond_rescheds;
	out[3] = shim.signals;
	out[4] = shim.last_signal;
	out[5] = shim.hrtimer_starts;
	out[6] = shim.hrtimer_cancels;
	out[7] = shim_ufaults;
	out[8] = shim.irq_disabled;
	out[9] = shim.preempt_count;
	out[10] = shim.pagefault_disabled;
}

void oracle_reset_effects(void)
{
	int model = shim.preempt_model;
	int sw = shim.switch_on_schedule;

	memset(&shim, 0, sizeof(shim));
	shim.preempt_model = model;
	shim.switch_on_schedule = sw;
	shim_ufaults = 0;
}

/* The kernel's bit for each of the model's TIF bits and the slice syscall work bit; the
 * model's lumped "other exit work" is represented by _TIF_UPROBE (any bit of
 * EXIT_TO_USER_MODE_WORK that is not a reschedule denies a grant alike). */
unsigned long oracle_tif_bit(int which)
{
	switch (which) {
	case 0: return _TIF_NEED_RESCHED;
	case 1: return _TIF_NEED_RESCHED_LAZY;
	case 2: return _TIF_SIGPENDING;
	case 3: return _TIF_NOTIFY_RESUME;
	case 4: return _TIF_RSEQ;
	case 5: return _TIF_UPROBE;
	case 6: return SYSCALL_WORK_SYSCALL_RSEQ_SLICE;
	}
	return 0;
}
