/* assets.h: the asset registry: named models and data sets, each a list of files with size and sha256 and
 * ordered sources (the mirror folder $REPRO_MIRROR/<folder>/<file>, a file inside a PyPI wheel or a zip
 * archive at a URL, plain HTTPS URLs). The catalog is data: catalog.json, compiled in (catalog_data.c),
 * plus any JSON files named in $REPRO_ASSETS (colon-separated; same format; a name given again replaces the
 * earlier entry). Fetched files land in $REPRO_CACHE (default ~/.cache/repro)/<asset>/<file>, written to a
 * temporary name and renamed only after their size and sha256 match; nothing unverified is ever returned.
 * Environment: REPRO_MIRROR, REPRO_CACHE, REPRO_ASSETS, REPRO_PYPI_URL (default https://pypi.org/pypi, the JSON
 * API), REPRO_PYPI_SIMPLE_URL (default https://pypi.org/simple, PEP 691 JSON, tried when the JSON API fails),
 * REPRO_OFFLINE=1 (mirror and cache only), REPRO_VERIFY=full (re-hash every time instead of trusting a file
 * whose device, inode, size and mtime match an earlier successful check recorded in <cache>/verified.tsv). */
#ifndef RP_ASSETS_H
#define RP_ASSETS_H
#include <stddef.h>
#include "util/json.h"
#include "util/err.h"

/* The built-in catalog's JSON text (generated from catalog.json). */
extern const char rp_asset_catalog_builtin[];

/* Resolve "name" or "name/file" (file NULL), or name + file, to a verified local path in out, fetching
 * when needed. A multi-file asset asked for as a whole gives the folder that holds all of its files. */
rp_status rp_asset_path(const char *name, const char *file, char *out, size_t n);
/* Like rp_asset_path, and report what was done as JSON (caller frees): {"asset", "path", "files": [{"file",
 * "path", "source" ("cache", "mirror", "wheel", "zip", "url"), "size", "sha256"}]}. */
rp_status rp_asset_fetch(const char *name, const char *file, rp_json **report);
/* Every catalogued asset as a JSON array (caller frees) of {"name", "description", "files", "bytes",
 * "local": "mirror" | "cache" | "cache+mirror" | "partial" | "missing"}; looks at file sizes only, fetches nothing. */
rp_status rp_asset_list(rp_json **out);
/* Merge catalog entries from JSON text (catalog.json's format); origin names it in messages. */
rp_status rp_asset_catalog_add(const char *json, size_t len, const char *origin);

#endif
