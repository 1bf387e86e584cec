/* A CPU-bound loop of a fixed amount of work, for bench/profile_bench.py.
 *
 * Usage: cpu_loop N   -- N million iterations of a multiply-add; prints
 * "WALL_S CPU_S": the wall time and this thread's CPU time for them.
 * The thread's CPU time (sum_exec_runtime) holds the time interrupts took
 * while it ran when the kernel does not account irq time apart
 * (CONFIG_IRQ_TIME_ACCOUNTING off, as on the development host), so a sampling
 * profiler's cost on this CPU shows in it even on a busy machine, where the
 * wall time also holds the waits for a CPU. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double clk(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

volatile unsigned long sink;

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 1000;
    double w0 = clk(CLOCK_MONOTONIC), c0 = clk(CLOCK_THREAD_CPUTIME_ID);
    unsigned long x = 1;
    for (long i = 0; i < n; i++)
        for (int j = 0; j < 1000000; j++)
            x = x * 6364136223846793005UL + 1442695040888963407UL;
    sink = x;
    printf("%.6f %.6f\n", clk(CLOCK_MONOTONIC) - w0, clk(CLOCK_THREAD_CPUTIME_ID) - c0);
    return 0;
}
