/* cmd_serve.c: `repro serve MODEL [--port P] [--host H] [--ctx N] [--max-tokens N] [--id NAME] [--max-body B]
 * [--max-conns N] [--idle-timeout S] [--slots N] [--queue N] [--prefill-chunk N]`: serve a local model as an OpenAI-compatible endpoint until
 * SIGINT/SIGTERM. Prints "listening on http://HOST:PORT/v1" on stdout once ready (scripts wait for that
 * line), then the limits in force on stderr. */
#include "cli/command.h"
#include "cli/model_cli.h"
#include "serve/serve.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

RP_COMMAND(serve, rp_cmd_serve, "serve a local model as an OpenAI-compatible endpoint (chat, completions, models)");

static void usage(FILE *f) {
    fputs("usage: repro serve MODEL [--port P] [--host 127.0.0.1] [--ctx N] [--max-tokens N] [--id NAME]\n"
          "                   [--max-body BYTES] [--max-conns N] [--idle-timeout SECONDS] [--device cpu|ref|cuda]\n"
          "                   [--slots N] [--queue N] [--prefill-chunk N]\n"
          "  Serves MODEL (GGUF or llama2.c) at http://HOST:PORT/v1: POST /chat/completions, POST /completions\n"
          "  (prompt as text or token ids; logprobs, echo), GET /models; \"stream\": true answers with\n"
          "  server-sent events; GET /health gives the slots, queue and counters. Concurrent requests are decoded\n"
          "  together (one forward per token for all of them); each keeps its own sampler, so a seeded request\n"
          "  gives the same text alone or in company.\n"
          "  --slots N         sequences decoded together (default 8, at most 16; each busy slot holds a cache\n"
          "                    sized to its request's prompt + max_tokens, freed when it ends)\n"
          "  --queue N         prompts waiting beyond the slots (default 64; 0: none); a request that does not fit\n"
          "                    is answered 429 with Retry-After (503 while stopping)\n"
          "  --prefill-chunk N prompt tokens run per decoding step (default 128): a long prompt is ingested in\n"
          "                    chunks between the other slots' tokens instead of stalling them; 0: each prompt\n"
          "                    whole at once\n"
          "  --ctx N           context length in tokens (default min(model's, 2048)): prompt + max_tokens must fit\n"
          "  --max-tokens N    max_tokens when a request gives none (default 256, capped to the room left)\n"
          "  --max-body BYTES  largest request body (default 4194304); larger is a 413\n"
          "  --max-conns N     connections at once (default 64); when all are taken, the longest-idle one is\n"
          "                    closed for a new client (connections generating are never closed)\n"
          "  --idle-timeout S  close keep-alive connections idle this long (default 30)\n"
          "  --device D        the backend the model runs on (default cpu); cuda without a GPU is refused at start\n"
          "  --port 0 picks a free port. Stops on SIGINT/SIGTERM (exit 0). Exit codes: 2 bad arguments,\n"
          "  others as for every command when the model cannot be loaded or the port bound.\n", f);
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
        else if (!strcmp(a, "--max-body") && v) {
            long long b = strtoll(v, &end, 10);
            if (b <= 0 && !*end) { fprintf(stderr, "repro serve: --max-body %s must be positive\n", v); return 2; }
            o.max_body = (size_t)b;
            i++;
        }
        else if (!strcmp(a, "--slots") && v) {
            o.n_slots = (int)strtol(v, &end, 10);
            if (!*end && (o.n_slots < 1 || o.n_slots > 16)) { fprintf(stderr, "repro serve: --slots %s must be in [1, 16]\n", v); return 2; }
            i++;
        }
        else if (!strcmp(a, "--queue") && v) {
            long q = strtol(v, &end, 10);
            if (!*end && (q < 0 || q > 1000000)) { fprintf(stderr, "repro serve: --queue %s must be in [0, 1000000]\n", v); return 2; }
            o.n_queue = q == 0 ? -1 : (int)q;
            i++;
        }
        else if (!strcmp(a, "--prefill-chunk") && v) {
            long c = strtol(v, &end, 10);
            if (!*end && (c < 0 || c > 65536)) { fprintf(stderr, "repro serve: --prefill-chunk %s must be in [0, 65536]\n", v); return 2; }
            o.prefill_chunk = c == 0 ? -1 : (int)c;
            i++;
        }
        else if (!strcmp(a, "--max-conns") && v) { o.max_conns = (int)strtol(v, &end, 10); i++; }
        else if (!strcmp(a, "--idle-timeout") && v) { o.idle_timeout_s = strtod(v, &end); i++; }
        else if (!strcmp(a, "--device") && v) { if (rp_cli_device_open("repro serve", v, &o.backend)) return 2; i++; }
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
    rp_serve_opts lim = rp_serve_limits(s);
    fprintf(stderr, "repro serve: model '%s', context %d tokens, default max_tokens %d, body <= %zu bytes, %d connections, "
            "idle timeout %g s, %d slots, queue %d, prefill chunk %d\n", lim.model_id, lim.n_ctx, lim.default_max_tokens, lim.max_body,
            lim.max_conns, lim.idle_timeout_s, lim.n_slots, lim.n_queue < 0 ? 0 : lim.n_queue, lim.prefill_chunk < 0 ? 0 : lim.prefill_chunk);
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "repro serve: stopping (%lu requests served)\n", rp_serve_requests(s));
    rp_serve_stop(s);
    return 0;
}
