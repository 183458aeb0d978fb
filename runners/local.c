/* local.c: the local runner: a pool of at most `jobs` worker processes, each one `repro run` of one point
 * (its stdout discarded, its stderr kept in DIR/point-<idx>.log). A failed point does not stop the others.
 * SIGINT/SIGTERM stop the sweep cleanly: workers get one SIGTERM (they run in their own process groups,
 * so a terminal's Ctrl-C reaches only the sweep, and each worker sees exactly one signal, ending its run
 * 'killed' with everything logged so far), points never started are marked killed.
 * A worker that dies without ending its run (SIGKILL, a crash) has that run marked killed here. */
#include "runners/runner.h"
#include "db/sweep.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;
static void on_stop(int sig) { (void)sig; stop_requested = 1; }

typedef struct worker { pid_t pid; int64_t idx; } worker;

/* Start one worker for point p; returns its pid or -1. */
static pid_t spawn(const rp_plan *plan, const rp_plan_point *p) {
    char log[4096];
    snprintf(log, sizeof log, "%s/point-%lld.log", plan->dir, (long long)p->idx);
    size_t na = 0;
    while (p->args[na]) na++;
    char **av = calloc(na + 5, sizeof *av);
    if (!av) return -1;
    size_t k = 0;
    av[k++] = "repro"; av[k++] = "run";
    for (size_t i = 0; i < na; i++) av[k++] = p->args[i];
    av[k++] = "--db"; av[k++] = (char *)plan->db_path;
    av[k] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        struct sigaction dfl = { .sa_handler = SIG_DFL };
        sigaction(SIGINT, &dfl, NULL);
        sigaction(SIGTERM, &dfl, NULL);
        char v[32];
        snprintf(v, sizeof v, "%lld", (long long)plan->sweep_id);
        setenv("REPRO_SWEEP_ID", v, 1);
        snprintf(v, sizeof v, "%lld", (long long)p->idx);
        setenv("REPRO_SWEEP_POINT", v, 1);
        int nul = open("/dev/null", O_WRONLY), lf = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (nul >= 0) dup2(nul, 1);
        if (lf >= 0) dup2(lf, 2);
        if (plan->root && chdir(plan->root) != 0) _exit(127);
        execv(plan->exe, av);
        _exit(127);
    }
    free(av);
    return pid;
}

/* The last line of a worker's log that is not part of a traceback (why it failed), into out. */
static void last_line(const rp_plan *plan, int64_t idx, char *out, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/point-%lld.log", plan->dir, (long long)idx);
    out[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        size_t l = strlen(line);
        while (l && (line[l - 1] == '\n' || line[l - 1] == '\r')) line[--l] = 0;
        if (l && line[0] != ' ' && line[0] != '\t' && strncmp(line, "stack traceback:", 16)) snprintf(out, n, "%s", line);
    }
    fclose(f);
}

rp_status rp_runner_local(rp_db *db, const rp_plan *plan, int jobs) {
    if (jobs < 1) jobs = 1;
    worker *w = calloc((size_t)jobs, sizeof *w);
    if (!w) return rp_fail(RP_ERR_NOMEM, "out of memory starting the worker pool");
    struct sigaction sa = { .sa_handler = on_stop }, old_int, old_term;   /* no SA_RESTART: wait() returns */
    sigemptyset(&sa.sa_mask);
    stop_requested = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    rp_sweep_progress pr;
    rp_sweep_progress_start(&pr, plan);
    size_t next = 0;
    int running = 0, forwarded = 0;
    rp_status st = RP_OK;
    rp_sweep_progress_show(&pr);
    while ((next < plan->n && !stop_requested) || running > 0) {
        if (stop_requested && !forwarded) {
            for (int i = 0; i < jobs; i++) if (w[i].pid > 0) kill(w[i].pid, SIGTERM);
            forwarded = 1;
        }
        if (next < plan->n && !stop_requested && running < jobs) {
            int slot = 0;
            while (w[slot].pid > 0) slot++;
            pid_t pid = spawn(plan, &plan->points[next]);
            if (pid < 0) { st = rp_fail(RP_ERR_IO, "starting a worker: %s", strerror(errno)); break; }
            w[slot] = (worker){ pid, plan->points[next].idx };
            next++; running++;
            pr.running = (size_t)running;
            rp_sweep_progress_show(&pr);
            continue;
        }
        int ws;
        pid_t pid = waitpid(-1, &ws, 0);
        if (pid < 0) { if (errno == EINTR) continue; break; }
        int slot = -1;
        for (int i = 0; i < jobs; i++) if (w[i].pid == pid) slot = i;
        if (slot < 0) continue;
        int64_t idx = w[slot].idx;
        w[slot].pid = 0;
        running--;
        pr.running = (size_t)running;
        pr.done++;
        if (WIFSIGNALED(ws)) {
            char why[96];
            snprintf(why, sizeof why, "worker process %d killed by signal %d", (int)pid, WTERMSIG(ws));
            if (rp_db_sweep_reap(db, plan->sweep_id, idx, pid, why) != RP_OK) fprintf(stderr, "\nrepro sweep: %s\n", rp_errmsg());
            pr.failed++;
            fprintf(stderr, "%srepro sweep: point %lld: %s\n", pr.tty ? "\r\033[K" : "", (long long)idx, why);
        } else if (WEXITSTATUS(ws) != 0) {
            char why[512];
            last_line(plan, idx, why, sizeof why);
            pr.failed++;
            fprintf(stderr, "%srepro sweep: point %lld %s (exit %d): %s [log: %s/point-%lld.log]\n", pr.tty ? "\r\033[K" : "",
                    (long long)idx, WEXITSTATUS(ws) == 130 ? "killed" : "failed", WEXITSTATUS(ws), why, plan->dir, (long long)idx);
        }
        rp_sweep_progress_show(&pr);
    }
    rp_sweep_progress_end(&pr);
    for (size_t i = next; i < plan->n; i++) rp_db_sweep_point_given_up(db, plan->sweep_id, plan->points[i].idx);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    free(w);
    if (st == RP_OK && stop_requested) st = rp_fail(RP_ERR_INTERRUPTED, "sweep %lld interrupted: %zu of %zu points never started",
                                                    (long long)plan->sweep_id, plan->n - next, plan->n);
    return st;
}
