/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-state: the front-end side shared by capture, load and roundtrip
 * (capture.c, load.c), over the library's vhu_fe_* calls. */
#ifndef VHU_CLI_FE_H
#define VHU_CLI_FE_H

struct vhu_fe;
/* Connect and negotiate; DEVICE_STATE must be offered. */
int cli_fe_open(const char *sock, struct vhu_fe **out);
/* GET_VRING_BASE on every ring. */
int cli_fe_stop_rings(struct vhu_fe *fe, const char *sock, unsigned *nrings);
/* LOAD fd and CHECK: CLI_OK, CLI_BAD (refused) or CLI_ERR. */
int cli_load_fd(struct vhu_fe *fe, const char *sock, const char *name, int fd);

#endif
