/* test_assets.c: the asset registry end to end without the internet: mirror hits verified against the
 * mirror's SHA256SUMS, a corrupted mirror copy rejected, wheels (zip archives written here with zlib and,
 * when python3 is present, by Python's zipfile) found through a fake PyPI JSON API and extracted, URL
 * sources served by the embedded httpd (404, truncated and wrong bodies rejected, nothing unverified left
 * in the cache), cache reuse and repair, and the catalog's consistency with catalog.json and the mirror.
 * Synthetic file contents use digests from FIPS 180-4's examples ("abc", a million 'a'). */
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "assets/assets.h"
#include "assets/zip.h"
#include "net/httpd.h"
#include "util/sha256.h"
#include "tests/check.h"

#define SHA_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA_MILLION_A "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"

static char tmp[256], wheel_path[512], wheel_sha[65];
static int port, hits_abc, hits_wheel;

static int exists(const char *p) { struct stat sb; return stat(p, &sb) == 0; }

static void put16(unsigned char *p, unsigned v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); }
static void put32(unsigned char *p, unsigned long v) { put16(p, (unsigned)(v & 0xFFFF)); put16(p + 2, (unsigned)(v >> 16)); }

/* Write a zip with the given members (method 8 deflated through zlib, or 0 stored). */
typedef struct member { const char *name; const unsigned char *data; size_t len; int deflate; } member;
static void write_zip(const char *path, const member *m, int n, int corrupt_crc) {
    FILE *f = fopen(path, "wb");
    rp_buf cd = {0};
    unsigned long off = 0;
    for (int i = 0; i < n; i++) {
        uLong crc = crc32(0, m[i].data, (uInt)m[i].len);
        if (corrupt_crc) crc ^= 1;
        unsigned char *comp = (unsigned char *)m[i].data;
        size_t clen = m[i].len;
        if (m[i].deflate) {
            z_stream zs = {0};
            deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
            clen = deflateBound(&zs, m[i].len);
            comp = malloc(clen);
            zs.next_in = (Bytef *)m[i].data; zs.avail_in = (uInt)m[i].len;
            zs.next_out = comp; zs.avail_out = (uInt)clen;
            deflate(&zs, Z_FINISH);
            clen = zs.total_out;
            deflateEnd(&zs);
        }
        size_t nl = strlen(m[i].name);
        unsigned char lh[30] = {0}, ch[46] = {0};
        put32(lh, 0x04034b50); put16(lh + 4, 20); put16(lh + 8, m[i].deflate ? 8 : 0);
        put32(lh + 14, crc); put32(lh + 18, clen); put32(lh + 22, m[i].len); put16(lh + 26, (unsigned)nl);
        fwrite(lh, 1, 30, f); fwrite(m[i].name, 1, nl, f); fwrite(comp, 1, clen, f);
        put32(ch, 0x02014b50); put16(ch + 4, 20); put16(ch + 6, 20); put16(ch + 10, m[i].deflate ? 8 : 0);
        put32(ch + 16, crc); put32(ch + 20, clen); put32(ch + 24, m[i].len); put16(ch + 28, (unsigned)nl); put32(ch + 42, off);
        rp_buf_append(&cd, ch, 46); rp_buf_append(&cd, m[i].name, nl);
        off += 30 + nl + clen;
        if (comp != m[i].data) free(comp);
    }
    fwrite(cd.data, 1, cd.len, f);
    unsigned char e[22] = {0};
    put32(e, 0x06054b50); put16(e + 8, (unsigned)n); put16(e + 10, (unsigned)n); put32(e + 12, cd.len); put32(e + 16, off);
    fwrite(e, 1, 22, f);
    fclose(f);
    rp_buf_free(&cd);
}

static int handler(void *ud, const rp_httpd_request *rq, rp_httpd_response *rs) {
    (void)ud;
    char p[512];
    snprintf(p, sizeof p, "%.*s", (int)strcspn(rq->path, "?"), rq->path);
    if (!strcmp(p, "/files/abc.txt")) { __atomic_fetch_add(&hits_abc, 1, __ATOMIC_SEQ_CST); rp_buf_puts(&rs->body, "abc"); return RP_HTTPD_OK; }
    if (!strcmp(p, "/files/abd.txt")) { rp_buf_puts(&rs->body, "abd"); return RP_HTTPD_OK; }
    if (!strcmp(p, "/files/truncated")) {
        const char *h = "HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\nab";
        rp_httpd_write(rq->fd, h, strlen(h));
        return RP_HTTPD_RAW;
    }
    if (!strcmp(p, "/files/test_pkg-1.0-py3-none-any.whl")) {
        __atomic_fetch_add(&hits_wheel, 1, __ATOMIC_SEQ_CST);
        rp_read_file(wheel_path, &rs->body);
        snprintf(rs->content_type, sizeof rs->content_type, "application/octet-stream");
        return RP_HTTPD_OK;
    }
    if (!strcmp(p, "/pypi/test-pkg/1.0/json")) {
        rp_buf_printf(&rs->body, "{\"info\":{\"name\":\"test-pkg\"},\"urls\":[{\"filename\":\"test_pkg-1.0.tar.gz\",\"url\":\"http://x/\","
                      "\"digests\":{\"sha256\":\"00\"}},{\"filename\":\"test_pkg-1.0-py3-none-any.whl\",\"url\":"
                      "\"http://127.0.0.1:%d/files/test_pkg-1.0-py3-none-any.whl\",\"digests\":{\"sha256\":\"%s\"}}]}", port, wheel_sha);
        return RP_HTTPD_OK;
    }
    if (!strcmp(p, "/simple/simple-pkg/")) {     /* PEP 691 JSON; its /pypi JSON API answers 404 */
        char acc[128] = "";
        rp_httpd_header(rq, "Accept", acc, sizeof acc);
        if (strcmp(acc, "application/vnd.pypi.simple.v1+json") != 0) { rs->status = 406; return RP_HTTPD_OK; }
        rp_buf_printf(&rs->body, "{\"meta\":{\"api-version\":\"1.1\"},\"name\":\"simple-pkg\",\"files\":[{\"filename\":"
                      "\"test_pkg-1.0-py3-none-any.whl\",\"url\":\"http://127.0.0.1:%d/files/test_pkg-1.0-py3-none-any.whl\","
                      "\"hashes\":{\"sha256\":\"%s\"}}]}", port, wheel_sha);
        return RP_HTTPD_OK;
    }
    if (!strcmp(p, "/pypi/bad-pkg/1.0/json")) { rp_buf_puts(&rs->body, "<html>502 Bad Gateway</html>"); return RP_HTTPD_OK; }
    rs->status = 404;
    rp_buf_puts(&rs->body, "<html><body>404 Not Found</body></html>");
    return RP_HTTPD_OK;
}

static void add_catalog(void) {
    rp_buf b = {0};
    rp_buf_printf(&b,
        "{\"assets\":{"
        "\"t-url\":{\"folder\":\"t-url\",\"files\":[{\"path\":\"sub/abc.txt\",\"size\":3,\"sha256\":\"" SHA_ABC "\","
        "  \"urls\":[\"http://127.0.0.1:%d/missing\",\"http://127.0.0.1:%d/files/abc.txt?api_key=SECRET\"]}]},"
        "\"t-404\":{\"files\":[{\"path\":\"abc.txt\",\"size\":3,\"sha256\":\"" SHA_ABC "\",\"urls\":[\"http://127.0.0.1:%d/missing?token=SECRET\"]}]},"
        "\"t-trunc\":{\"files\":[{\"path\":\"abc.txt\",\"size\":3,\"sha256\":\"" SHA_ABC "\",\"urls\":[\"http://127.0.0.1:%d/files/truncated\"]}]},"
        "\"t-wrong\":{\"files\":[{\"path\":\"abc.txt\",\"size\":3,\"sha256\":\"" SHA_ABC "\",\"urls\":[\"http://127.0.0.1:%d/files/abd.txt\"]}]},"
        "\"t-mirror\":{\"folder\":\"tm\",\"files\":[{\"path\":\"abc.txt\",\"size\":3,\"sha256\":\"" SHA_ABC "\"},"
        "  {\"path\":\"more/abc2.txt\",\"size\":3,\"sha256\":\"" SHA_ABC "\",\"urls\":[\"http://127.0.0.1:%d/files/abc.txt\"]}]},"
        "\"t-wheel\":{\"files\":[{\"path\":\"million.txt\",\"size\":1000000,\"sha256\":\"" SHA_MILLION_A "\","
        "  \"wheel\":{\"package\":\"test-pkg\",\"version\":\"1.0\",\"filename\":\"test_pkg-1.0-py3-none-any.whl\","
        "  \"sha256\":\"%s\",\"member\":\"test_pkg/million.txt\"}},"
        "  {\"path\":\"abc.txt\",\"size\":3,\"sha256\":\"" SHA_ABC "\",\"wheel\":{\"package\":\"test-pkg\",\"version\":\"1.0\","
        "  \"filename\":\"test_pkg-1.0-py3-none-any.whl\",\"sha256\":\"%s\",\"member\":\"test_pkg/abc.txt\"}}]},"
        "\"t-simple\":{\"files\":[{\"path\":\"abc.txt\",\"size\":3,\"sha256\":\"" SHA_ABC "\",\"wheel\":{\"package\":\"simple-pkg\","
        "  \"version\":\"1.0\",\"filename\":\"test_pkg-1.0-py3-none-any.whl\",\"sha256\":\"%s\",\"member\":\"test_pkg/abc.txt\"}}]},"
        "\"t-badwheel\":{\"files\":[{\"path\":\"x.bin\",\"size\":3,\"sha256\":\"" SHA_ABC "\",\"wheel\":{\"package\":\"bad-pkg\","
        "  \"version\":\"1.0\",\"filename\":\"b.whl\",\"sha256\":\"%s\",\"member\":\"x\"}}]},"
        "\"t-zipdir\":{\"files\":[{\"path\":\"x.bin\",\"size\":3,\"sha256\":\"" SHA_ABC "\",\"zip\":{\"url\":"
        "  \"http://127.0.0.1:%d/files/..\",\"sha256\":\"%s\",\"member\":\"x\"}}]}"
        "}}", port, port, port, port, port, port, wheel_sha, wheel_sha, wheel_sha, wheel_sha, port, wheel_sha);
    CHECK(rp_asset_catalog_add(b.data, b.len, "test") == RP_OK);
    rp_buf_free(&b);
    /* malformed additions are refused with a reason */
    const char *bad = "{\"assets\":{\"x\":{\"files\":[{\"path\":\"../etc/passwd\",\"size\":1,\"sha256\":\"" SHA_ABC "\"}]}}}";
    CHECK(rp_asset_catalog_add(bad, strlen(bad), "bad.json") == RP_ERR_FORMAT && strstr(rp_errmsg(), "bad.json"));
}

static void test_zip(void) {
    char *million = malloc(1000000);
    memset(million, 'a', 1000000);
    member m[2] = { { "test_pkg/million.txt", (unsigned char *)million, 1000000, 1 }, { "test_pkg/abc.txt", (unsigned char *)"abc", 3, 0 } };
    snprintf(wheel_path, sizeof wheel_path, "%s/test_pkg-1.0-py3-none-any.whl", tmp);
    write_zip(wheel_path, m, 2, 0);
    CHECK(rp_sha256_file(wheel_path, wheel_sha) == RP_OK);
    char out[600], hex[65];
    uint64_t size = 0;
    snprintf(out, sizeof out, "%s/extracted", tmp);
    CHECK(rp_zip_extract(wheel_path, "test_pkg/million.txt", out, &size, hex) == RP_OK && size == 1000000 && !strcmp(hex, SHA_MILLION_A));
    CHECK(rp_zip_extract(wheel_path, "test_pkg/abc.txt", out, &size, hex) == RP_OK && size == 3 && !strcmp(hex, SHA_ABC));
    CHECK(rp_zip_extract(wheel_path, "nope", out, &size, hex) == RP_ERR_NOTFOUND && strstr(rp_errmsg(), "no member named nope"));
    /* a bad CRC is caught, and leaves no output file */
    char bad[600];
    snprintf(bad, sizeof bad, "%s/badcrc.zip", tmp);
    write_zip(bad, m, 2, 1);
    unlink(out);
    CHECK(rp_zip_extract(bad, "test_pkg/million.txt", out, &size, hex) == RP_ERR_FORMAT && strstr(rp_errmsg(), "crc32") && !exists(out));
    /* every truncation of the archive fails cleanly (no crash, no output) */
    rp_buf z = {0};
    rp_read_file(wheel_path, &z);
    int wrong = 0;
    for (size_t cut = 0; cut < z.len; cut += (cut < 200 ? 1 : 997)) {
        rp_write_file(bad, z.data, cut);
        if (rp_zip_extract(bad, "test_pkg/million.txt", out, &size, hex) == RP_OK || exists(out)) wrong++;
    }
    CHECK_MSG(wrong == 0, "%d truncated archives accepted", wrong);
    /* flipped bytes in the middle of the deflate stream */
    for (size_t pos = 100; pos < z.len - 200; pos += z.len / 7) {
        rp_buf c = {0};
        rp_buf_append(&c, z.data, z.len);
        c.data[pos] ^= 0x5A;
        rp_write_file(bad, c.data, c.len);
        rp_status st = rp_zip_extract(bad, "test_pkg/million.txt", out, &size, hex);
        CHECK(st != RP_OK || strcmp(hex, SHA_MILLION_A) == 0);
        rp_buf_free(&c);
    }
    rp_buf_free(&z);
    /* Python's zipfile as an independent writer, when available */
    char cmd[1200], pyzip[600];
    snprintf(pyzip, sizeof pyzip, "%s/py.zip", tmp);
    snprintf(cmd, sizeof cmd, "python3 -c \"import zipfile; z=zipfile.ZipFile('%s','w',zipfile.ZIP_DEFLATED); "
             "z.writestr('d/a.txt', 'a'*1000000); z.writestr(zipfile.ZipInfo('s.txt'), 'abc'); z.close()\" 2>/dev/null", pyzip);
    if (system(cmd) != 0) { printf("skip: python3 zipfile not available\n"); CHECK(1); }
    else {
        CHECK(rp_zip_extract(pyzip, "d/a.txt", out, &size, hex) == RP_OK && size == 1000000 && !strcmp(hex, SHA_MILLION_A));
        CHECK(rp_zip_extract(pyzip, "s.txt", out, &size, hex) == RP_OK && size == 3 && !strcmp(hex, SHA_ABC));
    }
    free(million);
}

static void set_env(const char *mirror, const char *cache) {
    if (mirror) setenv("REPRO_MIRROR", mirror, 1); else unsetenv("REPRO_MIRROR");
    setenv("REPRO_CACHE", cache, 1);
}

static void test_sources(void) {
    char cache[400], mirror[400], p[1024], want[1024];
    snprintf(cache, sizeof cache, "%s/cache", tmp);
    snprintf(mirror, sizeof mirror, "%s/mirror", tmp);
    set_env(mirror, cache);
    unsetenv("REPRO_OFFLINE");

    /* URL source: the first URL 404s, the second serves; lands in the cache; the next call is a cache hit */
    CHECK_MSG(rp_asset_path("t-url", NULL, p, sizeof p) == RP_OK, "%s", rp_errmsg());
    snprintf(want, sizeof want, "%s/t-url/sub/abc.txt", cache);
    CHECK_MSG(strcmp(p, want) == 0, "%s", p);
    CHECK(__atomic_load_n(&hits_abc, __ATOMIC_SEQ_CST) == 1);
    rp_json *rep = NULL;
    CHECK(rp_asset_fetch("t-url/sub/abc.txt", NULL, &rep) == RP_OK && __atomic_load_n(&hits_abc, __ATOMIC_SEQ_CST) == 1);
    CHECK(strcmp(rp_json_str(rp_json_path(rep, "files.0.source"), ""), "cache") == 0);
    rp_json_free(rep);
    /* a corrupted cache copy is deleted and fetched again */
    rp_write_file(want, "abd", 3);
    CHECK(rp_asset_path("t-url", "sub/abc.txt", p, sizeof p) == RP_OK && __atomic_load_n(&hits_abc, __ATOMIC_SEQ_CST) == 2);
    rp_buf b = {0};
    CHECK(rp_read_file(want, &b) == RP_OK && b.len == 3 && !memcmp(b.data, "abc", 3));
    rp_buf_free(&b);

    /* an in-place change that keeps the size and restores the mtime: only a full re-hash notices */
    snprintf(p, sizeof p, "%s/verified.tsv", cache);
    CHECK(exists(p));
    struct stat sb;
    stat(want, &sb);
    FILE *f = fopen(want, "r+");
    fputs("xbc", f);
    fclose(f);
    struct timespec ts[2] = { sb.st_atim, sb.st_mtim };
    utimensat(AT_FDCWD, want, ts, 0);
    setenv("REPRO_VERIFY", "full", 1);
    setenv("REPRO_OFFLINE", "1", 1);
    CHECK(rp_asset_path("t-url", "sub/abc.txt", p, sizeof p) != RP_OK && !exists(want));
    unsetenv("REPRO_OFFLINE");
    unsetenv("REPRO_VERIFY");
    CHECK(rp_asset_path("t-url", "sub/abc.txt", p, sizeof p) == RP_OK && __atomic_load_n(&hits_abc, __ATOMIC_SEQ_CST) == 3);

    /* 404 only: a network error naming the masked URL and the status */
    strcpy(p, "untouched");
    CHECK(rp_asset_path("t-404", NULL, p, sizeof p) == RP_ERR_NET);
    CHECK_MSG(strstr(rp_errmsg(), "HTTP 404") && strstr(rp_errmsg(), "token=***") && !strstr(rp_errmsg(), "SECRET") &&
              strstr(rp_errmsg(), "t-404"), "%s", rp_errmsg());
    CHECK(strcmp(p, "untouched") == 0);
    /* a truncated download and a wrong body: rejected, and nothing (not even a part file) left behind */
    CHECK(rp_asset_path("t-trunc", NULL, p, sizeof p) == RP_ERR_NET);
    CHECK(rp_asset_path("t-wrong", NULL, p, sizeof p) == RP_ERR_CHECKSUM);
    CHECK_MSG(strstr(rp_errmsg(), SHA_ABC) && strstr(rp_errmsg(), "sha256"), "%s", rp_errmsg());
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "test -z \"$(find %s/t-trunc %s/t-wrong -type f 2>/dev/null)\"", cache, cache);
    CHECK(system(cmd) == 0);

    /* mirror: a good copy is used in place; a corrupted one is rejected (size, then content) */
    snprintf(p, sizeof p, "%s/tm/more", mirror);
    rp_mkdirs(p);
    snprintf(p, sizeof p, "%s/tm/abc.txt", mirror);
    rp_write_file(p, "abc", 3);
    CHECK(rp_asset_path("t-mirror", "abc.txt", want, sizeof want) == RP_OK && strcmp(p, want) == 0);
    /* whole asset: one file is only at a URL, so both are gathered in the cache folder */
    CHECK(rp_asset_fetch("t-mirror", NULL, &rep) == RP_OK);
    snprintf(want, sizeof want, "%s/t-mirror", cache);
    CHECK_MSG(strcmp(rp_json_str(rp_json_get(rep, "path"), ""), want) == 0, "%s", rp_json_str(rp_json_get(rep, "path"), ""));
    CHECK(rp_json_len(rp_json_get(rep, "files")) == 2);
    rp_json_free(rep);
    snprintf(want, sizeof want, "%s/t-mirror/abc.txt", cache);
    CHECK(exists(want));
    /* with both files in the mirror, the mirror folder itself is the answer */
    snprintf(p, sizeof p, "%s/tm/more/abc2.txt", mirror);
    rp_write_file(p, "abc", 3);
    snprintf(cmd, sizeof cmd, "rm -rf %s/t-mirror", cache);
    CHECK(system(cmd) == 0);
    snprintf(want, sizeof want, "%s/tm", mirror);
    CHECK(rp_asset_path("t-mirror", NULL, p, sizeof p) == RP_OK && strcmp(p, want) == 0);
    snprintf(p, sizeof p, "%s/tm/abc.txt", mirror);
    rp_write_file(p, "abd", 3);
    setenv("REPRO_OFFLINE", "1", 1);
    CHECK(rp_asset_path("t-mirror", "abc.txt", want, sizeof want) == RP_ERR_CHECKSUM);
    CHECK_MSG(strstr(rp_errmsg(), p) && strstr(rp_errmsg(), "not used"), "%s", rp_errmsg());
    rp_write_file(p, "abcd", 4);
    CHECK(rp_asset_path("t-mirror", "abc.txt", want, sizeof want) == RP_ERR_CHECKSUM && strstr(rp_errmsg(), "size 4 bytes"));
    unsetenv("REPRO_OFFLINE");

    /* wheel through a fake PyPI JSON API: both members extracted and verified, the wheel deleted after */
    char pypi[200];
    snprintf(pypi, sizeof pypi, "http://127.0.0.1:%d/pypi", port);
    setenv("REPRO_PYPI_URL", pypi, 1);
    CHECK(rp_asset_fetch("t-wheel/million.txt", NULL, &rep) == RP_OK);
    CHECK_MSG(rep && strcmp(rp_json_str(rp_json_path(rep, "files.0.source"), ""), "wheel") == 0, "%s", rp_errmsg());
    rp_json_free(rep);
    CHECK(rp_asset_fetch("t-wheel", NULL, &rep) == RP_OK);
    CHECK(rep && strcmp(rp_json_str(rp_json_path(rep, "files.1.source"), ""), "wheel") == 0);
    rp_json_free(rep);
    snprintf(want, sizeof want, "%s/t-wheel/million.txt", cache);
    char hex[65];
    CHECK(rp_sha256_file(want, hex) == RP_OK && strcmp(hex, SHA_MILLION_A) == 0);
    snprintf(want, sizeof want, "%s/t-wheel/.download/test_pkg-1.0-py3-none-any.whl", cache);
    CHECK(!exists(want));
    CHECK(__atomic_load_n(&hits_wheel, __ATOMIC_SEQ_CST) == 2);    /* once per call: the wheel is dropped once its members are out */
    /* the simple index (PEP 691 JSON) when the JSON API has nothing */
    char simple[200];
    snprintf(simple, sizeof simple, "http://127.0.0.1:%d/simple", port);
    setenv("REPRO_PYPI_SIMPLE_URL", simple, 1);
    CHECK_MSG(rp_asset_path("t-simple", NULL, p, sizeof p) == RP_OK, "%s", rp_errmsg());
    CHECK(__atomic_load_n(&hits_wheel, __ATOMIC_SEQ_CST) == 3);
    /* an HTML page where PyPI's JSON should be: a clean format error */
    CHECK(rp_asset_path("t-badwheel", NULL, p, sizeof p) != RP_OK && strstr(rp_errmsg(), "offset 0: expected"));
    /* a zip URL whose last segment is ".." names no file: refused before any download into the cache */
    CHECK_MSG(rp_asset_path("t-zipdir", NULL, p, sizeof p) != RP_OK && strstr(rp_errmsg(), "archive file name '..'"), "%s", rp_errmsg());
    unsetenv("REPRO_PYPI_URL");

    CHECK(rp_asset_path("no-such-asset", NULL, p, sizeof p) == RP_ERR_NOTFOUND && strstr(rp_errmsg(), "known: "));
    CHECK(rp_asset_path("t-url", "nofile", p, sizeof p) == RP_ERR_NOTFOUND && strstr(rp_errmsg(), "sub/abc.txt"));
}

static void test_catalog(const char *real_mirror) {
    rp_json *l = NULL;
    CHECK(rp_asset_list(&l) == RP_OK);
    const char *names[] = { "smollm2-135m-instruct", "stories260K", "llama2c-tokenizer-32k", "gguf-tiny-random-llama",
                            "tinystories-valid-slice", "wikitext2", "mmlu", "arc", "hellaswag", "piqa", "boolq", "winogrande",
                            "truthfulqa", "lambada-openai", "longfact", "hh-rlhf", "ultrafeedback-binarized-slice",
                            "orca-dpo-pairs-slice", "imdb-slice", "c4-samples", "tinyshakespeare" };
    int found = 0;
    for (size_t k = 0; k < sizeof names / sizeof *names; k++)
        for (size_t i = 0; i < rp_json_len(l); i++)
            if (!strcmp(rp_json_str(rp_json_get(rp_json_at(l, i), "name"), ""), names[k])) { found++; break; }
    CHECK(found == (int)(sizeof names / sizeof *names));
    rp_json_free(l);
    /* the embedded catalog is catalog.json (regenerate catalog_data.c with make_catalog.py --embed-only) */
    rp_buf b = {0};
    if (rp_read_file("harness/assets/catalog.json", &b) != RP_OK) { printf("skip: harness/assets/catalog.json not found from here\n"); CHECK(1); }
    else CHECK_MSG(strcmp(b.data, rp_asset_catalog_builtin) == 0, "catalog_data.c is stale");
    rp_buf_free(&b);
    if (!real_mirror) { printf("skip [mirror]: REPRO_MIRROR unset\n"); CHECK(1); return; }
    /* every line of the mirror's SHA256SUMS is in the catalog with the same digest */
    char path[1024];
    snprintf(path, sizeof path, "%s/SHA256SUMS", real_mirror);
    if (rp_read_file(path, &b) != RP_OK) { printf("skip [mirror]: %s\n", path); CHECK(1); return; }
    int lines = 0, matched = 0;
    rp_json *cat = NULL;
    CHECK(rp_json_parse(rp_asset_catalog_builtin, strlen(rp_asset_catalog_builtin), &cat) == RP_OK);
    for (char *s = b.data; s && *s;) {
        char *nl = strchr(s, '\n');
        if (nl) *nl = 0;
        char sha[65], rel[700];
        if (sscanf(s, "%64s %699s", sha, rel) == 2) {
            lines++;
            char *slash = strchr(rel, '/');
            if (slash) {
                *slash = 0;
                const rp_json *files = rp_json_get(rp_json_get(rp_json_get(cat, "assets"), rel), "files");
                const char *got = NULL;
                for (size_t i = 0; i < rp_json_len(files); i++)
                    if (!strcmp(rp_json_str(rp_json_get(rp_json_at(files, i), "path"), ""), slash + 1))
                        got = rp_json_str(rp_json_get(rp_json_at(files, i), "sha256"), "");
                if (got && !strcmp(got, sha)) matched++;
                else fprintf(stderr, "  not in catalog: %s/%s %s\n", rel, slash + 1, sha);
            }
        }
        s = nl ? nl + 1 : NULL;
    }
    rp_json_free(cat);
    CHECK_MSG(lines > 200 && matched == lines, "%d of %d SHA256SUMS lines in the catalog", matched, lines);
    rp_buf_free(&b);
    /* a real mirror hit: stories260K's tokenizer, and the asset as a folder */
    char p[1024], want[1024];
    set_env(real_mirror, "/nonexistent-cache-dir");
    snprintf(want, sizeof want, "%s/stories260K/tok512.bin", real_mirror);
    if (!exists(want)) { printf("skip [mirror]: %s missing\n", want); CHECK(1); return; }
    CHECK(rp_asset_path("stories260K/tok512.bin", NULL, p, sizeof p) == RP_OK && strcmp(p, want) == 0);
    snprintf(want, sizeof want, "%s/stories260K", real_mirror);
    CHECK(rp_asset_path("stories260K", NULL, p, sizeof p) == RP_OK && strcmp(p, want) == 0);
}

int main(void) {
    const char *m = getenv("REPRO_MIRROR");
    char *real_mirror = m && m[0] ? strdup(m) : NULL;
    snprintf(tmp, sizeof tmp, "/tmp/repro-test-assets-XXXXXX");
    if (!mkdtemp(tmp)) { perror("mkdtemp"); return 1; }
    rp_httpd *srv = NULL;
    CHECK(rp_httpd_start(NULL, 0, 16, handler, NULL, &srv) == RP_OK);
    port = rp_httpd_port(srv);
    test_zip();
    add_catalog();
    test_sources();
    test_catalog(real_mirror);
    rp_httpd_stop(srv);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    free(real_mirror);
    return checks_done("assets");
}
