/* model_resolve.c: from what a user types (a file path, an asset name such as "smollm2-135m-instruct",
 * or "asset/file") to the model file to open (model_resolve.h). Assets are fetched and verified by the
 * asset registry; the engine only ever sees the resulting path. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "assets/assets.h"
#include "assets/model_resolve.h"

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* The model file inside an asset folder: a .gguf, else a .safetensors, else a .bin that is not a tokenizer. */
static rp_status pick_in_folder(const char *dir, const char *name, char *out, size_t n) {
    static const char *const kinds[] = { ".gguf", ".safetensors", ".bin" };
    for (int k = 0; k < 3; k++) {
        DIR *d = opendir(dir);
        if (!d) return rp_fail(RP_ERR_IO, "model %s: cannot list %s", name, dir);
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!ends_with(e->d_name, kinds[k])) continue;
            if (k == 2 && (strncmp(e->d_name, "tok", 3) == 0)) continue;
            snprintf(out, n, "%s/%s", dir, e->d_name);
            closedir(d);
            return RP_OK;
        }
        closedir(d);
    }
    return rp_fail(RP_ERR_NOTFOUND, "model %s: no .gguf, .safetensors or model .bin in %s", name, dir);
}

/* Resolve a model name or path to a file path. */
rp_status rp_model_resolve(const char *name, char *out, size_t n) {
    struct stat st;
    if (stat(name, &st) == 0 && S_ISREG(st.st_mode)) {
        if ((size_t)snprintf(out, n, "%s", name) >= n) return rp_fail(RP_ERR_RANGE, "model path too long: %s", name);
        return RP_OK;
    }
    if (strchr(name, '/') && stat(name, &st) != 0 && (name[0] == '/' || name[0] == '.'))
        return rp_fail(RP_ERR_NOTFOUND, "model %s: no such file", name);
    char p[4096];
    rp_status s = rp_asset_path(name, NULL, p, sizeof p);
    if (s != RP_OK && stat(name, &st) == 0 && S_ISDIR(st.st_mode))
        return rp_fail(RP_ERR_INVAL, "model %s is a directory, not a model file: give the .gguf, .safetensors or "
                       "llama2.c .bin file inside it (or an asset name)", name);
    if (s != RP_OK) return rp_fail_ctx(s, "model %s: not a file, and as an asset: ", name);
    if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) return pick_in_folder(p, name, out, n);
    if ((size_t)snprintf(out, n, "%s", p) >= n) return rp_fail(RP_ERR_RANGE, "model path too long: %s", p);
    return RP_OK;
}

/* Resolve a name or path, then load. */
rp_status rp_model_load_named(const char *name, const rp_model_opts *opts, rp_model **out) {
    char path[4096];
    RP_TRY(rp_model_resolve(name, path, sizeof path));
    return rp_model_load(path, opts, out);
}
