# SPDX-License-Identifier: BSD-3-Clause
# What is installed beside the programs for their users: the bash completion
# of vhu-state, the man pages; that they land where bash-completion and man
# look.
add_test(NAME test_vhu_state_completion
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/test-vhu-state-completion.sh
          ${PROJECT_SOURCE_DIR}/cli/vhu-state.bash $<TARGET_FILE:vhu-state>)
add_test(NAME test_install_tools
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/install/test-install-tools.sh ${CMAKE_BINARY_DIR})
set_tests_properties(test_vhu_state_completion test_install_tools PROPERTIES LABELS script)
set_tests_properties(test_install_tools PROPERTIES TIMEOUT 120)

# The man pages pandoc made (docs/man) render without warnings; skipped
# (77) when pandoc was not there to make them.
get_property(vhu_man_pages GLOBAL PROPERTY VHU_MAN_PAGES)
if(NOT vhu_man_pages)
  set(vhu_man_pages --no-pandoc)
endif()
add_test(NAME test_man_pages
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/install/check-man-pages.sh ${vhu_man_pages})
set_tests_properties(test_man_pages PROPERTIES SKIP_RETURN_CODE 77 LABELS script)

# The systemd unit (examples/systemd) under systemd-analyze verify, made a
# second time with ExecStart on the build's vhu-blk so that verify finds the
# program; checked against the installed one.  Skipped (77) without
# systemd-analyze.
if(TARGET vhu-blk)
  set(VHU_BLK_PATH "$<TARGET_FILE:vhu-blk>")
  configure_file(${PROJECT_SOURCE_DIR}/examples/systemd/vhu-blk@.service.in
                 systemd/vhu-blk@.service.genex @ONLY)
  file(GENERATE OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/systemd/vhu-blk@.service
       INPUT ${CMAKE_CURRENT_BINARY_DIR}/systemd/vhu-blk@.service.genex)
  set(vhu_unit_manpath)
  if(vhu_man_pages AND NOT vhu_man_pages STREQUAL "--no-pandoc")
    set(vhu_unit_manpath ${CMAKE_BINARY_DIR}/docs/man)
  endif()
  add_test(NAME test_systemd_unit
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/install/check-systemd-unit.sh
            ${CMAKE_CURRENT_BINARY_DIR}/systemd/vhu-blk@.service
            ${CMAKE_BINARY_DIR}/examples/systemd/vhu-blk@.service ${vhu_unit_manpath})
  set_tests_properties(test_systemd_unit PROPERTIES SKIP_RETURN_CODE 77 LABELS script)
endif()
