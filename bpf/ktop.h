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

#endif /* KTOP_H */
