/* zip.c: the zip member reader behind zip.h (APPNOTE 6.3: end of central directory, central directory
 * headers, local file headers; methods 0 stored and 8 deflate through zlib's raw inflate).
 * Invariants: no offset or length read from the archive is used before it is checked against the file
 * size; the output is written through a stream and hashed as it goes; a failed extraction leaves no file. */
#include "assets/zip.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include "util/sha256.h"

static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

static rp_status read_at(FILE *f, const char *path, uint64_t off, void *buf, size_t n) {
    if (fseeko(f, (off_t)off, SEEK_SET) != 0 || fread(buf, 1, n, f) != n)
        return rp_fail(RP_ERR_FORMAT, "%s: cannot read %zu bytes at offset %llu", path, n, (unsigned long long)off);
    return RP_OK;
}

typedef struct entry { uint16_t method, flags; uint32_t crc, csize, usize, local_off; } entry;

/* Find member in the central directory. */
static rp_status find_entry(FILE *f, const char *path, uint64_t fsize, const char *member, entry *e) {
    if (fsize < 22) return rp_fail(RP_ERR_FORMAT, "%s: %llu bytes is too small for a zip archive", path, (unsigned long long)fsize);
    size_t tail = fsize < 65557 ? (size_t)fsize : 65557;   /* EOCD (22) + longest comment (65535) */
    unsigned char *t = malloc(tail);
    if (!t) return rp_fail(RP_ERR_NOMEM, "out of memory reading %s", path);
    rp_status st = read_at(f, path, fsize - tail, t, tail);
    long eocd = -1;
    for (long i = (long)tail - 22; st == RP_OK && i >= 0; i--)
        if (rd32(t + i) == 0x06054b50 && (size_t)i + 22 + rd16(t + i + 20) == tail) { eocd = i; break; }
    if (st != RP_OK) { free(t); return st; }
    if (eocd < 0) { free(t); return rp_fail(RP_ERR_FORMAT, "%s: no end-of-central-directory record (not a zip, or truncated)", path); }
    uint16_t count = rd16(t + eocd + 10);
    uint32_t cd_size = rd32(t + eocd + 12), cd_off = rd32(t + eocd + 16);
    free(t);
    if (count == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu)
        return rp_fail(RP_ERR_UNSUPPORTED, "%s: ZIP64 archives are not supported", path);
    if ((uint64_t)cd_off + cd_size > fsize - 22)
        return rp_fail(RP_ERR_FORMAT, "%s: central directory (offset %u, %u bytes) past the end of the archive (%llu bytes)",
                       path, cd_off, cd_size, (unsigned long long)fsize);
    unsigned char *cd = malloc(cd_size ? cd_size : 1);
    if (!cd) return rp_fail(RP_ERR_NOMEM, "out of memory for the central directory of %s", path);
    if ((st = read_at(f, path, cd_off, cd, cd_size)) != RP_OK) { free(cd); return st; }
    size_t mlen = strlen(member), p = 0;
    for (uint16_t i = 0; i < count; i++) {
        if (p + 46 > cd_size || rd32(cd + p) != 0x02014b50) {
            free(cd);
            return rp_fail(RP_ERR_FORMAT, "%s: central directory entry %u at offset %zu is malformed", path, i, (size_t)cd_off + p);
        }
        uint16_t nlen = rd16(cd + p + 28), xlen = rd16(cd + p + 30), clen = rd16(cd + p + 32);
        if (p + 46 + (size_t)nlen + xlen + clen > cd_size) {
            free(cd);
            return rp_fail(RP_ERR_FORMAT, "%s: central directory entry %u runs past the directory", path, i);
        }
        if (nlen == mlen && memcmp(cd + p + 46, member, mlen) == 0) {
            e->flags = rd16(cd + p + 8);
            e->method = rd16(cd + p + 10);
            e->crc = rd32(cd + p + 16);
            e->csize = rd32(cd + p + 20);
            e->usize = rd32(cd + p + 24);
            e->local_off = rd32(cd + p + 42);
            free(cd);
            if (e->csize == 0xFFFFFFFFu || e->usize == 0xFFFFFFFFu || e->local_off == 0xFFFFFFFFu)
                return rp_fail(RP_ERR_UNSUPPORTED, "%s: member %s uses ZIP64 sizes (not supported)", path, member);
            return RP_OK;
        }
        p += 46 + (size_t)nlen + xlen + clen;
    }
    free(cd);
    return rp_fail(RP_ERR_NOTFOUND, "%s: no member named %s among %u entries", path, member, count);
}

/* Extract one member, verifying CRC-32 and size. */
rp_status rp_zip_extract(const char *zip_path, const char *member, const char *out_path, uint64_t *size, char *sha256_hex) {
    FILE *f = fopen(zip_path, "rb");
    if (!f) return rp_fail(errno == ENOENT ? RP_ERR_NOTFOUND : RP_ERR_IO, "%s: %s", zip_path, strerror(errno));
    FILE *o = NULL;
    unsigned char *in = NULL, *out = NULL;
    z_stream zs;
    int zinit = 0;
    rp_status st = RP_OK;
    entry e = {0};
    int opened = 0;
    if (fseeko(f, 0, SEEK_END) != 0) { st = rp_fail(RP_ERR_IO, "%s: cannot seek", zip_path); goto done; }
    off_t end = ftello(f);
    if (end < 0) { st = rp_fail(RP_ERR_IO, "%s: cannot tell its size: %s", zip_path, strerror(errno)); goto done; }
    uint64_t fsize = (uint64_t)end;
    if ((st = find_entry(f, zip_path, fsize, member, &e)) != RP_OK) goto done;
    if (e.flags & 1) { st = rp_fail(RP_ERR_UNSUPPORTED, "%s: member %s is encrypted", zip_path, member); goto done; }
    if (e.method != 0 && e.method != 8) {
        st = rp_fail(RP_ERR_UNSUPPORTED, "%s: member %s uses compression method %u (only 0 stored and 8 deflate)", zip_path, member, e.method);
        goto done;
    }
    unsigned char lh[30];
    if ((uint64_t)e.local_off + 30 > fsize || (st = read_at(f, zip_path, e.local_off, lh, 30)) != RP_OK || rd32(lh) != 0x04034b50) {
        if (st == RP_OK) st = rp_fail(RP_ERR_FORMAT, "%s: member %s: no local header at offset %u", zip_path, member, e.local_off);
        goto done;
    }
    uint64_t data_off = (uint64_t)e.local_off + 30 + rd16(lh + 26) + rd16(lh + 28);
    if (data_off + e.csize > fsize) {
        st = rp_fail(RP_ERR_FORMAT, "%s: member %s: %u compressed bytes at offset %llu run past the end (%llu bytes)",
                     zip_path, member, e.csize, (unsigned long long)data_off, (unsigned long long)fsize);
        goto done;
    }
    if (e.method == 0 && e.csize != e.usize) {
        st = rp_fail(RP_ERR_FORMAT, "%s: stored member %s has compressed size %u != size %u", zip_path, member, e.csize, e.usize);
        goto done;
    }
    if (fseeko(f, (off_t)data_off, SEEK_SET) != 0) { st = rp_fail(RP_ERR_IO, "%s: cannot seek", zip_path); goto done; }
    if (!(o = fopen(out_path, "wb"))) { st = rp_fail(RP_ERR_IO, "%s: %s", out_path, strerror(errno)); goto done; }
    opened = 1;                           /* from here a failure removes the partial output */
    enum { CH = 1 << 16 };
    in = malloc(CH);
    out = malloc(CH);
    if (!in || !out) { st = rp_fail(RP_ERR_NOMEM, "%s: out of memory extracting %s", zip_path, member); goto done; }
    memset(&zs, 0, sizeof zs);
    if (e.method == 8) {
        if (inflateInit2(&zs, -15) != Z_OK) { st = rp_fail(RP_ERR_NOMEM, "%s: member %s: zlib inflateInit2 failed", zip_path, member); goto done; }
        zinit = 1;
    }
    rp_sha256_ctx sc;
    rp_sha256_init(&sc);
    uLong crc = crc32(0, NULL, 0);
    uint64_t left = e.csize, written = 0;
    int zend = 0;
    while (left > 0 && !zend) {
        size_t n = left < CH ? (size_t)left : CH;
        if (fread(in, 1, n, f) != n) { st = rp_fail(RP_ERR_IO, "%s: read error in member %s", zip_path, member); goto done; }
        left -= n;
        if (e.method == 0) {
            if (fwrite(in, 1, n, o) != n) { st = rp_fail(RP_ERR_IO, "%s: write error: %s", out_path, strerror(errno)); goto done; }
            rp_sha256_update(&sc, in, n);
            crc = crc32(crc, in, (uInt)n);
            written += n;
            continue;
        }
        zs.next_in = in;
        zs.avail_in = (uInt)n;
        do {
            zs.next_out = out;
            zs.avail_out = CH;
            int zr = inflate(&zs, Z_NO_FLUSH);
            if (zr == Z_BUF_ERROR && zs.avail_in == 0) break;          /* needs more input */
            if (zr != Z_OK && zr != Z_STREAM_END) {
                st = rp_fail(RP_ERR_FORMAT, "%s: member %s: corrupt deflate data (%s)", zip_path, member, zs.msg ? zs.msg : "zlib error");
                goto done;
            }
            size_t got = CH - zs.avail_out;
            if (written + got > e.usize) {
                st = rp_fail(RP_ERR_FORMAT, "%s: member %s inflates past its recorded size %u", zip_path, member, e.usize);
                goto done;
            }
            if (got && fwrite(out, 1, got, o) != got) { st = rp_fail(RP_ERR_IO, "%s: write error: %s", out_path, strerror(errno)); goto done; }
            rp_sha256_update(&sc, out, got);
            crc = crc32(crc, out, (uInt)got);
            written += got;
            if (zr == Z_STREAM_END) { zend = 1; break; }
        } while (zs.avail_out == 0 || zs.avail_in > 0);
    }
    if (e.method == 8 && !zend) {
        st = rp_fail(RP_ERR_FORMAT, "%s: member %s: deflate stream ends early", zip_path, member);
        goto done;
    }
    if (written != e.usize || crc != e.crc) {
        st = rp_fail(RP_ERR_FORMAT, "%s: member %s: got %llu bytes with crc32 %08lx, directory says %u bytes, crc32 %08x",
                     zip_path, member, (unsigned long long)written, (unsigned long)crc, e.usize, e.crc);
        goto done;
    }
    if (fclose(o) != 0) { o = NULL; st = rp_fail(RP_ERR_IO, "%s: %s", out_path, strerror(errno)); goto done; }
    o = NULL;
    if (size) *size = written;
    if (sha256_hex) {
        uint8_t d[32];
        rp_sha256_final(&sc, d);
        rp_sha256_hex(d, sha256_hex);
    }
done:
    if (zinit) inflateEnd(&zs);
    free(in);
    free(out);
    if (o) fclose(o);
    if (st != RP_OK && opened) unlink(out_path);
    fclose(f);
    return st;
}
