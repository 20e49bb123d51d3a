# SPDX-License-Identifier: BSD-3-Clause
# The virtqueue layer and examples/blk.  test_vring serves a small
# device of its own through a real back-end, so it links the harness (the
# shared library) rather than vhu_static.
add_library(vhu_test_devserver STATIC devserver.c)
target_include_directories(vhu_test_devserver PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(vhu_test_devserver PUBLIC vhu-fe PkgConfig::CMOCKA Threads::Threads)
# The echo device and checks test_vring and test_vring_packed share.
add_library(vhu_test_vqdev STATIC vqdev.c)
target_include_directories(vhu_test_vqdev PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(vhu_test_vqdev PUBLIC vhu_test_harness)
add_executable(test_vring unit/test_vring.c)
target_link_libraries(test_vring PRIVATE vhu_test_harness vhu_test_devserver vhu_test_vqdev)
add_test(NAME test_vring COMMAND test_vring)
set_tests_properties(test_vring PROPERTIES TIMEOUT 120 LABELS tsan)

# examples/blk through the front-end library's driver.
add_executable(test_blk integration/test_blk.c)
target_link_libraries(test_blk PRIVATE vhu_blk vhu_test_harness vhu_test_devserver
  PkgConfig::CBOR PkgConfig::ZSTD_T)
add_test(NAME test_blk COMMAND test_blk)
set_tests_properties(test_blk PROPERTIES TIMEOUT 120 LABELS tsan)

# vhu-blk under a live migration of guest memory done as QEMU does it
# (the dirty log read and cleared while requests run, a destination copy
# that must equal the source page for page, the destination carrying on).
# Not labelled tsan: it copies guest memory while the driver and the device
# write it, on purpose (as a VMM migrating RAM does), which ThreadSanitizer
# rightly calls a race.
add_executable(test_blk_migrate integration/test_blk_migrate.c)
target_link_libraries(test_blk_migrate PRIVATE vhu_blk vhu_test_harness vhu_test_devserver)
add_test(NAME test_blk_migrate COMMAND test_blk_migrate)
set_tests_properties(test_blk_migrate PROPERTIES TIMEOUT 600)

# The vhu-blk program: command line, image and RAM disks, clean stop, an
# image-backed disk's state through vhu-state.
add_test(NAME test_blk_program
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/integration/test-blk-program.sh
          $<TARGET_FILE:vhu-blk> $<TARGET_FILE:vhu-probe> $<TARGET_FILE:vhu-state>)
set_tests_properties(test_blk_program PROPERTIES LABELS script)

# QEMU 7.2 boots a tiny guest (Debian's kernel, a busybox initramfs) on
# vhu-blk and checks the disk from inside and outside; the guest is fetched
# and built once into the build directory.  Skipped (77) only when QEMU
# cannot run at all.
add_test(NAME test_qemu_boot
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/qemu/test-qemu-boot.sh $<TARGET_FILE:vhu-blk>
          ${CMAKE_BINARY_DIR}/qemu-guest)
set_tests_properties(test_qemu_boot PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77)
# The same boot on packed rings (vhu-blk --packed, vhost-user-blk-pci,packed=on).
add_test(NAME test_qemu_boot_packed
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/qemu/test-qemu-boot.sh $<TARGET_FILE:vhu-blk>
          ${CMAKE_BINARY_DIR}/qemu-guest)
set_tests_properties(test_qemu_boot_packed PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77
  ENVIRONMENT VHU_QEMU_PACKED=1 RUN_SERIAL TRUE LABELS "qemu;script")

# Live migration between two QEMUs, each with its own vhu-blk on one image,
# with the guest verifying O_DIRECT rounds before, during and after, and
# guest memory compared page by page at the switch-over; and kill -9 of
# vhu-blk with requests in flight, twice, QEMU reconnecting and vhu-blk
# resubmitting.  tests/qemu/soak-migrate.sh runs the migration many times
# on vhu-blk, qemu-storage-daemon and QEMU's own virtio-blk.  The QEMU tests
# share the guest cache; each runs alone (TCG needs the CPUs).
# Two migrations here (A to B and back: each side is a destination, then a
# source), run once: any failure counts, a guest page that did not migrate
# included (the test compares guest memory at each switch-over).
# The guest's RAM size keeps QEMU 7.2 from losing pages the vCPU writes
# (GUEST_MEM_DEFAULT in lib-rounds.sh).
add_test(NAME test_qemu_migrate
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/qemu/test-qemu-migrate.sh $<TARGET_FILE:vhu-blk>
          ${CMAKE_BINARY_DIR}/qemu-guest 2)
add_test(NAME test_qemu_reconnect
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/qemu/test-qemu-reconnect.sh $<TARGET_FILE:vhu-blk>
          ${CMAKE_BINARY_DIR}/qemu-guest 2)
# The same on packed rings (QEMU's packed inflight layout), one kill to keep
# CI short: most of the time is the boot; test_vring_packed covers a
# recovery from a region a recovery rebuilt.
add_test(NAME test_qemu_reconnect_packed
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/qemu/test-qemu-reconnect.sh $<TARGET_FILE:vhu-blk>
          ${CMAKE_BINARY_DIR}/qemu-guest 1)
# Three live snapshots (control socket) of a running guest's RAM disk while
# it verifies rounds; the last loaded into a fresh vhu-blk, where the same
# guest finds its rounds.
add_test(NAME test_qemu_snapshot
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/qemu/test-qemu-snapshot.sh $<TARGET_FILE:vhu-blk>
          ${CMAKE_BINARY_DIR}/qemu-guest 3)
set_tests_properties(test_qemu_snapshot PROPERTIES ENVIRONMENT VHU_STATE=$<TARGET_FILE:vhu-state>)
set_tests_properties(test_qemu_boot test_qemu_migrate test_qemu_reconnect
  test_qemu_reconnect_packed test_qemu_snapshot
  PROPERTIES TIMEOUT 600 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE LABELS "qemu;script")
set_tests_properties(test_qemu_reconnect_packed PROPERTIES ENVIRONMENT VHU_QEMU_PACKED=1)
# A stalled guest is given 40 s (a round takes about a second).
set_tests_properties(test_qemu_migrate PROPERTIES TIMEOUT 600 ENVIRONMENT VHU_ROUND_WAIT=40)
# The same two migrations on packed rings (vhu-blk --packed,
# vhost-user-blk-pci,packed=on), the same limits.
# The destination's vhu-blk gets the ring's avail and used positions and
# both wrap counters through SET_VRING_BASE, and the guest's rounds go on
# exactly where the source stopped.
add_test(NAME test_qemu_migrate_packed
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/qemu/test-qemu-migrate.sh $<TARGET_FILE:vhu-blk>
          ${CMAKE_BINARY_DIR}/qemu-guest 2)
set_tests_properties(test_qemu_migrate_packed PROPERTIES TIMEOUT 600 SKIP_RETURN_CODE 77
  ENVIRONMENT "VHU_QEMU_PACKED=1;VHU_ROUND_WAIT=40" RUN_SERIAL TRUE LABELS "qemu;script")

# VIRTIO shared memory: GET_SHMEM_CONFIG, BACKEND_SHMEM_MAP / UNMAP.
add_executable(test_shmem integration/test_shmem.c)
target_link_libraries(test_shmem PRIVATE vhu_test_harness vhu_test_devserver)
add_test(NAME test_shmem COMMAND test_shmem)
set_tests_properties(test_shmem PROPERTIES TIMEOUT 120 LABELS tsan)

# Packed virtqueues: the virtqueue layer on hand-built packed rings, and the
# packed SET/GET_VRING_BASE encoding over the socket.
add_executable(test_vring_packed unit/test_vring_packed.c)
target_link_libraries(test_vring_packed PRIVATE vhu_test_harness vhu_test_devserver vhu_test_vqdev)
add_test(NAME test_vring_packed COMMAND test_vring_packed)
set_tests_properties(test_vring_packed PROPERTIES TIMEOUT 120 LABELS tsan)
