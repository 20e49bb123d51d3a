/* SPDX-License-Identifier: BSD-3-Clause */
/* libFuzzer target: the snapshot reader behind inspect/validate, walking
 * any bytes as a snapshot (header, records, every field, every blob). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "state/state_internal.h"

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool init;
    if (!init) {
        fuzz_log_init();
        init = true;
    }
    int fd = memfd_create("snap", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    lseek(fd, 0, SEEK_SET);
    struct vhu_state_reader *r = vhu_snap_reader_new(fd, -1, NULL);
    static struct vhu_snap_header h;
    static struct vhu_snap_handler hd;
    struct vhu_snap_section_info s;
    unsigned nend;
    if (r && vhu_snap_read_header(r, &h) == 0) {
        /* Bounded: every step consumes input or ends the walk. */
        for (int records = 0; records < 300; records++) {
            int k = vhu_snap_next_record(r, &hd, &s, &nend);
            if (k < 0 || k == 'e')
                break;
            if (k != 's')
                continue;
            struct vhu_snap_field f;
            uint8_t buf[4096];
            while (vhu_snap_next_field(r, &f) == 0) {
                if (f.type == VHU_SNAP_END && f.depth == 0)
                    break;
                if (f.type == VHU_SNAP_BLOB)
                    while (vhu_state_blob_read(r, buf, sizeof(buf)) > 0) {
                    }
            }
            if (vhu_snap_section_done(r) < 0)
                break;
        }
    }
    vhu_snap_reader_free(r);
    close(fd);
    return 0;
}
