// See include/file_space.h.
#define _GNU_SOURCE
#include "file_space.h"
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <string.h>

int psnap_punch_hole(int fd, int64_t offset, int64_t length) {
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)length) == 0) return 0;
    return errno;
}

int64_t psnap_seek_data(int fd, int64_t offset) {
    return (int64_t)lseek(fd, (off_t)offset, SEEK_DATA);
}

static struct flock range_lock(short type, int64_t offset, int64_t length) {
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = (off_t)offset;
    fl.l_len = (off_t)length;
    return fl;
}

int psnap_lock_shared(int fd, int64_t offset, int64_t length) {
    struct flock fl = range_lock(F_RDLCK, offset, length);
    return fcntl(fd, F_OFD_SETLK, &fl) == 0 ? 0 : errno;
}

int psnap_range_locked(int fd, int64_t offset, int64_t length) {
    struct flock fl = range_lock(F_WRLCK, offset, length);
    if (fcntl(fd, F_OFD_GETLK, &fl) != 0) return -errno;
    return fl.l_type == F_UNLCK ? 0 : 1;
}
