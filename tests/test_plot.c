/* test_plot.c: the gnuplot driver: every figure type renders to a PNG of the requested size (checked in
 * the PNG header) and an SVG; the data file holds the spec's numbers exactly (read back with strtod);
 * labels cannot inject gnuplot commands; bad specs are refused naming the field; a missing or failing
 * gnuplot leaves data + script and reports the figure as not rendered. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "check.h"
#include "util/json.h"
#include "plot/plot.h"

static char dir[256];

static int exists(const char *p) { struct stat sb; return stat(p, &sb) == 0 && sb.st_size > 0; }

/* Width and height from a PNG's IHDR chunk; 0 when the file is not a PNG. */
static int png_size(const char *path, unsigned *w, unsigned *h) {
    unsigned char b[24];
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    static const unsigned char sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
    if (n != 24 || memcmp(b, sig, 8) || memcmp(b + 12, "IHDR", 4)) return 0;
    *w = (unsigned)b[16] << 24 | (unsigned)b[17] << 16 | (unsigned)b[18] << 8 | b[19];
    *h = (unsigned)b[20] << 24 | (unsigned)b[21] << 16 | (unsigned)b[22] << 8 | b[23];
    return 1;
}

static int have_gnuplot(void) { return system("command -v gnuplot >/dev/null 2>&1") == 0; }

/* Render spec; returns status, fills files. */
static rp_status render(const char *spec, rp_buf *files, int *rendered) {
    rp_buf_clear(files);
    return rp_plot_render(spec, dir, files, rendered);
}

static void test_types(void) {
    if (!have_gnuplot()) { printf("skip: gnuplot is not installed: rendering checks\n"); return; }
    const char *specs[] = {
        "{\"name\":\"l\",\"type\":\"lines\",\"title\":\"Loss it's\",\"xlabel\":\"step\",\"ylabel\":\"loss\",\"logy\":true,"
        "\"width\":640,\"height\":480,\"series\":[{\"label\":\"train\",\"x\":[1,2,3,4],\"y\":[4,2,1,0.5]},"
        "{\"label\":\"val\",\"y\":[5,null,\"nan\",1]}]}",
        "{\"name\":\"b\",\"type\":\"bars\",\"categories\":[\"a\",\"b \\\"c\\\"\",\"d\"],\"width\":640,\"height\":480,"
        "\"series\":[{\"label\":\"s1\",\"y\":[1,2,3]},{\"label\":\"s2\",\"y\":[3,2,1]}]}",
        "{\"name\":\"h\",\"type\":\"heatmap\",\"matrix\":[[1,2,3],[4,5,6]],\"xticks\":[\"x0\",\"x1\",\"x2\"],"
        "\"yticks\":[\"r0\",\"r1\"],\"width\":640,\"height\":480}",
        "{\"name\":\"s\",\"type\":\"scatter\",\"width\":640,\"height\":480,\"series\":[{\"label\":\"pts\",\"x\":[0.1,0.2],\"y\":[3,4]}]}",
        "{\"name\":\"e\",\"type\":\"errorbars\",\"width\":640,\"height\":480,\"logx\":true,"
        "\"series\":[{\"label\":\"m\",\"x\":[10,100],\"y\":[1,2],\"yerr\":[0.1,0.2]}]}",
    };
    const char *names[] = { "l", "b", "h", "s", "e" };
    rp_buf files = { 0 };
    for (int i = 0; i < 5; i++) {
        int rendered = -1;
        rp_status st = render(specs[i], &files, &rendered);
        CHECK_MSG(st == RP_OK && rendered == 1, "%s: %s", names[i], rp_errmsg());
        rp_json *fj = NULL;
        CHECK(files.data && rp_json_parse(files.data, files.len, &fj) == RP_OK);
        CHECK(rp_json_len(fj) == 4);
        for (size_t k = 0; k < rp_json_len(fj); k++) CHECK_MSG(exists(rp_json_str(rp_json_at(fj, k), "")), "%s", files.data);
        rp_json_free(fj);
        char p[512];
        unsigned w = 0, h = 0;
        snprintf(p, sizeof p, "%s/%s.png", dir, names[i]);
        CHECK_MSG(png_size(p, &w, &h) && w == 640 && h == 480, "%s: %ux%u", p, w, h);
        snprintf(p, sizeof p, "%s/%s.svg", dir, names[i]);
        rp_buf svg = { 0 };
        CHECK(rp_read_file(p, &svg) == RP_OK && strstr(svg.data, "<svg") && strstr(svg.data, "width=\"640\""));
        if (i == 0) CHECK(strstr(svg.data, "train") && strstr(svg.data, "Loss it"));
        if (i == 2) CHECK(strstr(svg.data, "x2") && strstr(svg.data, "r1"));
        rp_buf_free(&svg);
    }
    rp_buf_free(&files);
    /* The data file of "l" holds the numbers exactly: series 0 then series 1 (x = 1..n, gaps as NaN). */
    char p[512];
    snprintf(p, sizeof p, "%s/l.dat", dir);
    FILE *f = fopen(p, "r");
    double want[][2] = { { 1, 4 }, { 2, 2 }, { 3, 1 }, { 4, 0.5 }, { 1, 5 }, { 2, NAN }, { 3, NAN }, { 4, 1 } };
    int k = 0, bad = 0;
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        char *e;
        double x = strtod(line, &e), y = strtod(e, NULL);
        if (k < 8) bad += x != want[k][0] || !(y == want[k][1] || (isnan(y) && isnan(want[k][1])));
        k++;
    }
    if (f) fclose(f);
    CHECK_MSG(k == 8 && bad == 0, "%d rows, %d wrong", k, bad);
}

static void test_injection(void) {
    if (!have_gnuplot()) return;
    char marker[300], spec[1024];
    snprintf(marker, sizeof marker, "%s/injected", dir);
    snprintf(spec, sizeof spec, "{\"name\":\"inj\",\"type\":\"lines\",\"title\":\"x'\\nsystem('touch %s')\\n#\","
             "\"series\":[{\"label\":\"a'; system('touch %s'); '\",\"y\":[1,2]}]}", marker, marker);
    rp_buf files = { 0 };
    int rendered = 0;
    CHECK_MSG(render(spec, &files, &rendered) == RP_OK && rendered, "%s", rp_errmsg());
    CHECK(access(marker, F_OK) != 0);
    rp_buf_free(&files);
}

static void test_bad_specs(void) {
    struct { const char *spec, *want; } cases[] = {
        { "{\"name\":\"x\",\"type\":\"pie\",\"series\":[]}", "type 'pie'" },
        { "{\"type\":\"lines\"}", "name" },
        { "[1,2]", "name" },
        { "{\"name\":\"x\",\"type\":\"lines\",\"series\":[{\"x\":[1,2,3],\"y\":[1,2]}]}", "series[0].x has 3 values, expected 2" },
        { "{\"name\":\"x\",\"type\":\"lines\",\"series\":[{\"y\":[1,\"a\"]}]}", "series[0].y[1] is not a number" },
        { "{\"name\":\"x\",\"type\":\"bars\",\"categories\":[\"a\",\"b\",\"c\"],\"series\":[{\"y\":[1,2]}]}", "series[0].y has 2 values, expected 3" },
        { "{\"name\":\"x\",\"type\":\"heatmap\",\"matrix\":[[1,2],[3]]}", "matrix[1] has 1 values, expected 2" },
        { "{\"name\":\"x\",\"type\":\"errorbars\",\"series\":[{\"y\":[1,2]}]}", "series[0].yerr" },
        { "{\"name\":\"x\",\"type\":\"lines\",\"series\":[]}", "series must be" },
        { "{\"name\":\"x\",\"type\":\"lines\",\"width\":1e9,\"series\":[{\"y\":[1]}]}", "width" },
        { "{\"name\":", "figure spec" },
    };
    rp_buf files = { 0 };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rendered = 1;
        rp_status st = render(cases[i].spec, &files, &rendered);
        CHECK_MSG(st == RP_ERR_INVAL && rendered == 0 && strstr(rp_errmsg(), cases[i].want), "case %zu: %d %s", i, st, rp_errmsg());
    }
    /* An output folder too long for a path is refused with its length, not truncated into another file. */
    static char longdir[4200];
    memset(longdir, 'd', sizeof longdir - 1);
    memcpy(longdir, dir, strlen(dir));
    longdir[strlen(dir)] = '/';
    int rendered = 1;
    rp_status st = rp_plot_render("{\"name\":\"x\",\"type\":\"lines\",\"series\":[{\"y\":[1]}]}", longdir, &files, &rendered);
    CHECK_MSG(st == RP_ERR_RANGE && rendered == 0 && strstr(rp_errmsg(), "(4199 bytes)"), "long folder: %d %s", st, rp_errmsg());
    rp_buf_free(&files);
}

static void test_no_gnuplot(void) {
    const char *spec = "{\"name\":\"a/b c\",\"type\":\"lines\",\"series\":[{\"y\":[1,2]}]}";
    rp_buf files = { 0 };
    int rendered = 1;
    setenv("REPRO_GNUPLOT", "/nonexistent/gnuplot", 1);
    rp_status st = render(spec, &files, &rendered);
    CHECK_MSG(st == RP_ERR_NOTFOUND && rendered == 0 && strstr(rp_errmsg(), "gnuplot not found"), "%d %s", st, rp_errmsg());
    char p[512];
    snprintf(p, sizeof p, "%s/a_b_c.dat", dir);
    CHECK(exists(p));
    snprintf(p, sizeof p, "%s/a_b_c.gp", dir);
    CHECK(exists(p));
    CHECK(files.data && strstr(files.data, "a_b_c.gp\"]") && !strstr(files.data, ".png"));
    setenv("REPRO_GNUPLOT", "false", 1);
    st = render(spec, &files, &rendered);
    CHECK_MSG(st == RP_ERR_UNSUPPORTED && rendered == 0 && strstr(rp_errmsg(), "gnuplot failed"), "%d %s", st, rp_errmsg());
    unsetenv("REPRO_GNUPLOT");
    rp_buf_free(&files);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/repro-test-plot-XXXXXX");
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    test_types();
    test_injection();
    test_bad_specs();
    test_no_gnuplot();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (!checks_failed && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return checks_done("plot");
}
