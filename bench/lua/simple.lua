-- One fixed request, repeated: discovery, client credentials, UserInfo, introspection.
-- params: method, path, body (optional), expect_status, expect (a plain substring the body must
-- contain), header.<Name>=<value>.

local here = debug.getinfo(1, "S").source:sub(2):match("^(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local common = require("common")

local expect_status, expect

function init(args)
   local params, headers = common.load_params(args[1])
   wrk.method = params.method or "GET"
   wrk.path = params.path
   wrk.body = params.body
   for k, v in pairs(headers) do wrk.headers[k] = v end
   expect_status = tonumber(params.expect_status or "200")
   expect = params.expect
end

function response(status, headers, body)
   if status == expect_status and (expect == nil or body:find(expect, 1, true)) then
      ok = ok + 1
   else
      common.count_bad(status, body)
   end
end
