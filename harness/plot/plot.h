/* plot.h: the gnuplot driver. A figure is a JSON spec:
 *   {"name", "type": "lines"|"bars"|"heatmap"|"scatter"|"errorbars", "title", "xlabel", "ylabel",
 *    "logx", "logy", "width", "height" (pixels, default 800x500),
 *    "series": [{"label", "x": [..], "y": [..], "yerr": [..]}],       lines, scatter, errorbars, bars
 *    "categories": [..],                                                 bars (one per y value)
 *    "matrix": [[..], ..], "xticks": [..], "yticks": [..]}               heatmap (rows are y)
 * Numbers may be null or "nan"/"inf"/"-inf" (missing points). A series without x uses 1..n.
 * Rendering writes <name>.dat and <name>.gp (kept beside, `cd DIR && gnuplot NAME.gp` redraws) and runs
 * gnuplot ($REPRO_GNUPLOT or `gnuplot` on PATH) for <name>.png and <name>.svg. */
#ifndef RP_PLOT_H
#define RP_PLOT_H
#include "util/buf.h"
#include "util/err.h"

/* Render spec_json into out_dir (created when missing). files_json receives a JSON array of the paths
 * written (out_dir/<name>.dat, .gp, and .png, .svg when rendered); *rendered is 1 when both images exist.
 * Returns RP_OK when rendered; RP_ERR_NOTFOUND when gnuplot is missing and RP_ERR_UNSUPPORTED when it
 * failed (both: data and script written, files_json filled, *rendered 0, the message says why);
 * RP_ERR_INVAL for a bad spec (naming the field) and RP_ERR_IO when files cannot be written. */
rp_status rp_plot_render(const char *spec_json, const char *out_dir, rp_buf *files_json, int *rendered);

/* The file base name a figure called name gets: characters other than [A-Za-z0-9._-] become '_'. */
void rp_plot_file_base(const char *name, char *out, size_t n);

#endif
