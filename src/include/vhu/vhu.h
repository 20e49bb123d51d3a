/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu/vhu.h - everything: include this one. */
#ifndef VHU_VHU_H
#define VHU_VHU_H
#include <vhu/common.h>
#include <vhu/protocol.h>
#include <vhu/device.h>
#include <vhu/backend.h>
#include <vhu/frontend.h>
#include <vhu/virtq.h>
#include <vhu/state.h>
#endif
