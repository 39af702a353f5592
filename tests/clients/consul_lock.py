"""A Consul client we did not write (py-consul) electing a leader through the demo
registry's sessions and locks, the way Consul's leader-election guide does it.

Usage: consul_lock.py REGISTRY_URL KEY

Two candidates each make a session (10 s TTL, no lock delay) and try to take KEY's lock;
the holder's session is then destroyed while the other waits on the key with a blocking
read, and the other takes the lock. Prints what it saw as JSON for the test to check.
"""

import json
import sys
import threading
import time
import urllib.parse

import consul

url = urllib.parse.urlparse(sys.argv[1])
key = sys.argv[2]
a = consul.Consul(host=url.hostname, port=url.port)
b = consul.Consul(host=url.hostname, port=url.port)

sa = a.session.create(name="candidate-a", ttl=10, lock_delay=0)
sb = b.session.create(name="candidate-b", ttl=10, lock_delay=0)
out = {
    "a_acquires": a.kv.put(key, "a", acquire=sa),
    "b_refused": not b.kv.put(key, "b", acquire=sb),
}
index, entry = b.kv.get(key)
out["held_by_a"] = entry["Session"] == sa
out["lock_index_a"] = entry["LockIndex"]

# b waits on the key while a's session ends.
ender = threading.Thread(target=lambda: (time.sleep(0.5), a.session.destroy(sa)))
ender.start()
started = time.monotonic()
after, entry = b.kv.get(key, index=index, wait="10s")
out["held_ms"] = round((time.monotonic() - started) * 1000)
ender.join()
out["released"] = entry.get("Session") is None and int(after) > int(index)
out["b_acquires"] = b.kv.put(key, "b", acquire=sb)
_, entry = b.kv.get(key)
out["lock_index_b"] = entry["LockIndex"]
out["value"] = entry["Value"].decode()
out["renewed"] = b.session.renew(sb)["ID"] == sb
try:
    out["a_renewed"] = a.session.renew(sa)
except consul.NotFound:
    out["a_renewed"] = "not found"
out["listed"] = sorted(s["Name"] for s in b.session.list()[1])
print(json.dumps(out))
