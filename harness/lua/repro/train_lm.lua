-- repro/train_lm.lua: require("repro.train_lm")(tr, m, B, T) -> a repro.eval language model backed by a
-- repro.train trainer, so a model being trained (LoRA adapters, NF4 base) is scored in place, without merging
-- or writing a file. Used by the sdpo plugin (benchmarks before/after DPO) and the prune plugin (accuracy
-- before/after healing).
--
-- A trained model as a repro.eval language model (the table protocol): the tokenizer of repro.model m, the
-- log-probabilities of the trainer tr (adapters included) through tr:eval, B sequences per call of at most
-- T+1 tokens (longer ones are cut from the left, keeping the scored tokens; lm.cut counts them), batched
-- longest first so rows of a batch have similar widths. tr:eval gives
-- each sequence's sum over the scored tokens, not the tokens one by one, so each result list carries that
-- sum in its last slot and zeros before it: right for the log-likelihood sums multiple-choice scoring takes
-- (eval/score.c sums them), and it offers no greedy flags, so tasks that need those (lastword) are refused by repro.eval.
return function(tr, m, B, T)
  local info = m:info()
  local lm = { n_ctx = T + 1, bos = info.bos, add_bos = info.add_bos, n_vocab = info.vocab, cut = 0 }
  function lm.tokenize(text) return m:tokenize(text, { bos = false }) end
  function lm.logprobs(seqs, from)
    -- rows go to tr:eval longest first, so each batch's rows are of similar length and little is padding
    -- (a batch is as wide as its longest row); results return in the callers' order
    local order = {}
    for k = 1, #seqs do order[k] = k end
    table.sort(order, function(a, b)
      local la, lb = math.min(#seqs[a], T + 1), math.min(#seqs[b], T + 1)
      if la ~= lb then return la > lb end
      return a < b
    end)
    local out = {}
    for s = 1, #seqs, B do
      local rows, meta, W, ks = {}, {}, 1, {}
      for j = s, math.min(s + B - 1, #seqs) do
        local k = order[j]
        ks[#ks + 1] = k
        local seq, f = seqs[k], from[k]
        local cut = math.max(0, #seq - (T + 1))
        if f - cut < 0 then error(string.format("train_lm: sequence %d has %d scored tokens, more than %d fit", k, #seq - 1 - f, T), 2) end
        if cut > 0 then lm.cut = lm.cut + 1 end
        rows[#rows + 1] = { seq = seq, cut = cut, from = f - cut }
        W = math.max(W, #seq - cut - 1)
      end
      local b = { tokens = {}, targets = {}, mask = {} }
      for i, r in ipairs(rows) do
        local tok, tgt, mask = {}, {}, {}
        local n = #r.seq - r.cut
        for t = 1, W do
          tok[t] = r.seq[r.cut + t] or 0
          tgt[t] = (t < n) and r.seq[r.cut + t + 1] or 0
          mask[t] = (t < n and t > r.from) and 1 or 0
        end
        b.tokens[i], b.targets[i], b.mask[i] = tok, tgt, mask
        meta[i] = #r.seq - 1 - (r.from + r.cut)
      end
      local _, lp = tr:eval(b)
      for i = 1, #rows do
        local l = {}
        for j = 1, meta[i] do l[j] = 0 end
        if meta[i] > 0 then l[meta[i]] = lp[i] end
        out[ks[i]] = l
      end
    end
    return out
  end
  return lm
end
