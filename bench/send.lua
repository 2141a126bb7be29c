-- wrk -s send.lua http://127.0.0.1:PORT/v1/notifications/send
--
-- POSTs the file named by env BODY (a fixed JSON notification) on every request, with
-- Content-Type: application/json and "Authorization: Bearer $AUTH". Counts 2xx and non-2xx
-- responses itself (wrk's own errors.status only counts status > 399) and prints one line:
-- WRKJSON {"requests":..,"duration_s":..,"rps":..,"ok_2xx":..,"non_2xx":..,"p50_ms":..,
--          "p90_ms":..,"p99_ms":..,"max_ms":..,"errors_connect":..,"errors_read":..,
--          "errors_write":..,"errors_status":..,"errors_timeout":..}
local path = assert(os.getenv("BODY"), "env BODY (path of the request body) is not set")
local auth = assert(os.getenv("AUTH"), "env AUTH (the API key) is not set")
local f = assert(io.open(path, "rb"), "cannot open body file " .. path)
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. auth

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  ok_2xx = 0
  non_2xx = 0
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok_2xx = ok_2xx + 1
  else
    non_2xx = non_2xx + 1
  end
end

function done(summary, latency, requests)
  local ok, bad = 0, 0
  for _, t in ipairs(threads) do
    ok = ok + (t:get("ok_2xx") or 0)
    bad = bad + (t:get("non_2xx") or 0)
  end
  local s = summary.duration / 1e6
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_s":%.3f,"rps":%.1f,"ok_2xx":%d,"non_2xx":%d,' ..
    '"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,' ..
    '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,' ..
    '"errors_timeout":%d}\n',
    summary.requests, s, summary.requests / s, ok, bad,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout))
end
