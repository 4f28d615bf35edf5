-- PUT 4 KiB objects under distinct keys (one counter per wrk thread).
local counter = 0
local thread_id = 0
local body = string.rep("x", 4096)

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end

function request()
  counter = counter + 1
  return wrk.format("PUT", "/v1/objects/bench/put/t" .. tid .. "/k" .. counter, nil, body)
end
