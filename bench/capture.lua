-- wrk script of bench/capture.py: form posts (a new email each) or redirects,
-- bounded in count (each thread stops after its share), statuses counted.
--
--   wrk -t T -c C -d S --latency -s bench/capture.lua URL -- form|redirect RUN LIMIT_PER_THREAD
--
-- done() prints one line "CAPTURE-RESULT {json}" that bench/capture.py reads.

local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

local mode, run, limit
local sent, answered = 0, 0
local form_headers = { ["content-type"] = "application/x-www-form-urlencoded" }
local redirect_request

function init(args)
  mode, run, limit = args[1], args[2], tonumber(args[3])
  statuses = {}
  redirect_request = wrk.format("GET", "/r/bench?utm_source=bench")
end

function request()
  sent = sent + 1
  counts = { sent = sent, answered = answered }
  if mode == "redirect" then
    return redirect_request
  end
  local body = "email=u" .. tid .. "x" .. sent .. "-" .. run .. "%40example.com"
    .. "&first_name=Ada&utm_source=bench&utm_campaign=spring"
  return wrk.format("POST", "/forms/bench", form_headers, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  answered = answered + 1
  counts = { sent = sent, answered = answered }
  if answered >= limit then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local total, by_status, sent_total = 0, {}, 0
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses") or {}) do
      by_status[status] = (by_status[status] or 0) + n
      total = total + n
    end
    local counts = thread:get("counts")
    if counts then
      sent_total = sent_total + counts.sent
    end
  end
  local parts = {}
  for status, n in pairs(by_status) do
    table.insert(parts, string.format('"%d": %d', status, n))
  end
  local e = summary.errors
  io.write(string.format(
    'CAPTURE-RESULT {"requests": %d, "sent": %d, "seconds": %.6f, "p50": %.3f, "p99": %.3f, '
      .. '"statuses": {%s}, "errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}}\n',
    total, sent_total, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    table.concat(parts, ", "), e.connect, e.read, e.write, e.timeout))
end
