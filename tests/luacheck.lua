-- luacheck.lua: the assertions every Lua test uses (require("tests.luacheck")), the Lua twin of check.h:
-- a failed check prints what failed and the test exits non-zero at done().
local M = { checks = 0, failures = 0 }

--- Count a check; report it when cond is false.
function M.check(cond, what)
  M.checks = M.checks + 1
  if not cond then M.failures = M.failures + 1; io.stderr:write("FAIL: ", what, "\n") end
end

--- Check that fn raises an error whose message contains pattern (plain text).
function M.errors_with(fn, pattern, what)
  local ok, err = pcall(fn)
  M.check(not ok and tostring(err):find(pattern, 1, true) ~= nil, what .. " (got: " .. tostring(err) .. ")")
end

--- Print the TAP-style summary line and exit non-zero when a check failed.
function M.done(name)
  print(string.format("%s %s: %d checks, %d failed", M.failures == 0 and "ok" or "not ok", name, M.checks, M.failures))
  if M.failures > 0 then os.exit(1) end
end

return M
