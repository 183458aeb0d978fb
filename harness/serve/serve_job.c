/* serve_job.c: the engine behind `repro serve` (serve_job.h): a bounded job queue and one scheduler thread
 * that decodes up to n_slots jobs together (continuous batching over rp_generate_seq + rp_session_step).
 * Per step the scheduler (1) admits queued jobs into free slots under the lock, (2) without the lock runs
 * prefill pieces of the jobs still ingesting their prompt, in turn, up to prefill_chunk tokens in all
 * (at least one piece), (3) samples every decoding sequence from its own logits (its own sampler and seed),
 * scoring the sampled token when the job asked for logprobs, ends finished ones, and (4) runs the remaining
 * sequences' tokens in one rp_session_step.
 * A job's prefill, piece by piece on the slot's fresh session: echo scores prompt[0 .. n-1) in pieces of
 * RP_SERVE_SCORE_ROWS positions with every position's logits, then its generation starts from the last
 * prompt token; otherwise prompt[0 .. n) runs in pieces of prefill_chunk tokens from position 0, the last
 * piece (1 .. prefill_chunk tokens) through rp_generate_seq_start, which leaves the first logits. A prompt of
 * at most prefill_chunk tokens is thus one forward from an empty cache, as rp_generate on a fresh session.
 * The slot's session is made when its job's prefill starts, sized to prompt + max_tokens (rounded up to
 * SLOT_CTX_STEP, at most n_ctx), and freed when the job ends (its pages handed back to the system when
 * large), so idle slots hold no cache.
 * Invariants: only the scheduler thread touches the model, the slot sessions and rp_generate_seq objects;
 * the lock (mu) guards the queue, the counters and each job's state / cancel / pending text, and is never
 * held while the model runs; a job is done (state 3, its cv signalled) exactly once, after which the engine
 * never touches it again; a slot's job is prefilling while its seq is NULL, and k->fed prompt tokens (echo:
 * scored positions) are in its session's cache. */
#include "serve/serve_job.h"
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "serve/serve_score.h"

enum { JOB_NEW, JOB_QUEUED, JOB_ACTIVE, JOB_DONE };
enum { MAX_SLOTS = 16 };                /* rows of one rp_session_step in the engine's work session */
/* prompt tokens per scheduler step: bench_http's stall row (1500-token prompt among 7 streams, 2 cores) gave
 * the streams a largest gap of 0.37 / 0.40 / 0.64 s at 64 / 128 / 256 against 4.7 s whole, the long request
 * 1.6x / 0.9x / 0.7x its whole-prompt latency */
enum { DEFAULT_CHUNK = 128 };
enum { SLOT_CTX_STEP = 64 };            /* slot sessions' context, rounded up to this many positions */
#define TRIM_BYTES ((size_t)8 << 20)    /* a freed slot cache at least this large is returned to the system */

/* One decoding slot: the job it runs, that job's session (sized to it) and its sequence. */
typedef struct slot {
    rp_serve_engine *e;
    rp_session *s;                      /* NULL until the job's first prefill piece; freed when it ends */
    rp_serve_job *job;                  /* NULL: free */
    rp_generate_seq *seq;               /* NULL while the job's prompt is being run */
    size_t fed;                         /* prompt positions in the cache so far */
    unsigned long turn;                 /* prefill order: the smallest goes first (a ticket taken at
                                         * admission and again after each piece it runs: round robin) */
    rp_generate_opts go;                /* the job's options as the sequence reads them */
    int n_top;                          /* alternatives per scored token (-1: no generated-token scores) */
    size_t lp_cap;
} slot;

struct rp_serve_engine {
    rp_model *m;
    int n_ctx, n_vocab;
    rp_serve_engine_opts lim;
    pthread_mutex_t mu;
    pthread_cond_t work;                /* the scheduler waits here for jobs */
    rp_serve_job *head, *tail;          /* the queue */
    int waiting, active, closing, stopping;
    unsigned long tickets;              /* the slots' turns are drawn from here (scheduler thread only) */
    int chunk;                          /* prompt tokens per step; 0: unlimited (each prompt whole) */
    size_t kv_per_pos;                  /* KV cache bytes per position */
    size_t kv_pos;                      /* positions of the slot sessions held now (under mu) */
    rp_serve_engine_stats stats;
    slot slots[MAX_SLOTS];
    rp_session *work_s;
    rp_session *rows[MAX_SLOTS];
    int32_t toks[MAX_SLOTS];
    int row_slot[MAX_SLOTS];
    float *logits;                      /* [MAX_SLOTS, V] */
    pthread_t thr;
    int thr_started;
};

static void *scheduler(void *arg);

/* Create the engine and start its scheduler. */
rp_status rp_serve_engine_new(rp_model *m, const rp_serve_engine_opts *o, rp_serve_engine **out) {
    *out = NULL;
    rp_serve_engine *e = calloc(1, sizeof *e);
    if (!e) return rp_fail(RP_ERR_NOMEM, "serve: out of memory");
    e->m = m;
    e->lim = o ? *o : (rp_serve_engine_opts){0};
    if (e->lim.n_slots <= 0) e->lim.n_slots = 8;
    if (e->lim.n_slots > MAX_SLOTS) {
        int n = e->lim.n_slots;
        free(e);
        return rp_fail(RP_ERR_RANGE, "serve: %d slots asked for; at most %d sequences are decoded together", n, MAX_SLOTS);
    }
    e->lim.n_queue = e->lim.n_queue == 0 ? 64 : e->lim.n_queue < 0 ? 0 : e->lim.n_queue;
    e->lim.prefill_chunk = e->lim.prefill_chunk == 0 ? DEFAULT_CHUNK : e->lim.prefill_chunk < 0 ? -1 : e->lim.prefill_chunk;
    e->chunk = e->lim.prefill_chunk < 0 ? 0 : e->lim.prefill_chunk;
    const rp_llama_config *cfg = rp_model_config(m);
    e->kv_per_pos = 2 * sizeof(float) * (size_t)cfg->n_layer * (size_t)cfg->n_head_kv * (size_t)cfg->head_dim;
    int model_ctx = (int)rp_model_config(m)->context_len;
    e->n_ctx = e->lim.n_ctx > 0 ? e->lim.n_ctx : model_ctx < 2048 ? model_ctx : 2048;
    e->lim.n_ctx = e->n_ctx;
    e->n_vocab = rp_model_config(m)->vocab;
    e->stats.n_slots = e->lim.n_slots;
    e->stats.n_queue = e->lim.n_queue;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->work, NULL);
    e->logits = malloc((size_t)MAX_SLOTS * (size_t)e->n_vocab * sizeof *e->logits);
    rp_status st = e->logits ? RP_OK : rp_fail(RP_ERR_NOMEM, "serve: out of memory");
    if (st == RP_OK) st = rp_session_new(m, MAX_SLOTS, MAX_SLOTS, MAX_SLOTS, &e->work_s);
    /* a session of the full context once, so a context the machine cannot hold fails at start, not at a request */
    rp_session *probe = NULL;
    if (st == RP_OK) st = rp_session_new(m, e->n_ctx, 512, RP_SERVE_SCORE_ROWS, &probe);
    rp_session_free(probe);
    for (int k = 0; k < MAX_SLOTS; k++) e->slots[k].e = e;
    if (st == RP_OK && pthread_create(&e->thr, NULL, scheduler, e) != 0) st = rp_fail(RP_ERR_NOMEM, "serve: cannot start the scheduler thread");
    if (st != RP_OK) { rp_serve_engine_free(e); return st; }
    e->thr_started = 1;
    *out = e;
    return RP_OK;
}

/* Stop the scheduler, free the engine's sessions and the engine. */
void rp_serve_engine_free(rp_serve_engine *e) {
    if (!e) return;
    rp_serve_engine_close(e);
    pthread_mutex_lock(&e->mu);
    e->stopping = 1;
    pthread_cond_broadcast(&e->work);
    pthread_mutex_unlock(&e->mu);
    if (e->thr_started) pthread_join(e->thr, NULL);
    for (int k = 0; k < MAX_SLOTS; k++) rp_session_free(e->slots[k].s);
    rp_session_free(e->work_s);
    free(e->logits);
    pthread_cond_destroy(&e->work);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

/* The slots' context length. */
int rp_serve_engine_n_ctx(const rp_serve_engine *e) { return e->n_ctx; }

/* The limits in force. */
rp_serve_engine_opts rp_serve_engine_limits(const rp_serve_engine *e) { return e->lim; }

/* The counters, read under the lock. */
rp_serve_engine_stats rp_serve_engine_stats_now(rp_serve_engine *e) {
    pthread_mutex_lock(&e->mu);
    rp_serve_engine_stats s = e->stats;
    s.active = e->active;
    s.waiting = e->waiting;
    s.kv_mb = (double)(e->kv_pos * e->kv_per_pos) / (1 << 20);
    pthread_mutex_unlock(&e->mu);
    return s;
}

/* Check the job's prompt and length against the context and the vocabulary. */
rp_status rp_serve_engine_check(const rp_serve_engine *e, const rp_serve_job *j, int *max_tokens_room) {
    int n_ctx = e->n_ctx;
    if (j->n_prompt == 0) return rp_fail(RP_ERR_RANGE, "the prompt is empty (it needs at least one token)");
    for (size_t i = 0; i < j->n_prompt; i++)
        if (j->prompt[i] < 0 || j->prompt[i] >= e->n_vocab)
            return rp_fail(RP_ERR_RANGE, "token id %ld at prompt position %zu is not in the vocabulary [0, %d)",
                           (long)j->prompt[i], i, e->n_vocab);
    if ((int64_t)j->n_prompt > n_ctx || ((int64_t)j->n_prompt == n_ctx && j->max_tokens > 0))
        return rp_fail(RP_ERR_RANGE, "the prompt has %zu tokens; this server's context length is %d tokens", j->n_prompt, n_ctx);
    int room = n_ctx - (int)j->n_prompt;
    if (max_tokens_room) *max_tokens_room = room;
    if (j->max_tokens > room)
        return rp_fail(RP_ERR_RANGE, "max_tokens %d plus the prompt's %zu tokens exceed this server's context length of %d "
                       "tokens (at most %d for this prompt)", j->max_tokens, j->n_prompt, n_ctx, room);
    return RP_OK;
}

/* Mark j done and wake its waiter (lock held). */
static void done_locked(rp_serve_engine *e, rp_serve_job *j) {
    j->state = JOB_DONE;
    e->stats.done++;
    if (j->cancel) e->stats.cancelled++;
    pthread_cond_broadcast(&j->cv);
}

/* Queue n jobs, all or none. */
rp_serve_admit rp_serve_engine_submit(rp_serve_engine *e, rp_serve_job *jobs, size_t n) {
    pthread_mutex_lock(&e->mu);
    rp_serve_admit a = RP_SERVE_ADMITTED;
    int busy = e->active + e->waiting;
    if (e->closing) a = RP_SERVE_CLOSED;
    else if (busy > 0 && (size_t)busy + n > (size_t)e->lim.n_slots + (size_t)e->lim.n_queue) a = RP_SERVE_FULL;
    if (a != RP_SERVE_ADMITTED) {
        e->stats.refused++;
        pthread_mutex_unlock(&e->mu);
        return a;
    }
    for (size_t i = 0; i < n; i++) {
        rp_serve_job *j = &jobs[i];
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&j->cv, &ca);
        pthread_condattr_destroy(&ca);
        j->state = JOB_QUEUED;
        j->st = RP_OK;
        j->closed = RP_SERVE_ADMITTED;
        j->next = NULL;
        if (e->tail) e->tail->next = j; else e->head = j;
        e->tail = j;
        e->waiting++;
    }
    pthread_cond_signal(&e->work);
    pthread_mutex_unlock(&e->mu);
    return a;
}

/* Wait for j's text or its end. */
int rp_serve_engine_wait(rp_serve_engine *e, rp_serve_job *j, rp_buf *text, double timeout_s) {
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    if (timeout_s > 0) {
        double t = (double)dl.tv_sec + dl.tv_nsec * 1e-9 + timeout_s;
        dl.tv_sec = (time_t)t;
        dl.tv_nsec = (long)((t - floor(t)) * 1e9);
    }
    pthread_mutex_lock(&e->mu);
    int more = 0;
    for (;;) {
        if (text && j->pending.len) {
            rp_buf_append(text, j->pending.data, j->pending.len);
            rp_buf_clear(&j->pending);
            more = j->state != JOB_DONE;
            break;
        }
        if (j->state == JOB_DONE) break;
        if (timeout_s > 0 && text) {
            if (pthread_cond_timedwait(&j->cv, &e->mu, &dl) == ETIMEDOUT) { more = 1; break; }
        } else {
            pthread_cond_wait(&j->cv, &e->mu);
        }
    }
    pthread_mutex_unlock(&e->mu);
    return more;
}

/* Cancel jobs: queued ones leave the queue now; active ones stop before their next token. */
void rp_serve_engine_cancel(rp_serve_engine *e, rp_serve_job *jobs, size_t n) {
    pthread_mutex_lock(&e->mu);
    for (size_t i = 0; i < n; i++) {
        rp_serve_job *j = &jobs[i];
        if (j->state == JOB_DONE || j->state == JOB_NEW) continue;
        __atomic_store_n(&j->cancel, 1, __ATOMIC_RELAXED);
        if (j->state != JOB_QUEUED) continue;
        for (rp_serve_job **p = &e->head, *prev = NULL; *p; prev = *p, p = &(*p)->next)
            if (*p == j) { *p = j->next; if (e->tail == j) e->tail = prev; break; }
        e->waiting--;
        done_locked(e, j);
    }
    pthread_mutex_unlock(&e->mu);
}

/* Refuse new jobs; end queued ones now and active ones at their next token. */
void rp_serve_engine_close(rp_serve_engine *e) {
    pthread_mutex_lock(&e->mu);
    e->closing = 1;
    for (rp_serve_job *j = e->head, *nx; j; j = nx) {
        nx = j->next;
        j->closed = RP_SERVE_CLOSED;
        done_locked(e, j);
    }
    e->head = e->tail = NULL;
    e->waiting = 0;
    for (int k = 0; k < MAX_SLOTS; k++)
        if (e->slots[k].job) { __atomic_store_n(&e->slots[k].job->cancel, 1, __ATOMIC_RELAXED); e->slots[k].job->closed = RP_SERVE_CLOSED; }
    pthread_cond_broadcast(&e->work);
    pthread_mutex_unlock(&e->mu);
}

/* Submit and wait for all. */
rp_serve_admit rp_serve_engine_run_many(rp_serve_engine *e, rp_serve_job *jobs, size_t n) {
    rp_serve_admit a = rp_serve_engine_submit(e, jobs, n);
    if (a != RP_SERVE_ADMITTED) return a;
    for (size_t i = 0; i < n; i++) rp_serve_engine_wait(e, &jobs[i], NULL, 0);
    return a;
}

/* Free a job's results and engine state. */
void rp_serve_job_free(rp_serve_job *j) {
    rp_generate_result_free(&j->out);
    rp_buf_free(&j->pending);
    if (j->state != JOB_NEW) pthread_cond_destroy(&j->cv);
    j->state = JOB_NEW;
    free(j->lp);
    j->lp = NULL;
    j->n_lp = 0;
}

/* ---- the scheduler thread ---- */

/* rp_generate_opts.on_text of a streaming job: hand the text to the waiter; stop when it went away. */
static int on_text(void *arg, const char *text, size_t n) {
    slot *k = arg;
    rp_serve_engine *e = k->e;
    pthread_mutex_lock(&e->mu);
    rp_status st = rp_buf_append(&k->job->pending, text, n);
    int stop = k->job->cancel || st != RP_OK;
    pthread_cond_broadcast(&k->job->cv);
    pthread_mutex_unlock(&e->mu);
    return stop;
}

/* End slot k's job: its result, usage counts, status; then free the slot and its session. Runs without the lock. */
static void slot_end(rp_serve_engine *e, slot *k, rp_status st) {
    rp_serve_job *j = k->job;
    rp_generate_seq_end(k->seq, st);                      /* may flush streamed text (takes the lock) */
    k->seq = NULL;
    const char *why = j->out.stop_reason;
    if (why) j->finish = !strcmp(why, "max_tokens") || !strcmp(why, "context") ? "length" : "stop";
    j->n_completion = j->out.tokens.n + (j->out.eog_token >= 0);
    if (st != RP_OK) {
        j->st = st;
        snprintf(j->error, sizeof j->error, "%s", rp_errmsg());
    }
    size_t held = k->s ? (size_t)rp_session_n_ctx(k->s) : 0;
    rp_session_free(k->s);
    k->s = NULL;
#ifdef __GLIBC__
    /* a freed cache below glibc's mmap threshold stays in the heap; hand its pages back to the system */
    if (held * e->kv_per_pos >= TRIM_BYTES) malloc_trim(0);
#endif
    k->fed = 0;
    pthread_mutex_lock(&e->mu);
    e->kv_pos -= held;
    k->job = NULL;
    e->active--;
    done_locked(e, j);
    pthread_mutex_unlock(&e->mu);
}

/* Start slot k's job: its session, sized to prompt + max_tokens, and its log-probability array. */
static rp_status slot_open(rp_serve_engine *e, slot *k) {
    rp_serve_job *j = k->job;
    size_t need = j->n_prompt + (size_t)(j->max_tokens > 0 ? j->max_tokens : 0);
    need = (need + SLOT_CTX_STEP - 1) / SLOT_CTX_STEP * SLOT_CTX_STEP;
    if (need > (size_t)e->n_ctx) need = (size_t)e->n_ctx;
    int n_batch = e->chunk > RP_SERVE_SCORE_ROWS ? e->chunk : e->chunk > 0 ? RP_SERVE_SCORE_ROWS : 512;
    RP_TRY(rp_session_new(e->m, (int)need, n_batch, j->echo ? RP_SERVE_SCORE_ROWS : 1, &k->s));
    pthread_mutex_lock(&e->mu);
    e->kv_pos += need;
    pthread_mutex_unlock(&e->mu);
    k->fed = 0;
    int n_top = j->logprobs > RP_SERVE_TOP_MAX ? RP_SERVE_TOP_MAX : j->logprobs;
    k->n_top = j->logprobs >= 0 && j->max_tokens > 0 ? n_top : -1;
    size_t n_echo = j->echo ? j->n_prompt : 0;
    k->lp_cap = n_echo + (k->n_top >= 0 ? (size_t)j->max_tokens : 0);
    if (k->lp_cap && !(j->lp = calloc(k->lp_cap, sizeof *j->lp))) return rp_fail(RP_ERR_NOMEM, "serve: out of memory");
    if (j->echo) {
        j->lp[0] = (rp_serve_tokenlp){ .id = j->prompt[0], .lp = NAN };
        j->n_lp = j->n_prompt;
    }
    j->finish = "length";
    return RP_OK;
}

/* Tokens slot k's next prefill piece runs (0: none left, an echo-only job is scored). */
static size_t piece_len(const rp_serve_engine *e, const slot *k) {
    const rp_serve_job *j = k->job;
    size_t n = j->n_prompt;
    if (j->echo && k->fed + 1 < n) return n - 1 - k->fed < RP_SERVE_SCORE_ROWS ? n - 1 - k->fed : RP_SERVE_SCORE_ROWS;
    if (j->max_tokens == 0) return 0;
    size_t left = n - k->fed;
    return e->chunk > 0 && left > (size_t)e->chunk ? (size_t)e->chunk : left;
}

/* Run slot k's next prefill piece (its session made first): *ran tokens; *done when its prefill is over
 * (its sequence started, or an echo-only job scored). */
static rp_status prefill_piece(rp_serve_engine *e, slot *k, size_t *ran, int *done) {
    rp_serve_job *j = k->job;
    *ran = 0;
    *done = 0;
    if (!k->s) RP_TRY(slot_open(e, k));
    size_t T = piece_len(e, k), n = j->n_prompt;
    if (T == 0) { *done = 1; return RP_OK; }
    if (j->echo && k->fed + 1 < n) {
        int n_top = j->logprobs > RP_SERVE_TOP_MAX ? RP_SERVE_TOP_MAX : j->logprobs;
        RP_TRY(rp_serve_score_piece(k->s, j->prompt, n, k->fed, T, n_top < 0 ? 0 : n_top, j->lp + 1));
    } else if (k->fed + T < n) {
        RP_TRY(rp_session_forward(k->s, j->prompt + k->fed, (int64_t)T, RP_LOGITS_NONE, NULL, NULL));
    } else {
        /* the prompt's last piece: the sequence starts on it and leaves the first logits */
        k->go = j->gen;
        k->go.max_tokens = j->max_tokens;
        k->go.on_text = j->stream ? on_text : NULL;
        k->go.arg = k;
        RP_TRY(rp_generate_seq_start(k->s, j->prompt + k->fed, T, &k->go, &j->out, &k->seq));
        *done = 1;
    }
    k->fed += T;
    *ran = T;
    if (j->max_tokens == 0 && k->fed + 1 >= n) *done = 1;
    return RP_OK;
}

/* Run prefill pieces of the jobs still ingesting their prompt in turn (round robin: a short prompt arriving
 * during a long one's prefill waits for one piece of it, not all), up to the engine's chunk of tokens in all
 * (at least one piece; no limit when chunk is 0); jobs that fail, finish scoring (echo only)
 * or were cancelled (checked before each piece) end here. Returns the prompt tokens run. */
static size_t prefill_round(rp_serve_engine *e) {
    slot *queue[MAX_SLOTS];
    int n = 0;
    for (int i = 0; i < e->lim.n_slots; i++) {
        slot *k = &e->slots[i];
        if (!k->job || k->seq) continue;
        if (__atomic_load_n(&k->job->cancel, __ATOMIC_RELAXED)) {       /* its client went away: end it now */
            k->job->out.stop_reason = "callback";
            slot_end(e, k, RP_OK);
            continue;
        }
        int p = n++;
        while (p > 0 && queue[p - 1]->turn > k->turn) { queue[p] = queue[p - 1]; p--; }
        queue[p] = k;
    }
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        slot *k = queue[i];
        for (;;) {
            if (__atomic_load_n(&k->job->cancel, __ATOMIC_RELAXED)) {
                k->job->out.stop_reason = "callback";
                slot_end(e, k, RP_OK);
                break;
            }
            size_t want = piece_len(e, k);
            if (e->chunk > 0 && used > 0 && used + want > (size_t)e->chunk) return used;
            size_t ran;
            int done;
            rp_status st = prefill_piece(e, k, &ran, &done);
            used += ran;
            k->turn = e->tickets++;                                   /* to the back of the line */
            if (st != RP_OK) { slot_end(e, k, st); break; }
            if (done) {
                if (!k->seq) slot_end(e, k, RP_OK);
                break;
            }
        }
    }
    return used;
}

/* Sample slot k's next token (scored when asked): 0 with *t to run, 1 when its job is finished. */
static int slot_sample(slot *k, int32_t *t, rp_status *st) {
    rp_serve_job *j = k->job;
    if (__atomic_load_n(&j->cancel, __ATOMIC_RELAXED)) { j->out.stop_reason = "callback"; return 1; }
    size_t n_before = j->out.tokens.n;
    int had_eog = j->out.eog_token >= 0;
    int fin = rp_generate_seq_next(k->seq, t, st);
    int32_t took = -1;
    if (j->out.tokens.n > n_before) took = j->out.tokens.ids[j->out.tokens.n - 1];
    else if (!had_eog && j->out.eog_token >= 0) took = j->out.eog_token;
    if (took >= 0 && k->n_top >= 0 && j->n_lp < k->lp_cap)
        rp_serve_score_row(rp_generate_seq_logits(k->seq), k->e->n_vocab, took, k->n_top, &j->lp[j->n_lp++]);
    return fin || *st != RP_OK;
}

/* Admit queued jobs into free slots (lock held); 1 when there is work, 0 when the thread should stop. */
static int admit_locked(rp_serve_engine *e) {
    for (;;) {
        for (int k = 0; k < e->lim.n_slots && e->head; k++) {
            if (e->slots[k].job) continue;
            rp_serve_job *j = e->head;
            e->head = j->next;
            if (!e->head) e->tail = NULL;
            e->waiting--;
            j->state = JOB_ACTIVE;
            e->slots[k].job = j;
            e->slots[k].turn = e->tickets++;
            e->active++;
        }
        if (e->active > 0) return 1;
        if (e->stopping) return 0;
        pthread_cond_wait(&e->work, &e->mu);
    }
}

/* The scheduler: admit, prefill a chunk, sample, step; until the engine stops. */
static void *scheduler(void *arg) {
    rp_serve_engine *e = arg;
    const size_t V = (size_t)e->n_vocab;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        int go = admit_locked(e);
        pthread_mutex_unlock(&e->mu);
        if (!go) break;
        size_t fed = prefill_round(e);
        int nr = 0, prefilling = 0;
        for (int i = 0; i < e->lim.n_slots; i++) {
            slot *k = &e->slots[i];
            if (!k->job) continue;
            if (!k->seq) { prefilling++; continue; }
            rp_status st = RP_OK;
            int32_t t;
            if (slot_sample(k, &t, &st)) { slot_end(e, k, st); continue; }
            e->rows[nr] = k->s;
            e->row_slot[nr] = i;
            e->toks[nr++] = t;
        }
        rp_status st = nr ? rp_session_step(e->work_s, e->rows, e->toks, nr, e->logits) : RP_OK;
        pthread_mutex_lock(&e->mu);
        e->stats.steps += nr > 0;
        e->stats.step_rows += (unsigned long)nr;
        e->stats.prefill_tokens += fed;
        e->stats.prefilling = prefilling;
        pthread_mutex_unlock(&e->mu);
        for (int r = 0; r < nr; r++) {
            slot *k = &e->slots[e->row_slot[r]];
            if (st == RP_OK) rp_generate_seq_set_logits(k->seq, e->logits + (size_t)r * V);
            else slot_end(e, k, st);
        }
    }
    return NULL;
}
