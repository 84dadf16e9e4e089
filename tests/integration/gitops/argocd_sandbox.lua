-- Runs an Argo CD health script the way Argo CD runs one from argocd-cm (util/lua/lua.go):
-- global `obj`, only the base and table libraries (no string, math or io), strings without
-- methods. Usage: lua5.1 argocd_sandbox.lua SCRIPT OBJECT.lua
-- OBJECT.lua returns the object as a table. Prints the status, a newline, the message.
local script_path, object_path = arg[1], arg[2]
local write, exit, format = io.write, os.exit, string.format

local env = {
  obj = dofile(object_path),
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs,
  pcall = pcall, print = print, rawequal = rawequal, rawget = rawget, rawset = rawset,
  select = select, setmetatable = setmetatable, getmetatable = getmetatable,
  tonumber = tonumber, tostring = tostring, type = type, unpack = unpack, xpcall = xpcall,
  _VERSION = _VERSION, table = table,
  os = { time = os.time, date = os.date, clock = os.clock }, -- Argo CD's "safe" os
}
env._G = env

local chunk = assert(loadfile(script_path))
setfenv(chunk, env)
-- gopher-lua gives strings methods only with the string library, which Argo CD leaves out.
getmetatable("").__index = setmetatable({}, {
  __index = function(_, name) error("string." .. name .. " is not available in Argo CD", 2) end,
})

local ok, hs = pcall(chunk)
if not ok then
  io.stderr:write(tostring(hs), "\n")
  exit(1)
end
if type(hs) ~= "table" then
  io.stderr:write("the script returned a ", type(hs), ", not a table\n")
  exit(1)
end
write(format("%s\n%s", tostring(hs.status), tostring(hs.message)))
