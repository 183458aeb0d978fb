-- experiment.lua: the experiment API (require("repro.experiment")).
-- A script returns experiment.define{...}: name, paper, description, version, params (each with type,
-- default and doc), presets (smoke for tests in seconds, demo for minutes on a CPU, full, paper) and
-- run(ctx, params), and optionally seconds = { demo = 40, ... }: each preset's expected wall time on an idle
-- 2-core machine (what `repro demo` prints as its plan and ETA). The host resolves params (defaults, then the preset, then key=value overrides),
-- records the run, and calls run with a ctx that logs metrics, summaries, figures and targets.
-- Written in the subset shared by Lua 5.4 and LuaJIT (5.1 syntax).
local core = require("repro.core")

local M = {}

local PARAM_TYPES = { integer = true, number = true, string = true, boolean = true }
local DECL_KEYS = { name = true, paper = true, description = true, version = true, params = true,
                    presets = true, run = true, reproduces = true, resources = true,
                    seconds = true }
-- What a run needs, for runners to place it (repro sweep --runner local|slurm): threads (cores, >= 1),
-- memory ("512M", "4G": a Slurm --mem value), gpu (count), time_min (wall-clock limit in minutes); and
-- presets = { full = { memory = "12G" }, ... }: a preset's own values over those (its other keys inherited).
local RESOURCE_KEYS = { threads = true, memory = true, gpu = true, time_min = true, presets = true }
local PARAM_KEYS = { type = true, default = true, doc = true, choices = true, min = true, max = true }
local PRESETS = { "smoke", "demo", "full", "paper" }

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = tostring(k) end
  table.sort(ks)
  return ks
end

local function fail(fmt, ...) error(string.format(fmt, ...), 0) end

local function is_integer(v) return type(v) == "number" and v == math.floor(v) and v > -2^53 and v < 2^53 end

local function valid_list(params)
  local out = {}
  for _, k in ipairs(sorted_keys(params)) do
    out[#out + 1] = string.format("%s (%s, default %s)", k, params[k].type, tostring(params[k].default))
  end
  return table.concat(out, ", ")
end

-- Check a value against a param declaration; returns the (possibly converted) value or raises.
local function check_value(pname, decl, v, where)
  local t = decl.type
  if t == "integer" then
    if not is_integer(v) then fail("%s: param '%s' must be an integer, got %s", where, pname, tostring(v)) end
  elseif t == "number" then
    if type(v) ~= "number" then fail("%s: param '%s' must be a number, got %s", where, pname, tostring(v)) end
  elseif t == "boolean" then
    if type(v) ~= "boolean" then fail("%s: param '%s' must be true or false, got %s", where, pname, tostring(v)) end
  elseif type(v) ~= "string" then
    fail("%s: param '%s' must be a string, got %s", where, pname, tostring(v))
  end
  if decl.choices then
    local ok = false
    for _, c in ipairs(decl.choices) do if c == v then ok = true end end
    if not ok then
      fail("%s: param '%s' must be one of %s, got %s", where, pname, table.concat(decl.choices, ", "), tostring(v))
    end
  end
  if decl.min and v < decl.min then fail("%s: param '%s' must be >= %s, got %s", where, pname, tostring(decl.min), tostring(v)) end
  if decl.max and v > decl.max then fail("%s: param '%s' must be <= %s, got %s", where, pname, tostring(decl.max), tostring(v)) end
  return v
end

-- Parse a command-line string for a param of the declared type.
local function parse_string(pname, decl, s)
  local t = decl.type
  if t == "integer" or t == "number" then
    local v = tonumber(s)
    if v == nil then fail("param '%s' expects a%s %s, got '%s'", pname, t == "integer" and "n" or "", t, s) end
    return v
  elseif t == "boolean" then
    if s == "true" or s == "1" or s == "yes" then return true end
    if s == "false" or s == "0" or s == "no" then return false end
    fail("param '%s' expects true or false, got '%s'", pname, s)
  end
  return s
end

--- Declare an experiment; validates the declaration and returns it.
function M.define(spec)
  if type(spec) ~= "table" then fail("experiment.define expects a table") end
  for k in pairs(spec) do
    if not DECL_KEYS[k] then fail("experiment.define: unknown field '%s' (valid: %s)", tostring(k), table.concat(sorted_keys(DECL_KEYS), ", ")) end
  end
  if type(spec.name) ~= "string" or not spec.name:match("^[%w_%-%.]+$") then fail("experiment.define: 'name' must be a word (letters, digits, _ - .)") end
  if type(spec.run) ~= "function" then fail("experiment %s: 'run' must be a function(ctx, params)", spec.name) end
  spec.params = spec.params or {}
  spec.presets = spec.presets or {}
  spec.seconds = spec.seconds or {}
  for pr, v in pairs(spec.seconds) do
    if type(v) ~= "number" or v < 0 then fail("experiment %s: seconds.%s must be a number >= 0 (got %s)", spec.name, tostring(pr), tostring(v)) end
  end
  spec.paper = spec.paper or "none"
  spec.version = spec.version or 1
  local res = spec.resources or {}
  if type(res) ~= "table" then fail("experiment %s: 'resources' must be a table {threads=, memory=, gpu=, time_min=}", spec.name) end
  local function check_resources(t, where)
    for k, v in pairs(t) do
      if not RESOURCE_KEYS[k] or (k == "presets" and where ~= "resources") then
        fail("experiment %s: %s: unknown field '%s' (valid: %s)", spec.name, where, tostring(k), table.concat(sorted_keys(RESOURCE_KEYS), ", "))
      end
      if k == "memory" then
        if type(v) ~= "string" or not v:match("^%d+[KMGT]?$") then fail("experiment %s: %s.memory must be like \"512M\" or \"4G\", got %s", spec.name, where, tostring(v)) end
      elseif k ~= "presets" and (not is_integer(v) or v < (k == "threads" and 1 or 0)) then
        fail("experiment %s: %s.%s must be an integer >= %d, got %s", spec.name, where, k, k == "threads" and 1 or 0, tostring(v))
      end
    end
  end
  check_resources(res, "resources")
  local function merged(over)
    local r = {}
    for _, k in ipairs { "threads", "memory", "gpu", "time_min" } do if over[k] ~= nil then r[k] = over[k] else r[k] = res[k] end end
    return { threads = r.threads or 1, memory = r.memory, gpu = r.gpu or 0, time_min = r.time_min }
  end
  spec.resources = merged({})
  spec.preset_resources = {}
  if res.presets ~= nil and type(res.presets) ~= "table" then fail("experiment %s: resources.presets must be a table {preset = {memory=, ...}}", spec.name) end
  for pr, over in pairs(res.presets or {}) do
    local known = false
    for _, name in ipairs(PRESETS) do known = known or name == pr end
    if not known then fail("experiment %s: resources.presets: unknown preset '%s' (valid: %s)", spec.name, tostring(pr), table.concat(PRESETS, ", ")) end
    if type(over) ~= "table" then fail("experiment %s: resources.presets.%s must be a table {memory=, ...}", spec.name, pr) end
    check_resources(over, "resources.presets." .. pr)
    spec.preset_resources[pr] = merged(over)
  end
  for pname, decl in pairs(spec.params) do
    if type(decl) ~= "table" then fail("experiment %s: param '%s' must be a table {type=, default=, doc=}", spec.name, tostring(pname)) end
    for k in pairs(decl) do
      if not PARAM_KEYS[k] then fail("experiment %s: param '%s': unknown field '%s' (valid: %s)", spec.name, pname, tostring(k), table.concat(sorted_keys(PARAM_KEYS), ", ")) end
    end
    if not PARAM_TYPES[decl.type] then fail("experiment %s: param '%s': type must be integer, number, string or boolean", spec.name, pname) end
    if decl.default == nil then fail("experiment %s: param '%s' needs a default", spec.name, pname) end
    check_value(pname, decl, decl.default, "experiment " .. spec.name)
  end
  for pr, values in pairs(spec.presets) do
    for pname, v in pairs(values) do
      local decl = spec.params[pname]
      if not decl then fail("experiment %s: preset '%s' sets unknown param '%s' (valid: %s)", spec.name, tostring(pr), tostring(pname), valid_list(spec.params)) end
      check_value(pname, decl, v, "experiment " .. spec.name .. " preset " .. tostring(pr))
    end
  end
  return spec
end

--- Resolve params: defaults, then the preset's values, then overrides (strings from the command line).
function M.resolve(spec, preset, overrides)
  local p = {}
  for k, decl in pairs(spec.params) do p[k] = decl.default end
  if preset and preset ~= "" then
    local values = spec.presets[preset]
    if not values then
      local names = sorted_keys(spec.presets)
      fail("experiment %s has no preset '%s' (presets: %s)", spec.name, preset, #names > 0 and table.concat(names, ", ") or "none")
    end
    for k, v in pairs(values) do p[k] = v end
  end
  for k, s in pairs(overrides or {}) do
    local decl = spec.params[k]
    if not decl then fail("unknown param '%s' for experiment %s; valid params: %s", k, spec.name, valid_list(spec.params)) end
    p[k] = check_value(k, decl, parse_string(k, decl, s), "command line")
  end
  return p
end

local Ctx = {}
Ctx.__index = Ctx

local DIRECTIONS = { higher = 1, lower = -1, none = 0 }

--- Log one point of a metric series.
function Ctx:log(name, step, value) core.metric(name, step, value) end

--- Log a scalar summary: opts.stderr, opts.n, opts.better = "higher" | "lower" | "none".
function Ctx:summary(name, value, opts)
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "stderr" and k ~= "n" and k ~= "better" then fail("summary %s: unknown option '%s' (valid: stderr, n, better)", name, tostring(k)) end
  end
  local dir = DIRECTIONS[opts.better or "none"]
  if dir == nil then fail("summary %s: better must be higher, lower or none", name) end
  core.summary(name, value, opts.stderr, opts.n, dir)
  self.summaries[name] = value
  return value
end

--- Mean and standard error of a list of samples, logged as a summary; returns mean, stderr.
function Ctx:mean_se(name, samples, opts)
  local n, s = #samples, 0
  if n == 0 then fail("mean_se %s: no samples", name) end
  for i = 1, n do s = s + samples[i] end
  local mean, ss = s / n, 0
  for i = 1, n do ss = ss + (samples[i] - mean) ^ 2 end
  local se = n > 1 and math.sqrt(ss / (n - 1) / n) or 0 / 0
  opts = opts or {}
  self:summary(name, mean, { stderr = se, n = n, better = opts.better })
  return mean, se
end

local FIG_TYPES = { lines = true, bars = true, heatmap = true, scatter = true, errorbars = true }

--- Write a figure (data + gnuplot script + PNG + SVG) and record it; returns whether it rendered.
function Ctx:figure(spec)
  if type(spec) ~= "table" or type(spec.name) ~= "string" then fail("figure: expects a table with a name") end
  if not FIG_TYPES[spec.type] then fail("figure %s: type must be lines, bars, heatmap, scatter or errorbars", spec.name) end
  local rendered, files = core.figure(spec)
  return rendered, files
end

local TARGET_KINDS = { exact = true, statistical = true, shape = true, not_reproducible = true }
local TARGET_KEYS = { name = true, paper = true, value = true, tolerance = true, kind = true, holds = true,
                      reason = true, note = true, relative = true, stderr = true, paper_stderr = true, z = true,
                      n = true, resolution = true }

-- A statistical target's verdict: the band is z combined standard errors; the n it needs is the n at
-- which that band would shrink to the wanted resolution (standard errors fall as n^-1/2). Returns
-- status, band, needed n (nil without a resolution), note text.
local function statistical(t)
  for _, k in ipairs({ "paper", "value", "stderr", "n" }) do
    if type(t[k]) ~= "number" then fail("target %s: statistical targets need numbers paper, value, stderr and n (%s is %s)", t.name, k, tostring(t[k])) end
  end
  local z, pse = t.z or 2, t.paper_stderr or 0
  if type(z) ~= "number" or z <= 0 then fail("target %s: z must be a positive number, got %s", t.name, tostring(t.z)) end
  if type(pse) ~= "number" or pse < 0 then fail("target %s: paper_stderr must be a number >= 0, got %s", t.name, tostring(t.paper_stderr)) end
  if not (t.stderr >= 0) then fail("target %s: stderr must be >= 0, got %s", t.name, tostring(t.stderr)) end
  if not is_integer(t.n) or t.n < 1 then fail("target %s: n must be a positive integer, got %s", t.name, tostring(t.n)) end
  local sigma = math.sqrt(t.stderr ^ 2 + pse ^ 2)
  local band = z * sigma
  local status = math.abs(t.value - t.paper) <= band and "pass" or "fail"
  local needed
  if t.resolution ~= nil then
    if type(t.resolution) ~= "number" or t.resolution <= 0 then fail("target %s: resolution must be a positive number, got %s", t.name, tostring(t.resolution)) end
    needed = math.ceil(t.n * (z * t.stderr / t.resolution) ^ 2)
    if pse >= t.resolution / z then needed = math.huge end      -- the paper's own error already exceeds it
    if t.n < needed then status = "inconclusive" end
  end
  if t.stderr == 0 and pse == 0 then status = "inconclusive" end   -- every item alike: no band to judge by
  local text = string.format("statistical: |%.4g - %.4g| = %.3g vs %g standard errors = %.3g (stderr %.3g%s, n = %d%s)",
    t.value, t.paper, math.abs(t.value - t.paper), z, band, t.stderr, pse > 0 and string.format(", paper's %.3g", pse) or "", t.n,
    needed and (needed == math.huge and string.format("; no n resolves %g", t.resolution)
                or string.format("; resolving %g needs n >= %d", t.resolution, needed)) or "")
  return status, band, text
end

--- Compare a paper number with the reproduced one and record the verdict.
-- kind = "exact": pass when |value - paper| <= tolerance (relative = true: tolerance is a fraction of |paper|);
-- kind = "statistical": pass when |value - paper| <= z * sqrt(stderr^2 + paper_stderr^2) (z default 2;
--   stderr is the reproduced value's standard error over n items); with a resolution, the verdict is
--   "inconclusive" until n reaches the n at which that band shrinks to the resolution;
-- kind = "shape": the paper's qualitative claim; pass when holds is true;
-- kind = "not_reproducible": needs a reason (the paper's value is shown beside, never compared).
function Ctx:target(t)
  for k in pairs(t) do
    if not TARGET_KEYS[k] then fail("target: unknown field '%s' (valid: %s)", tostring(k), table.concat(sorted_keys(TARGET_KEYS), ", ")) end
  end
  if type(t.name) ~= "string" then fail("target: 'name' is required") end
  local kind = t.kind or "exact"
  if not TARGET_KINDS[kind] then fail("target %s: kind must be exact, statistical, shape or not_reproducible", t.name) end
  local status, abs_tol = nil, t.tolerance
  local note = t.note or t.reason
  if kind == "exact" then
    if type(t.paper) ~= "number" or type(t.value) ~= "number" or type(t.tolerance) ~= "number" then
      fail("target %s: exact targets need numbers paper, value and tolerance", t.name)
    end
    abs_tol = t.relative and t.tolerance * math.abs(t.paper) or t.tolerance
    status = (math.abs(t.value - t.paper) <= abs_tol) and "pass" or "fail"
  elseif kind == "statistical" then
    if t.tolerance ~= nil or t.relative ~= nil then fail("target %s: a statistical target's band comes from stderr and z, not tolerance", t.name) end
    local text
    status, abs_tol, text = statistical(t)
    note = note and (text .. "; " .. note) or text
  elseif kind == "shape" then
    if type(t.holds) ~= "boolean" then fail("target %s: shape targets need holds = true/false", t.name) end
    status = t.holds and "pass" or "fail"
  else
    if type(t.reason) ~= "string" or t.reason == "" then fail("target %s: not_reproducible targets need a reason", t.name) end
    status = "not_reproducible"
  end
  if t.relative then note = string.format("tolerance %g%% of the paper's value%s", 100 * t.tolerance, note and ("; " .. note) or "") end
  core.target(t.name, kind, t.paper, abs_tol, t.value, status, note)
  self.targets[#self.targets + 1] = { name = t.name, status = status }
  return status
end

--- Resolve a named asset (or one of its files) to a verified local path, recording which bytes
-- (source and sha256 of each file) the run used.
function Ctx:asset(name, file)
  local report = require("repro.assets").fetch(name, file)
  core.record("asset", file and (name .. "/" .. file) or name, report)
  return report.path
end

--- The whole content of a named asset's file (Ctx:asset, then read as bytes); an unreadable file is an error
-- naming its path.
function Ctx:asset_text(name, file)
  local path = self:asset(name, file)
  local fh, err = io.open(path, "rb")
  if not fh then error("asset " .. name .. (file and ("/" .. file) or "") .. ": cannot read " .. tostring(err), 2) end
  local text = fh:read("*a")
  fh:close()
  return text
end

--- Keep a free-form record (a table, stored as JSON) under kind/key.
function Ctx:record(kind, key, value) core.record(kind, key, value) end

-- Wall and CPU seconds (os.clock is the process's CPU time over all threads) of fn(), printed as a phase line
-- and kept as a "phase" record, so a run's log shows where its time went.
local function timed(self, kind, key, fn)
  local w0, c0 = core.now(), os.clock()
  local v = fn()
  local wall, cpu = (core.now()) - w0, os.clock() - c0
  self.phases[#self.phases + 1] = { kind = kind, key = key, wall = wall, cpu = cpu }
  io.stderr:write(string.format("[%s] %s: %.1f s wall, %.1f CPU-s\n", kind, key, wall, cpu))
  return v, wall, cpu
end

--- Run fn() as a named phase: its wall and CPU seconds go to the log and to a "phase" record; returns fn's result.
function Ctx:phase(name, fn)
  if type(name) ~= "string" or type(fn) ~= "function" then fail("phase: expects (name, function)") end
  local v, wall, cpu = timed(self, "phase", name, fn)
  core.record("phase", name, { wall_s = wall, cpu_s = cpu })
  return v
end

--- A unit of work that a killed run, re-run with the same params, seed and `--resume`, does not redo: returns
-- fn()'s result (a JSON value: table of numbers, strings, booleans, nested tables; NaN/Inf become nil), kept
-- as a "memo" record under key with its wall and CPU seconds. With --resume, a unit the resumed run finished
-- is read back instead of computed (and recorded again in this run). The result is always the JSON round
-- trip of fn()'s value, so a fresh and a resumed run see identical values. math.random is reseeded from the
-- run's seed and key before fn and again after the unit (computed or reused), so neither a unit nor what follows
-- it depends on which earlier units were reused. Other state fn reads must come from params, seed and key;
-- within a run, a key is computed once.
function Ctx:memo(key, fn)
  if type(key) ~= "string" or key == "" or type(fn) ~= "function" then fail("memo: expects (key string, function)") end
  local json = require("repro.json")
  local hit = self.memos[key]
  if hit ~= nil then return hit.value end
  local text = core.memo_get(key)
  local unit
  if text then
    unit = json.decode(text)
    self.reused = self.reused + 1
    io.stderr:write(string.format("[memo] %s: reused from run %d (%.1f s wall when computed)\n", key, core.resumed_from(), unit.wall_s or 0))
  else
    math.randomseed(core.seed("memo:" .. key))
    local v, wall, cpu = timed(self, "memo", key, fn)
    unit = json.decode(json.encode({ value = v, wall_s = wall, cpu_s = cpu }))
  end
  math.randomseed(core.seed("after memo:" .. key))
  core.record("memo", key, unit)
  self.memos[key] = unit
  return unit.value
end

--- How many units this run reused from the run it resumes (ctx:memo).
function Ctx:reused_units() return self.reused end

--- Whether the run was asked to stop (SIGINT/SIGTERM); long loops may check it to stop cleanly.
function Ctx:interrupted() return core.interrupted() end

--- Print a progress line for the user (stderr).
function Ctx:note(fmt, ...) io.stderr:write(string.format(fmt, ...), "\n") end

--- The host's entry point: load-time info of a declared experiment (used before the run is recorded); with a
--- preset, the resources are that preset's (resources.presets).
function M._describe(spec, preset)
  local versions = {}
  for name, mod in pairs(package.loaded) do
    if type(mod) == "table" and rawget(mod, "VERSION") ~= nil and type(name) == "string" then
      versions[name] = rawget(mod, "VERSION")
    end
  end
  versions[spec.name] = spec.version
  local res = preset and spec.preset_resources and spec.preset_resources[preset] or spec.resources
  return { name = spec.name, paper = spec.paper, versions = versions, resources = res }
end

--- The host's entry point: run a declared experiment with resolved params.
function M._execute(spec, params, info)
  local ctx = setmetatable({ params = params, preset = info.preset, seed = info.seed, run_id = core.run_id(),
                             summaries = {}, targets = {}, memos = {}, phases = {}, reused = 0 }, Ctx)
  spec.run(ctx, params)
  local failed = 0
  for _, t in ipairs(ctx.targets) do if t.status == "fail" then failed = failed + 1 end end
  return #ctx.targets, failed
end

M.PRESETS = PRESETS
return M
