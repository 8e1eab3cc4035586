-- wrk script: checkpoint events with unique ids for POST /v1/events, from the starter pack's
-- checkpoints (login, registration, coupon claim, order, payment). Optional pacing per connection:
-- RATE (events/s, total) and CONNECTIONS in the environment make each connection wait
-- CONNECTIONS/RATE seconds between requests (wrk's delay()), or PAUSE_MS milliseconds, for latency
-- at a given load.
local threads = {}
local counter = 0
-- setup() runs in wrk's main Lua state, once per thread; thread:set("tid", ...) makes `tid` a global
-- in that thread's own Lua state, which init() reads. The main state's counter must not be a
-- file-scope `local tid`: every thread's state loads this file too, and such a local would hide the
-- global there (every thread would see 0 and send the same ids: half the requests were duplicates).
local next_tid = 0

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
  table.insert(threads, thread)
end

local function rng(n) return math.random(0, n - 1) end

-- A card number that passes the Luhn check (the server refuses others): 4111 1111 111 and four digits of n,
-- the last being the check digit over the other fifteen.
local function card(n)
  local body = string.format("41111111111%04d", n % 10000)
  local sum = 0
  for i = #body, 1, -1 do
    local d = tonumber(body:sub(i, i))
    if (#body - i) % 2 == 0 then d = d * 2; if d > 9 then d = d - 9 end end
    sum = sum + d
  end
  local digits = body .. tostring((10 - sum % 10) % 10)
  return digits:sub(1, 4) .. " " .. digits:sub(5, 8) .. " " .. digits:sub(9, 12) .. " " .. digits:sub(13, 16)
end

function init(args)
  -- The global set by setup() (nil only if setup() did not run). The "-" after it keeps ids apart
  -- with 10 threads or more (t1 + 23 and t12 + 3).
  local id = tid or 0
  math.randomseed(1000 + id)
  prefix = string.format("%s-t%d-", os.getenv("RUN") or "run", id)
  local rate = tonumber(os.getenv("RATE") or "0")
  local conns = tonumber(os.getenv("CONNECTIONS") or "1")
  pause = 0
  if rate > 0 then pause = math.floor(conns * 1000 / rate) end
  -- PAUSE_MS overrides: wrk's delay() counts whole milliseconds and adds to the response time, so the
  -- bench script picks the pause and connection count that reach the wanted rate and reports the
  -- rate achieved.
  if os.getenv("PAUSE_MS") then pause = tonumber(os.getenv("PAUSE_MS")) end
  wrk.headers["Content-Type"] = "application/json"
  local key = os.getenv("ARGUS_KEY")
  if key then wrk.headers["Authorization"] = "Bearer " .. key end
end

function delay()
  return pause
end

local kinds = {
  function(u, d, ip) return "account.login", string.format('{"success":true,"device":"d%d","ip":"%s","country":"GB"}', d, ip) end,
  function(u, d, ip) return "account.register", string.format('{"email":"u%d@example.com","device":"d%d","ip":"%s","country":"GB"}', u, d, ip) end,
  function(u, d, ip) return "coupon.claim", string.format('{"coupon":"WELCOME10","campaign":"new-user","value":"10.00","currency":"EUR","device":"d%d","ip":"%s"}', d, ip) end,
  function(u, d, ip) return "order.create", string.format('{"order":"o%d","seller":"s%d","item":"i%d","item_count":1,"amount":"%d.50","currency":"EUR","card":"%s","device":"d%d","ip":"%s"}', counter, rng(500), rng(5000), 5 + rng(400), card(rng(10000)), d, ip) end,
  function(u, d, ip) return "payment.attempt", string.format('{"order":"o%d","amount":"%d.00","currency":"EUR","card":"%s","card_country":"GB","device":"d%d","ip":"%s"}', counter, 5 + rng(400), card(rng(10000)), d, ip) end,
}

-- A pool of event bodies per thread (50,000: users, devices, IPs, cards, sellers and items drawn at
-- random, so the entity population is in the tens of thousands per kind), built once; each request
-- only adds a fresh id (and the current second), so that the load generator spends its CPU on
-- sending, not on formatting.
local pool = {}
local POOL = 50000
local now = ""

local function build_pool()
  for i = 1, POOL do
    counter = i
    local u = rng(50000)
    local ty, data = kinds[1 + i % #kinds](u, rng(40000), string.format("10.%d.%d.%d", rng(8), rng(64), rng(64)))
    pool[i] = {string.format('","type":"%s","time":"', ty), string.format('","actor":"u%d","data":%s}', u, data)}
  end
  counter = 0
end

function request()
  if #pool == 0 then build_pool() end
  counter = counter + 1
  if counter % 512 == 1 then now = os.date("!%Y-%m-%dT%H:%M:%SZ") end
  local p = pool[1 + counter % POOL]
  return wrk.format("POST", "/v1/events", nil, '{"id":"' .. prefix .. counter .. p[1] .. now .. p[2])
end

function done(summary, latency, requests)
  io.write(string.format("requests %d errors(status) %d duration_s %.1f rps %.0f\n",
    summary.requests, summary.errors.status, summary.duration / 1e6, summary.requests / (summary.duration / 1e6)))
  io.write(string.format("latency_ms p50 %.3f p90 %.3f p99 %.3f p99.9 %.3f max %.3f\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000))
end
