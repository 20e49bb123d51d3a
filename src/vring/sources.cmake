# SPDX-License-Identifier: BSD-3-Clause
# Split and packed ring access and ring workers (src/vring/).
list(APPEND VHU_SOURCES vring/split.c vring/packed.c vring/worker.c vring/trace.c)
set(VHU_VRING_PUBLIC_HEADERS include/vhu/vring.h)
