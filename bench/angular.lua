-- angular.lua MODEL IDS_FILE MODE: the Lua side of bench_angular (see bench/bench_angular.c). Reads the
-- samples' token ids (one sample per line), takes each sample's last-token hidden states with
-- m:hidden_states(ids, {last=true}) (a repro.tensor [L+1, C]), then times the angular distance
-- arccos(cos(h_l, h_{l+n})) / pi averaged over samples for every (layer l, block n) pair, with
--   MODE "methods": repro.tensor methods (row views and :cosine), either runtime;
--   MODE "ffi":     plain loops over t:ffi() (LuaJIT only).
-- Prints "angular MODE SECONDS CHECKSUM" (CHECKSUM: the sum of the mean distances, which the driver
-- compares across the three implementations).
local model = require("repro.model")
local model_path, ids_file, mode = arg[1], arg[2], arg[3]
local m = model.load(model_path)
local samples = {}
for line in io.lines(ids_file) do
  local ids = {}
  for w in line:gmatch("%d+") do ids[#ids + 1] = tonumber(w) end
  samples[#samples + 1] = m:hidden_states(ids, { last = true })
end
local L1, C = samples[1]:shape()[1], samples[1]:shape()[2]   -- L1 = layers + 1
local acos, pi, sqrt = math.acos, math.pi, math.sqrt
local D = {}
for l = 1, L1 do D[l] = {} for n = 1, L1 - l do D[l][n] = 0 end end

local t0 = os.clock()
if mode == "methods" then
  for _, h in ipairs(samples) do
    local rows = {}
    for l = 1, L1 do rows[l] = h:row(l) end
    for l = 1, L1 - 1 do
      local a, Dl = rows[l], D[l]
      for n = 1, L1 - l do
        local c = a:cosine(rows[l + n])
        if c > 1 then c = 1 elseif c < -1 then c = -1 end
        Dl[n] = Dl[n] + acos(c) / pi
      end
    end
  end
elseif mode == "ffi" then
  if not jit then error("angular.lua: mode ffi needs LuaJIT", 0) end
  for _, h in ipairs(samples) do
    local p = h:ffi()
    for l = 0, L1 - 2 do
      local Dl = D[l + 1]
      for n = 1, L1 - 1 - l do
        local a, b = l * C, (l + n) * C
        local ab, aa, bb = 0, 0, 0
        for k = 0, C - 1 do
          local x, y = p[a + k], p[b + k]
          ab = ab + x * y; aa = aa + x * x; bb = bb + y * y
        end
        local c = (aa > 0 and bb > 0) and ab / sqrt(aa * bb) or 0
        if c > 1 then c = 1 elseif c < -1 then c = -1 end
        Dl[n] = Dl[n] + acos(c) / pi
      end
    end
  end
else
  error("angular.lua: mode is methods or ffi, not " .. tostring(mode), 0)
end
local secs = os.clock() - t0
local sum = 0
for l = 1, L1 - 1 do for n = 1, L1 - l do sum = sum + D[l][n] / #samples end end
print(string.format("angular %s %.6f %.9f", mode, secs, sum))
