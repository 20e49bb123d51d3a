/* SPDX-License-Identifier: BSD-3-Clause */
/* vhu-probe: connect to a vhost-user back-end as a front-end would, and
 * print what it offers: features, protocol features, queues, config space. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include <vhu/frontend.h>
#include <vhu/vhu.h>

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"socket", required_argument, NULL, 's'},
                                         {"config-size", required_argument, NULL, 'n'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL;
    unsigned cfg_len = 16;
    int c;
    while ((c = getopt_long(argc, argv, "s:n:h", opts, NULL)) != -1) {
        if (c == 's') {
            path = optarg;
        } else if (c == 'n') {
            cfg_len = (unsigned)strtoul(optarg, NULL, 0);
        } else {
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: vhu-probe --socket PATH [--config-size N]\n"
                    "Negotiate with the back-end on PATH and print what it offers.\n"
                    "--config-size: config bytes to read (default 16, max 256).\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (!path || cfg_len > VHU_MAX_CONFIG_SIZE) {
        fprintf(stderr, "usage: vhu-probe --socket PATH [--config-size N]\n");
        return 2;
    }
    struct vhu_fe *fe;
    int r = vhu_fe_connect(&fe, path, 2000);
    if (r < 0) {
        fprintf(stderr, "vhu-probe: connect %s: %s\n", path, vhu_strerror(r));
        return 2;
    }
    uint64_t f, pf = 0, acked_pf = 0, nq = 0;
    if ((r = vhu_fe_get_features(fe, &f)) < 0)
        goto fail;
    printf("features:          0x%016llx\n", (unsigned long long)f);
    if ((r = vhu_fe_negotiate(fe, f, ~0ull, NULL, &acked_pf)) < 0)
        goto fail;
    pf = acked_pf;
    printf("protocol features: 0x%016llx", (unsigned long long)pf);
    for (unsigned i = 0; i < 64; i++)
        if ((pf & VHU_BIT(i)) && vhu_protocol_feature_name(i))
            printf(" %s", vhu_protocol_feature_name(i));
    printf("\n");
    if ((pf & VHU_BIT(VHU_PF_MQ)) && vhu_fe_get_queue_num(fe, &nq) == 0)
        printf("queues:            %llu\n", (unsigned long long)nq);
    if (pf & VHU_BIT(VHU_PF_CONFIG)) {
        unsigned char cfg[VHU_MAX_CONFIG_SIZE];
        r = vhu_fe_get_config(fe, 0, cfg, cfg_len);
        if (r < 0) {
            printf("config:            refused (%s)\n", vhu_strerror(r));
        } else {
            printf("config (%3u bytes):", cfg_len);
            for (unsigned i = 0; i < cfg_len; i++)
                printf("%s%02x", i % 16 ? " " : "\n  ", cfg[i]);
            printf("\n");
        }
    }
    vhu_fe_close(fe);
    return 0;
fail:
    fprintf(stderr, "vhu-probe: %s\n", vhu_strerror(r));
    vhu_fe_close(fe);
    return 1;
}
