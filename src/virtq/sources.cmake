# SPDX-License-Identifier: BSD-3-Clause
# Split and packed ring access and ring workers (src/virtq/).
list(APPEND VHU_SOURCES virtq/split.c virtq/packed.c virtq/worker.c virtq/trace.c)
set(VHU_VIRTQ_PUBLIC_HEADERS include/vhu/virtq.h)
