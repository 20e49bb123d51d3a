/* SPDX-License-Identifier: BSD-3-Clause */
/** @file
 * vhu/vhu.h - the back-end library (libvhu): include this one.  The front-end
 * library (libvhu-fe, for tests and tools) has its own header, vhu/frontend.h. */
#ifndef VHU_VHU_H
#define VHU_VHU_H
#include <vhu/common.h>
#include <vhu/protocol.h>
#include <vhu/device.h>
#include <vhu/backend.h>
#include <vhu/vring.h>
#include <vhu/state.h>
#endif
