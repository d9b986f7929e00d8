-- Shared by the bench's wrk scripts (bench/run.py runs `wrk -t1 -cN --latency -s <case>.lua URL -- <params>`).
--
-- The params file holds one `key=value` per line (the value runs to the end of the line); keys
-- `header.<Name>` become request headers. Each thread counts its responses: `ok` (as expected),
-- `bad` (anything else: a status other than the expected one, or a body without the expected
-- marker), plus case-specific counters; done() prints them with wrk's own figures as ONE line
-- `BENCH_JSON {...}` that bench/run.py parses.

local M = {}

function M.load_params(path)
   local params, headers = {}, {}
   local f = assert(io.open(path, "r"), "cannot open params file " .. tostring(path))
   for line in f:lines() do
      local key, value = line:match("^([^=]+)=(.*)$")
      if key then
         local header = key:match("^header%.(.+)$")
         if header then headers[header] = value else params[key] = value end
      end
   end
   f:close()
   return params, headers
end

function M.load_lines(path)
   local lines = {}
   local f = assert(io.open(path, "r"), "cannot open " .. tostring(path))
   for line in f:lines() do
      if #line > 0 then lines[#lines + 1] = line end
   end
   f:close()
   return lines
end

function M.header(headers, name)
   local value = headers[name]
   if value then return value end
   name = name:lower()
   for k, v in pairs(headers) do
      if k:lower() == name then return v end
   end
   return nil
end

-- Per-thread counters (globals of the thread's environment, read in done() by thread:get).
ok = 0
bad = 0
flows = 0
missing = 0
first_bad = ""

function M.count_bad(status, body)
   bad = bad + 1
   if first_bad == "" then
      local snippet = (body or ""):sub(1, 160):gsub("[^%w%s%.:_%-/=,]", " ")
      first_bad = tostring(status) .. " " .. snippet
   end
end

local threads = {}

function setup(thread)
   threads[#threads + 1] = thread
end

local function json_string(s)
   return '"' .. tostring(s):gsub('[%c"\\]', " ") .. '"'
end

function done(summary, latency, requests)
   local totals = { ok = 0, bad = 0, flows = 0, missing = 0 }
   local first = ""
   for _, thread in ipairs(threads) do
      for key in pairs(totals) do
         totals[key] = totals[key] + (tonumber(thread:get(key)) or 0)
      end
      local fb = thread:get("first_bad")
      if first == "" and fb and fb ~= "" then first = fb end
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"p50":%.1f,"p90":%.1f,"p99":%.1f,"mean":%.1f,"max":%.1f},' ..
      '"ok":%d,"bad":%d,"flows":%d,"missing":%d,"first_bad":%s}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max,
      totals.ok, totals.bad, totals.flows, totals.missing, json_string(first)))
end

return M
