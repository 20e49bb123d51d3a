# Device-state snapshots and the transfer thread (src/state/).
list(APPEND VHU_SOURCES)
set(VHU_STATE_PUBLIC_HEADERS)
