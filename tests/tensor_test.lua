-- tensor_test.lua: repro.tensor (run by `repro exec` on both runtimes): shapes, element access, views,
-- nested tables both ways, the reductions against values computed here by hand, the object contract
-- (use after close raises, integer arguments reject fractions, views outlive their parent) and, under
-- LuaJIT, the FFI view.
local tensor = require("repro.tensor")
local T = require("tests.luacheck")
local check, errors_with = T.check, T.errors_with

local t = tensor.from { { 1, 2, 3 }, { 4, 5, 6 } }
check(t:dtype() == "f32" and t:dim() == 2 and t:numel() == 6 and #t == 2, "dtype, dim, numel, #")
local sh = t:shape()
check(sh[1] == 2 and sh[2] == 3, "shape")
check(t:get(2, 3) == 6 and t:get(1, 1) == 1, "get")
t:set(1, 2, 7.5)
check(t:get(1, 2) == 7.5, "set")
local r2 = t:row(2)
check(r2:dim() == 1 and #r2 == 3 and r2:get(1) == 4, "row view")
r2:set(1, 40)
check(t:get(2, 1) == 40, "a view writes through to its parent")
local nt = t:totable()
check(#nt == 2 and #nt[1] == 3 and nt[1][2] == 7.5 and nt[2][1] == 40, "totable")
local n3 = tensor.new { 4, 2 }
check(n3:get(4, 2) == 0 and n3:narrow(2, 3):shape()[1] == 2, "new zeros; narrow")
n3:narrow(2, 3):set(1, 1, 9)
check(n3:get(2, 1) == 9, "narrow is a view")

-- reductions, against arithmetic done here
local a, b = tensor.from { 3, 4, 0 }, tensor.from { 1, 0, 2 }
check(a:dot(b) == 3, "dot")
check(math.abs(a:norm() - 5) < 1e-12, "norm")
check(math.abs(a:cosine(b) - 3 / (5 * math.sqrt(5))) < 1e-7, "cosine")
check(math.abs(a:mean() - 7 / 3) < 1e-6, "mean")
check(b:argmax() == 3 and tensor.from { 5, 5, 1 }:argmax() == 1, "argmax (1-based, first on ties)")
check(tensor.from { 1, 0 }:cosine(tensor.from { 0, 0 }) == 0, "cosine with a zero vector is 0")

-- contracts
errors_with(function() t:get(1.5, 1) end, "integer expected", "fractional index")
errors_with(function() t:get(3, 1) end, "outside 1..2", "index out of range")
errors_with(function() t:get(1) end, "1 indices for a 2-dimensional tensor", "wrong index count")
errors_with(function() a:dot(tensor.from { 1, 2 }) end, "3 and 2 elements", "size mismatch")
errors_with(function() tensor.from { { 1, 2 }, { 3 } } end, "rectangular", "ragged table")
errors_with(function() tensor.from { "x" } end, "not a number", "non-number entry")
errors_with(function() tensor.new { 2, 0.5 } end, "integer expected", "fractional dimension")
local v = t:row(1)
t:close()
t:close()                                            -- idempotent
errors_with(function() t:get(1, 1) end, "used after close", "use after close")
check(v:get(2) == 7.5, "a view keeps the storage alive after its parent closes")

if jit then
  local ffi = require("ffi")
  local big = tensor.new { 3, 5 }
  big:set(2, 4, 11)
  local p = big:ffi()
  check(ffi.istype("float *", p) and p[1 * 5 + 3] == 11, "ffi view reads the elements (0-based)")
  p[0] = 2.5
  check(big:get(1, 1) == 2.5, "ffi writes are the tensor's")
  big:close()
  big = nil
  collectgarbage(); collectgarbage()
  check(p[1 * 5 + 3] == 11, "the ffi view keeps the elements alive after close and collection")
else
  check(t.ffi == nil, "no ffi method outside LuaJIT")
end
-- big tensors made and closed one after another, a small live one made each time (the pattern of one
-- hidden-state capture per sample): resident memory stays flat because the CPU backend maps blocks of 2 MiB
-- and more and unmaps them on close. With malloc for every block it grew about 2.4 MB a round (122 MB over 50):
-- glibc's adaptive mmap threshold moved the big blocks onto its heap, which fragmented.
local function rss_mb()
  local f = io.open("/proc/self/statm", "r")
  if not f then return nil end
  local _, res = f:read("*l"):match("^(%d+)%s+(%d+)")
  f:close()
  return res and tonumber(res) * 4096 / 2 ^ 20
end
local function asan()
  local f = io.open("/proc/self/maps", "r")
  if not f then return false end
  local maps = f:read("*a")
  f:close()
  return maps:find("libasan", 1, true) ~= nil
end
if not rss_mb() then
  print("skip: /proc/self/statm is not readable (resident memory of freed tensors not checked)")
elseif asan() then
  print("skip: resident memory under AddressSanitizer is its allocator's (freed blocks sit in quarantine)")
else
  local keep, r0 = {}, nil
  for i = 1, 60 do
    local big = tensor.new { 31, 64, 576 }
    big:set(1, 1, 1, 1.0)
    keep[#keep + 1] = tensor.new { 64, 576 }
    big:close()
    if i == 10 then r0 = rss_mb() end
  end
  local grown, live = rss_mb() - r0, 50 * 64 * 576 * 4 / 2 ^ 20
  check(grown < live + 16, string.format("50 closed 9 MB tensors: resident memory grew %.1f MB (live: %.1f MB)", grown, live))
  for _, k in ipairs(keep) do k:close() end
end
T.done("tensor_test")
