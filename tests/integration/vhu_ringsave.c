/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-ringsave: save a back-end's state with its rings at given bases, for
 * the golden corpus (formats/corpus/make-corpus.sh).  Not installed.
 *
 *   vhu-ringsave SOCKET OUT RING:SIZE:BASE...
 *
 * Connects as a front-end, negotiates everything the back-end offers (as
 * vhu-state capture does), sets each listed ring's size and base (BASE in
 * hex or decimal: for a packed ring QEMU's word, bits 0-14 avail position,
 * 15 avail wrap counter, 16-30 used position, 31 used wrap counter), stops
 * every listed ring with GET_VRING_BASE, and saves the state into OUT with
 * SET_DEVICE_STATE_FD.  A ring's state is then what a ring that stopped at
 * that base would leave, which vhu-state capture (rings never set up)
 * cannot give.  Exit 0, or 1 with a message. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vhu/frontend.h>

static int die(const char *what, int e)
{
    fprintf(stderr, "vhu-ringsave: %s: %s\n", what, e ? vhu_strerror(e) : "bad argument");
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s SOCKET OUT RING:SIZE:BASE...\n", argv[0]);
        return 2;
    }
    struct vhu_fe *fe = NULL;
    int r = vhu_fe_connect(&fe, argv[1], 5000);
    if (r < 0)
        return die(argv[1], r);
    vhu_fe_set_timeout(fe, 10000);
    if ((r = vhu_fe_negotiate(fe, ~0ull, ~0ull, NULL, NULL)) < 0) {
        vhu_fe_close(fe);
        return die("negotiation", r);
    }
    for (int i = 3; i < argc; i++) {
        char *end;
        unsigned long ring = strtoul(argv[i], &end, 0), size = 0, base = 0;
        if (*end == ':')
            size = strtoul(end + 1, &end, 0);
        if (*end == ':')
            base = strtoul(end + 1, &end, 0);
        unsigned got;
        if (*end || ring > 255 || size > 32768 || base > 0xffffffffu) {
            vhu_fe_close(fe);
            return die(argv[i], 0);
        }
        if ((r = vhu_fe_set_vring_num(fe, (unsigned)ring, (unsigned)size)) < 0 ||
            (r = vhu_fe_set_vring_base(fe, (unsigned)ring, (unsigned)base)) < 0 ||
            (r = vhu_fe_get_vring_base(fe, (unsigned)ring, &got)) < 0) {
            vhu_fe_close(fe);
            return die(argv[i], r);
        }
        if (got != base) {
            fprintf(stderr, "vhu-ringsave: ring %lu: base 0x%x back, 0x%lx set\n", ring, got, base);
            vhu_fe_close(fe);
            return 1;
        }
    }
    int out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        vhu_fe_close(fe);
        return die(argv[2], -errno);
    }
    r = vhu_fe_save_state(fe, out);
    close(out);
    vhu_fe_close(fe);
    return r < 0 ? die("SAVE", r) : 0;
}
