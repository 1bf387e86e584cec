/* A workload for the profile probe's real tests: it spends its CPU time in one
 * uniquely named function, or in getppid(2). Built by the tests with
 * -O1 -fno-omit-frame-pointer, so the kernel's frame-pointer walk of the user
 * stack reaches main.
 *
 * Usage: profile_work MODE CPU_SECONDS [wait]
 *   spin     ktop_profile_hot_spin() burns CPU_SECONDS of this thread's CPU time
 *   getppid  getppid(2) in a loop for CPU_SECONDS of CPU time
 *   child    a forked child spins as "spin" does; this process waits for it
 * With "wait", it prints its PID and waits for a line on stdin first (so a
 * profiler scoped to that PID can attach), then exits; with "wait hold", it
 * also prints "done" after the work and waits for a second line to exit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

volatile unsigned long sink;

/* The CPU time is measured, not the wall time: on a busy machine the samples
 * follow the CPU time a task got. The clock is read every 2^20 iterations
 * (about a millisecond), so the samples land in the loop, not in the clock. */
__attribute__((noinline)) void ktop_profile_hot_spin(double seconds)
{
    double end = cpu_seconds() + seconds;
    unsigned long x = 1;
    do {
        for (unsigned long i = 0; i < (1UL << 20); i++)
            x = x * 6364136223846793005UL + 1442695040888963407UL;
        sink = x;
    } while (cpu_seconds() < end);
}

__attribute__((noinline)) void ktop_profile_getppid_loop(double seconds)
{
    double end = cpu_seconds() + seconds;
    do {
        for (int i = 0; i < 1000; i++)
            syscall(SYS_getppid);
    } while (cpu_seconds() < end);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    double seconds = strtod(argv[2], NULL);
    if (argc > 3 && strcmp(argv[3], "wait") == 0) {
        char line[16];
        printf("%d\n", getpid());
        fflush(stdout);
        if (!fgets(line, sizeof line, stdin))
            return 3;
    }
    if (strcmp(argv[1], "spin") == 0)
        ktop_profile_hot_spin(seconds);
    else if (strcmp(argv[1], "getppid") == 0)
        ktop_profile_getppid_loop(seconds);
    else if (strcmp(argv[1], "child") == 0) {
        pid_t child = fork();
        if (child == 0) {
            ktop_profile_hot_spin(seconds);
            _exit(0);
        }
        int status;
        if (child < 0 || waitpid(child, &status, 0) != child || status != 0)
            return 4;
        printf("%d\n", child);
    }
    else
        return 2;
    if (argc > 4 && strcmp(argv[4], "hold") == 0) {
        char line[16];
        printf("done\n");
        fflush(stdout);
        if (!fgets(line, sizeof line, stdin))
            return 3;
    }
    return 0;
}
