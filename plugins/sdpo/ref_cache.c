/* ref_cache.c: reference log-probabilities cached on disk, one file per (reference model, data chunk).
 * File layout (little-endian): "RPDPOREF" magic (8 bytes), version u32 = 1, the key (64 hex bytes), count u64,
 * count f64 values, then the sha256 of everything before it (32 bytes).
 * Invariants: a file is written whole to a temporary name in the same folder, fsynced and renamed, so the path
 * holds either nothing, the old file or the new one; a read returns values only when magic, version, key, size
 * and checksum all match, so a truncated or altered file is reported, never read as numbers. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "plugins/sdpo/sdpo.h"
#include "util/buf.h"

#define MAGIC "RPDPOREF"
#define VERSION 1u
#define HEAD (8 + 4 + 64 + 8)

/* Start a key. */
void rp_ref_key_begin(rp_sha256_ctx *c) {
    rp_sha256_init(c);
    rp_sha256_update(c, "repro.sdpo.refkey.v1", 20);
}

/* Add a tagged, length-prefixed part. */
void rp_ref_key_part(rp_sha256_ctx *c, const char *tag, const void *data, size_t len) {
    uint64_t tl = strlen(tag), dl = len;
    rp_sha256_update(c, &tl, sizeof tl);
    rp_sha256_update(c, tag, tl);
    rp_sha256_update(c, &dl, sizeof dl);
    if (len) rp_sha256_update(c, data, len);
}

/* Finish the key. */
void rp_ref_key_end(rp_sha256_ctx *c, rp_ref_key *out) {
    uint8_t d[32];
    rp_sha256_final(c, d);
    rp_sha256_hex(d, out->hex);
}

/* Write the cache file atomically (creating its folder). */
rp_status rp_ref_cache_write(const char *path, const rp_ref_key *key, const double *v, size_t n) {
    if (strlen(key->hex) != 64) return rp_fail(RP_ERR_INVAL, "reference cache %s: malformed key", path);
    if (n > ((size_t)1 << 40) / sizeof(double)) return rp_fail(RP_ERR_RANGE, "reference cache %s: %zu values is too many", path, n);
    rp_buf b = { 0 };
    uint32_t ver = VERSION;
    uint64_t cnt = n;
    rp_status st = rp_buf_append(&b, MAGIC, 8);
    if (st == RP_OK) st = rp_buf_append(&b, &ver, 4);
    if (st == RP_OK) st = rp_buf_append(&b, key->hex, 64);
    if (st == RP_OK) st = rp_buf_append(&b, &cnt, 8);
    if (st == RP_OK && n) st = rp_buf_append(&b, v, n * sizeof *v);
    uint8_t d[32];
    if (st == RP_OK) { rp_sha256(b.data, b.len, d); st = rp_buf_append(&b, d, 32); }
    if (st != RP_OK) { rp_buf_free(&b); return st; }
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (slash && slash != path && (size_t)(slash - path) < sizeof dir) {
        memcpy(dir, path, (size_t)(slash - path));
        dir[slash - path] = 0;
        if ((st = rp_mkdirs(dir)) != RP_OK) { rp_buf_free(&b); return st; }
    }
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        rp_buf_free(&b);
        return rp_fail(RP_ERR_INVAL, "reference cache: path too long: %s", path);
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { rp_buf_free(&b); return rp_fail(RP_ERR_IO, "reference cache %s: cannot create (%s)", tmp, strerror(errno)); }
    size_t off = 0;
    while (off < b.len) {
        ssize_t w = write(fd, b.data + off, b.len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) { st = rp_fail(RP_ERR_IO, "reference cache %s: write failed (%s)", tmp, strerror(errno)); break; }
        off += (size_t)w;
    }
    if (st == RP_OK && fsync(fd) != 0) st = rp_fail(RP_ERR_IO, "reference cache %s: fsync failed (%s)", tmp, strerror(errno));
    if (close(fd) != 0 && st == RP_OK) st = rp_fail(RP_ERR_IO, "reference cache %s: close failed (%s)", tmp, strerror(errno));
    if (st == RP_OK && rename(tmp, path) != 0) st = rp_fail(RP_ERR_IO, "reference cache %s: rename failed (%s)", path, strerror(errno));
    if (st != RP_OK) unlink(tmp);
    rp_buf_free(&b);
    return st;
}

/* Read cached values for key, validating everything before returning a number. */
rp_status rp_ref_cache_read(const char *path, const rp_ref_key *key, double *v, size_t n) {
    if (access(path, F_OK) != 0) return rp_fail(RP_ERR_NOTFOUND, "reference cache %s: no file", path);
    rp_buf b = { 0 };
    RP_TRY(rp_read_file(path, &b));
    rp_status st = RP_OK;
    uint32_t ver = 0;
    uint64_t cnt = 0;
    if (b.len < HEAD + 32 || memcmp(b.data, MAGIC, 8)) {
        st = rp_fail(RP_ERR_FORMAT, "reference cache %s: not a cache file or truncated (%zu bytes)", path, b.len);
        goto out;
    }
    memcpy(&ver, b.data + 8, 4);
    memcpy(&cnt, b.data + 12 + 64, 8);
    if (ver != VERSION) { st = rp_fail(RP_ERR_FORMAT, "reference cache %s: version %u, expected %u", path, ver, VERSION); goto out; }
    if (cnt > (b.len - HEAD - 32) / sizeof(double) || HEAD + cnt * sizeof(double) + 32 != b.len) {
        st = rp_fail(RP_ERR_FORMAT, "reference cache %s: %zu bytes do not hold the %llu values it declares (truncated?)", path, b.len,
                     (unsigned long long)cnt);
        goto out;
    }
    uint8_t d[32];
    rp_sha256(b.data, b.len - 32, d);
    if (memcmp(d, b.data + b.len - 32, 32)) { st = rp_fail(RP_ERR_FORMAT, "reference cache %s: checksum mismatch (damaged file)", path); goto out; }
    if (memcmp(b.data + 12, key->hex, 64)) {
        st = rp_fail(RP_ERR_NOTFOUND, "reference cache %s: written for another reference or data (key %.12s..., want %.12s...)", path,
                     b.data + 12, key->hex);
        goto out;
    }
    if (cnt != n) {
        st = rp_fail(RP_ERR_FORMAT, "reference cache %s: holds %llu values, expected %zu for the same key", path, (unsigned long long)cnt, n);
        goto out;
    }
    if (n) memcpy(v, b.data + HEAD, n * sizeof *v);
out:
    rp_buf_free(&b);
    return st;
}
