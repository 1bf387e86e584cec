/* Shared definitions for ktop's BPF programs.
 *
 * Every knob arrives as a -D cflag from the Python adapter; nothing a user
 * typed is ever part of the C text. The layouts here are mirrored by the
 * struct formats in ktop/probes/<name>.py: change both together.
 */
#ifndef KTOP_H
#define KTOP_H

#define TASK_COMM_LEN 16

/* Ring buffer record types: the first u32 of every record. */
#define KTOP_EV_EXEC 1
#define KTOP_EV_EXIT 2

/* Ring buffer wake-ups: ktop drains its ring buffers on every tick and
 * when woken, so a record wakes the reader only every RB_WAKE_EVERY-th time
 * on its CPU (a wake-up per record costs an irq_work and a pass through user
 * space per event). The counting lives in each program's own file: BCC
 * rewrites map calls (`m.lookup()`) only in the main file, not in headers. */
#ifndef RB_WAKE_EVERY
#define RB_WAKE_EVERY 32
#endif

#endif /* KTOP_H */
