/* cmd_serve.c: `repro serve MODEL [--port P] [--host H] [--ctx N] [--max-tokens N] [--id NAME]`: serve a
 * local model as an OpenAI-compatible endpoint until SIGINT/SIGTERM. Prints "listening on
 * http://HOST:PORT/v1" on stdout once ready (scripts wait for that line). */
#include "cli/command.h"
#include "serve/serve.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

RP_COMMAND(serve, rp_cmd_serve, "serve a local model as an OpenAI-compatible /v1/chat/completions endpoint");

static void usage(FILE *f) {
    fputs("usage: repro serve MODEL [--port P] [--host 127.0.0.1] [--ctx N] [--max-tokens N] [--id NAME]\n"
          "  Serves MODEL (GGUF or llama2.c) at http://HOST:PORT/v1 (POST /chat/completions, GET /models).\n"
          "  --port 0 picks a free port. Stops on SIGINT/SIGTERM.\n", f);
}

int rp_cmd_serve(int argc, char **argv) {
    if (rp_cli_wants_help(argc, argv)) { usage(stdout); return 0; }
    const char *model = NULL;
    rp_serve_opts o = {.host = "127.0.0.1", .port = 8080};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!strcmp(a, "--port") && v) { o.port = (int)strtol(v, &end, 10); i++; }
        else if (!strcmp(a, "--host") && v) { o.host = v; i++; }
        else if (!strcmp(a, "--ctx") && v) { o.n_ctx = (int)strtol(v, &end, 10); i++; }
        else if (!strcmp(a, "--max-tokens") && v) { o.default_max_tokens = (int)strtol(v, &end, 10); i++; }
        else if (!strcmp(a, "--id") && v) { o.model_id = v; i++; }
        else if (a[0] == '-' || model) { fprintf(stderr, "repro serve: unexpected argument '%s'\n", a); usage(stderr); return 2; }
        else model = a;
        if (end && *end) { fprintf(stderr, "repro serve: '%s' is not a number\n", v); return 2; }
        if (o.port < 0 || o.port > 65535) { fprintf(stderr, "repro serve: port %d out of range\n", o.port); return 2; }
    }
    if (!model) { usage(stderr); return 2; }
    /* block the stop signals in every thread; this one waits for them */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    rp_server *s = NULL;
    rp_status st = rp_serve_start(model, &o, &s);
    if (st != RP_OK) { fprintf(stderr, "repro serve: %s\n", rp_errmsg()); return rp_status_exit_code(st); }
    printf("listening on http://%s:%d/v1\n", o.host, rp_serve_port(s));
    fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "repro serve: stopping (%lu requests served)\n", rp_serve_requests(s));
    rp_serve_stop(s);
    return 0;
}
