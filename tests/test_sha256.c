/* test_sha256.c: SHA-256 against the FIPS 180-4 / NIST CAVP example vectors, chunking invariance, and a
 * mirror file against the mirror's own SHA256SUMS (computed by coreutils sha256sum, an independent tool). */
#include <stdlib.h>
#include <string.h>
#include "util/sha256.h"
#include "tests/check.h"

static int hex_of(const void *d, size_t n, const char *want) {
    uint8_t out[32];
    char hex[65];
    rp_sha256(d, n, out);
    rp_sha256_hex(out, hex);
    if (strcmp(hex, want)) fprintf(stderr, "  got %s\n want %s\n", hex, want);
    return strcmp(hex, want) == 0;
}

int main(void) {
    CHECK(hex_of("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    CHECK(hex_of("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    const char *m2 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    CHECK(hex_of(m2, strlen(m2), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
    const char *m3 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrs"
                     "mnopqrstnopqrstu";
    CHECK(hex_of(m3, strlen(m3), "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"));
    /* one million 'a', fed in uneven chunks */
    size_t n = 1000000;
    char *a = malloc(n);
    memset(a, 'a', n);
    CHECK(hex_of(a, n, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
    rp_sha256_ctx c;
    rp_sha256_init(&c);
    for (size_t off = 0, k = 1; off < n; k = k * 7 % 257 + 1) {
        size_t take = k < n - off ? k : n - off;
        rp_sha256_update(&c, a + off, take);
        off += take;
    }
    uint8_t dg[32];
    char hex[65];
    rp_sha256_final(&c, dg);
    rp_sha256_hex(dg, hex);
    CHECK(strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0);
    free(a);
    /* padding boundaries: lengths 55, 56, 63, 64 (one-shot vs byte-at-a-time must agree) */
    for (size_t len = 54; len <= 65; len++) {
        char buf[80];
        memset(buf, 'x', len);
        uint8_t d1[32], d2[32];
        rp_sha256(buf, len, d1);
        rp_sha256_init(&c);
        for (size_t i = 0; i < len; i++) rp_sha256_update(&c, buf + i, 1);
        rp_sha256_final(&c, d2);
        CHECK(memcmp(d1, d2, 32) == 0);
    }
    /* a mirror file against SHA256SUMS */
    const char *mirror = getenv("REPRO_MIRROR");
    char path[4096], want[65] = "";
    snprintf(path, sizeof path, "%s/SHA256SUMS", mirror ? mirror : "");
    FILE *f = mirror ? fopen(path, "r") : NULL;
    char line[4096], rel[4000] = "";
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "%64s %3999s", want, rel) == 2 && strstr(rel, "tinyshakespeare")) break;
    if (f) fclose(f);
    if (!rel[0] || !strstr(rel, "tinyshakespeare")) { printf("skip [mirror]: no tinyshakespeare line in %s\n", path); CHECK(1); }
    else {
        const char *r = rel[0] == '*' ? rel + 1 : rel;
        if (r[0] == '.' && r[1] == '/') r += 2;
        snprintf(path, sizeof path, "%s/%s", mirror, r);
        CHECK(rp_sha256_file(path, hex) == RP_OK);
        CHECK_MSG(strcmp(hex, want) == 0, "%s: %s vs %s", path, hex, want);
    }
    CHECK(rp_sha256_file("/nonexistent/x", hex) == RP_ERR_NOTFOUND && strstr(rp_errmsg(), "/nonexistent/x"));
    return checks_done("sha256");
}
