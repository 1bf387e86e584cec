/* A process with hostile names, for tests/real/test_hardening_real.py.
 *
 *   hostile hold          sets its comm from $KT_COMM (prctl PR_SET_NAME) and sleeps until killed
 *   hostile empty         re-executes itself with an empty argv (execve(path, {NULL}, envp));
 *                         the new image sees argc == 0, sets its comm and sleeps
 *   hostile exec N        re-executes itself N times in a chain with argv[1..] kept (spawn events)
 * Every other argv element is data only (the test chooses hostile bytes for them).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

extern char **environ;

static void set_comm(void) {
    const char *c = getenv("KT_COMM");
    if (c)
        prctl(PR_SET_NAME, (unsigned long)c, 0, 0, 0);
}

static void hold(void) {
    set_comm();
    for (;;)
        pause();
}

int main(int argc, char **argv) {
    if (argc == 0 || argv[0] == NULL || (argc == 1 && argv[0][0] == '\0'))
        hold(); /* the empty-argv image (the kernel may give it one empty string) */
    if (argc >= 2 && strcmp(argv[1], "hold") == 0)
        hold();
    if (argc >= 2 && strcmp(argv[1], "empty") == 0) {
        char *none[] = {NULL};
        execve("/proc/self/exe", none, environ);
        perror("execve");
        return 1;
    }
    return 2;
}
