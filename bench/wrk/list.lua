-- GET one list page as the admin, always the same one (first page or a deep cursor page).
-- args: path with its query string, e.g. /invoices?limit=50&cursor=...
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local req

function prepare(args)
  req = wrk.format("GET", args[1], auth_headers())
end

function request()
  return req
end
