-- llama_reference.lua: the engine against an independent implementation. stories260K (llama2.c) and
-- SmolLM2-135M-Instruct (Q4_1 GGUF) are run through repro's own loaders, tokenizers and kernels, and
-- compared with what llama2.c and llama.cpp print for the same files (shared/reference): the greedy
-- continuation byte for byte, and perplexity under llama.cpp's protocol (context c, the first 50
-- chunks, each chunk's second half scored). The engine multiplies with weights dequantized exactly, so
-- SmolLM2's figures are compared with llama.cpp's F32 path (the same weights, computed in F32); llama.cpp's
-- own Q4_1 path (8-bit activations) differs from its F32 path by about 0.3%.
local experiment = require("repro.experiment")
local model = require("repro.model")
local eval = require("repro.eval")

-- llama.cpp's figures (shared/reference/stories260K/README.md and smollm2/README.md).
local REF = {
  stories_ppl = { [128] = 3.9143, [256] = 3.8845, [512] = 3.8662 },
  smol_wikitext = { q4_1 = 22.8080, f32 = 22.7347 },
  smol_tinystories = { q4_1 = 6.5005, f32 = 6.4893 },
}

return experiment.define {
  name = "llama_reference",
  paper = "engine",
  description = "Engine vs llama2.c / llama.cpp on the same files: greedy text and perplexity",
  version = 1,
  params = {
    stories_ctx = { type = "integer", default = 512, choices = { 128, 256, 512 }, doc = "stories260K perplexity context" },
    chunks = { type = "integer", default = 50, min = 1, max = 50, doc = "perplexity chunks (llama.cpp's figures use 50)" },
    smollm2 = { type = "boolean", default = true, doc = "also run SmolLM2-135M-Instruct (98 MB)" },
    smol_ctx = { type = "integer", default = 512, doc = "SmolLM2 perplexity context" },
    smol_texts = { type = "string", default = "wikitext2,tinystories", doc = "comma-separated texts for SmolLM2's perplexity (wikitext2, tinystories)" },
    threads = { type = "integer", default = 0, min = 0, doc = "engine threads (0: all cores)" },
  },
  seconds = { demo = 50 },   -- idle 2-core estimate from measured CPU time (see README)
  presets = {
    smoke = { stories_ctx = 128, chunks = 4, smollm2 = false },
    demo = { chunks = 50, smollm2 = true, smol_texts = "wikitext2" },   -- WikiText-2 only: keeps make demo within 5 min
    full = { chunks = 50, smollm2 = true },
    paper = { chunks = 50, smollm2 = true },
  },
  run = function(ctx, p)
    local opts = p.threads > 0 and { threads = p.threads } or nil
    -- stories260K: greedy from BOS, 200 tokens, must equal llama2.c's output.
    local bin = ctx:asset("stories260K", "stories260K.bin")
    local tok = ctx:asset("stories260K", "tok512.bin")
    local want = ctx:asset_text("stories260K", "greedy200.txt")
    local m = model.load(bin, { tokenizer = tok, threads = opts and opts.threads or nil })
    local info = m:info()
    local text, g = m:generate { tokens = { info.bos }, max_tokens = 200, temperature = 0 }
    ctx:summary("stories260K_greedy_tokens_per_s", g.tokens_per_s, { better = "higher" })
    ctx:record("greedy", "stories260K", { text = text, expected = want })
    ctx:target { name = "stories260K greedy 200 tokens = llama2.c output", kind = "exact", paper = 1,
                 value = text == want and 1 or 0, tolerance = 0, note = "byte for byte" }

    local stories_text = ctx:asset_text("tinystories-valid-slice", "tinystories_val.txt")
    local r = eval.perplexity(m, stories_text, { ctx = p.stories_ctx, chunks = p.chunks, protocol = "llamacpp" })
    ctx:summary("stories260K_ppl_c" .. p.stories_ctx, r.ppl, { stderr = r.ppl_stderr, better = "lower" })
    if p.chunks == 50 then
      ctx:target { name = "stories260K perplexity, c=" .. p.stories_ctx .. " (llama.cpp)", kind = "exact",
                   paper = REF.stories_ppl[p.stories_ctx], value = r.ppl, tolerance = 0.005, relative = true,
                   note = "within 0.5% of llama.cpp's figure on the same file" }
    end
    m:close()

    if not p.smollm2 then return end
    local sm = model.load(ctx:asset("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf"), opts)
    local known = {
      wikitext2 = { "wikitext2", "wikitext2", "wiki.test.raw", REF.smol_wikitext },
      tinystories = { "tinystories", "tinystories-valid-slice", "tinystories_val.txt", REF.smol_tinystories },
    }
    local texts = {}
    for name in p.smol_texts:gmatch("[^,%s]+") do
      local k = known[name]
      if not k then error("llama_reference: smol_texts: unknown text '" .. name .. "' (valid: wikitext2, tinystories)", 0) end
      texts[#texts + 1] = { k[1], ctx:asset_text(k[2], k[3]), k[4] }
    end
    local labels, ours, f32, q41 = {}, {}, {}, {}
    for i, t in ipairs(texts) do
      local rr = eval.perplexity(sm, t[2], { ctx = p.smol_ctx, chunks = p.chunks, protocol = "llamacpp" })
      ctx:summary("smollm2_ppl_" .. t[1], rr.ppl, { stderr = rr.ppl_stderr, better = "lower" })
      if rr.bpb == rr.bpb then ctx:summary("smollm2_bpb_" .. t[1], rr.bpb, { better = "lower" }) end
      labels[i], ours[i], f32[i], q41[i] = t[1], rr.ppl, t[3].f32, t[3].q4_1
      if p.chunks == 50 and p.smol_ctx == 512 then
        ctx:target { name = "SmolLM2 perplexity on " .. t[1] .. " vs llama.cpp F32 path", kind = "exact",
                     paper = t[3].f32, value = rr.ppl, tolerance = 0.005, relative = true,
                     note = string.format("llama.cpp Q4_1 path: %.4f", t[3].q4_1) }
      end
    end
    ctx:figure { name = "smollm2_ppl", type = "bars", title = "SmolLM2-135M-Instruct perplexity (c=" .. p.smol_ctx .. ", " .. p.chunks .. " chunks)",
                 ylabel = "perplexity", categories = labels,
                 series = { { label = "repro", y = ours }, { label = "llama.cpp F32", y = f32 }, { label = "llama.cpp Q4_1", y = q41 } } }
    sm:close()
  end,
}
