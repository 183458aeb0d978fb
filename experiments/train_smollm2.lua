-- train_smollm2.lua: fine-tuning SmolLM2-135M-Instruct on a staged text with repro.train, and the held-out
-- loss curve before and after. The text is tokenized with the model's own tokenizer, packed into windows of
-- seq_len+1 tokens (repro.train_data), the last `holdout` fraction of the windows held out; the held-out
-- loss (mean next-token cross-entropy over every held-out window) is measured before the first step and
-- every eval_every steps. The claim checked (a shape target): tuning on a text lowers the held-out loss on
-- that text. The smoke preset trains a tiny Llama from scratch on tinyshakespeare's characters instead
-- (seconds, no model file), where the held-out loss must fall below the character unigram entropy
-- measured on the training windows.
local experiment = require("repro.experiment")
local train = require("repro.train")
local td = require("repro.train_data")

local TEXTS = {
  tinyshakespeare = { "tinyshakespeare", "input.txt" },
  tinystories = { "tinystories-valid-slice", "tinystories_val.txt" },
  wikitext2 = { "wikitext2", "wiki.test.raw" },
}

-- Mean held-out loss over all windows, B at a time (every window has seq_len scored targets).
local function heldout_loss(tr, seqs, B)
  local sum, n = 0, 0
  for s = 1, #seqs, B do
    local rows = {}
    for k = s, math.min(s + B - 1, #seqs) do rows[#rows + 1] = seqs[k].ids end
    sum = sum + tr:eval { tokens = rows } * #rows
    n = n + #rows
  end
  return sum / n
end

-- Characters as tokens (0-based ids in order of first appearance) and their unigram entropy in nats.
local function char_tokens(text)
  local id_of, V, ids = {}, 0, {}
  for i = 1, #text do
    local b = text:byte(i)
    if not id_of[b] then id_of[b] = V; V = V + 1 end
    ids[i] = id_of[b]
  end
  return ids, V
end

local function unigram_entropy(seqs, V)
  local counts, n = {}, 0
  for v = 0, V - 1 do counts[v] = 0 end
  for _, s in ipairs(seqs) do
    for i = 2, #s.ids do counts[s.ids[i]] = counts[s.ids[i]] + 1; n = n + 1 end
  end
  local h = 0
  for v = 0, V - 1 do if counts[v] > 0 then local p = counts[v] / n; h = h - p * math.log(p) end end
  return h
end

return experiment.define {
  name = "train_smollm2",
  paper = "smollm2",
  description = "LoRA / full fine-tuning of SmolLM2-135M-Instruct on a staged text: held-out loss before and after",
  version = 1,
  params = {
    model = { type = "string", default = "smollm2", choices = { "smollm2", "scratch" },
              doc = "smollm2: fine-tune SmolLM2-135M-Instruct; scratch: a tiny Llama on the text's characters" },
    method = { type = "string", default = "lora", choices = { "lora", "qlora", "full" }, doc = "training method (scratch: full)" },
    text = { type = "string", default = "tinyshakespeare", choices = { "tinyshakespeare", "tinystories", "wikitext2" },
             doc = "staged text to tune on" },
    max_bytes = { type = "integer", default = 200000, min = 1000, doc = "bytes of the text used (from its start)" },
    holdout = { type = "number", default = 0.1, min = 0.01, max = 0.5, doc = "fraction of the windows held out (the text's end)" },
    eval_seqs = { type = "integer", default = 32, min = 1, doc = "held-out windows evaluated (the first ones)" },
    seq_len = { type = "integer", default = 64, min = 8, doc = "tokens per sequence (T)" },
    batch = { type = "integer", default = 4, min = 1, doc = "sequences per step (B)" },
    steps = { type = "integer", default = 40, min = 1, doc = "optimizer steps" },
    eval_every = { type = "integer", default = 10, min = 1, doc = "steps between held-out evaluations" },
    lr = { type = "number", default = 1e-3, doc = "peak learning rate (cosine schedule, 10% warm-up)" },
    rank = { type = "integer", default = 8, min = 1, doc = "LoRA rank" },
    alpha = { type = "number", default = 16, doc = "LoRA alpha (scale alpha / rank)" },
    dropout = { type = "number", default = 0.05, min = 0, max = 0.9, doc = "LoRA dropout" },
    targets = { type = "string", default = "attn_q,attn_k,attn_v,attn_output", doc = "LoRA target linears" },
    threads = { type = "integer", default = 2, min = 1, doc = "threads" },
    precision = { type = "string", default = "fp32", choices = { "fp32", "bf16" },
                  doc = "the linears' products: fp32, or bf16 inputs with fp32 sums on the CPU's bf16 unit (losses within 1% of fp32's)" },
  },
  presets = {
    smoke = { model = "scratch", max_bytes = 60000, seq_len = 32, batch = 8, steps = 60, eval_every = 20, eval_seqs = 16, lr = 5e-3 },
    demo = { },
    full = { steps = 300, seq_len = 128, max_bytes = 1000000, eval_every = 25, eval_seqs = 64 },
    paper = { method = "full", steps = 300, seq_len = 128, max_bytes = 1000000, eval_every = 25, eval_seqs = 64, lr = 5e-5 },
  },
  seconds = { smoke = 5, demo = 60 },   -- idle 2-core estimates: demo took 95 CPU-s in all (2026-12-05, load 9-15)
  resources = { threads = 2, memory = "3G", time_min = 30 },
  run = function(ctx, p)
    local a = TEXTS[p.text]
    local text = ctx:asset_text(a[1], a[2]):sub(1, p.max_bytes)
    local opt = { lr = p.lr, schedule = "cosine", warmup = math.max(1, math.floor(p.steps / 10)), total_steps = p.steps,
                  lr_min = p.lr / 10, weight_decay = 0.0, clip = 1.0 }
    local tr, data, floor_loss, floor_name
    if p.model == "scratch" then
      local ids, V = char_tokens(text)
      data = td.pack(ids, { seq_len = p.seq_len, holdout = p.holdout })
      floor_loss, floor_name = unigram_entropy(data.train, V), "character unigram entropy"
      tr = train.new { config = { n_layer = 2, dim = 64, n_head = 4, n_head_kv = 2, ffn_dim = 192, vocab = V }, batch = p.batch,
                       seq_len = p.seq_len, threads = p.threads, optimizer = opt, precision = p.precision }
    else
      local mpath = ctx:asset("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
      local m = require("repro.model").load(mpath, { threads = 1 })
      local ids = m:tokenize(text, { bos = false })
      m:close()
      data = td.pack(ids, { seq_len = p.seq_len, holdout = p.holdout })
      tr = train.new { model = mpath, method = p.method, targets = p.targets, rank = p.rank, alpha = p.alpha,
                       dropout = p.dropout, batch = p.batch, seq_len = p.seq_len, threads = p.threads, optimizer = opt,
                       precision = p.precision }
    end
    local valid = {}
    for i = 1, math.min(p.eval_seqs, #data.valid) do valid[i] = data.valid[i] end
    local info = tr:info()
    ctx:note("train_smollm2: %s (%s, %d trainable parameters, %s) on %s: %d tokens -> %d training + %d held-out windows of %d (%d evaluated)",
             p.model, info.method, info.params, info.precision, p.text, data.n_tokens, #data.train, #data.valid, p.seq_len, #valid)
    ctx:record("data", p.text, { tokens = data.n_tokens, train_windows = #data.train, heldout_windows = #data.valid,
                                 evaluated = #valid, seq_len = p.seq_len, dropped = data.dropped })
    local steps_x, train_y, held_x, held_y = {}, {}, {}, {}
    local before = heldout_loss(tr, valid, p.batch)
    ctx:log("heldout_loss", 0, before)
    held_x[1], held_y[1] = 0, before
    local epoch, batches, bi = 0, td.batches(data.train, p.batch, { seed = ctx.seed, epoch = 0, drop_last = true }), 0
    local prog = train.progress("train_smollm2", p.steps, "steps")
    local t0, tokens, done = os.time(), 0, 0
    local clock0 = os.clock()
    for step = 1, p.steps do
      if ctx:interrupted() then break end
      bi = bi + 1
      if bi > #batches then
        epoch, bi = epoch + 1, 1
        batches = td.batches(data.train, p.batch, { seed = ctx.seed, epoch = epoch, drop_last = true })
      end
      local loss, gn, lr = tr:step(batches[bi])
      tokens = tokens + p.batch * p.seq_len
      ctx:log("train_loss", step, loss)
      ctx:log("grad_norm", step, gn)
      ctx:log("lr", step, lr)
      steps_x[#steps_x + 1], train_y[#train_y + 1] = step, loss
      if step % p.eval_every == 0 or step == p.steps then
        local h = heldout_loss(tr, valid, p.batch)
        ctx:log("heldout_loss", step, h)
        held_x[#held_x + 1], held_y[#held_y + 1] = step, h
      end
      done = step
      prog:update(step)
    end
    prog:done()
    local cpu = os.clock() - clock0
    local after = held_y[#held_y]
    ctx:summary("heldout_loss_before", before, { better = "lower" })
    ctx:summary("heldout_loss_after", after, { better = "lower" })
    ctx:summary("train_tokens_per_cpu_s", tokens / math.max(cpu, 1e-9), { better = "higher" })
    ctx:record("timing", "train", { steps = done, tokens = tokens, wall_s = os.time() - t0, cpu_s = cpu })
    ctx:note("held-out loss %.4f -> %.4f after %d steps (%d tokens, %.1f CPU-s)", before, after, done, tokens, cpu)
    ctx:figure { name = "loss", type = "lines", title = string.format("%s %s on %s", p.model, info.method, p.text),
                 xlabel = "step", ylabel = "cross-entropy (nats/token)",
                 series = { { label = "training batch", x = steps_x, y = train_y }, { label = "held-out", x = held_x, y = held_y } } }
    if p.model == "scratch" then
      ctx:target { name = "tiny Llama from scratch: held-out loss below the " .. floor_name, kind = "shape", holds = after < floor_loss,
                   value = after, paper = floor_loss, note = string.format("held-out %.4f vs %.4f", after, floor_loss) }
    else
      ctx:target { name = info.method .. " on " .. p.text .. " lowers its held-out loss", kind = "shape", holds = after < before,
                   value = after, paper = before, note = string.format("held-out %.4f before, %.4f after %d steps", before, after, done) }
    end
    tr:close()
  end,
}
