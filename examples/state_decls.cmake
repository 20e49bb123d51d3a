# SPDX-License-Identifier: BSD-3-Clause
# The example devices' state declarations (state_decls.h): built into the
# devices and into vhu-state (its schema fallback for older snapshots).
set(VHU_EXAMPLE_STATE_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/state_decls.c
  ${CMAKE_CURRENT_LIST_DIR}/testdev/testdev_state.c
  ${CMAKE_CURRENT_LIST_DIR}/blk/blk_state.c)
set(VHU_EXAMPLE_STATE_INCLUDE ${CMAKE_CURRENT_LIST_DIR})
