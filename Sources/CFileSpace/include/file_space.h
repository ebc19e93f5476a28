// Linux file-space and lock calls that Swift's Glibc module does not expose (they need _GNU_SOURCE):
// hole punching (fallocate), SEEK_DATA, and open-file-description byte-range locks (spec/FORMAT.md §9).
#ifndef PSNAP_FILE_SPACE_H
#define PSNAP_FILE_SPACE_H
#include <stdint.h>

/// Deallocates [offset, offset+length) keeping the file size; the range reads as zeros afterwards.
/// 0 on success, else errno (EOPNOTSUPP where the filesystem cannot punch holes).
int psnap_punch_hole(int fd, int64_t offset, int64_t length);

/// The first offset >= `offset` holding data (lseek SEEK_DATA); -1 with errno ENXIO when none before the end.
int64_t psnap_seek_data(int fd, int64_t offset);

/// Takes a shared open-file-description lock on [offset, offset+length) without waiting. 0 or errno.
int psnap_lock_shared(int fd, int64_t offset, int64_t length);

/// Whether another open file description holds a lock overlapping [offset, offset+length):
/// 1 yes, 0 no, -errno when the question cannot be asked.
int psnap_range_locked(int fd, int64_t offset, int64_t length);

#endif
