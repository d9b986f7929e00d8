-- The authorization code flow of a user with a live session and remembered consent: GET the
-- authorization endpoint with the session cookie (answer: a redirect carrying a code), then POST
-- the code with the PKCE verifier to the token endpoint (answer: 200 with tokens). Codes from
-- redirects queue up and the next request of any connection redeems one, else it authorizes
-- again. `flows` counts completed flows (token answers with an access token).
-- params: authorize (path and query), cookie, token_path, redirect_uri (form-encoded),
-- code_verifier, header.Authorization (the client's Basic credentials).

local here = debug.getinfo(1, "S").source:sub(2):match("^(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local common = require("common")

local codes = {}
local authorize_request, token_path, token_headers, token_suffix

function init(args)
   local params, headers = common.load_params(args[1])
   authorize_request = wrk.format("GET", params.authorize, { Cookie = params.cookie })
   token_path = params.token_path
   token_headers = {
      Authorization = headers.Authorization,
      ["Content-Type"] = "application/x-www-form-urlencoded",
   }
   token_suffix = "&redirect_uri=" .. params.redirect_uri .. "&code_verifier=" .. params.code_verifier
end

function request()
   local code = table.remove(codes)
   if code then
      return wrk.format("POST", token_path, token_headers,
                        "grant_type=authorization_code&code=" .. code .. token_suffix)
   end
   return authorize_request
end

function response(status, headers, body)
   if status == 302 or status == 303 then
      local location = common.header(headers, "location") or ""
      local code = location:match("[?&]code=([^&#]+)")
      if code then
         codes[#codes + 1] = code
         ok = ok + 1
         return
      end
   elseif status == 200 and body:find('"access_token"', 1, true) then
      ok = ok + 1
      flows = flows + 1
      return
   end
   common.count_bad(status, body)
end
