-- POST /webhooks/payment/success with bodies signed in advance (wrk's Lua has no HMAC):
-- FILE has one "<X-Signature>\t<body>" line per event, each with its own event id. Thread i
-- of n takes lines i, i+n, i+2n... so no two threads send the same event; a thread that runs
-- out starts over (counted as "wrapped": those repeats are answered as duplicates).
-- args: FILE
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local reqs = {}
local next_req = 1

function prepare(args)
  local i = 0
  for line in io.lines(args[1]) do
    if i % nthreads == tid - 1 then
      local sig, body = line:match("^([^\t]+)\t(.*)$")
      reqs[#reqs + 1] = wrk.format("POST", "/webhooks/payment/success",
        { ["Content-Type"] = "application/json", ["X-Signature"] = sig }, body)
    end
    i = i + 1
  end
end

function request()
  if next_req > #reqs then
    next_req = 1
    counts.wrapped = counts.wrapped + 1
  end
  local r = reqs[next_req]
  next_req = next_req + 1
  return r
end
