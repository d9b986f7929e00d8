-- Refresh-token rotation: every request presents a refresh token and every 200 answer brings its
-- successor. Each chain is used strictly one request at a time: a token is taken from this thread's
-- pool when a request is built and its successor goes back when the answer arrives (wrk -t1, so one
-- pool; it holds one token per chain, at least one chain per connection).
-- params: path, header.Authorization, tokens (a file with one refresh token per line).
-- Any answer but a 200 with a refresh_token is a correctness failure (exactly-once rotation).

local here = debug.getinfo(1, "S").source:sub(2):match("^(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local common = require("common")

local pool, path, headers
local verified = false

function init(args)
   local params
   params, headers = common.load_params(args[1])
   headers["Content-Type"] = "application/x-www-form-urlencoded"
   path = params.path
   pool = common.load_lines(params.tokens)
end

function request()
   if not verified then
      -- wrk calls request() once right after init() only to check that it builds valid HTTP
      -- (script_verify_request); that request is never sent, so it must not take a token.
      verified = true
      return wrk.format("POST", path, headers, "grant_type=refresh_token&refresh_token=verify")
   end
   local token = table.remove(pool)
   if token == nil then
      missing = missing + 1  -- a chain was lost (an earlier failure): this request must fail too
      token = "exhausted"
   end
   return wrk.format("POST", path, headers, "grant_type=refresh_token&refresh_token=" .. token)
end

function response(status, headers, body)
   if status == 200 then
      local token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
      if token then
         pool[#pool + 1] = token
         ok = ok + 1
         return
      end
   end
   common.count_bad(status, body)
end
