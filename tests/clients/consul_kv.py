"""A Consul client we did not write (py-consul) against the demo registry's KV API.

Usage: consul_kv.py REGISTRY_URL KEY FIRST SECOND

Sets KEY to FIRST, reads it back, then holds a blocking read on KEY's service prefix while
another thread sets SECOND half a second later; then tries a value the services would not
take. Prints what it saw as JSON for the test to check.
"""

import json
import sys
import threading
import time
import urllib.parse

import consul

url = urllib.parse.urlparse(sys.argv[1])
key, first, second = sys.argv[2:5]
prefix = key.split("/")[0] + "/"
c = consul.Consul(host=url.hostname, port=url.port)

out = {"put": c.kv.put(key, first)}
index, entry = c.kv.get(key)
out["got"] = entry["Value"].decode()

writer = consul.Consul(host=url.hostname, port=url.port)
later = threading.Thread(target=lambda: (time.sleep(0.5), writer.kv.put(key, second)))
later.start()
started = time.monotonic()
after, entries = c.kv.get(prefix, recurse=True, index=index, wait="10s")
out["held_ms"] = round((time.monotonic() - started) * 1000)
later.join()
out["index_moved"] = int(after) > int(index)
out["after"] = {e["Key"]: e["Value"].decode() for e in entries}
try:
    out["bad"] = {"accepted": c.kv.put(key, "zero")}
except consul.ConsulException as e:
    out["bad"] = {"refused": str(e)}
print(json.dumps(out))
