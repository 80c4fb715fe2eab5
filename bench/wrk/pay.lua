-- POST /invoice-transactions as the admin: a payment of AMOUNT on a random invoice among
-- numbers FIRST..LAST (FIRST = LAST: one hot invoice), tagged with REFERENCE so that
-- bench/run.py can match the ledger rows against the 201s counted here.
-- args: FIRST LAST AMOUNT REFERENCE
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local reqs = {}

function prepare(args)
  local first, last = tonumber(args[1]), tonumber(args[2])
  local headers = auth_headers({ ["Content-Type"] = "application/json" })
  for n = first, last do
    local body = string.format(
      '{"invoice_id":"%s","amount":"%s","payment_mode":"upi","reference":"%s"}',
      invoice_id(n), args[3], args[4])
    reqs[#reqs + 1] = wrk.format("POST", "/invoice-transactions", headers, body)
  end
end

function request()
  return reqs[math.random(#reqs)]
end
