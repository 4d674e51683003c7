// SPDX-License-Identifier: GPL-2.0-only
/*
 * The shim's runtime: the harness state (current task, user memory window, clock,
 * what the kernel code asked for) and the functions shim.h declares.
 *
 * The simulated task's user memory is a window of bytes at a user address (its rseq
 * area in the model); an access outside the window, or with the window unmapped,
 * faults. The Rust side fills the window before a call and reads it back after.
 */
#include <shim.h>
#include <linux/rseq_entry.h>

struct task_struct *shim_current;
struct shim_state shim;
u64 shim_fast_clock_ns;

/* The user memory window. */
unsigned long shim_umem_base;
unsigned char shim_umem[256];
unsigned long shim_umem_len;
int shim_umem_mapped;
/* user accesses that faulted during one call */
int shim_ufaults;

static int shim_window(unsigned long uaddr, unsigned long len)
{
	if (!shim_umem_mapped || uaddr < shim_umem_base)
		return -1;
	if (uaddr - shim_umem_base > shim_umem_len || len > shim_umem_len - (uaddr - shim_umem_base))
		return -1;
	return (int)(uaddr - shim_umem_base);
}

int shim_uread(void *dst, unsigned long uaddr, unsigned long len)
{
	int off = shim_window(uaddr, len);

	if (off < 0) {
		shim_ufaults++;
		return 1;
	}
	memcpy(dst, shim_umem + off, len);
	return 0;
}

int shim_uwrite(unsigned long uaddr, const void *src, unsigned long len)
{
	int off = shim_window(uaddr, len);

	if (off < 0) {
		shim_ufaults++;
		return 1;
	}
	memcpy(shim_umem + off, src, len);
	return 0;
}

bool shim_need_resched(void)
{
	return current && (current->thread_info.flags & _TIF_NEED_RESCHED);
}

/*
 * schedule() and preempt_schedule(): the task was switched out and back in. Record
 * it, and do to the task what __schedule() does to it: clear its reschedule request
 * and raise the rseq switch event.
 */
static void shim_switched_out_and_in(void)
{
	if (!current || !shim.switch_on_schedule)
		return;
	clear_tsk_need_resched(current);
	rseq_sched_switch_event(current);
}

void shim_schedule(void)
{
	shim.schedules++;
	shim_switched_out_and_in();
}

void shim_preempt_schedule(void)
{
	shim.preempt_schedules++;
	shim_switched_out_and_in();
}

int shim_cond_resched(void)
{
	/* With PREEMPT_DYNAMIC, cond_resched() is a no-op on FULL, LAZY and RT; on NONE and
	 * VOLUNTARY it schedules when TIF_NEED_RESCHED is set. */
	if (shim.preempt_model <= 1 && shim_need_resched()) {
		shim.cond_rescheds++;
		return 1;
	}
	return 0;
}

struct shim_guard shim_guard_enter(int kind)
{
	struct shim_guard g = { .kind = kind };

	switch (kind) {
	case SHIM_G_IRQ:
		g.saved = shim.irq_disabled;
		shim.irq_disabled = 1;
		break;
	case SHIM_G_IRQSAVE:
		g.saved = shim.irq_disabled;
		shim.irq_disabled = 1;
		break;
	case SHIM_G_PREEMPT:
		preempt_disable();
		break;
	case SHIM_G_PAGEFAULT:
		shim.pagefault_disabled++;
		break;
	}
	return g;
}

void shim_guard_exit(struct shim_guard *g)
{
	switch (g->kind) {
	case SHIM_G_IRQ:
		/* guard(irq) restores "enabled" unconditionally, as local_irq_enable() */
		shim.irq_disabled = 0;
		break;
	case SHIM_G_IRQSAVE:
		shim.irq_disabled = (int)g->saved;
		break;
	case SHIM_G_PREEMPT:
		/* preempt_enable() reschedules only for TIF_NEED_RESCHED: the lazy bit is
		 * not folded into the preempt count. */
		preempt_enable();
		break;
	case SHIM_G_PAGEFAULT:
		shim.pagefault_disabled--;
		break;
	}
}

void hrtimer_setup(struct hrtimer *t, enum hrtimer_restart (*fn)(struct hrtimer *),
		   int clock, int mode)
{
	(void)clock;
	(void)mode;
	t->function = fn;
	t->armed = false;
	t->expires = 0;
}

void hrtimer_start(struct hrtimer *t, u64 expires, int mode)
{
	(void)mode;
	t->expires = expires;
	t->armed = true;
	shim.hrtimer_starts++;
}

int hrtimer_try_to_cancel(struct hrtimer *t)
{
	int was = t->armed;

	t->armed = false;
	shim.hrtimer_cancels++;
	return was;
}

u64 ktime_get_mono_fast_ns(void)
{
	return shim_fast_clock_ns;
}

void force_sig(int sig)
{
	shim.signals++;
	shim.last_signal = sig;
	/* The kernel's force_sig() queues the signal and sets TIF_SIGPENDING: without it
	 * the exit loop would never run the signal work. */
	if (current)
		current->thread_info.flags |= _TIF_SIGPENDING;
}

void arch_do_signal_or_restart(struct pt_regs *regs)
{
	(void)regs;
	/* Signal delivery is the model's (signal.rs): here only the bit is consumed. */
	if (current)
		current->thread_info.flags &= ~(_TIF_SIGPENDING | _TIF_NOTIFY_SIGNAL);
}

void irqentry_enter_from_user_mode(struct pt_regs *regs)
{
	(void)regs;
	rseq_note_user_irq_entry();
}

irqentry_state_t irqentry_enter_from_kernel_mode(struct pt_regs *regs)
{
	irqentry_state_t s = { 0 };

	(void)regs;
	return s;
}

void irqentry_exit_to_user_mode(struct pt_regs *regs)
{
	(void)regs;
}

void irqentry_exit_to_kernel_mode(struct pt_regs *regs, irqentry_state_t state)
{
	(void)regs;
	(void)state;
}

int kstrtobool(const char *s, bool *res)
{
	if (!s)
		return -EINVAL;
	switch (s[0]) {
	case 'y': case 'Y': case '1':
		*res = true;
		return 0;
	case 'n': case 'N': case '0':
		*res = false;
		return 0;
	}
	return -EINVAL;
}

int kstrtobool_from_user(const char __user *s, size_t count, bool *res)
{
	(void)s;
	(void)count;
	(void)res;
	return -EINVAL;
}

int kstrtouint_from_user(const char __user *s, size_t count, unsigned int base,
			 unsigned int *res)
{
	(void)s;
	(void)count;
	(void)base;
	(void)res;
	return -EINVAL;
}

ssize_t seq_read(struct file *f, char __user *b, size_t n, loff_t *p)
{
	(void)f; (void)b; (void)n; (void)p;
	return 0;
}

loff_t seq_lseek(struct file *f, loff_t o, int w)
{
	(void)f; (void)o; (void)w;
	return 0;
}

int single_release(struct inode *i, struct file *f)
{
	(void)i; (void)f;
	return 0;
}

int single_open(struct file *f, int (*show)(struct seq_file *, void *), void *d)
{
	(void)f; (void)show; (void)d;
	return 0;
}

void seq_printf(struct seq_file *m, const char *fmt, ...)
{
	(void)m; (void)fmt;
}

struct dentry *debugfs_create_dir(const char *name, struct dentry *parent)
{
	(void)name; (void)parent;
	return NULL;
}

struct dentry *debugfs_create_file(const char *name, unsigned short mode,
				   struct dentry *parent, void *data,
				   const struct file_operations *fops)
{
	(void)name; (void)mode; (void)parent; (void)data; (void)fops;
	return NULL;
}
