# SPDX-License-Identifier: BSD-3-Clause
# What is installed beside the programs for their users: the bash completion
# of vhu-state; that it lands where bash-completion looks.
add_test(NAME test_vhu_state_completion
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/test-vhu-state-completion.sh
          ${PROJECT_SOURCE_DIR}/cli/vhu-state.bash $<TARGET_FILE:vhu-state>)
add_test(NAME test_install_tools
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/install/test-install-tools.sh ${CMAKE_BINARY_DIR})
set_tests_properties(test_install_tools PROPERTIES TIMEOUT 120)
