/* sweep_points.h: the points of a sweep from the command line: axes `key=v1,v2` and `key=a..b` (integer
 * ranges, inclusive) crossed with the lines of a --points file (each line: key=value words; '#' starts a
 * comment). A point is a list of key=value pairs; `seed` among them is the run's seed (1 when absent).
 * Invariants: values never contain a comma from an axis list; every pair's key is non-empty. */
#ifndef RP_SWEEP_POINTS_H
#define RP_SWEEP_POINTS_H
#include <stddef.h>
#include <stdint.h>
#include "util/err.h"

typedef struct rp_kv { char *key, *value; } rp_kv;
typedef struct rp_point { rp_kv *kv; size_t n; int64_t seed; } rp_point;
typedef struct rp_point_list { rp_point *p; size_t n; } rp_point_list;

/* Build the points from nargs key=... arguments and an optional points file (NULL: none). Errors name
 * the argument, or the file, line and word, that was wrong. */
rp_status rp_sweep_points_build(char **args, int nargs, const char *points_file, rp_point_list *out);
/* Release a point list. */
void rp_sweep_points_free(rp_point_list *l);

#endif
