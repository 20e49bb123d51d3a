# Split-ring access and ring workers (src/virtq/).
list(APPEND VHU_SOURCES)
set(VHU_VIRTQ_PUBLIC_HEADERS)
