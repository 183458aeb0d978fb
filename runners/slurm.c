/* slurm.c: the Slurm runner. It writes DIR/sweep.sbatch, an array job with one task per point (CPUs,
 * memory, GPUs and time from the experiment's declared resources or from flags), submits it with
 * `sbatch --parsable`, and follows it with `squeue`: each task that has left the queue has its own
 * registry DIR/task-<idx>.db (one SQLite writer per file: many writers over NFS are unsafe) folded into
 * the main registry by rp_db_merge_file. A task file that is half-written (its run still 'running') is
 * reported and left for `repro merge DIR`. SIGINT/SIGTERM cancel the job with `scancel` (tasks get
 * SIGTERM and end their runs 'killed'), wait for the queue to drain and merge what the tasks wrote.
 * The commands are looked up on PATH; the scheduler's final word per task comes from `sacct` when
 * accounting is on (it is optional: the registry, not sacct, decides what a point did). */
#include "runners/runner.h"
#include "db/sweep.h"
#include "util/buf.h"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;
static void on_stop(int sig) { (void)sig; stop_requested = 1; }

/* Append s single-quoted for sh. */
static void shq(rp_buf *b, const char *s) {
    rp_buf_puts(b, "'");
    for (; *s; s++) {
        if (*s == '\'') rp_buf_puts(b, "'\\''");
        else rp_buf_append(b, s, 1);
    }
    rp_buf_puts(b, "'");
}

/* Run a shell command, capturing stdout into out; returns its exit status (-1 when it could not run). */
static int capture(const char *cmd, rp_buf *out) {
    rp_buf_clear(out);
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) rp_buf_append(out, tmp, n);
    if (!out->data) rp_buf_append(out, "", 0);
    int st = pclose(f);
    return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* The array script: one case per array index, each exec'ing `repro run` of its point into its own file. */
static rp_status write_script(const rp_plan *plan, const rp_slurm_opts *o, const char *path) {
    rp_buf b = {0};
    rp_buf_printf(&b, "#!/bin/bash\n# repro sweep %lld: one array task per point; written by `repro sweep --runner slurm`.\n",
                  (long long)plan->sweep_id);
    rp_buf_printf(&b, "#SBATCH --job-name=repro-sweep-%lld\n", (long long)plan->sweep_id);
    if (o->max_parallel > 0) rp_buf_printf(&b, "#SBATCH --array=0-%zu%%%d\n", plan->n - 1, o->max_parallel);
    else rp_buf_printf(&b, "#SBATCH --array=0-%zu\n", plan->n - 1);
    rp_buf_printf(&b, "#SBATCH --cpus-per-task=%d\n#SBATCH --ntasks=1\n", o->cpus > 0 ? o->cpus : 1);
    if (o->memory && *o->memory) rp_buf_printf(&b, "#SBATCH --mem=%s\n", o->memory);
    if (o->gpus > 0) rp_buf_printf(&b, "#SBATCH --gres=gpu:%d\n", o->gpus);
    if (o->time_min > 0) rp_buf_printf(&b, "#SBATCH --time=%d\n", o->time_min);
    if (o->partition && *o->partition) rp_buf_printf(&b, "#SBATCH --partition=%s\n", o->partition);
    rp_buf_printf(&b, "#SBATCH --output=%s/task-%%a.log\n", plan->dir);
    rp_buf_puts(&b, "#SBATCH --chdir=");
    rp_buf_puts(&b, plan->root);
    rp_buf_printf(&b, "\nexport REPRO_SWEEP_ID=%lld\ncase \"$SLURM_ARRAY_TASK_ID\" in\n", (long long)plan->sweep_id);
    for (size_t i = 0; i < plan->n; i++) {
        const rp_plan_point *p = &plan->points[i];
        rp_buf_printf(&b, "%zu) export REPRO_SWEEP_POINT=%lld; exec ", i, (long long)p->idx);
        shq(&b, plan->exe);
        rp_buf_puts(&b, " run");
        for (char **a = p->args; *a; a++) { rp_buf_puts(&b, " "); shq(&b, *a); }
        rp_buf_printf(&b, " --db '%s/task-%lld/task-%lld.db' ;;\n", plan->dir, (long long)p->idx, (long long)p->idx);
    }
    rp_buf_puts(&b, "*) echo \"repro sweep: no point for array index $SLURM_ARRAY_TASK_ID\" >&2; exit 2 ;;\nesac\n");
    rp_status st = rp_write_file(path, b.data, b.len);
    rp_buf_free(&b);
    return st;
}

/* Array indices still in the queue (pending or running), as flags in inq[0..n); returns -1 if squeue failed. */
static int queued(const char *job, size_t n, char *inq) {
    rp_buf cmd = {0}, out = {0};
    rp_buf_printf(&cmd, "squeue -h -r -j %s -o %%K 2>/dev/null", job);
    int rc = capture(cmd.data, &out);
    memset(inq, 0, n);
    int count = 0;
    if (rc == 0) {
        for (char *line = out.data; line && *line;) {
            char *end;
            long k = strtol(line, &end, 10);
            if (end != line && k >= 0 && (size_t)k < n && !inq[k]) { inq[k] = 1; count++; }
            char *nl = strchr(line, '\n');
            line = nl ? nl + 1 : NULL;
        }
    }
    rp_buf_free(&cmd); rp_buf_free(&out);
    return rc == 0 ? count : -1;
}

/* Merge task i's registry; returns 1 when merged (or nothing left to merge), 0 when it must wait/was refused. */
static int merge_task(rp_db *db, const rp_plan *plan, size_t i, int final, size_t *failed) {
    char path[4096];
    snprintf(path, sizeof path, "%s/task-%lld/task-%lld.db", plan->dir, (long long)plan->points[i].idx, (long long)plan->points[i].idx);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (final) fprintf(stderr, "repro sweep: point %lld: its task wrote no registry (see %s/task-%zu.log)\n",
                           (long long)plan->points[i].idx, plan->dir, i);
        if (final) (*failed)++;
        return final;
    }
    rp_merge_result r;
    rp_status st = rp_db_merge_file(db, path, &r);
    if (st != RP_OK) {
        if (final) { fprintf(stderr, "repro sweep: %s\n", rp_errmsg()); (*failed)++; }
        return final;
    }
    return 1;
}

rp_status rp_runner_slurm(rp_db *db, const rp_plan *plan, const rp_slurm_opts *o) {
    if (!plan->n) return RP_OK;
    char script[4096];
    snprintf(script, sizeof script, "%s/sweep.sbatch", plan->dir);
    RP_TRY(write_script(plan, o, script));
    rp_buf cmd = {0}, out = {0};
    rp_buf_puts(&cmd, "sbatch --parsable ");
    shq(&cmd, script);
    int rc = capture(cmd.data, &out);
    char job[64] = "";
    sscanf(out.data ? out.data : "", "%63[0-9]", job);
    if (rc != 0 || !job[0]) {
        rp_status st = rp_fail(RP_ERR_IO, "sbatch %s failed (exit %d%s%s): is Slurm installed and sbatch on PATH?", script, rc,
                               out.len ? ", output: " : "", out.len ? out.data : "");
        rp_buf_free(&cmd); rp_buf_free(&out);
        return st;
    }
    rp_db_sweep_set_job(db, plan->sweep_id, job);
    fprintf(stderr, "repro sweep: submitted Slurm job %s (%zu tasks), script %s\n", job, plan->n, script);
    struct sigaction sa = { .sa_handler = on_stop }, old_int, old_term;
    sigemptyset(&sa.sa_mask);
    stop_requested = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    char *inq = calloc(plan->n, 1), *merged = calloc(plan->n, 1);
    rp_sweep_progress pr;
    rp_sweep_progress_start(&pr, plan);
    int cancelled = 0, empty_polls = 0;
    size_t failed = 0;
    double poll = o->poll_s > 0 ? o->poll_s : 2.0;
    for (;;) {
        if (stop_requested && !cancelled) {
            rp_buf_clear(&cmd);
            rp_buf_printf(&cmd, "scancel --signal=TERM --full %s >/dev/null 2>&1; scancel %s >/dev/null 2>&1", job, job);
            capture(cmd.data, &out);
            fprintf(stderr, "\nrepro sweep: interrupted: cancelled Slurm job %s; merging what its tasks wrote\n", job);
            cancelled = 1;
        }
        int nq = queued(job, plan->n, inq);
        if (nq < 0) memset(inq, 0, plan->n);   /* squeue no longer knows the job: every task has ended */
        size_t done = 0;
        for (size_t i = 0; i < plan->n; i++) {
            if (!inq[i] && !merged[i]) merged[i] = (char)merge_task(db, plan, i, 0, &failed);
            if (!inq[i]) done++;
        }
        pr.done = done; pr.running = (size_t)(nq > 0 ? nq : 0); pr.failed = failed;
        rp_sweep_progress_show(&pr);
        if (nq <= 0 && ++empty_polls >= 2) break;   /* twice empty: files of the last tasks are closed */
        if (nq > 0) empty_polls = 0;
        usleep((useconds_t)(poll * 1e6));
    }
    for (size_t i = 0; i < plan->n; i++) if (!merged[i]) merge_task(db, plan, i, 1, &failed);
    pr.failed = failed;
    rp_sweep_progress_show(&pr);
    rp_sweep_progress_end(&pr);
    /* The scheduler's word on each task, when accounting is on. */
    rp_buf_clear(&cmd);
    rp_buf_printf(&cmd, "sacct -n -P -X -j %s -o JobID,State,ExitCode 2>/dev/null", job);
    if (capture(cmd.data, &out) == 0 && out.len) {
        for (char *line = out.data; line && *line;) {
            char *nl = strchr(line, '\n');
            if (nl) *nl = 0;
            if (!strstr(line, "|COMPLETED|") && *line) fprintf(stderr, "repro sweep: sacct: %s\n", line);
            line = nl ? nl + 1 : NULL;
        }
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    free(inq); free(merged);
    rp_buf_free(&cmd); rp_buf_free(&out);
    if (stop_requested) return rp_fail(RP_ERR_INTERRUPTED, "sweep %lld interrupted: Slurm job %s cancelled", (long long)plan->sweep_id, job);
    return RP_OK;
}
