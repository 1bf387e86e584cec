/* Workloads with exact syscall counts for the syscalls probe's real tests.
 * Built static by the tests (no dynamic loader opening libraries first).
 *
 * Usage: syscalls_work MODE N [wait]
 *   getppid  N getppid(2) calls
 *   enoent   N openat(2) of a path that does not exist (each fails with ENOENT)
 *   sleep    N nanosleep(2) of 10 ms
 *   fork     N fork + _exit + wait4
 * With "wait", it prints its PID and waits for a line on stdin before the
 * calls (so a probe scoped to that PID can attach first), then exits. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    const char *mode = argv[1];
    long n = strtol(argv[2], NULL, 10);
    if (argc > 3 && strcmp(argv[3], "wait") == 0) {
        char line[16];
        printf("%d\n", getpid());
        fflush(stdout);
        if (!fgets(line, sizeof line, stdin))
            return 3;
    }
    for (long i = 0; i < n; i++) {
        if (strcmp(mode, "getppid") == 0) {
            syscall(SYS_getppid);
        } else if (strcmp(mode, "enoent") == 0) {
            if (syscall(SYS_openat, AT_FDCWD, "/nonexistent/ktop-syscalls-test", O_RDONLY) >= 0)
                return 4;
        } else if (strcmp(mode, "sleep") == 0) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            syscall(SYS_nanosleep, &ts, NULL);
        } else if (strcmp(mode, "fork") == 0) {
            pid_t pid = fork();
            if (pid == 0)
                _exit(0);
            int status;
            waitpid(pid, &status, 0);
        } else {
            return 5;
        }
    }
    return 0;
}
