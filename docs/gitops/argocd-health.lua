-- Argo CD health check for larkservice.io LarkApp and ClusterLarkApp (docs/gitops/README.md).
-- Argo CD runs it in Lua 5.1 (gopher-lua) with only the base and table libraries: no string
-- or math functions here. It reads the conditions the operator writes:
--   spec.suspend                        -> Suspended
--   status not yet for this generation  -> Progressing
--   Stalled=True (a person must act)    -> Degraded, Stalled's message
--   Ready=True                          -> Healthy
--   CredentialsValid=False              -> Degraded (statuses without Stalled)
--   otherwise (Reconciling)             -> Progressing, Reconciling's (or Ready's) message
local hs = { status = "Progressing", message = "Waiting for the operator to report status." }

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "Suspended (spec.suspend): nothing is refreshed or probed."
  return hs
end

local status = obj.status
if status == nil or status.conditions == nil then
  return hs
end

local generation = obj.metadata.generation
-- tostring: a number may reach Lua as a number or as a string.
if generation ~= nil and status.observedGeneration ~= nil
    and tostring(status.observedGeneration) ~= tostring(generation) then
  hs.message = "Waiting for the operator to reconcile generation " .. generation ..
    " (status is for generation " .. status.observedGeneration .. ")."
  return hs
end

local conds = {}
for _, c in ipairs(status.conditions) do
  if c.type ~= nil then
    conds[c.type] = c
  end
end

local function says(ctype, value)
  local c = conds[ctype]
  return c ~= nil and c.status == value
end

local function text(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    if c.reason ~= nil and c.reason ~= "" then
      return c.reason .. ": " .. c.message
    end
    return c.message
  end
  return fallback
end

if says("Stalled", "True") then
  hs.status = "Degraded"
  hs.message = text(conds.Stalled, "Stalled: a person must act.")
elseif says("Ready", "True") then
  hs.status = "Healthy"
  hs.message = text(conds.Ready, "Ready.")
elseif says("CredentialsValid", "False") then
  hs.status = "Degraded"
  hs.message = text(conds.CredentialsValid, "The credentials were refused.")
elseif says("Reconciling", "True") then
  hs.message = text(conds.Reconciling, "Reconciling.")
elseif conds.Ready ~= nil then
  hs.message = text(conds.Ready, "Not ready yet.")
end
return hs
