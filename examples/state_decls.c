/* SPDX-License-Identifier: BSD-3-Clause */
/* The example devices' declarations by device type (state_decls.h). */
#include <string.h>

#include "state_decls.h"

static const struct {
    const char *device;
    const struct vhu_state_section *sections;
    unsigned n;
} devices[] = {
    {"testdev", testdev_state_sections, TESTDEV_NUM_SECTIONS},
    {"blk", blk_state_sections, BLK_NUM_SECTIONS},
};

const struct vhu_state_section *example_state_section(const char *device, const char *section)
{
    for (size_t i = 0; i < sizeof(devices) / sizeof(devices[0]); i++) {
        if (strcmp(devices[i].device, device) != 0)
            continue;
        for (unsigned j = 0; j < devices[i].n; j++)
            if (strcmp(devices[i].sections[j].name, section) == 0)
                return &devices[i].sections[j];
    }
    return NULL;
}
