-- presets_test.lua: every preset (smoke, demo, full, paper) of the sDPO and pruning experiments resolves and
-- gets past its setup, checked without running the work (run by `repro exec`): its params resolve; the
-- preference sets it asks for hold that many pairs; the calibration windows fit in the first 40% of the
-- text (what broke prune_angular's full preset: 1,000 windows of 256 do not fit WikiText-2's), the layer
-- counts fit the model, the rules exist, the tasks load. A preset that needs data not staged here must fail
-- that check with an error naming what is missing; the ones that do are listed below, so staging the data
-- (or a changed preset) fails this test until the list is updated. Skips without the mirror.
local experiment = require("repro.experiment")
local assets = require("repro.assets")
local model = require("repro.model")
local eval = require("repro.eval")
local prune = require("prune")
local sdpo = require("sdpo")
local T = require("tests.luacheck")
local check = T.check

-- presets whose setup needs data that is not staged, and the words their error must hold
local UNSTAGED = {
  ["prune_angular/paper"] = "stage a longer text",   -- 10,000 samples of 256 (the paper: C4 validation)
  ["prune_curves/paper"] = "stage a longer text",    -- 2,000 calibration samples of 256
}

local mirror = os.getenv("REPRO_MIRROR")
local fh = mirror and io.open(mirror .. "/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf", "rb")
if not fh then print("skip [mirror]: SmolLM2-135M-Instruct not in the mirror (preset checks)"); T.done("presets_test"); return end
fh:close()

local models, texts, task_ok = {}, {}, {}
local function load_model(name)
  if not models[name] then
    local spec = prune.MODELS[name]
    models[name] = model.load(assets.path(name, spec.file), { tokenizer = spec.tokenizer and assets.path(name, spec.tokenizer) or nil })
  end
  return models[name]
end
local function calib_text(name)
  if not texts[name] then
    local f = assert(io.open(assets.path(prune.TEXTS[name][1], prune.TEXTS[name][2]), "rb"))
    texts[name] = prune.piece(f:read("*a"), 0, 0.4)
    f:close()
  end
  return texts[name]
end
-- a setup step: passes, or fails as UNSTAGED says it must
local function expect(where, ok, err)
  local want = UNSTAGED[where]
  if want then
    check(not ok and tostring(err):find(want, 1, true) ~= nil, where .. ": fails naming what is not staged (" .. tostring(err) .. ")")
  else
    check(ok, where .. ": setup passes (" .. tostring(err) .. ")")
  end
end

-- setup(name, p) for every preset of each experiment named: it must pass, or fail as UNSTAGED says
local function each_preset(names, setup)
  for _, name in ipairs(names) do
    local spec = dofile("experiments/" .. name .. ".lua")
    local mem = experiment._describe(spec, "full").resources.memory
    check(mem ~= nil, name .. ": the full preset declares its memory (" .. tostring(mem) .. ")")
    for _, preset in ipairs(experiment.PRESETS) do
      local p = experiment.resolve(spec, preset, {})
      expect(name .. "/" .. preset, pcall(setup, name, p))
    end
  end
end

each_preset({ "prune_angular", "prune_curves" }, function(name, p)
  local m = load_model(p.model)
  local L = m:info().n_layer
  if name == "prune_curves" then
    prune.layer_counts(p.ns, L, "ns", p.model)
    prune.layer_counts(p.heal_ns, L, "heal_ns", p.model)
    prune.layer_counts(tostring(p.rank_n), L, "rank_n", p.model)
    prune.rule_list(p.rules, "rules")
    prune.rule_list(p.heal_rules, "heal_rules")
    for _, list in ipairs { p.tasks, p.heal_tasks } do
      if not task_ok[list] then prune.load_tasks(list, p.mmlu_shots); task_ok[list] = true end
    end
  end
  local fits, why = prune.windows_fit(m, calib_text(p.text), p.n_samples or p.n_calib, p.seq_len or p.calib_len, p.text)
  if not fits then error(why, 0) end
end)

each_preset({ "sdpo_gamma", "sdpo_vs_dpo" }, function(name, p)
  for set, n in pairs { orca = p.n_orca, ultrafeedback = p.n_uf, ultrafeedback_eval = p.n_heldout } do
    local got = #sdpo.load(set, { limit = n })
    if got < 1 or (n > 0 and got ~= n) then error(string.format("%s: %d pairs of %s, asked %d", name, got, set, n), 0) end
  end
  if (p.mc_limit or 0) > 0 then
    eval.load("arc_easy")
    for _, c in ipairs(sdpo.H4) do eval.load(c.task) end
  end
end)
-- the check can fail: a preset asking for more pairs than are staged is an error naming both
local ok, err = pcall(sdpo.load, "orca", { limit = 100000 })
check(not ok and tostring(err):find("asks for 100000 pairs", 1, true) ~= nil, "too many pairs is an error: " .. tostring(err))
for _, m in pairs(models) do m:close() end
T.done("presets_test")
