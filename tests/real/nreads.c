/* A workload with an exact count of vfs_read calls: N read(2) calls of one
 * byte of FILE, then exit. Built static by the tests, so no dynamic loader
 * reads anything first. Usage: nreads FILE N */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0)
        return 3;
    long n = strtol(argv[2], NULL, 10);
    char c;
    for (long i = 0; i < n; i++) {
        if (lseek(fd, 0, SEEK_SET) != 0 || read(fd, &c, 1) != 1)
            return 4;
    }
    return 0;
}
