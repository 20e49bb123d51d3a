# SPDX-License-Identifier: BSD-3-Clause
# Device-state snapshots and the transfer thread (src/state/).
list(APPEND VHU_SOURCES state/writer.c state/decode.c state/parse.c state/get.c
  state/walk.c state/transfer.c)
set(VHU_STATE_PUBLIC_HEADERS include/vhu/state.h)
