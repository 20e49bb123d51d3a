/* SPDX-License-Identifier: BSD-3-Clause */
/* Public structs that callers fill and that grow at their end from one
 * version to the next (docs/abi.md) begin with their size as the caller was
 * compiled.  These read one: refuse a size that cannot be right, take the
 * fields that lie wholly within it, default (zero) the rest. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "backend_internal.h"

#define END(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))

/* Where each field of struct vhu_device_ops ends, in order. */
static const size_t ops_ends[] = {
    END(struct vhu_device_ops, size),
    END(struct vhu_device_ops, name),
    END(struct vhu_device_ops, num_queues),
    END(struct vhu_device_ops, max_queue_size),
    END(struct vhu_device_ops, config_size),
    END(struct vhu_device_ops, features),
    END(struct vhu_device_ops, protocol_features),
    END(struct vhu_device_ops, ack_features),
    END(struct vhu_device_ops, get_config),
    END(struct vhu_device_ops, set_config),
    END(struct vhu_device_ops, start_vring),
    END(struct vhu_device_ops, stop_vring),
    END(struct vhu_device_ops, suspend),
    END(struct vhu_device_ops, reset),
    END(struct vhu_device_ops, set_status),
    END(struct vhu_device_ops, tracks_inflight),
    END(struct vhu_device_ops, sections),
    END(struct vhu_device_ops, num_sections),
    END(struct vhu_device_ops, save_section),
    END(struct vhu_device_ops, load_begin),
    END(struct vhu_device_ops, load_section),
    END(struct vhu_device_ops, load_end),
    END(struct vhu_device_ops, commit),
    END(struct vhu_device_ops, discard),
    END(struct vhu_device_ops, num_shmem_regions),
    END(struct vhu_device_ops, shmem_sizes),
    END(struct vhu_device_ops, snapshot_done),
    END(struct vhu_device_ops, snapshot_begin),
    END(struct vhu_device_ops, snapshot_prepare),
};
/* A field added at the end must be added to the table above. */
_Static_assert(END(struct vhu_device_ops, snapshot_prepare) == sizeof(struct vhu_device_ops),
               "struct vhu_device_ops grew: list the new field in ops_ends[]");

static const size_t server_config_ends[] = {
    END(struct vhu_server_config, size),
    END(struct vhu_server_config, socket_path),
    END(struct vhu_server_config, client),
    END(struct vhu_server_config, handle_signals),
    END(struct vhu_server_config, reconnect_min_ms),
    END(struct vhu_server_config, reconnect_max_ms),
    END(struct vhu_server_config, control_path),
};
_Static_assert(END(struct vhu_server_config, control_path) == sizeof(struct vhu_server_config),
               "struct vhu_server_config grew: list the new field in server_config_ends[]");

/* Check a caller's struct of `size` bytes at src against this version's
 * (`known` bytes, field ends in ends[n], the last required field ending at
 * `min`), then copy into dst (known bytes) the fields wholly within size and
 * zero the others.  Returns 0, or -EINVAL / -E2BIG after one log line that
 * names `what` (the call and struct). */
static int sized_copy(void *dst, const void *src, size_t size, size_t known, const size_t *ends,
                      size_t n, size_t min, const char *what, const char *type)
{
    if (size == 0) {
        vhu_err("%s: size is 0; set it to sizeof(struct %s) (%zu in this vhu)", what, type, known);
        return -EINVAL;
    }
    if (size < min) {
        vhu_err("%s: size %zu is too small: struct %s needs at least %zu bytes (its required "
                "fields), %zu in this vhu",
                what, size, type, min, known);
        return -EINVAL;
    }
    if (size > known) {
        const uint8_t *tail = (const uint8_t *)src + known;
        for (size_t i = 0; i < size - known; i++) {
            if (tail[i]) {
                vhu_err("%s: size %zu, but this vhu's struct %s has %zu bytes and byte %zu "
                        "beyond them is set (a field this version does not have)",
                        what, size, type, known, known + i);
                return -E2BIG;
            }
        }
    }
    /* The fields wholly within size; a size that cuts a field leaves it out. */
    size_t take = 0;
    for (size_t i = 0; i < n && ends[i] <= size; i++)
        take = ends[i];
    memset(dst, 0, known);
    memcpy(dst, src, take);
    return 0;
}

int vhu_device_ops_read(struct vhu_device_ops *dst, const struct vhu_device_ops *ops)
{
    return sized_copy(dst, ops, ops->size, sizeof(*dst), ops_ends, VHU_ARRAY_SIZE(ops_ends),
                      END(struct vhu_device_ops, stop_vring), "vhu_backend_new: ops",
                      "vhu_device_ops");
}

int vhu_server_config_read(struct vhu_server_config *dst, const struct vhu_server_config *cfg)
{
    return sized_copy(
        dst, cfg, cfg->size, sizeof(*dst), server_config_ends, VHU_ARRAY_SIZE(server_config_ends),
        END(struct vhu_server_config, socket_path), "vhu_server_new: config", "vhu_server_config");
}
