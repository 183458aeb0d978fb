/* plot.c: figure spec (JSON) -> gnuplot data file + script -> PNG + SVG. The spec is validated before any
 * file is written (types, equal lengths, rectangular matrices); strings go into the script single-quoted
 * with quotes doubled and control characters blanked, and every terminal is noenhanced, so no label can
 * inject gnuplot commands or markup. gnuplot runs in out_dir on relative paths, with a time limit. */
#include "plot/plot.h"
#include "util/json.h"
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PLOT_TIME_LIMIT_S 60

typedef enum { FIG_LINES, FIG_BARS, FIG_HEATMAP, FIG_SCATTER, FIG_ERRORBARS } fig_type;
static const char *const type_names[] = { "lines", "bars", "heatmap", "scatter", "errorbars", NULL };

void rp_plot_file_base(const char *name, char *out, size_t n) {
    size_t i = 0;
    for (; name[i] && i + 1 < n; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                 (c == '.' && i > 0);
        out[i] = ok ? c : '_';
    }
    if (n) out[i] = 0;
}

/* A number of the spec: a JSON number, or null / "nan" / "inf" / "-inf"; returns 0 for anything else. */
static int spec_num(const rp_json *j, double *v) {
    switch (rp_json_typeof(j)) {
    case RP_JSON_NUMBER: *v = rp_json_num(j, NAN); return 1;
    case RP_JSON_NULL: *v = NAN; return 1;
    case RP_JSON_STRING: {
        const char *s = rp_json_str(j, "");
        if (!strcmp(s, "nan")) { *v = NAN; return 1; }
        if (!strcmp(s, "inf")) { *v = INFINITY; return 1; }
        if (!strcmp(s, "-inf")) { *v = -INFINITY; return 1; }
        return 0;
    }
    default: return 0;
    }
}

/* Check that arr (may be NULL when optional) is an array of numbers of length want (0: any, non-empty). */
static rp_status check_nums(const char *fig, const char *field, const rp_json *arr, size_t want, size_t *len) {
    if (rp_json_typeof(arr) != RP_JSON_ARRAY)
        return rp_fail(RP_ERR_INVAL, "figure %s: %s must be an array of numbers", fig, field);
    size_t n = rp_json_len(arr);
    if (want && n != want)
        return rp_fail(RP_ERR_INVAL, "figure %s: %s has %zu values, expected %zu", fig, field, n, want);
    for (size_t i = 0; i < n; i++) {
        double v;
        if (!spec_num(rp_json_at(arr, i), &v))
            return rp_fail(RP_ERR_INVAL, "figure %s: %s[%zu] is not a number", fig, field, i);
    }
    if (len) *len = n;
    return RP_OK;
}

/* Append a number for a gnuplot data file (NaN for anything not finite: a gap). */
static rp_status dat_num(rp_buf *b, const rp_json *j) {
    double v = NAN;
    spec_num(j, &v);
    return isfinite(v) ? rp_buf_printf(b, "%.17g", v) : rp_buf_puts(b, "NaN");
}

/* Append s as a gnuplot single-quoted string. */
static rp_status gp_str(rp_buf *b, const char *s) {
    RP_TRY(rp_buf_puts(b, "'"));
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\'') RP_TRY(rp_buf_puts(b, "''"));
        else if (c < 0x20 || c == 0x7f) RP_TRY(rp_buf_puts(b, " "));
        else RP_TRY(rp_buf_append(b, s, 1));
    }
    return rp_buf_puts(b, "'");
}

/* Append a label for a data file: double-quoted, with inner double quotes and control characters replaced. */
static rp_status dat_str(rp_buf *b, const char *s) {
    RP_TRY(rp_buf_puts(b, "\""));
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        RP_TRY(rp_buf_append(b, c == '"' ? "'" : (c < 0x20 || c == 0x7f) ? " " : s, 1));
    }
    return rp_buf_puts(b, "\"");
}

/* `set KEY 'value'` when the spec has a string field. */
static rp_status gp_set_text(rp_buf *gp, const rp_json *spec, const char *field, const char *cmd) {
    const char *s = rp_json_str(rp_json_get(spec, field), NULL);
    if (!s) return RP_OK;
    RP_TRY(rp_buf_printf(gp, "set %s ", cmd));
    RP_TRY(gp_str(gp, s));
    return rp_buf_puts(gp, "\n");
}

/* Validate the series of a line-like or bar figure and write them to dat and the plot command to gp. */
static rp_status series_figure(const char *fig, const char *base, fig_type t, const rp_json *spec, rp_buf *dat, rp_buf *gp) {
    const rp_json *series = rp_json_get(spec, "series");
    if (rp_json_typeof(series) != RP_JSON_ARRAY || rp_json_len(series) == 0)
        return rp_fail(RP_ERR_INVAL, "figure %s: series must be a non-empty array of {label, x, y}", fig);
    size_t ns = rp_json_len(series), ncat = 0;
    const rp_json *cats = rp_json_get(spec, "categories");
    if (t == FIG_BARS && cats) {
        if (rp_json_typeof(cats) != RP_JSON_ARRAY) return rp_fail(RP_ERR_INVAL, "figure %s: categories must be an array", fig);
        ncat = rp_json_len(cats);
    }
    char field[96];
    for (size_t i = 0; i < ns; i++) {
        const rp_json *s = rp_json_at(series, i);
        if (rp_json_typeof(s) != RP_JSON_OBJECT) return rp_fail(RP_ERR_INVAL, "figure %s: series[%zu] must be an object", fig, i);
        size_t ny;
        snprintf(field, sizeof field, "series[%zu].y", i);
        RP_TRY(check_nums(fig, field, rp_json_get(s, "y"), t == FIG_BARS ? ncat : 0, &ny));
        if (t == FIG_BARS && !ncat) ncat = ny;
        if (t != FIG_BARS && rp_json_get(s, "x")) {
            snprintf(field, sizeof field, "series[%zu].x", i);
            RP_TRY(check_nums(fig, field, rp_json_get(s, "x"), ny, NULL));
        }
        if (t == FIG_ERRORBARS) {
            snprintf(field, sizeof field, "series[%zu].yerr", i);
            RP_TRY(check_nums(fig, field, rp_json_get(s, "yerr"), ny, NULL));
        }
        const rp_json *label = rp_json_get(s, "label");
        if (label && rp_json_typeof(label) != RP_JSON_STRING)
            return rp_fail(RP_ERR_INVAL, "figure %s: series[%zu].label must be a string", fig, i);
    }
    if (t == FIG_BARS) {
        /* One row per category: "label" y0 y1 ... */
        for (size_t r = 0; r < ncat; r++) {
            const char *c = cats ? rp_json_str(rp_json_at(cats, r), NULL) : NULL;
            char num[32];
            if (!c) {
                if (cats && rp_json_typeof(rp_json_at(cats, r)) == RP_JSON_NUMBER) snprintf(num, sizeof num, "%g", rp_json_num(rp_json_at(cats, r), 0));
                else snprintf(num, sizeof num, "%zu", r + 1);
                c = num;
            }
            RP_TRY(dat_str(dat, c));
            for (size_t i = 0; i < ns; i++) {
                RP_TRY(rp_buf_puts(dat, " "));
                RP_TRY(dat_num(dat, rp_json_at(rp_json_get(rp_json_at(series, i), "y"), r)));
            }
            RP_TRY(rp_buf_puts(dat, "\n"));
        }
        RP_TRY(rp_buf_puts(gp, "set style data histograms\nset style histogram clustered gap 1\n"
                               "set style fill solid 0.8 border -1\nset boxwidth 0.9\nset xtics rotate by -30\n"
                               "set yrange [*<0:0<*]\nplot "));
        for (size_t i = 0; i < ns; i++) {
            const char *label = rp_json_str(rp_json_get(rp_json_at(series, i), "label"), "");
            if (i) RP_TRY(rp_buf_puts(gp, ", "));
            RP_TRY(i ? rp_buf_printf(gp, "'' using %zu title ", i + 2) : rp_buf_printf(gp, "'%s.dat' using 2:xtic(1) title ", base));
            RP_TRY(gp_str(gp, label));
        }
        return rp_buf_puts(gp, "\n");
    }
    /* One data block per series (gnuplot `index i`): x y [yerr]. */
    RP_TRY(rp_buf_puts(gp, "plot "));
    for (size_t i = 0; i < ns; i++) {
        const rp_json *s = rp_json_at(series, i), *x = rp_json_get(s, "x"), *y = rp_json_get(s, "y"), *e = rp_json_get(s, "yerr");
        size_t n = rp_json_len(y);
        RP_TRY(rp_buf_printf(dat, "# series %zu\n", i));
        for (size_t k = 0; k < n; k++) {
            if (x) RP_TRY(dat_num(dat, rp_json_at(x, k)));
            else RP_TRY(rp_buf_printf(dat, "%zu", k + 1));
            RP_TRY(rp_buf_puts(dat, " "));
            RP_TRY(dat_num(dat, rp_json_at(y, k)));
            if (t == FIG_ERRORBARS) { RP_TRY(rp_buf_puts(dat, " ")); RP_TRY(dat_num(dat, rp_json_at(e, k))); }
            RP_TRY(rp_buf_puts(dat, "\n"));
        }
        RP_TRY(rp_buf_puts(dat, "\n\n"));
        const char *with = t == FIG_SCATTER ? "using 1:2 with points pt 7 ps 1.2"
                         : t == FIG_ERRORBARS ? "using 1:2:3 with yerrorlines pt 7"
                         : n <= 40 ? "using 1:2 with linespoints pt 7 ps 0.8" : "using 1:2 with lines";
        RP_TRY(i ? rp_buf_puts(gp, ", ''") : rp_buf_printf(gp, "'%s.dat'", base));
        RP_TRY(rp_buf_printf(gp, " index %zu %s lw 2 title ", i, with));
        RP_TRY(gp_str(gp, rp_json_str(rp_json_get(s, "label"), "")));
    }
    return rp_buf_puts(gp, "\n");
}

/* `set Xtics ('a' 0, 'b' 1, ...)` from an optional array of labels. */
static rp_status gp_ticks(const char *fig, rp_buf *gp, const rp_json *ticks, const char *axis, size_t want) {
    if (!ticks) return RP_OK;
    if (rp_json_typeof(ticks) != RP_JSON_ARRAY || rp_json_len(ticks) != want)
        return rp_fail(RP_ERR_INVAL, "figure %s: %sticks must be an array of %zu labels", fig, axis, want);
    RP_TRY(rp_buf_printf(gp, "set %stics (", axis));
    for (size_t i = 0; i < want; i++) {
        const rp_json *t = rp_json_at(ticks, i);
        char num[32];
        const char *s = rp_json_str(t, NULL);
        if (!s) { snprintf(num, sizeof num, "%g", rp_json_num(t, (double)i)); s = num; }
        if (i) RP_TRY(rp_buf_puts(gp, ", "));
        RP_TRY(gp_str(gp, s));
        RP_TRY(rp_buf_printf(gp, " %zu", i));
    }
    return rp_buf_puts(gp, ")\n");
}

/* Validate and write a heatmap: the matrix as rows of the data file, plotted `matrix with image`. */
static rp_status heatmap_figure(const char *fig, const char *base, const rp_json *spec, rp_buf *dat, rp_buf *gp) {
    const rp_json *m = rp_json_get(spec, "matrix");
    if (rp_json_typeof(m) != RP_JSON_ARRAY || rp_json_len(m) == 0)
        return rp_fail(RP_ERR_INVAL, "figure %s: matrix must be a non-empty array of rows", fig);
    size_t rows = rp_json_len(m), cols = 0;
    char field[64];
    for (size_t r = 0; r < rows; r++) {
        snprintf(field, sizeof field, "matrix[%zu]", r);
        RP_TRY(check_nums(fig, field, rp_json_at(m, r), cols, r ? NULL : &cols));
        if (!cols) return rp_fail(RP_ERR_INVAL, "figure %s: matrix[0] is empty", fig);
    }
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < cols; c++) {
            if (c) RP_TRY(rp_buf_puts(dat, " "));
            RP_TRY(dat_num(dat, rp_json_at(rp_json_at(m, r), c)));
        }
        RP_TRY(rp_buf_puts(dat, "\n"));
    }
    RP_TRY(gp_ticks(fig, gp, rp_json_get(spec, "xticks"), "x", cols));
    RP_TRY(gp_ticks(fig, gp, rp_json_get(spec, "yticks"), "y", rows));
    RP_TRY(rp_buf_printf(gp, "set xrange [-0.5:%zu.5]\nset yrange [-0.5:%zu.5]\nset view map\n"
                             "set palette rgbformulae 33,13,10\nplot '%s.dat' matrix with image notitle\n",
                         cols - 1, rows - 1, base));
    return RP_OK;
}

/* Run the gnuplot script in dir; RP_OK when it exited 0, else NOTFOUND / UNSUPPORTED with its stderr. */
static rp_status run_gnuplot(const char *dir, const char *script, const char *fig) {
    const char *bin = getenv("REPRO_GNUPLOT");
    if (!bin || !*bin) bin = "gnuplot";
    int pipefd[2];
    if (pipe(pipefd) != 0) return rp_fail(RP_ERR_IO, "figure %s: pipe: %s", fig, strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) { close(pipefd[0]); close(pipefd[1]); return rp_fail(RP_ERR_IO, "figure %s: fork: %s", fig, strerror(errno)); }
    if (pid == 0) {
        dup2(pipefd[1], 1);
        dup2(pipefd[1], 2);
        close(pipefd[0]); close(pipefd[1]);
        if (chdir(dir) != 0) _exit(126);
        alarm(PLOT_TIME_LIMIT_S);   /* survives exec: a hung gnuplot gets SIGALRM */
        execlp(bin, bin, script, (char *)NULL);
        _exit(127);
    }
    close(pipefd[1]);
    rp_buf out = { 0 };
    char tmp[4096];
    ssize_t n;
    while ((n = read(pipefd[0], tmp, sizeof tmp)) > 0 || (n < 0 && errno == EINTR))
        if (n > 0 && out.len < 8192) rp_buf_append(&out, tmp, (size_t)n);
    close(pipefd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    rp_status st = RP_OK;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        st = rp_fail(RP_ERR_NOTFOUND, "figure %s: gnuplot not found (%s): install gnuplot-nox; data and script kept in %s",
                     fig, bin, dir);
    else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char why[64];
        if (WIFSIGNALED(status)) snprintf(why, sizeof why, "killed by signal %d", WTERMSIG(status));
        else snprintf(why, sizeof why, "exit status %d", WEXITSTATUS(status));
        st = rp_fail(RP_ERR_UNSUPPORTED, "figure %s: gnuplot failed (%s) on %s/%s: %.1500s", fig, why, dir, script,
                     out.data ? out.data : "");
    }
    rp_buf_free(&out);
    return st;
}

/* Whether path is a non-empty regular file. */
static int nonempty(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0;
}

/* Append out_dir/base.ext as a JSON string to the files array (with a comma when not first). */
static rp_status add_file(rp_buf *files, const char *dir, const char *base, const char *ext) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s.%s", dir, base, ext);
    if (files->len > 1) RP_TRY(rp_buf_puts(files, ","));
    return rp_json_quote(files, p, strlen(p));
}

/* Build the data file and script text for a parsed spec. */
static rp_status build(const rp_json *spec, const char *fig, const char *base, rp_buf *dat, rp_buf *gp) {
    const char *type = rp_json_str(rp_json_get(spec, "type"), NULL);
    int t = -1;
    for (int i = 0; type && type_names[i]; i++) if (!strcmp(type, type_names[i])) t = i;
    if (t < 0) return rp_fail(RP_ERR_INVAL, "figure %s: type '%s' is not one of lines, bars, heatmap, scatter, errorbars",
                              fig, type ? type : "(missing)");
    double w = rp_json_num(rp_json_get(spec, "width"), 800), h = rp_json_num(rp_json_get(spec, "height"), 500);
    if (!(w >= 100 && w <= 8000 && h >= 100 && h <= 8000))
        return rp_fail(RP_ERR_INVAL, "figure %s: width/height %gx%g outside 100..8000 pixels", fig, w, h);
    RP_TRY(rp_buf_printf(gp, "# %s.gp: figure %s, written by repro; data in %s.dat. Redraw: gnuplot %s.gp\n",
                         base, fig, base, base));
    RP_TRY(rp_buf_printf(gp, "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
                             "  set terminal pngcairo noenhanced size %d,%d font 'Sans,10'\n"
                             "} else {\n  set terminal png noenhanced size %d,%d\n}\n"
                             "set output '%s.png'\nset grid\nset key outside right top\nset datafile missing 'NaN'\n",
                         (int)w, (int)h, (int)w, (int)h, base));
    RP_TRY(gp_set_text(gp, spec, "title", "title"));
    RP_TRY(gp_set_text(gp, spec, "xlabel", "xlabel"));
    RP_TRY(gp_set_text(gp, spec, "ylabel", "ylabel"));
    if (rp_json_bool(rp_json_get(spec, "logx"), 0)) RP_TRY(rp_buf_puts(gp, "set logscale x\n"));
    if (rp_json_bool(rp_json_get(spec, "logy"), 0)) RP_TRY(rp_buf_puts(gp, "set logscale y\n"));
    RP_TRY(rp_buf_printf(dat, "# %s.dat: data of figure %s (%s)\n", base, fig, type));
    if (t == FIG_HEATMAP) RP_TRY(heatmap_figure(fig, base, spec, dat, gp));
    else RP_TRY(series_figure(fig, base, (fig_type)t, spec, dat, gp));
    return rp_buf_printf(gp, "set terminal svg noenhanced size %d,%d font 'Sans,10' background rgb 'white'\n"
                             "set output '%s.svg'\nreplot\nunset output\n", (int)w, (int)h, base);
}

rp_status rp_plot_render(const char *spec_json, const char *out_dir, rp_buf *files_json, int *rendered) {
    *rendered = 0;
    if (!spec_json || !out_dir) return rp_fail(RP_ERR_INVAL, "rp_plot_render: NULL spec or folder");
    rp_json *spec = NULL;
    rp_status st = rp_json_parse(spec_json, strlen(spec_json), &spec);
    if (st != RP_OK) return rp_fail_ctx(RP_ERR_INVAL, "figure spec: ");
    const char *fig = rp_json_str(rp_json_get(spec, "name"), NULL);
    if (rp_json_typeof(spec) != RP_JSON_OBJECT || !fig || !*fig) {
        rp_json_free(spec);
        return rp_fail(RP_ERR_INVAL, "figure spec: needs an object with a non-empty string 'name'");
    }
    char base[256];
    rp_plot_file_base(fig, base, sizeof base);
    if (strlen(out_dir) + 1 + strlen(base) + sizeof ".png" > 4096) {   /* the size of every path below */
        st = rp_fail(RP_ERR_RANGE, "figure %s: output folder path too long (%zu bytes): %.80s...", fig, strlen(out_dir), out_dir);
        rp_json_free(spec);
        return st;
    }
    rp_buf dat = { 0 }, gp = { 0 };
    st = build(spec, fig, base, &dat, &gp);
    char path[4096];
    if (st == RP_OK) st = rp_mkdirs(out_dir);
    if (st == RP_OK) { snprintf(path, sizeof path, "%s/%s.dat", out_dir, base); st = rp_write_file(path, dat.data, dat.len); }
    if (st == RP_OK) { snprintf(path, sizeof path, "%s/%s.gp", out_dir, base); st = rp_write_file(path, gp.data, gp.len); }
    rp_buf_free(&dat);
    rp_buf_free(&gp);
    if (st == RP_OK) {
        char png[4096], svg[4096], script[300];
        snprintf(png, sizeof png, "%s/%s.png", out_dir, base);
        snprintf(svg, sizeof svg, "%s/%s.svg", out_dir, base);
        snprintf(script, sizeof script, "%s.gp", base);
        unlink(png);   /* so a stale image is never taken for a fresh one */
        unlink(svg);
        rp_status gst = run_gnuplot(out_dir, script, fig);
        if (gst == RP_OK && !(nonempty(png) && nonempty(svg)))
            gst = rp_fail(RP_ERR_UNSUPPORTED, "figure %s: gnuplot exited 0 but %s or %s is missing or empty", fig, png, svg);
        rp_buf_clear(files_json);
        rp_status fst = rp_buf_puts(files_json, "[");
        if (fst == RP_OK) fst = add_file(files_json, out_dir, base, "dat");
        if (fst == RP_OK) fst = add_file(files_json, out_dir, base, "gp");
        if (fst == RP_OK && gst == RP_OK) fst = add_file(files_json, out_dir, base, "png");
        if (fst == RP_OK && gst == RP_OK) fst = add_file(files_json, out_dir, base, "svg");
        if (fst == RP_OK) fst = rp_buf_puts(files_json, "]");
        *rendered = gst == RP_OK && fst == RP_OK;
        st = fst != RP_OK ? fst : gst;
    } else if (st != RP_ERR_INVAL) {
        rp_fail_ctx(st, "figure %s: writing into %s: ", fig, out_dir);
    }
    rp_json_free(spec);
    return st;
}
