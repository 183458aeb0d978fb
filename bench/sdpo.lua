-- sdpo.lua N T: the Lua side of bench_sdpo.sh. DPO training throughput (pairs per second) on SmolLM2-135M-
-- Instruct with LoRA (rank 8 on attn_q,attn_v, 4 pairs per step, T tokens per sequence) on N UltraFeedback
-- pairs, against a reference measured in the same run: plain cross-entropy steps on the very same rows (what
-- the DPO objective costs beyond its two sequences per pair). Then the share of a DPO epoch spent on reference
-- log-probabilities, computed (cache miss) and read back (cache hit).
local sdpo = require("sdpo")
local model = require("repro.model")
local train = require("repro.train")
local N, T = tonumber(arg[1] or 8), tonumber(arg[2] or 128)
local path = require("repro.assets").path("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
local m = model.load(path)
local ex = sdpo.encode(sdpo.chat_encoder(m), sdpo.load("ultrafeedback", { limit = N }), T)
local function trainer()
  return train.new { model = path, method = "lora", rank = 8, alpha = 16, targets = "attn_q,attn_v", batch = 8, seq_len = T, seed = 1,
                     threads = 2, optimizer = { lr = 1e-4 } }
end
local function wall(f) local c0, t0 = os.clock(), os.time(); f(); return os.clock() - c0, os.time() - t0 end
local dir = os.tmpname(); os.remove(dir)
local tr = trainer()
local ref
local c_miss = wall(function() ref = sdpo.reference_logps(tr, ex, { base = "bench", dir = dir, ppb = 4 }) end)
local c_hit = wall(function() ref = sdpo.reference_logps(tr, ex, { base = "bench", dir = dir, ppb = 4 }) end)
local c_dpo = wall(function() sdpo.train(tr, ex, ref, { beta = 0.1, ppb = 4, epochs = 1 }) end)
local ce = trainer()
local c_ce = wall(function()
  for s = 1, #ex, 4 do
    local idx = {}
    for i = s, math.min(s + 3, #ex) do idx[#idx + 1] = i end
    ce:step(sdpo.batch(ex, idx))
  end
end)
print(string.format("sdpo  DPO epoch, %d pairs x 2 x %d tokens     %7.2f CPU-s   %.3f pairs/CPU-s", N, T, c_dpo, N / c_dpo))
print(string.format("sdpo  same rows, cross-entropy (reference)    %7.2f CPU-s   ratio DPO/CE %.2f (1.00: the DPO loss costs nothing extra)", c_ce, c_dpo / c_ce))
print(string.format("sdpo  reference log-probs computed (miss)     %7.2f CPU-s   share of epoch %.1f%%", c_miss, 100 * c_miss / (c_miss + c_dpo)))
print(string.format("sdpo  reference log-probs cached (hit)        %7.3f CPU-s   share of epoch %.2f%%   speed-up of the reference %.0fx",
                    c_hit, 100 * c_hit / (c_hit + c_dpo), c_miss / math.max(c_hit, 1e-6)))
for f in io.popen("ls " .. dir):lines() do os.remove(dir .. "/" .. f) end
os.remove(dir)
