# SPDX-License-Identifier: BSD-3-Clause
# What is installed beside the programs for their users: the bash completion
# of vhu-state, the man pages; that they land where bash-completion and man
# look.
add_test(NAME test_vhu_state_completion
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/test-vhu-state-completion.sh
          ${PROJECT_SOURCE_DIR}/cli/vhu-state.bash $<TARGET_FILE:vhu-state>)
add_test(NAME test_install_tools
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/install/test-install-tools.sh ${CMAKE_BINARY_DIR})
set_tests_properties(test_install_tools PROPERTIES TIMEOUT 120)

# The man pages pandoc made (docs/man) render without warnings; skipped
# (77) when pandoc was not there to make them.
get_property(vhu_man_pages GLOBAL PROPERTY VHU_MAN_PAGES)
if(NOT vhu_man_pages)
  set(vhu_man_pages --no-pandoc)
endif()
add_test(NAME test_man_pages
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/install/check-man-pages.sh ${vhu_man_pages})
set_tests_properties(test_man_pages PROPERTIES SKIP_RETURN_CODE 77)
