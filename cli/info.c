/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-state info: ask a running back-end about itself over its control
 * socket (docs/control-protocol.md) and print the answer. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <vhu/frontend.h>

#include "options.h"

static void print_human(const char *path, const struct vhu_fe_control_info *in)
{
    (void)path;
    printf("device     %s (vhu %s, pid %" PRIu64 ", up %" PRIu64 " s)\n", in->device,
           in->vhu_version, in->pid, in->uptime_s);
    printf("front-end  %s; %" PRIu64 " session(s) served\n", in->connected ? "connected" : "none",
           in->sessions);
    printf("features   acked 0x%016" PRIx64 " of offered 0x%016" PRIx64 "\n", in->acked_features,
           in->offered_features);
    printf("protocol   acked 0x%016" PRIx64 " of offered 0x%016" PRIx64 "\n",
           in->acked_protocol_features, in->offered_protocol_features);
    printf("status     0x%02x\n", in->status);
    printf("transfer   %s\n", in->transfer);
    printf("snapshots  %s; %" PRIu64 " taken, %" PRIu64 " failed\n",
           in->snapshot_running ? "one running" : "none running", in->snapshots_taken,
           in->snapshots_failed);
    if (in->has_last_snapshot)
        printf("  last     %s %" PRIu64 " s ago: rings paused %" PRIu64 " us (fork %" PRIu64
               " us), %" PRIu64 " bytes in %" PRIu64 " ms\n",
               in->last_ok ? "ok" : "failed", in->last_ago_s, in->last_pause_us, in->last_fork_us,
               in->last_bytes, in->last_duration_us / 1000);
    printf("queues     %u\n", in->num_queues);
    if (!in->num_queues)
        return;
    printf("  %-5s %-5s %-7s %-7s %-10s %s\n", "queue", "size", "started", "enabled", "last_avail",
           "completed");
    for (unsigned i = 0; i < in->num_queues; i++) {
        const struct vhu_fe_control_queue *q = &in->queues[i];
        printf("  %-5u %-5u %-7s %-7s %-10u %" PRIu64 "\n", q->index, q->size,
               q->started ? "yes" : "no", q->enabled ? "yes" : "no", q->last_avail, q->completed);
    }
}

static void print_json(const char *path, const struct vhu_fe_control_info *in)
{
    j_obj(NULL);
    j_str("control", path);
    j_str("device", in->device);
    j_str("vhu_version", in->vhu_version);
    j_u64("pid", in->pid);
    j_u64("uptime", in->uptime_s);
    j_bool("connected", in->connected);
    j_u64("sessions", in->sessions);
    j_u64("offered_features", in->offered_features);
    j_u64("acked_features", in->acked_features);
    j_u64("offered_protocol_features", in->offered_protocol_features);
    j_u64("acked_protocol_features", in->acked_protocol_features);
    j_u64("status", in->status);
    j_str("transfer", in->transfer);
    j_u64("num_queues", in->num_queues);
    j_arr("queues");
    for (unsigned i = 0; i < in->num_queues; i++) {
        const struct vhu_fe_control_queue *q = &in->queues[i];
        j_obj(NULL);
        j_u64("index", q->index);
        j_u64("size", q->size);
        j_bool("started", q->started);
        j_bool("enabled", q->enabled);
        j_u64("last_avail", q->last_avail);
        j_u64("completed", q->completed);
        j_end();
    }
    j_end();
    j_obj("snapshots");
    j_bool("running", in->snapshot_running);
    j_u64("taken", in->snapshots_taken);
    j_u64("failed", in->snapshots_failed);
    if (in->has_last_snapshot) {
        j_obj("last");
        j_bool("ok", in->last_ok);
        j_u64("pause_us", in->last_pause_us);
        j_u64("fork_us", in->last_fork_us);
        j_u64("bytes", in->last_bytes);
        j_u64("duration_us", in->last_duration_us);
        j_u64("ago_s", in->last_ago_s);
        j_end();
    }
    j_end();
    j_end();
}

static int info_main(const struct cli_cmd *cmd, int argc, char **argv)
{
    static const struct option lo[] = {
        CLI_COMMON_OPTIONS, {"control", required_argument, NULL, 'C'}, {NULL, 0, NULL, 0}};
    const char *path = NULL;
    int c, r;
    while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "C:", lo, NULL)) != -1) {
        switch (c) {
        case 'C': path = optarg; break;
        default:
            if ((r = cli_common_option(cmd, c, optarg)) >= 0)
                return r;
        }
    }
    if (!path || optind != argc)
        return cli_usage_error(cmd, "--control and no other argument expected");
    struct vhu_fe_control *ctl = NULL;
    r = vhu_fe_control_connect(&ctl, path, cli.timeout_ms);
    if (r < 0) {
        cli_err("%s: cannot connect: %s", path, vhu_strerror(r));
        return CLI_ERR;
    }
    struct vhu_fe_control_info in;
    char why[160];
    r = vhu_fe_control_info(ctl, &in, why, sizeof(why));
    vhu_fe_control_close(ctl);
    if (r < 0) {
        cli_err("%s: info failed: %s%s%s", path, vhu_strerror(r), why[0] ? ": " : "", why);
        return CLI_ERR;
    }
    if (cli.json)
        print_json(path, &in);
    else
        print_human(path, &in);
    vhu_fe_control_info_free(&in);
    return cli_finish_output(CLI_OK);
}

const struct cli_cmd cli_info_cmd = {
    .name = "info",
    .run = info_main,
    .summary = "show a running back-end's device, features and rings (control socket)",
    .usage = "info --control PATH [--json] [--timeout SECS]",
    .help = "Connects to a back-end's control socket (vhu_server_config.control_path;\n"
            "vhu-blk and vhu-testdev: --control PATH), sends {\"op\": \"info\"} and prints\n"
            "the answer: the device, the vhu version, pid and uptime, whether a front-end\n"
            "is connected and how many sessions were served, offered and acked features\n"
            "and protocol features, the device-state transfer in progress (idle, save,\n"
            "load), and per ring its size, whether it is started and enabled, its\n"
            "last_avail index and the requests it completed since the back-end started;\n"
            "live snapshots: whether one is running, how many ended well or not, and the\n"
            "last one's result, pause (fork), size and duration.\n"
            "The vhost-user session is not disturbed; only the back-end's own user may\n"
            "connect.  Protocol: docs/control-protocol.md.\n"
            "\n"
            "Options:\n"
            "  -C, --control PATH  the back-end's control socket\n"
            "\n"
            "Exit status: 0 ok, 2 usage, connection or protocol error (or the back-end\n"
            "refused the request).\n"
            "\n"
            "Examples:\n"
            "  vhu-state info --control /run/dev.ctl\n"
            "  vhu-state info --json --control /run/dev.ctl | jq '.queues[0].completed'\n",
};
