-- GET /invoices/{id} as the admin, on a random one of the first N seeded invoices.
-- args: N
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local reqs = {}

function prepare(args)
  local n = tonumber(args[1])
  for i = 1, n do
    reqs[i] = wrk.format("GET", "/invoices/" .. invoice_id(i), auth_headers())
  end
end

function request()
  return reqs[math.random(#reqs)]
end
